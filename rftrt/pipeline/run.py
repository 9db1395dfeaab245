"""``rf-export``'s run: model → ONNX → passes → precision → validation → bundle → engine (where
TensorRT and the target's GPU are present).

Each stage is one function below and prints one line with what it produced, its size and its time.
Nothing is written until every stage has passed, and then atomically: a failed or interrupted run
leaves no output directory behind.
"""

from __future__ import annotations

import importlib.util
import json
import shlex
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import onnx
import torch

from ..comparison import compare
from ..data.images import bundled_photographs
from ..device.kit import KIT_NAME
from ..engines.build_plan import int8_route
from ..engines.build_spec import BuildSpec, Int8Source
from ..engines.bundle import write_bundle
from ..errors import RftrtError
from ..export.onnx_export import INPUT_NAME, OUTPUT_NAME, export_onnx
from ..export.onnxrt import run_onnx
from ..export.prepare import attention_blocks, run_passes
from ..files import write_file_atomic
from ..models import create
from ..precision.decide import PrecisionResult, decide_precision
from ..tools.inspect.dla import DlaPrediction, predict_dla_onnx
from .bundle_files import CALIBRATION_CACHE, bundle_files, golden_images, versions
from .options import ExportOptions, ExportResult, Resolved, resolve

__all__ = ["run_export", "write_report"]

_RANDOM_IMAGES = 2
_SEED = 0


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


@dataclass
class _Run:
    """What the stages hand on to each other."""

    options: ExportOptions
    resolved: Resolved
    result: ExportResult
    log: Callable[[str], None]
    calibration_source: object = None
    model: torch.nn.Module | None = None
    inputs: dict[str, np.ndarray] | None = None
    golden: np.ndarray | None = None
    exported: onnx.ModelProto | None = None
    passed: onnx.ModelProto | None = None
    precision: PrecisionResult | None = None
    passed_out: dict[str, np.ndarray] | None = None
    #: the golden images' logits of a model already run on them (by ``id`` of the model)
    golden_logits: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def target(self):
        return self.resolved.target


def _calibration_source(options: ExportOptions):
    """``--calib-dir`` (or, said loudly, the bundled photographs), checked before any heavy work."""
    from ..data.images import Preprocess
    from ..data.sources import ImageSource

    preprocess = Preprocess.for_resolution(options.resolution)
    if options.calib_dir is None:
        return ImageSource.bundled(preprocess)
    return ImageSource.from_folder(options.calib_dir, preprocess, options.calib_images)


def _model_stage(run: _Run, record: dict) -> None:
    options = run.options
    run.model = create(options.model, options.resolution, options.weights, options.num_classes, seed=_SEED)
    report = run.model.load_report
    params = sum(p.numel() for p in run.model.parameters())
    made = report.describe().removeprefix("random: ")
    source = f"RANDOM WEIGHTS (no --weights; {made}): the logits depend on the image but mean nothing" if report.random else report.describe()
    if report.random:
        run.result.warnings.append("random weights: validation checks the toolchain, not the model's accuracy")
    record["summary"] = f"{options.model} r{options.resolution}, {params:,} params, {source}"


def _validation_inputs(run: _Run) -> None:
    """The photographs (cycled to the batch of a static ONNX) and seeded random images."""
    target = run.target
    photos = bundled_photographs(run.options.resolution)
    n_random = _RANDOM_IMAGES
    if target.batch.static:  # a static ONNX takes exactly its batch
        photos, n_random = golden_images(photos, target.batch.opt), target.batch.opt
    shape = (n_random, 3, run.options.resolution, run.options.resolution)
    run.inputs = {"photographs": photos, "random": np.random.default_rng(_SEED).standard_normal(shape).astype(np.float32)}
    run.golden = golden_images(photos, target.batch.opt)


def _export_stage(run: _Run, record: dict) -> None:
    options, target = run.options, run.target
    report = run.model.load_report
    metadata = {"model": options.model, "resolution": str(options.resolution), "weights_sha256": report.sha256 or "random", "weights": report.describe()}
    run.exported = export_onnx(
        run.model, options.resolution, opset=run.resolved.opset, dynamic_batch=not target.batch.static, batch=target.batch.opt, metadata=metadata
    )
    record["bytes"] = run.exported.ByteSize()
    batch_text = "static batch " + str(target.batch.opt) if target.batch.static else "dynamic batch"
    record["summary"] = f"ONNX opset {run.resolved.opset}, {len(run.exported.graph.node)} nodes, {INPUT_NAME} → {OUTPUT_NAME}, {batch_text}"


def _passes_stage(run: _Run, record: dict) -> None:
    dla = run.target.dla_core is not None  # the DLA rewrites (docs/dla.md)
    run.passed, run.result.passes = run_passes(run.exported, run.options.precision, attention_blocks(run.model), dla=dla)
    record["bytes"] = run.passed.ByteSize()
    record["summary"] = "; ".join(
        f"{p.name} {p.matched}" + (f"/{p.expected}" if p.expected is not None else "") for p in run.result.passes
    ) + f"; {len(run.exported.graph.node)} → {len(run.passed.graph.node)} nodes"


def _precision_stage(run: _Run, record: dict) -> None:
    options, target, result = run.options, run.target, run.result
    method = {"method": options.calib_method} if options.calib_method else {}
    run.precision = decide_precision(
        run.passed, options.precision, run.inputs["photographs"], target,
        calibration_source=run.calibration_source, calibration_options={"batch": options.calib_batch, **method}, log=run.log,
    )  # fmt: skip
    result.plan, calibration = run.precision.plan, run.precision.calibration
    if calibration is not None:
        result.warnings += calibration.warnings
    if options.precision == "fp32":
        record["summary"] = "FP32 throughout"
    else:
        pinned = f"; {len(result.plan.fp32_nodes)} layers to pin" if not target.strongly_typed else "; typed ONNX"
        record["summary"] = result.plan.summary() + pinned + (f"; INT8 {calibration.summary()}" if calibration else "")
    record["bytes"] = run.precision.deployed.ByteSize()


def _validate_stage(run: _Run, record: dict) -> None:
    inputs, result = run.inputs, run.result
    fp16, calibration = run.precision.fp16, run.precision.calibration
    with torch.no_grad():
        torch_out = {name: run.model(torch.from_numpy(x)).numpy() for name, x in inputs.items()}
    # the golden images are the photographs unless a static batch cycles them: then no second run
    golden_is_photos = np.array_equal(run.golden, inputs["photographs"])
    exported_out = run_onnx(run.exported, inputs, lean=True)
    run.passed_out = run_onnx(run.passed, inputs if golden_is_photos else {**inputs, "golden": run.golden}, lean=True)
    fp16_out = run_onnx(fp16, inputs, lean=True) if fp16 is not None else {}
    if golden_is_photos:
        run.passed_out["golden"] = run.passed_out["photographs"]
        run.golden_logits = {id(model): out["photographs"] for model, out in ((run.passed, run.passed_out), (fp16, fp16_out)) if out}
    for name in inputs:
        result.comparisons.append(compare("PyTorch", torch_out[name], "ONNX exported", exported_out[name], name, "fp32"))
        result.comparisons.append(compare("ONNX exported", exported_out[name], "ONNX after passes", run.passed_out[name], name, "passes"))
        if fp16_out:  # INT8 builds too: what INT8 leaves runs in FP16
            result.comparisons.append(compare("ONNX after passes", run.passed_out[name], "FP16 plan", fp16_out[name], name, "fp16"))
    if calibration is not None:
        result.comparisons += calibration.checks
        if run.model.load_report.random:
            result.not_enforced = ("int8-qdq",)
            result.warnings.append(
                "random weights: the INT8 checks are reported, not enforced (8-bit accuracy needs a trained model; "
                "export with --weights to hold INT8 to its tolerance)"
            )
    failed = [c for c in result.enforced if not c.passed]
    unenforced = len(result.comparisons) - len(result.enforced)
    record["summary"] = f"{sum(c.passed for c in result.comparisons)}/{len(result.comparisons)} comparisons within tolerance" + (
        f" ({unenforced} not enforced: random weights)" if unenforced else ""
    )
    for line in result.validation_lines():
        run.log(f"           {line}")
    if failed:
        raise RftrtError(f"validation failed: {failed[0].line()}; nothing was written")


def _build_spec(run: _Run) -> BuildSpec:
    options, target, plan = run.options, run.target, run.result.plan
    calibration = run.precision.calibration
    typed_suffix = {"fp16": ".fp16", "int8": ".int8"}.get(options.precision, "")
    onnx_name = f"{options.model}{typed_suffix if target.strongly_typed else ''}.onnx"
    pinned = tuple(plan.fp32_nodes) if plan else ()
    int8, cache = None, None
    if calibration is not None:
        route = int8_route(target.tensorrt_version, target.release.dialect, target.dla_core)
        if route == "cache":  # implicit quantization: the FP32 ONNX and the calibration cache
            cache = CALIBRATION_CACHE
        elif not target.strongly_typed:  # explicit quantization: the Q/DQ ONNX (a typed ONNX has its Q/DQ)
            onnx_name = f"{options.model}.qdq.onnx"
        int8 = Int8Source(route, cache or onnx_name)
    return BuildSpec(
        model=options.model,
        resolution=options.resolution,
        target=target.name,
        tensorrt_version=target.tensorrt_version,
        dialect=target.release.dialect,
        onnx=onnx_name,
        input_name=INPUT_NAME,
        output_name=OUTPUT_NAME,
        batch=target.batch,
        precision=options.precision,
        fp32_layers=pinned if not target.strongly_typed else (),
        dla_core=target.dla_core,
        workspace_mib=target.workspace_mib,
        builder_optimization_level=target.builder_optimization_level,
        engine=f"{options.model}.engine",
        timing_cache="timing.cache",
        calibration_cache=cache,
        notes=target.notes,
        int8=int8,
        fp32_islands=pinned if target.strongly_typed and plan else None,
    )


def _dla_placement(run: _Run, spec: BuildSpec, deployed: onnx.ModelProto) -> tuple[BuildSpec, DlaPrediction | None]:
    """On a DLA core: the placement predicted for the deployed ONNX (the plan's FP32 nodes on the
    GPU), and the spec without GPU fallback where the whole network is predicted on DLA in loadables
    one core holds (a build that would split it then fails instead of running partly on the GPU)."""
    if spec.dla_core is None:
        return spec, None
    pinned = set(spec.fp32_islands or ()) | set(spec.fp32_layers)
    prediction = predict_dla_onnx(deployed, spec.precision, pinned, spec.target, spec.dla_core)
    choice = "without" if prediction.without_fallback else "with"
    note = f"DLA core {spec.dla_core} {choice} GPU fallback: the placement prediction says a build without it {prediction.without_fallback_reason()}"
    run.log(f"           {note} (a prediction from the documented DLA rules; rf-build records TensorRT's answer)")
    return replace(spec, gpu_fallback=not prediction.without_fallback, notes=(*spec.notes, note)), prediction


def _bundle_stage(run: _Run, record: dict) -> None:
    result, deployed = run.result, run.precision.deployed
    spec, dla_prediction = _dla_placement(run, _build_spec(run), deployed)
    golden = {
        "images": run.golden,
        "logits_fp32": run.passed_out["golden"],
        "logits": run.golden_logits[id(deployed)] if id(deployed) in run.golden_logits else run_onnx(deployed, {"golden": run.golden})["golden"],
    }
    files = bundle_files(spec, run.target, deployed.SerializeToString(), golden, result.plan, result.validation_lines(), run.precision.calibration, dla_prediction)
    bundle = write_bundle(run.resolved.out_dir, files, force=run.options.force, versions=versions(), log=run.log)
    result.out_dir = bundle.path
    result.files = [{"name": f.name, "bytes": f.size, "sha256": f.sha256} for f in bundle.files]
    record["bytes"] = sum(f.size for f in bundle.files)
    record["summary"] = f"{bundle.path}/ ({len(bundle.files) + 1} files with its manifest)"


def _triton_stage(run: _Run, record: dict) -> None:
    """``--triton``: the bundle's Triton model repository beside it, validated against Triton's schema."""
    from ..serving import write_repository

    repository = write_repository(run.result.out_dir, force=run.options.force, log=run.log)
    record["summary"] = f"{repository.path}/: " + "; ".join(f"{c.model} {c.platform} (schema ok)" for c in repository.checks)
    record["bytes"] = sum((repository.path / name).stat().st_size for name in repository.files)


def _tensorrt_version() -> str | None:
    """The installed TensorRT's version, or None where it is absent (or broken, which is said)."""
    if importlib.util.find_spec("tensorrt") is None:
        return None
    try:
        import tensorrt

        return str(tensorrt.__version__)
    except Exception:  # noqa: BLE001 - an install whose libraries do not load cannot build either
        return None


def _build_or_hand_over(run: _Run) -> None:
    """Build the engine where TensorRT is present and the GPU matches; otherwise say where to."""
    result = run.result
    trt = _tensorrt_version()
    rf_build = shlex.join(["rf-build", str(result.out_dir)])
    if trt is None:
        build_sh = shlex.join(["bash", str(result.out_dir / "build.sh"), "--verify"])
        kit = shlex.join(["python3", str(result.out_dir / KIT_NAME), "build"])
        result.build = (
            f"TensorRT not found: wrote bundle {result.out_dir}; on the device run `{kit}` (nothing to install), "
            f"`{rf_build}`, or `{build_sh}` with trtexec and Polygraphy"
        )
        result.next_commands = [kit, rf_build]
    else:
        from ..engines.build import build_bundle

        try:
            built = build_bundle(result.out_dir, log=run.log)
            result.build = f"engine: {built.summary()}"
            result.next_commands = [shlex.join(["rf-verify", str(built.engine), "--bundle", str(result.out_dir)])]
        except RftrtError as exc:  # e.g. a GPU of another architecture: the bundle stands, the build is the device's
            result.build = f"TensorRT {trt} found, no engine built here ({exc}); on the {run.target.display} run `{rf_build}`"
            result.next_commands = [rf_build]
    run.log(result.build)


_STAGES = (
    ("model", _model_stage),
    ("export", _export_stage),
    ("passes", _passes_stage),
    ("precision", _precision_stage),
    ("validate", _validate_stage),
    ("bundle", _bundle_stage),
)


def run_export(options: ExportOptions, log: Callable[[str], None] = print) -> ExportResult:
    """Run the whole pipeline for ``options``; raises :class:`RftrtError` for bad input or a failed
    validation (after writing nothing)."""
    resolved = resolve(options)
    run = _Run(options, resolved, ExportResult(options=options, target=resolved.target), log)
    if options.precision == "int8":
        run.calibration_source = _calibration_source(options)
    chosen = _STAGES + ((("triton", _triton_stage),) if options.triton else ())
    stages = _Stages(len(chosen), log, run.result)
    for name, stage in chosen:
        with stages.stage(name) as record:
            stage(run, record)
        if name == "model":
            _validation_inputs(run)
    _build_or_hand_over(run)
    return run.result


def write_report(result: ExportResult, path: str | Path) -> None:
    """``--json FILE``: the machine-readable form of the run."""
    write_file_atomic(Path(path), (json.dumps(result.as_dict(), indent=2, sort_keys=True) + "\n").encode())
