"""Planning a build before TensorRT is touched: the dialect path for a TensorRT release, the plan for a
bundle on it, and whether the installed release is the bundle's (with the ``rf-export`` to run if not).

A build follows one of four **dialect paths**, picked by :func:`dialect_path` from the TensorRT
release and the bundle's dialect:

============  =========================================================================================
path          what it does
============  =========================================================================================
weak-8.6      ``EXPLICIT_BATCH`` network; FP16/INT8 builder flags; the precision plan's FP32 layers
              pinned (``layer.precision``, ``set_output_type``, ``OBEY_PRECISION_CONSTRAINTS``); INT8
              from a calibration cache (an ``IInt8EntropyCalibrator2`` that only serves the cache, its
              header made the installed TensorRT's) or from Q/DQ nodes (:func:`int8_route`);
              START/FINISH progress lines (8.6 has no ``IProgressMonitor``)
weak-10       as weak-8.6 without ``EXPLICIT_BATCH`` (the only mode since 10.0), with an
              ``IProgressMonitor``; rf-export's INT8 bundles: the Q/DQ ONNX on the GPU, the cache on DLA
strong-10     ``STRONGLY_TYPED`` network from the typed ONNX; no precision flags, no pins, no calibrator
strong-11     TensorRT 11 is strongly typed only: a plain network, no precision flags (11 removed them)
============  =========================================================================================

:func:`plan_build` writes every decision for one bundle down as a
:class:`~rftrt.engines.build_decisions.BuildPlan`, including the steps its path runs
(:data:`rftrt.engines.build_steps.PATH_STEPS`).
"""

from __future__ import annotations

import shlex

from ..errors import RftrtError
from ..targets.batch import format_batch
from ..targets.profiles import list_targets, load_target
from ..targets.tensorrt import major_minor
from .build_decisions import BuildPlan
from .build_spec import BuildSpec
from .build_steps import PATH_STEPS
from .trtexec import trtexec_build_command

__all__ = ["DIALECT_WORDS", "dialect_path", "int8_route", "plan_build", "rf_export_command", "check_tensorrt_version"]

#: How messages name each bundle dialect.
DIALECT_WORDS = {"weak": "weakly typed", "strong": "strongly typed"}


def dialect_path(tensorrt_version: str, dialect: str) -> str:
    """The dialect path for a TensorRT release and a bundle dialect: weak-8.6, weak-10, strong-10 or strong-11."""
    major, minor = major_minor(tensorrt_version)
    if dialect not in DIALECT_WORDS:
        raise RftrtError(f"build.json dialect {dialect!r} is not one of weak, strong")
    supported = "8.6, 10.x and 11.x"
    if major == 8 and minor == 6:
        if dialect == "strong":
            raise RftrtError("TensorRT 8.6 has no strongly typed networks; a TensorRT 8.6 bundle must be weakly typed")
        return "weak-8.6"
    if major == 10:
        return f"{dialect}-10"
    if major == 11:
        if dialect == "weak":
            raise RftrtError(
                "TensorRT 11 builds strongly typed networks only (its FP16/INT8 builder flags are gone); "
                "this bundle is weakly typed: export a typed ONNX for TensorRT 11 with rf-export --trt-version 11.x"
            )
        return "strong-11"
    raise RftrtError(f"TensorRT {major}.{minor} is not one this builder knows (it supports {supported})")


def int8_route(tensorrt_version: str, dialect: str, dla_core: int | None) -> str:
    """How an INT8 build on ``tensorrt_version`` gets its scales: ``"cache"`` or ``"qdq"``
    (:data:`~rftrt.engines.build_spec.INT8_ROUTES`; rf-export records it as ``build.json``'s ``int8``).

    Strongly typed builds have no calibrator: Q/DQ. TensorRT 10 deprecated the implicit-quantization
    calibrator in 10.1, so GPU builds on 10.x take the Q/DQ ONNX; DLA still needs the calibrator, so
    DLA builds keep the cache, and so does 8.6, whose bundles are calibrated for it.
    """
    path = dialect_path(tensorrt_version, dialect)
    if path.startswith("strong") or (path == "weak-10" and dla_core is None):
        return "qdq"
    return "cache"


def plan_build(spec: BuildSpec, tensorrt_version: str | None = None) -> BuildPlan:
    """Decide a build from ``spec`` for ``tensorrt_version`` (default: the spec's release).

    Refuses what cannot build: a dynamic batch with DLA, a dialect the release lacks, anything the
    bundle's trtexec command line would refuse too (same checks, :mod:`rftrt.engines.trtexec`).
    """
    version = tensorrt_version or spec.tensorrt_version
    path = dialect_path(version, spec.dialect)
    if spec.dla_core is not None and not spec.batch.static:
        raise RftrtError(
            f"DLA needs static shapes, but build.json's batch is dynamic ({format_batch(spec.batch)}); "
            f"re-export with --dla {spec.dla_core} (it makes the batch static) or --batch N"
        )
    trtexec_build_command(spec)  # the same validation build.sh went through
    weak = spec.dialect == "weak"
    network_flags = {"weak-8.6": ("EXPLICIT_BATCH",), "strong-10": ("STRONGLY_TYPED",)}.get(path, ())
    builder_flags: list[str] = []
    if weak and spec.precision == "fp16":
        builder_flags.append("FP16")
    if weak and spec.precision == "int8":
        # FP16 too, so layers without INT8 kernels run in FP16 rather than FP32 (as build.sh does).
        builder_flags += ["INT8", "FP16"]
    fp32_layers = tuple(spec.fp32_layers) if weak and spec.precision != "fp32" else ()
    if fp32_layers:
        builder_flags.append("OBEY_PRECISION_CONSTRAINTS")
    if spec.dla_core is not None and spec.gpu_fallback:
        builder_flags.append("GPU_FALLBACK")
    shapes = tuple(tuple(spec.batch.shape(which, spec.resolution)) for which in ("min", "opt", "max"))
    return BuildPlan(
        path=path,
        tensorrt_version=version,
        network_flags=network_flags,
        builder_flags=tuple(builder_flags),
        profile=shapes,  # type: ignore[arg-type]
        workspace_bytes=spec.workspace_mib << 20,
        builder_optimization_level=spec.builder_optimization_level,
        fp32_layers=fp32_layers,
        calibration_cache=spec.calibration_cache if weak and spec.precision == "int8" else None,
        dla_core=spec.dla_core,
        progress="log" if path == "weak-8.6" else "monitor",
        steps=tuple(step.__name__ for step in PATH_STEPS[path]),
    )


# --- version check: which rf-export to run instead ----------------------------------------------


def rf_export_command(spec: BuildSpec, tensorrt_version: str) -> str | None:
    """The ``rf-export`` command that writes this bundle's equivalent for ``tensorrt_version``.

    Tries the bundle's target first, then the other targets with the same GPU architecture (e.g. a
    DRIVE Orin bundle on a Jetson Orin with JetPack's TensorRT). None if no target offers that release.
    """
    major, minor = major_minor(tensorrt_version)
    wanted = f"{major}.{minor}"
    own = load_target(spec.target)
    candidates = [spec.target] + [
        name
        for name in list_targets()
        if name != spec.target
        and (load_target(name).compute_capability, load_target(name).arch) == (own.compute_capability, own.arch)
    ]
    for name in candidates:
        try:
            target = load_target(name, wanted, spec.dla_core, spec.batch)
            default_batch = load_target(name, wanted, spec.dla_core).batch
        except RftrtError:
            continue
        argv = ["rf-export", "--model", spec.model]
        argv += {"fp16": ["--fp16"], "int8": ["--int8"]}.get(spec.precision, [])
        argv += ["--target", target.name, "--trt-version", wanted]
        if spec.resolution != 224:
            argv += ["--resolution", str(spec.resolution)]
        if spec.dla_core is not None:
            argv += ["--dla", str(spec.dla_core)]
        if spec.batch != default_batch:
            argv += ["--batch", format_batch(spec.batch)]
        return shlex.join(argv)
    return None


def check_tensorrt_version(spec: BuildSpec, installed: str) -> None:
    """Refuse a bundle made for another TensorRT release than ``installed``, with the rf-export to run instead."""
    have = "%d.%d" % major_minor(installed)
    want = "%d.%d" % major_minor(spec.tensorrt_version)
    if have == want:
        return
    head = f"bundle is for TensorRT {spec.tensorrt_version} ({DIALECT_WORDS.get(spec.dialect, spec.dialect)}); this is TensorRT {have}"
    command = rf_export_command(spec, installed)
    if command:
        raise RftrtError(f"{head}: run {command}")
    target = load_target(spec.target)
    offered = ", ".join(r.version for r in target.releases)
    raise RftrtError(
        f"{head}, which no target profile for this GPU (SM {target.compute_capability}) offers; "
        f"{spec.target} offers TensorRT {offered}: install one of those"
    )
