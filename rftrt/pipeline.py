"""The export pipeline behind ``rf-export``: model → ONNX → passes → precision plan → validation →
engine or on-device bundle.

Each stage prints one line with what it produced, its size and its time. The result is an
:class:`ExportResult` (also written as JSON with ``--json``). Nothing is written until every stage
has passed, and then atomically: a failed or interrupted run leaves no output directory behind.
"""

from __future__ import annotations

import importlib.util
import io
import json
import platform
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import onnx
import torch

from . import __version__
from .calibration.images import Preprocess, load_batch, sample_image_paths
from .calibration.store import record_bytes
from .engines.build_spec import BuildSpec
from .engines.bundle import write_bundle, write_file_atomic
from .engines.targets import Target, load_target, parse_batch
from .engines.trtexec import build_script
from .errors import RftrtError
from .export.onnx_export import DEFAULT_OPSET, EXPORTER_MAX_OPSET, INPUT_NAME, OUTPUT_NAME, export_onnx
from .export.passes import PassReport, run_pass, to_graph, to_model
from .export.passes.cleanup import cleanup
from .export.passes.fp16_safety import make_attention_fp16_safe
from .export.passes.litemla import rewrite_litemla_padded_ones
from .export.passes.reduce_attention import canonicalize_reduce_attention
from .export.precision import PrecisionPlan, plan_precision, render_fp16
from .export.validate import Comparison, compare, run_onnx
from .models import LiteMLA, ReduceAttention, create

__all__ = ["ExportOptions", "ExportResult", "run_export", "default_output_dir", "write_report"]

_RANDOM_IMAGES = 2
_SEED = 0


@dataclass(frozen=True)
class ExportOptions:
    model: str
    target: str
    precision: str = "fp32"  # "fp32", "fp16" or "int8" (FP16 for what stays out of INT8)
    resolution: int = 224
    weights: str | None = None
    num_classes: int = 1000
    trt_version: str | None = None
    dla_core: int | None = None
    batch: str | None = None  # "min:opt:max" or "N"
    static: bool = False
    opset: int | None = None
    out_dir: str | None = None
    force: bool = False
    calib_dir: str | None = None  # None: the bundled photographs (a smoke test, said so)
    calib_images: int = 512
    calib_batch: int = 8
    calib_method: str | None = None  # None: the calibration module's default


@dataclass
class ExportResult:
    """What a run produced and measured, as data (``--json`` writes :meth:`as_dict`)."""

    options: ExportOptions
    target: Target
    out_dir: Path | None = None
    stages: list[dict] = field(default_factory=list)
    passes: list[PassReport] = field(default_factory=list)
    plan: PrecisionPlan | None = None
    comparisons: list[Comparison] = field(default_factory=list)
    files: list[dict] = field(default_factory=list)
    build: str = ""
    next_commands: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.comparisons)

    def as_dict(self) -> dict:
        t = self.target
        return {
            "rftrt_version": __version__,
            "model": self.options.model,
            "resolution": self.options.resolution,
            "precision": self.options.precision,
            "target": {
                "name": t.name,
                "tensorrt": t.release.version,
                "dialect": t.release.dialect,
                "opset_max": t.release.opset_max,
                "batch": [t.batch.min, t.batch.opt, t.batch.max],
                "dla_core": t.dla_core,
                "notes": list(t.notes),
            },
            "output": str(self.out_dir) if self.out_dir else None,
            "stages": self.stages,
            "passes": [p.as_dict() for p in self.passes],
            "precision_plan": self.plan.as_dict() if self.plan else None,
            "validation": [c.as_dict() for c in self.comparisons],
            "validation_passed": self.passed,
            "files": self.files,
            "build": self.build,
            "next": self.next_commands,
            "warnings": self.warnings,
        }


def default_output_dir(options: ExportOptions, target: Target) -> Path:
    return Path("rftrt_out") / f"{options.model}-r{options.resolution}-{target.name}-trt{target.release.version}-{options.precision}"


def _human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


class _Stages:
    """Prints ``[i/n] stage  what it produced  size  time`` for each stage."""

    def __init__(self, total: int, log: Callable[[str], None], result: ExportResult) -> None:
        self.total, self.index, self.log, self.result = total, 0, log, result

    @contextmanager
    def stage(self, name: str) -> Iterator[dict]:
        self.index += 1
        record: dict = {"stage": name, "summary": "", "bytes": None}
        start = time.perf_counter()
        yield record
        record["seconds"] = round(time.perf_counter() - start, 3)
        size = f"  {_human_size(record['bytes'])}" if record["bytes"] is not None else ""
        self.log(f"[{self.index}/{self.total}] {name:<10} {record['summary']}{size}  ({record['seconds']:.1f} s)")
        self.result.stages.append(record)


def _versions() -> dict[str, str]:
    versions = {"rftrt": __version__, "python": platform.python_version()}
    for dist in ("torch", "onnx", "onnxruntime", "onnx-graphsurgeon", "numpy"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An ``.npz`` (what ``np.load`` reads) without the wall-clock timestamps ``np.savez`` stores,
    so identical data gives identical bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            array_buffer = io.BytesIO()
            np.lib.format.write_array(array_buffer, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            archive.writestr(info, array_buffer.getvalue())
    return buffer.getvalue()


def _golden_images(photos: np.ndarray, batch: int) -> np.ndarray:
    """``batch`` photographs (cycled if fewer are bundled): the bundle's golden input."""
    return photos[np.arange(batch) % len(photos)]


def _expected_cores(model: torch.nn.Module) -> tuple[int, int]:
    modules = list(model.modules())
    return sum(isinstance(m, ReduceAttention) for m in modules), sum(isinstance(m, LiteMLA) for m in modules)


def _tensorrt_version() -> str | None:
    """The installed TensorRT's version, or None where it is absent (or broken, which is said)."""
    if importlib.util.find_spec("tensorrt") is None:
        return None
    try:
        import tensorrt

        return str(tensorrt.__version__)
    except Exception:  # noqa: BLE001 - an install whose libraries do not load cannot build either
        return None


def _bundle_readme(spec: BuildSpec, target: Target, plan: PrecisionPlan | None, comparisons: list[Comparison]) -> str:
    lines = [
        f"# {spec.model} r{spec.resolution} for {target.display} (TensorRT {spec.tensorrt_version}, {spec.precision})",
        "",
        "Written by `rf-export`. Build the engine on the target itself, with the TensorRT that will run it:",
        "",
        "```",
        "bash build.sh            # trtexec build; prints the benchmark command",
        "bash build.sh --bench    # build, then time it with trtexec",
        "rf-build .               # or: build with rftrt (checks the manifest and TensorRT, writes a sidecar)",
        "```",
        "",
        "| file | what |",
        "|---|---|",
        f"| `{spec.onnx}` | the network, {'typed (the ONNX carries every precision)' if spec.dialect == 'strong' else 'FP32; precision comes from builder flags'} |",
        "| `build.json` | the build specification: target, TensorRT release and dialect, shapes, precision plan, DLA |",
        "| `build.sh` | the equivalent trtexec command lines |",
        "| `golden.npz` | `images` (preprocessed bundled photographs) and ONNX Runtime reference logits: `logits_fp32` (FP32 ONNX), `logits` (this bundle's ONNX) |",
        *(["| `precision_plan.json` | which nodes stay FP32 and why |"] if plan else []),
        *(["| `calibration.cache` | TensorRT INT8 calibration cache (implicit INT8, `--calib`) |"] if spec.calibration_cache else []),
        *([f"| `{spec.model}.qdq.onnx` | the same network with explicit Q/DQ (TensorRT 10.x explicit quantization) |"] if spec.precision == "int8" and spec.dialect == "weak" else []),
        *(["| `calibration.json` | how the INT8 ranges were measured (method, data hash, ranges) |"] if spec.precision == "int8" else []),
        "| `manifest.json` | sha256 and size of every file, and the versions that produced them |",
        "",
        f"Dialect: **{'strongly' if spec.dialect == 'strong' else 'weakly'} typed**. "
        + (
            "The ONNX carries every tensor's type; no precision flags are passed."
            if spec.dialect == "strong"
            else f"The FP32 ONNX is built with `--{'int8 --fp16 --calib=calibration.cache' if spec.precision == 'int8' else 'fp16'}` "
            f"and {len(spec.fp32_layers)} layers pinned to FP32 (`--precisionConstraints=obey --layerPrecisions=…`)."
            if spec.precision != "fp32"
            else "FP32 build."
        ),
        "",
        f"Shapes: batch {spec.batch.min}:{spec.batch.opt}:{spec.batch.max} at {spec.resolution}×{spec.resolution}"
        + (" (static)" if spec.batch.static else "")
        + (f"; DLA core {spec.dla_core} with GPU fallback" if spec.dla_core is not None else "")
        + ".",
        "",
    ]
    if spec.notes:
        lines += ["Notes:", ""] + [f"- {note}" for note in spec.notes] + [""]
    lines += ["Validation on ONNX Runtime (CPU) before writing this bundle:", ""]
    lines += [f"- {c.line()}" for c in comparisons]
    return "\n".join(lines) + "\n"


_CALIBRATION_CACHE = "calibration.cache"


def _calibration_source(options: ExportOptions):
    """``--calib-dir`` (or, said loudly, the bundled photographs), checked before any heavy work."""
    from .calibration.data import ImageSource

    preprocess = Preprocess.for_resolution(options.resolution)
    if options.calib_dir is None:
        return ImageSource.bundled(preprocess)
    return ImageSource.from_folder(options.calib_dir, preprocess, options.calib_images)


def _calibrate(options: ExportOptions, source, target: Target, passed: onnx.ModelProto, plan: PrecisionPlan, log: Callable[[str], None]):
    """INT8 ranges and their renderings for the target's dialect."""
    from .calibration.int8 import calibrate

    method = {"method": options.calib_method} if options.calib_method else {}
    return calibrate(passed, source, target=target, plan=plan, batch=options.calib_batch, log=log, **method)


def run_export(options: ExportOptions, log: Callable[[str], None] = print) -> ExportResult:
    """Run the whole pipeline for ``options``; raises :class:`RftrtError` for bad input or a failed
    validation (after writing nothing)."""
    if options.precision not in ("fp32", "fp16", "int8"):
        raise RftrtError(f"precision {options.precision!r} not supported; use fp32, fp16 or int8")
    if options.calib_dir is not None and options.precision != "int8":
        raise RftrtError("--calib-dir calibrates INT8; add --int8")
    batch = parse_batch(options.batch) if options.batch else None
    target = load_target(options.target, options.trt_version, options.dla_core, batch)
    if options.static and not target.batch.static:
        target = load_target(options.target, options.trt_version, options.dla_core, parse_batch(str(target.batch.opt)))
    opset = options.opset if options.opset is not None else min(DEFAULT_OPSET, target.release.opset_max)
    if opset > target.release.opset_max:
        raise RftrtError(
            f"opset {opset} is above what TensorRT {target.release.version} on {target.name} parses "
            f"({target.release.opset_max}); use --opset {target.release.opset_max} or lower"
        )
    if opset > EXPORTER_MAX_OPSET:
        raise RftrtError(f"opset {opset} is above the exporter's {EXPORTER_MAX_OPSET}; use --opset {EXPORTER_MAX_OPSET} or lower")
    out_dir = Path(options.out_dir) if options.out_dir else default_output_dir(options, target)
    if out_dir.exists() and not options.force:
        raise RftrtError(f"{out_dir} exists; pass --force to replace it")

    calib_source = _calibration_source(options) if options.precision == "int8" else None
    result = ExportResult(options=options, target=target)
    stages = _Stages(6, log, result)

    with stages.stage("model") as record:
        if options.weights is None:
            torch.manual_seed(_SEED)  # random weights, but the same ones every run
        model = create(options.model, options.resolution, options.weights, options.num_classes)
        report = model.load_report
        params = sum(p.numel() for p in model.parameters())
        source = (
            "RANDOM WEIGHTS (no --weights): outputs are meaningless, only the deployment path is exercised"
            if report.random
            else f"{report.source} checkpoint {Path(report.path).name} ({len(report.unused_keys)} keys unused)"
        )
        if report.random:
            result.warnings.append("random weights: validation checks the toolchain, not the model's accuracy")
        record["summary"] = f"{options.model} r{options.resolution}, {params:,} params, {source}"

    photos = load_batch(sample_image_paths(), Preprocess.for_resolution(options.resolution))
    n_random = _RANDOM_IMAGES
    if target.batch.static:  # a static ONNX takes exactly its batch
        photos, n_random = _golden_images(photos, target.batch.opt), target.batch.opt
    shape = (n_random, 3, options.resolution, options.resolution)
    inputs = {"photographs": photos, "random": np.random.default_rng(_SEED).standard_normal(shape).astype(np.float32)}

    with stages.stage("export") as record:
        metadata_props = {
            "model": options.model,
            "resolution": str(options.resolution),
            "weights_sha256": report.sha256 or "random",
        }
        exported = export_onnx(
            model, options.resolution, opset=opset, dynamic_batch=not target.batch.static, batch=target.batch.opt, metadata=metadata_props
        )
        record["bytes"] = exported.ByteSize()
        batch_text = "static batch " + str(target.batch.opt) if target.batch.static else "dynamic batch"
        record["summary"] = f"ONNX opset {opset}, {len(exported.graph.node)} nodes, {INPUT_NAME} → {OUTPUT_NAME}, {batch_text}"

    with stages.stage("passes") as record:
        graph = to_graph(exported)
        reduce_blocks, litemla_blocks = _expected_cores(model)
        pipeline = [(cleanup, None), (canonicalize_reduce_attention, reduce_blocks), (rewrite_litemla_padded_ones, litemla_blocks)]
        if options.precision != "fp32":  # INT8 builds run what stays out of INT8 in FP16
            pipeline.append((make_attention_fp16_safe, reduce_blocks + litemla_blocks))
        result.passes = [run_pass(graph, fn, expected) for fn, expected in pipeline]
        passed = to_model(graph, exported)
        record["bytes"] = passed.ByteSize()
        record["summary"] = "; ".join(
            f"{p.name} {p.matched}" + (f"/{p.expected}" if p.expected is not None else "") for p in result.passes
        ) + f"; {len(exported.graph.node)} → {len(passed.graph.node)} nodes"

    calibration = None
    with stages.stage("precision") as record:
        deployed, typed = passed, None
        if options.precision == "fp32":
            record["summary"] = "FP32 throughout"
        else:
            result.plan = plan_precision(passed, photos, f"{len(photos)} bundled photographs")
            typed = render_fp16(passed, set(result.plan.fp32_nodes))
            if options.precision == "int8":
                calibration = _calibrate(options, calib_source, target, passed, result.plan, log)
                result.plan = calibration.plan  # calibration may pin more nodes
                result.warnings += calibration.warnings
                typed = calibration.typed_model or calibration.qdq_model or typed
            if target.strongly_typed:
                deployed = typed
            pinned = f"; {len(result.plan.weakly_typed_layers(graph))} layers to pin" if not target.strongly_typed else "; typed ONNX"
            record["summary"] = result.plan.summary() + pinned + (f"; INT8 {calibration.summary()}" if calibration else "")
        record["bytes"] = deployed.ByteSize()

    with stages.stage("validate") as record:
        with torch.no_grad():
            torch_out = {name: model(torch.from_numpy(x)).numpy() for name, x in inputs.items()}
        exported_out = run_onnx(exported, inputs)
        passed_out = run_onnx(passed, {**inputs, "golden": _golden_images(photos, target.batch.opt)})
        typed_out = run_onnx(typed, inputs) if typed is not None else {}
        for name in inputs:
            result.comparisons.append(compare("PyTorch", torch_out[name], "ONNX exported", exported_out[name], name, "fp32"))
            result.comparisons.append(compare("ONNX exported", exported_out[name], "ONNX after passes", passed_out[name], name, "passes"))
            if typed is not None and calibration is None:
                result.comparisons.append(compare("ONNX after passes", passed_out[name], "FP16 plan", typed_out[name], name, "fp16"))
        if calibration is not None:
            result.comparisons += calibration.checks
        failed = [c for c in result.comparisons if not c.passed]
        record["summary"] = f"{len(result.comparisons) - len(failed)}/{len(result.comparisons)} comparisons within tolerance"
        for comparison in result.comparisons:
            log(f"           {comparison.line()}")
        if failed:
            raise RftrtError(f"validation failed: {failed[0].line()}; nothing was written")

    with stages.stage("bundle") as record:
        typed_suffix = {"fp16": ".fp16", "int8": ".int8"}.get(options.precision, "")
        onnx_name = f"{options.model}{typed_suffix if target.strongly_typed else ''}.onnx"
        fp32_layers = tuple(result.plan.weakly_typed_layers(graph)) if result.plan and not target.strongly_typed else ()
        spec = BuildSpec(
            model=options.model,
            resolution=options.resolution,
            target=target.name,
            tensorrt_version=target.release.version,
            dialect=target.release.dialect,
            onnx=onnx_name,
            input_name=INPUT_NAME,
            output_name=OUTPUT_NAME,
            batch=target.batch,
            precision=options.precision,
            fp32_layers=fp32_layers,
            dla_core=target.dla_core,
            workspace_mib=target.workspace_mib,
            builder_optimization_level=target.builder_optimization_level,
            engine=f"{options.model}.engine",
            timing_cache="timing.cache",
            calibration_cache=_CALIBRATION_CACHE if calibration is not None and calibration.cache_text else None,
            notes=target.notes,
        )
        golden_in = _golden_images(photos, target.batch.opt)
        files = {
            onnx_name: deployed.SerializeToString(),
            "build.json": spec.to_json().encode(),
            "build.sh": build_script(spec).encode(),
            "golden.npz": _npz_bytes(
                {
                    "images": golden_in,
                    "logits_fp32": passed_out["golden"],
                    "logits": run_onnx(deployed, {"golden": golden_in})["golden"] if deployed is not passed else passed_out["golden"],
                }
            ),
            "README.md": _bundle_readme(spec, target, result.plan, result.comparisons).encode(),
        }
        if result.plan:
            files["precision_plan.json"] = (json.dumps(result.plan.as_dict(), indent=2, sort_keys=True) + "\n").encode()
        if calibration is not None:
            files["calibration.json"] = record_bytes(calibration.record)
            if calibration.cache_text:
                files[_CALIBRATION_CACHE] = calibration.cache_text.encode()
            if calibration.qdq_model is not None and not target.strongly_typed:
                files[f"{options.model}.qdq.onnx"] = calibration.qdq_model.SerializeToString()
        bundle = write_bundle(out_dir, files, force=options.force, versions=_versions())
        result.out_dir = bundle.path
        result.files = [{"name": f.name, "bytes": f.size, "sha256": f.sha256} for f in bundle.files]
        record["bytes"] = sum(f.size for f in bundle.files)
        record["summary"] = f"{bundle.path}/ ({len(bundle.files)} files)"

    trt = _tensorrt_version()
    rf_build = f"rf-build {result.out_dir}"
    if trt is None:
        result.build = f"TensorRT not found: wrote bundle {result.out_dir}; on the device run `{rf_build}` (or `bash {result.out_dir}/build.sh` with trtexec)"
        result.next_commands = [rf_build]
    else:
        from .engines.builder import build_bundle

        try:
            built = build_bundle(result.out_dir, log=log)
            result.build = f"engine: {built.summary()}"
            result.next_commands = [f"rf-verify {built.engine} --bundle {result.out_dir}"]
        except RftrtError as exc:  # e.g. a GPU of another architecture: the bundle stands, the build is the device's
            result.build = f"TensorRT {trt} found, no engine built here ({exc}); on the {target.display} run `{rf_build}`"
            result.next_commands = [rf_build]
    log(result.build)
    return result


def write_report(result: ExportResult, path: str | Path) -> None:
    """``--json FILE``: the machine-readable form of the run."""
    write_file_atomic(Path(path), (json.dumps(result.as_dict(), indent=2, sort_keys=True) + "\n").encode())

