"""Building a TensorRT engine from a bundle's ONNX and ``build.json``, with TensorRT's Python API.

A build follows one of four **dialect paths**, picked by :func:`dialect_path` from the TensorRT
release and the bundle's dialect:

============  =========================================================================================
path          what it does
============  =========================================================================================
weak-8.6      ``EXPLICIT_BATCH`` network; FP16/INT8 builder flags; the precision plan's FP32 layers
              pinned (``layer.precision``, ``set_output_type``, ``OBEY_PRECISION_CONSTRAINTS``); INT8
              from a calibration cache (an ``IInt8EntropyCalibrator2`` that only serves the cache) or
              from Q/DQ nodes; START/FINISH progress lines (8.6 has no ``IProgressMonitor``)
weak-10       as weak-8.6 without ``EXPLICIT_BATCH`` (the only mode since 10.0), with an
              ``IProgressMonitor``
strong-10     ``STRONGLY_TYPED`` network from the typed ONNX; no precision flags, no pins, no calibrator
strong-11     TensorRT 11 is strongly typed only: a plain network, no precision flags (11 removed them)
============  =========================================================================================

Every path: an optimisation profile from the bundle's batch (when the ONNX's batch is dynamic), the
workspace pool limit, the builder optimisation level, a timing cache read from and written back to a
file, DLA (``default_device_type``, ``DLA_core``, ``GPU_FALLBACK``; static shapes only) and an engine
inspector dump of each layer's precision.

The table is the code: :data:`PATH_STEPS` lists the step functions each path runs, in order, and the
build runs exactly those. Each step declares with :func:`~rftrt.engines.runtime.uses` the TensorRT
names it touches, so :data:`API_USED` (per path) is derived from the code, not written twice.
``tests/test_trt_api_conformance.py`` checks every declared name against the Python API of the
TensorRT releases each path runs with (8.6.1; 10.3.0 and 10.16.1.11; 11.4.0.106 in
``data/trt_api/``) and parses each step's source to check its declaration is complete. On the device,
:func:`missing_api` repeats the check against the installed ``tensorrt`` before building.

The engine file is the plain serialized plan; everything else goes to the sidecar ``<engine>.json``
(:func:`sidecar_record`). ``tensorrt`` is imported inside functions only.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import RftrtError
from ..files import sha256_bytes, sha256_file, write_file_atomic
from ..targets.batch import format_batch
from ..targets.profiles import list_targets, load_target
from ..targets.tensorrt import major_minor
from .build_spec import BuildSpec
from .bundle import verify_bundle
from .runtime import (
    api_names,
    cuda_device_count,
    gpu_info,
    import_tensorrt,
    installed_tensorrt_version,
    read_plan_header,
    tensorrt_logger,
    uses,
)
from .trtexec import trtexec_build_command

__all__ = [
    "PATHS",
    "PATH_STEPS",
    "API_USED",
    "BUILD_OUTPUTS",
    "BuildPlan",
    "BuildResult",
    "dialect_path",
    "plan_build",
    "check_tensorrt_version",
    "rf_export_command",
    "match_fp32_layers",
    "check_network_io",
    "parse_layer_information",
    "missing_api",
    "read_calibration_cache",
    "sidecar_path",
    "sidecar_record",
    "load_bundle_spec",
    "build_bundle",
]

#: Files a build or benchmark writes into a bundle that its manifest does not list.
BUILD_OUTPUTS = ("*.engine", "*.engine.json", "*.plan", "*.plan.json", "timing.cache", "*.log", "verify*.json")

_DIALECT_WORDS = {"weak": "weakly typed", "strong": "strongly typed"}
_SIDECAR_SCHEMA = 1


# --- the path -----------------------------------------------------------------------------------


def dialect_path(tensorrt_version: str, dialect: str) -> str:
    """The dialect path for a TensorRT release and a bundle dialect: weak-8.6, weak-10, strong-10 or strong-11."""
    major, minor = major_minor(tensorrt_version)
    if dialect not in _DIALECT_WORDS:
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


@dataclass(frozen=True)
class BuildPlan:
    """The decisions for one build, as data: made from the spec alone, before TensorRT is touched."""

    path: str
    tensorrt_version: str
    #: NetworkDefinitionCreationFlag members set
    network_flags: tuple[str, ...]
    #: BuilderFlag members set
    builder_flags: tuple[str, ...]
    #: (min, opt, max) input shapes for the optimisation profile (used when the ONNX's batch is dynamic)
    profile: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]
    workspace_bytes: int
    builder_optimization_level: int
    #: ONNX node names to pin to FP32 (weakly typed with reduced precision only)
    fp32_layers: tuple[str, ...]
    calibration_cache: str | None
    dla_core: int | None
    #: "monitor" (IProgressMonitor) or "log" (START/FINISH lines)
    progress: str
    #: the step functions the path runs, by name
    steps: tuple[str, ...]

    def as_dict(self) -> dict:
        data = asdict(self)
        data["profile"] = {k: list(v) for k, v in zip(("min", "opt", "max"), self.profile, strict=True)}
        return data


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
    if spec.dla_core is not None:
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
    head = f"bundle is for TensorRT {spec.tensorrt_version} ({_DIALECT_WORDS.get(spec.dialect, spec.dialect)}); this is TensorRT {have}"
    command = rf_export_command(spec, installed)
    if command:
        raise RftrtError(f"{head}: run {command}")
    target = load_target(spec.target)
    offered = ", ".join(r.version for r in target.releases)
    raise RftrtError(
        f"{head}, which no target profile for this GPU (SM {target.compute_capability}) offers; "
        f"{spec.target} offers TensorRT {offered}: install one of those"
    )


# --- pure helpers the steps use -----------------------------------------------------------------


def match_fp32_layers(layer_names: Sequence[str], nodes: Sequence[str]) -> tuple[dict[str, list[int]], list[str]]:
    """Which network layers to pin for each ONNX node of the precision plan.

    TensorRT's ONNX parser names a node's layer after the node, and the extra layers it needs for the
    same node after the node plus ``_N`` (onnx-tensorrt ``ImporterContext::registerLayer`` and its
    unique-name counter). Returns ({node: [layer indices]}, [nodes without a layer]).
    """
    exact: dict[str, list[int]] = {}
    for index, name in enumerate(layer_names):
        exact.setdefault(name, []).append(index)
    wanted = set(nodes)
    suffixed: dict[str, list[int]] = {}
    pattern = re.compile(r"^(.*)_\d+$")
    for index, name in enumerate(layer_names):
        m = pattern.match(name)
        if m and m.group(1) in wanted and name not in wanted:
            suffixed.setdefault(m.group(1), []).append(index)
    matches: dict[str, list[int]] = {}
    missing: list[str] = []
    for node in nodes:
        found = sorted(set(exact.get(node, []) + suffixed.get(node, [])))
        if found:
            matches[node] = found
        else:
            missing.append(node)
    return matches, missing


def check_network_io(
    inputs: Sequence[tuple[str, tuple[int, ...]]], outputs: Sequence[tuple[str, tuple[int, ...]]], spec: BuildSpec
) -> bool:
    """Check the parsed network's I/O against build.json; return whether the batch is dynamic."""
    if len(inputs) != 1:
        raise RftrtError(f"the ONNX has {len(inputs)} inputs; rftrt models have one ({spec.input_name})")
    name, shape = inputs[0]
    if name != spec.input_name:
        raise RftrtError(f"the ONNX's input is {name!r}, build.json says {spec.input_name!r}; re-export the bundle")
    if spec.output_name not in [n for n, _ in outputs]:
        raise RftrtError(f"the ONNX has no output {spec.output_name!r} (it has {', '.join(n for n, _ in outputs)}); re-export the bundle")
    expected = (3, spec.resolution, spec.resolution)
    if len(shape) != 4 or tuple(shape[1:]) != expected:
        raise RftrtError(f"the ONNX's input shape is {tuple(shape)}; build.json says N×{'×'.join(map(str, expected))}")
    dynamic = shape[0] == -1
    if not dynamic and not (spec.batch.static and shape[0] == spec.batch.opt):
        raise RftrtError(
            f"the ONNX has a static batch of {shape[0]} but build.json asks for batch {format_batch(spec.batch)}; re-export the bundle"
        )
    return dynamic


_PRECISION_WORDS = (
    ("int8", "int8"),
    ("bf16", "bf16"),
    ("fp16", "fp16"),
    ("half", "fp16"),
    ("fp32", "fp32"),
    ("float", "fp32"),
    ("int32", "int32"),
    ("int64", "int64"),
    ("bool", "bool"),
    ("fp8", "fp8"),
)


def _precision_of(format_text: str) -> str:
    text = format_text.lower()
    for word, precision in _PRECISION_WORDS:
        if word in text:
            return precision
    return "unknown"


def parse_layer_information(text: str) -> list[dict]:
    """Each engine layer's name, type and output precision, from the engine inspector's JSON.

    With detailed profiling verbosity each layer is an object whose outputs carry a
    ``"Format/Datatype"`` such as ``"Row major linear FP16 format"`` (or just ``"Half"``); with less
    detail layers are bare names and the precision is ``"unknown"``.
    """
    try:
        data = json.loads(text)
    except ValueError:
        return []
    layers = data.get("Layers", []) if isinstance(data, dict) else []
    result = []
    for layer in layers:
        if isinstance(layer, str):
            result.append({"name": layer, "type": "unknown", "precision": "unknown", "outputs": []})
            continue
        outputs = [str(o.get("Format/Datatype", "")) for o in layer.get("Outputs", []) if isinstance(o, dict)]
        precisions = sorted({_precision_of(o) for o in outputs}) or ["unknown"]
        result.append(
            {
                "name": str(layer.get("Name", "")),
                "type": str(layer.get("LayerType", "unknown")),
                "precision": precisions[0] if len(precisions) == 1 else "+".join(precisions),
                "outputs": outputs,
            }
        )
    return result


def _precision_counts(layers: Iterable[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for layer in layers:
        counts[layer["precision"]] = counts.get(layer["precision"], 0) + 1
    return dict(sorted(counts.items()))


def read_calibration_cache(path: Path) -> bytes:
    """A TensorRT calibration cache's bytes (text: ``TRT-<version>-<algorithm>`` then ``tensor: hex``)."""
    path = Path(path)
    if not path.is_file():
        raise RftrtError(f"calibration cache {path} is missing; re-export the bundle")
    cache = path.read_bytes()
    if not cache.startswith(b"TRT-"):
        raise RftrtError(f"{path.name} is not a TensorRT calibration cache (it must start with 'TRT-<version>-<algorithm>')")
    return cache


def _calibration_cache_note(path: Path, cache: bytes) -> str:
    header = cache.split(b"\n", 1)[0].decode(errors="replace").strip()
    return f"calibration cache {Path(path).name} ({header})"


def missing_api(trt: Any, names: Iterable[str]) -> list[str]:
    """The names (``"Class.member"``, ``"Enum.MEMBER"``) that the installed ``tensorrt`` module lacks."""
    missing = []
    for name in names:
        obj = trt
        for part in name.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                missing.append(name)
                break
    return missing


# --- the steps ----------------------------------------------------------------------------------


@dataclass
class _Build:
    """What the steps share: the inputs, the TensorRT objects made so far, and what the sidecar records."""

    trt: Any
    spec: BuildSpec
    plan: BuildPlan
    onnx_path: Path
    timing_cache_path: Path | None
    calibration_cache_path: Path | None
    log: Callable[[str], None]
    verbose: bool = False
    logger: Any = None
    builder: Any = None
    network: Any = None
    parser: Any = None
    config: Any = None
    profile: Any = None
    serialized: bytes | None = None
    #: Python objects TensorRT calls back into; kept alive for the build
    keep: list = field(default_factory=list)
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    dynamic_batch: bool = True
    record: dict = field(default_factory=dict)


@uses("Builder", calls=(tensorrt_logger,))
def _create_builder(state: _Build) -> None:
    trt = state.trt
    state.logger = tensorrt_logger(trt, verbose=state.verbose, echo=state.log)
    try:
        state.builder = trt.Builder(state.logger)
    except (TypeError, RuntimeError) as exc:
        raise RftrtError(f"TensorRT could not create a builder: no usable CUDA GPU? ({str(exc).splitlines()[0]})") from None


@uses("Builder.create_network", "NetworkDefinitionCreationFlag.EXPLICIT_BATCH")
def _create_network_explicit_batch(state: _Build) -> None:
    trt = state.trt
    state.network = state.builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))


@uses("Builder.create_network", "NetworkDefinitionCreationFlag.STRONGLY_TYPED")
def _create_network_strongly_typed(state: _Build) -> None:
    trt = state.trt
    state.network = state.builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))


@uses("Builder.create_network")
def _create_network(state: _Build) -> None:
    # 10.x weak: explicit batch is the only mode. 11.x: strongly typed is the only mode.
    state.network = state.builder.create_network(0)


@uses(
    "OnnxParser",
    "OnnxParser.parse_from_file",
    "OnnxParser.num_errors",
    "OnnxParser.get_error",
    "ParserError.desc",
    "ParserError.node",
)
def _parse_onnx(state: _Build) -> None:
    trt = state.trt
    parser = trt.OnnxParser(state.network, state.logger)
    state.parser = parser
    if not parser.parse_from_file(str(state.onnx_path)):
        errors = [parser.get_error(i) for i in range(parser.num_errors)]
        detail = f"{errors[0].desc()} (ONNX node #{errors[0].node()})" if errors else "no error reported"
        more = f"; {len(errors) - 1} more errors above" if len(errors) > 1 else ""
        raise RftrtError(f"TensorRT could not parse {state.onnx_path.name}: {detail}{more}")


@uses(
    "INetworkDefinition.num_inputs",
    "INetworkDefinition.get_input",
    "INetworkDefinition.num_outputs",
    "INetworkDefinition.get_output",
    "ITensor.name",
    "ITensor.shape",
)
def _read_io(state: _Build) -> None:
    network = state.network
    state.inputs = [(t.name, tuple(int(d) for d in t.shape)) for t in map(network.get_input, range(network.num_inputs))]
    state.outputs = [(t.name, tuple(int(d) for d in t.shape)) for t in map(network.get_output, range(network.num_outputs))]
    state.dynamic_batch = check_network_io(state.inputs, state.outputs, state.spec)


@uses(
    "Builder.create_builder_config",
    "IBuilderConfig.set_memory_pool_limit",
    "MemoryPoolType.WORKSPACE",
    "IBuilderConfig.builder_optimization_level",
    "IBuilderConfig.profiling_verbosity",
    "ProfilingVerbosity.DETAILED",
)
def _create_config(state: _Build) -> None:
    trt = state.trt
    config = state.builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, state.plan.workspace_bytes)
    config.builder_optimization_level = state.plan.builder_optimization_level
    # Detailed, so the engine inspector reports each layer's precision for the sidecar.
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    state.config = config


@uses("Builder.create_optimization_profile", "IOptimizationProfile.set_shape", "IBuilderConfig.add_optimization_profile")
def _add_profile(state: _Build) -> None:
    if not state.dynamic_batch:
        state.record["profile"] = "static ONNX: no optimisation profile needed"
        return
    low, opt, high = state.plan.profile
    profile = state.builder.create_optimization_profile()
    profile.set_shape(state.spec.input_name, low, opt, high)
    if state.config.add_optimization_profile(profile) < 0:
        raise RftrtError(f"TensorRT refused the optimisation profile {low} / {opt} / {high}")
    state.profile = profile


@uses("IBuilderConfig.create_timing_cache", "IBuilderConfig.set_timing_cache")
def _load_timing_cache(state: _Build) -> None:
    config, path = state.config, state.timing_cache_path
    data = path.read_bytes() if path is not None and path.is_file() else b""
    cache = config.create_timing_cache(data)
    if not config.set_timing_cache(cache, False):
        state.log(f"warning: timing cache {path} does not fit this TensorRT or GPU; starting an empty one")
        data = b""
        cache = config.create_timing_cache(data)
        config.set_timing_cache(cache, False)
    state.keep.append(cache)
    state.record["timing_cache"] = {"path": str(path) if path else None, "loaded_bytes": len(data)}


@uses("IBuilderConfig.set_flag", "BuilderFlag.FP16", "BuilderFlag.INT8", "BuilderFlag.OBEY_PRECISION_CONSTRAINTS")
def _set_precision_flags(state: _Build) -> None:
    trt = state.trt
    flags = {
        "FP16": trt.BuilderFlag.FP16,
        "INT8": trt.BuilderFlag.INT8,
        "OBEY_PRECISION_CONSTRAINTS": trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS,
    }
    for name in state.plan.builder_flags:
        if name in flags:
            state.config.set_flag(flags[name])


@uses(
    "INetworkDefinition.num_layers",
    "INetworkDefinition.get_layer",
    "ILayer.name",
    "ILayer.precision",
    "ILayer.num_outputs",
    "ILayer.get_output",
    "ILayer.set_output_type",
    "ITensor.dtype",
    "DataType.FLOAT",
    "DataType.HALF",
)
def _pin_fp32_layers(state: _Build) -> None:
    if not state.plan.fp32_layers:
        return
    trt, network = state.trt, state.network
    names = [network.get_layer(i).name for i in range(network.num_layers)]
    matches, missing = match_fp32_layers(names, state.plan.fp32_layers)
    floating = (trt.DataType.FLOAT, trt.DataType.HALF)
    pinned = 0
    for indices in matches.values():
        for index in indices:
            layer = network.get_layer(index)
            layer.precision = trt.DataType.FLOAT
            for o in range(layer.num_outputs):
                if layer.get_output(o).dtype in floating:
                    layer.set_output_type(o, trt.DataType.FLOAT)
            pinned += 1
    if missing:
        state.log(
            f"warning: {len(missing)} of the precision plan's {len(state.plan.fp32_layers)} FP32 nodes have no layer "
            f"of that name in TensorRT's network (first: {missing[0]}); they are not pinned (see the sidecar)"
        )
    state.record["fp32_pins"] = {
        "nodes": len(state.plan.fp32_layers),
        "nodes_pinned": len(matches),
        "layers_pinned": pinned,
        "missing": missing,
    }


@uses(
    "IInt8EntropyCalibrator2",
    "IInt8EntropyCalibrator2.get_batch_size",
    "IInt8EntropyCalibrator2.get_batch",
    "IInt8EntropyCalibrator2.read_calibration_cache",
    "IInt8EntropyCalibrator2.write_calibration_cache",
    "IBuilderConfig.int8_calibrator",
    "IBuilderConfig.set_calibration_profile",
)
def _use_calibration_cache(state: _Build) -> None:
    """INT8 scales from the bundle's calibration cache: a calibrator that serves the cache and no data."""
    if state.calibration_cache_path is None:
        if "INT8" in state.plan.builder_flags:
            state.record["int8"] = "explicit Q/DQ in the ONNX"
        return
    trt = state.trt
    cache = read_calibration_cache(state.calibration_cache_path)

    class _CacheCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str]) -> None:
            return None  # no data: TensorRT must take every scale from the cache

        def read_calibration_cache(self) -> bytes:
            return cache

        def write_calibration_cache(self, data: bytes) -> None:
            return None  # the bundle's cache is the source of truth

    calibrator = _CacheCalibrator()
    state.keep.append(calibrator)
    state.config.int8_calibrator = calibrator
    if state.profile is not None:
        state.config.set_calibration_profile(state.profile)
    state.record["int8"] = _calibration_cache_note(state.calibration_cache_path, cache)


@uses(
    "Builder.num_DLA_cores",
    "IBuilderConfig.default_device_type",
    "DeviceType.DLA",
    "IBuilderConfig.DLA_core",
    "IBuilderConfig.set_flag",
    "BuilderFlag.GPU_FALLBACK",
    "IBuilderConfig.can_run_on_DLA",
    "INetworkDefinition.num_layers",
    "INetworkDefinition.get_layer",
)
def _use_dla(state: _Build) -> None:
    core = state.plan.dla_core
    if core is None:
        return
    trt, config, network = state.trt, state.config, state.network
    cores = state.builder.num_DLA_cores
    if cores == 0:
        gpu = state.record.get("gpu", {}).get("name", "this GPU")
        raise RftrtError(f"DLA core {core} asked, but {gpu} has no DLA (DLA is on Orin); re-export the bundle without --dla")
    if core >= cores:
        raise RftrtError(f"DLA core {core} does not exist here: this device has {cores} DLA cores, numbered 0..{cores - 1}")
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = core
    config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    on_dla = sum(bool(config.can_run_on_DLA(network.get_layer(i))) for i in range(network.num_layers))
    state.record["dla"] = {
        "core": core,
        "network_layers_on_dla": on_dla,
        "network_layers_on_gpu": network.num_layers - on_dla,
        "basis": "IBuilderConfig.can_run_on_DLA for each network layer, before the build",
    }


@uses(
    "IProgressMonitor",
    "IProgressMonitor.phase_start",
    "IProgressMonitor.step_complete",
    "IProgressMonitor.phase_finish",
    "IBuilderConfig.progress_monitor",
)
def _use_progress_monitor(state: _Build) -> None:
    trt, log = state.trt, state.log
    starts: dict[str, float] = {}
    depth: dict[str, int] = {}

    class _Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            depth[phase_name] = depth.get(parent_phase, -1) + 1 if parent_phase else 0
            starts[phase_name] = time.perf_counter()
            if depth[phase_name] <= 1:
                log(f"  {'  ' * depth[phase_name]}{phase_name} ({num_steps} steps)")

        def step_complete(self, phase_name: str, step: int) -> bool:
            return True  # never cancel

        def phase_finish(self, phase_name: str) -> None:
            if depth.get(phase_name, 2) <= 1:
                seconds = time.perf_counter() - starts.get(phase_name, time.perf_counter())
                log(f"  {'  ' * depth[phase_name]}{phase_name} done ({seconds:.1f} s)")

    monitor = _Monitor()
    state.keep.append(monitor)
    state.config.progress_monitor = monitor
    state.record["progress"] = "IProgressMonitor"


def _use_progress_log(state: _Build) -> None:
    # TensorRT 8.6 has no IProgressMonitor: _build's START/FINISH lines are all there is.
    state.record["progress"] = "START/FINISH log (TensorRT 8.6 has no IProgressMonitor)"


@uses("Builder.build_serialized_network")
def _build(state: _Build) -> None:
    state.log(f"START building {state.spec.engine} with TensorRT {state.plan.tensorrt_version} ({state.plan.path}); this takes minutes")
    start = time.perf_counter()
    plan = state.builder.build_serialized_network(state.network, state.config)
    seconds = time.perf_counter() - start
    if plan is None:
        last = state.logger.errors[-1] if state.logger.errors else "no error message; run with --verbose"
        raise RftrtError(f"TensorRT could not build the engine ({last})")
    state.serialized = bytes(plan)
    state.record["build_seconds"] = round(seconds, 1)
    state.log(f"FINISH built {state.spec.engine}: {len(state.serialized) / 2**20:.1f} MiB in {seconds:.1f} s")


@uses("IBuilderConfig.get_timing_cache", "ITimingCache.serialize")
def _save_timing_cache(state: _Build) -> None:
    path = state.timing_cache_path
    if path is None:
        return
    cache = state.config.get_timing_cache()
    if cache is None:
        return
    data = bytes(cache.serialize())
    write_file_atomic(path, data)
    state.record["timing_cache"] = {**state.record.get("timing_cache", {}), "saved_bytes": len(data)}


@uses(
    "Runtime",
    "Runtime.DLA_core",
    "Runtime.deserialize_cuda_engine",
    "ICudaEngine.num_layers",
    "ICudaEngine.create_engine_inspector",
    "EngineInspector.get_engine_information",
    "LayerInformationFormat.JSON",
)
def _inspect(state: _Build) -> None:
    trt = state.trt
    runtime = trt.Runtime(state.logger)
    if state.plan.dla_core is not None:
        runtime.DLA_core = state.plan.dla_core
    engine = runtime.deserialize_cuda_engine(state.serialized)
    if engine is None:
        raise RftrtError("TensorRT built an engine it cannot load back; run with --verbose for its log")
    inspector = engine.create_engine_inspector()
    layers = parse_layer_information(inspector.get_engine_information(trt.LayerInformationFormat.JSON)) if inspector else []
    state.record["engine_layers"] = engine.num_layers
    state.record["layers"] = layers
    state.record["layer_precisions"] = _precision_counts(layers)
    if state.plan.dla_core is not None:
        state.record["dla"] = {
            **state.record.get("dla", {}),
            "engine_layers_on_dla": state.logger.dla_layers,
            "engine_layers_on_gpu": state.logger.gpu_layers,
            "engine_basis": "TensorRT's [DlaLayer]/[GpuLayer] build log lines (INFO)",
        }


_WEAK = (
    _parse_onnx,
    _read_io,
    _create_config,
    _add_profile,
    _load_timing_cache,
    _set_precision_flags,
    _pin_fp32_layers,
    _use_calibration_cache,
    _use_dla,
)
_STRONG = (_parse_onnx, _read_io, _create_config, _add_profile, _load_timing_cache, _use_dla)
_FINISH = (_build, _save_timing_cache, _inspect)

#: The steps each dialect path runs, in order: the one table the build follows.
PATH_STEPS: dict[str, tuple[Callable[[_Build], None], ...]] = {
    "weak-8.6": (_create_builder, _create_network_explicit_batch, *_WEAK, _use_progress_log, *_FINISH),
    "weak-10": (_create_builder, _create_network, *_WEAK, _use_progress_monitor, *_FINISH),
    "strong-10": (_create_builder, _create_network_strongly_typed, *_STRONG, _use_progress_monitor, *_FINISH),
    "strong-11": (_create_builder, _create_network, *_STRONG, _use_progress_monitor, *_FINISH),
}
PATHS = tuple(PATH_STEPS)

#: Every TensorRT name each path touches, derived from the steps' declarations.
API_USED: dict[str, tuple[str, ...]] = {path: api_names(steps) for path, steps in PATH_STEPS.items()}


# --- the bundle and the sidecar -----------------------------------------------------------------


def load_bundle_spec(bundle_dir: Path) -> BuildSpec:
    """Verify a bundle against its manifest (build outputs may be there) and read its build.json."""
    bundle_dir = Path(bundle_dir)
    verify_bundle(bundle_dir, ignore=BUILD_OUTPUTS)
    path = bundle_dir / "build.json"
    if not path.is_file():
        raise RftrtError(f"{bundle_dir} has no build.json; it is not an rf-export bundle")
    try:
        return BuildSpec.from_json(path.read_text(encoding="utf-8"))
    except (ValueError, TypeError, KeyError) as exc:
        raise RftrtError(f"{path} is not a valid build specification ({exc}); re-export the bundle") from None


def sidecar_path(engine: Path) -> Path:
    """``model.engine`` → ``model.engine.json``."""
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


def sidecar_record(
    spec: BuildSpec,
    plan: BuildPlan,
    *,
    tensorrt_version: str,
    gpu: dict,
    onnx_sha256: str,
    engine: bytes,
    engine_name: str,
    record: dict,
) -> dict:
    """What ``<engine>.json`` holds: how, where and from what the engine was built, and what it contains."""
    low, _, high = plan.profile
    return {
        "schema": _SIDECAR_SCHEMA,
        "rftrt_version": __version__,
        "engine": engine_name,
        "engine_sha256": sha256_bytes(engine),
        "engine_bytes": len(engine),
        "onnx": spec.onnx,
        "onnx_sha256": onnx_sha256,
        "model": spec.model,
        "resolution": spec.resolution,
        "target": spec.target,
        "precision": spec.precision,
        "dialect": spec.dialect,
        "bundle_tensorrt_version": spec.tensorrt_version,
        "tensorrt": {"version": tensorrt_version, "path": plan.path},
        "gpu": gpu,
        "input": spec.input_name,
        "output": spec.output_name,
        "batch": {"min": low[0], "opt": plan.profile[1][0], "max": high[0]},
        "build": {
            "network_flags": list(plan.network_flags),
            "builder_flags": list(plan.builder_flags),
            "workspace_bytes": plan.workspace_bytes,
            "builder_optimization_level": plan.builder_optimization_level,
            "calibration_cache": plan.calibration_cache,
            "trtexec_equivalent": shlex.join(trtexec_build_command(spec)),
            **{k: record[k] for k in ("profile", "timing_cache", "fp32_pins", "int8", "progress", "build_seconds") if k in record},
        },
        "dla": record.get("dla", {"core": None}),
        "engine_layers": record.get("engine_layers"),
        "layer_precisions": record.get("layer_precisions", {}),
        "layers": record.get("layers", []),
    }


@dataclass(frozen=True)
class BuildResult:
    engine: Path
    sidecar: Path
    record: dict

    def summary(self) -> str:
        r = self.record
        precisions = ", ".join(f"{n} {p}" for p, n in r["layer_precisions"].items()) or "unknown"
        dla = ""
        if r["dla"].get("core") is not None:
            dla = f"; DLA core {r['dla']['core']}: {r['dla'].get('network_layers_on_dla')} network layers on DLA"
        return (
            f"{self.engine} ({r['engine_bytes'] / 2**20:.1f} MiB, TensorRT {r['tensorrt']['version']}, {r['tensorrt']['path']}, "
            f"{r['gpu'].get('name', 'GPU unknown')}); layers: {precisions}{dla}; sidecar {self.sidecar.name}"
        )


def _gpu_for(spec: BuildSpec, allow_other_gpu: bool, log: Callable[[str], None]) -> dict:
    """The GPU to build on, checked against the target's architecture."""
    try:
        count, why = cuda_device_count()
    except RftrtError as exc:  # cuda-python missing: TensorRT itself will say if there is no GPU
        log(f"warning: cannot read the GPU's name and compute capability ({exc}); not checked")
        return {"name": "unknown (cuda-python not installed)"}
    if count == 0:
        raise RftrtError(f"no CUDA GPU is visible here ({why}); rf-build runs on the target's GPU")
    gpu = gpu_info(0)
    target = load_target(spec.target)
    if gpu["compute_capability"] != target.compute_capability:
        message = (
            f"this GPU is {gpu['name']} (SM {gpu['compute_capability']}), the bundle's target {spec.target} is "
            f"SM {target.compute_capability}: an engine only runs on the GPU architecture it was built on"
        )
        if not allow_other_gpu:
            raise RftrtError(f"{message}; build on the target, or pass --allow-other-gpu to build for this GPU anyway")
        log(f"warning: {message}; building for this GPU as asked")
    return gpu


def build_bundle(
    bundle_dir: str | Path,
    *,
    out: str | Path | None = None,
    timing_cache: str | Path | None = None,
    allow_other_gpu: bool = False,
    verbose: bool = False,
    log: Callable[[str], None] = print,
) -> BuildResult:
    """Build a bundle's engine here: verify it, check TensorRT and the GPU, run the path's steps,
    write the plan (``out``, default ``<bundle>/<spec.engine>``) and its sidecar.

    ``timing_cache`` defaults to the bundle's ``timing.cache``; it is read if present and written back.
    """
    bundle_dir = Path(bundle_dir)
    spec = load_bundle_spec(bundle_dir)
    where = f"{spec.target} with TensorRT {spec.tensorrt_version}, {_DIALECT_WORDS[spec.dialect]}"
    trt = import_tensorrt("rf-build", where)
    installed = installed_tensorrt_version(trt)
    check_tensorrt_version(spec, installed)
    plan = plan_build(spec, installed)
    missing = missing_api(trt, API_USED[plan.path])
    if missing:
        raise RftrtError(
            f"TensorRT {installed} lacks {', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}, which the {plan.path} "
            "build path uses; this rftrt was checked against TensorRT 8.6.1, 10.3, 10.16 and 11.4"
        )
    gpu = _gpu_for(spec, allow_other_gpu, log)
    engine_path = Path(out) if out else bundle_dir / spec.engine
    cache_path = Path(timing_cache) if timing_cache else bundle_dir / spec.timing_cache
    calib = bundle_dir / plan.calibration_cache if plan.calibration_cache else None
    onnx_path = bundle_dir / spec.onnx
    state = _Build(
        trt=trt,
        spec=spec,
        plan=plan,
        onnx_path=onnx_path,
        timing_cache_path=cache_path,
        calibration_cache_path=calib,
        log=log,
        verbose=verbose,
    )
    state.record["gpu"] = gpu
    for step in PATH_STEPS[plan.path]:
        step(state)
    assert state.serialized is not None
    read_plan_header(state.serialized, f"the engine TensorRT {installed} serialized")
    record = sidecar_record(
        spec,
        plan,
        tensorrt_version=installed,
        gpu=gpu,
        onnx_sha256=sha256_file(onnx_path),
        engine=state.serialized,
        engine_name=engine_path.name,
        record=state.record,
    )
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    write_file_atomic(engine_path, state.serialized)
    side = sidecar_path(engine_path)
    write_file_atomic(side, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    return BuildResult(engine=engine_path, sidecar=side, record=record)
