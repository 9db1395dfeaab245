"""INT8 calibration of an exported FP32 ONNX: one measurement, two TensorRT renderings.

This is the library entry point behind ``rf-calib`` and ``rf-export --int8``::

    from rftrt.precision.int8 import calibrate
    from rftrt.data.sources import ImageSource
    from rftrt.data.images import Preprocess

    source = ImageSource.from_folder("val/", Preprocess.for_resolution(224), count=512)
    result = calibrate(fp32_model, source, target=load_target("orin"), plan=plan)
    result.cache_text      # TensorRT text calibration cache (weakly typed targets: 8.6 / 10.x, DLA)
    result.qdq_model       # FP32 ONNX with Q/DQ (explicit quantization; TensorRT 10.x --int8 --fp16)
    result.typed_model     # FP16 + Q/DQ + FP32 islands (strongly typed targets: TensorRT 11)

``fp32_model`` must be the FP32 ONNX *after* the export passes: it is what a weakly typed bundle
ships, and the cache's keys are its tensor names. ``plan`` is the FP16 precision plan of that model
(:func:`~rftrt.precision.plan.plan_precision`); without one it is computed here from the first
eight calibration images. Its FP32 islands (attention cores, LayerNorm, out-of-range nodes) get no
Q/DQ, no cache entries inside, and stay FP32 in the typed rendering; everything else not in INT8 runs
FP16 (``--int8 --fp16`` on weakly typed builds, FP16 tensors in the typed ONNX).

Checks done before returning: the cache is parsed back and every scale matches its range (float32
rounding); the Q/DQ ONNX (and the typed one) run on ONNX Runtime on the first calibration images and
are compared with the FP32 ONNX under the ``int8-qdq`` tolerance of :data:`~rftrt.comparison.TOLERANCES`
(``result.checks``; a failed check is reported, not raised: the caller decides).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from ..comparison import Comparison, compare
from ..data.sources import ArraySource, ImageSource, Progress
from ..errors import RftrtError
from ..export.onnxrt import onnx_logits
from ..files import write_file_atomic
from ..targets.profiles import Target
from .cache import ALGORITHMS, DEFAULT_ALGORITHM, cache_tensors, check_cache_names, parse_cache, write_cache
from .plan import RANGE_LIMIT, PrecisionPlan, plan_on_photographs, plan_precision
from .qdq import QdqReport, insert_qdq, qdq_tensors, render_typed
from .ranges import DEFAULT_METHOD, DEFAULT_PERCENTILE, METHODS, NUM_BINS, Ranges, collect_ranges, method_settings
from .store import CalibrationKey, CalibrationStore, make_record, model_sha256

__all__ = ["CalibrationResult", "QdqFromCache", "calibrate", "qdq_from_cache", "write_renderings", "check_fp32_model", "check_formats", "default_formats", "dynamic_batch", "model_resolution", "FORMATS", "ranges_from_cache"]

FORMATS = ("cache", "qdq")
_CHECK_IMAGES = 8
_PLAN_IMAGES = 8


@dataclass
class CalibrationResult:
    """One calibration and its renderings for one target."""

    method: str
    ranges: Ranges
    target: Target
    trt_version: str
    algorithm: str
    plan: PrecisionPlan
    #: the FP32 ONNX's sha256 and the data hash the calibration is stored under
    onnx_sha256: str
    data_hash: str
    source: dict
    #: TensorRT text cache for ``trt_version`` (None when not asked for: strongly typed targets)
    cache_text: str | None = None
    cache_tensors: list[str] = field(default_factory=list)
    #: FP32 ONNX + Q/DQ (None when not asked for)
    qdq_model: onnx.ModelProto | None = None
    qdq_report: QdqReport | None = None
    #: strongly typed rendering: FP16 + Q/DQ + FP32 islands (strongly typed targets only)
    typed_model: onnx.ModelProto | None = None
    reused: bool = False
    checks: list[Comparison] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)
    #: the content of ``calibration.json`` (key, data, plan, ranges): what a store or a bundle keeps
    record: dict = field(default_factory=dict)

    @property
    def fp32_nodes(self) -> list[str]:
        return list(self.plan.fp32_nodes)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def report_lines(self, onnx_name: str) -> list[str]:
        """What ``rf-calib`` prints about the calibration of ``onnx_name``."""
        lines = [f"calibrated {onnx_name}: {self.summary()}; data: {self.source.get('description', '')}", f"precision plan: {self.plan.summary()}"]
        if self.qdq_report:
            lines.append(self.qdq_report.summary())
        if self.cache_text is not None:
            lines.append(f"cache: {self.cache_text.splitlines()[0]}, {len(self.cache_tensors)} tensors")
        return lines + [check.line() for check in self.checks]

    def summary(self) -> str:
        how = "reused" if self.reused else f"{self.ranges.images} images, {self.seconds.get('calibration', 0.0):.1f} s"
        return f"{self.method} ranges for {len(self.ranges.amax)} tensors ({how})"

    def as_dict(self) -> dict:
        return {
            "method": self.method,
            "target": self.target.name,
            "tensorrt": self.trt_version,
            "dialect": self.target.release.dialect,
            "algorithm": self.algorithm,
            "onnx_sha256": self.onnx_sha256,
            "data_hash": self.data_hash,
            "source": self.source,
            "reused": self.reused,
            "cache_tensors": len(self.cache_tensors),
            "qdq": self.qdq_report.as_dict() if self.qdq_report else None,
            "fp32_nodes": self.fp32_nodes,
            "checks": [c.as_dict() for c in self.checks],
            "warnings": list(self.warnings),
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


def dynamic_batch(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` itself if its batch is dynamic, else a copy whose input and output batch is the
    symbol ``batch`` (the export passes write reshapes with a copied batch, so the graph runs at any
    batch): for measuring on a number of images other than the static batch."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if not dims or not dims[0].HasField("dim_value"):
        return model
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for value in list(copy.graph.input) + list(copy.graph.output):
        shape = value.type.tensor_type.shape
        if shape.dim:
            shape.dim[0].Clear()
            shape.dim[0].dim_param = "batch"
    del copy.graph.value_info[:]
    return copy


def model_resolution(model: onnx.ModelProto) -> tuple[int | None, int, int]:
    """(static batch or None, height, width) of the model's single image input."""
    if len(model.graph.input) != 1:
        raise RftrtError(f"the ONNX has {len(model.graph.input)} inputs; calibration takes a model with one image input")
    tensor = model.graph.input[0].type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
    if len(dims) != 4 or dims[1] != 3 or dims[2] is None or dims[3] is None:
        raise RftrtError(f"the ONNX input {model.graph.input[0].name!r} has shape {dims}; expected (batch, 3, H, W) with static H and W")
    return dims[0], dims[2], dims[3]


def check_fp32_model(model: onnx.ModelProto) -> None:
    """Refuse what is not an FP32 ONNX: a typed FP16 rendering, or a model already quantized."""
    quantized = [n.name or n.op_type for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    if quantized:
        raise RftrtError(f"the ONNX already has {len(quantized)} Q/DQ nodes (e.g. {quantized[0]!r}); calibrate the FP32 ONNX it came from")
    if model.graph.input[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise RftrtError("the ONNX input is not float32; calibrate the FP32 ONNX (a weakly typed or fp32 bundle's)")
    half = [t.name for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16]
    half += [vi.name for vi in model.graph.value_info if vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16]
    casts = [n for n in model.graph.node if n.op_type == "Cast" and any(a.name == "to" and a.i == onnx.TensorProto.FLOAT16 for a in n.attribute)]
    if half or casts:
        raise RftrtError(
            "the ONNX is FP16-typed (a strongly typed rendering); calibrate the FP32 ONNX: "
            "rf-export --target <weakly typed target> writes it, or export without --fp16"
        )


def check_formats(target: Target, formats: tuple[str, ...], algorithm: str = DEFAULT_ALGORITHM) -> None:
    """Refuse renderings the target's TensorRT cannot use."""
    if algorithm not in ALGORITHMS:
        raise RftrtError(f"unknown calibration algorithm {algorithm!r}; TensorRT's are {', '.join(ALGORITHMS)}")
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise RftrtError(f"unknown output format {unknown[0] if unknown else '(none)'!r}; available: {', '.join(FORMATS)}")
    release = target.release
    major = int(release.version.split(".")[0])
    if target.strongly_typed and "cache" in formats:
        raise RftrtError(
            f"TensorRT {release.version} on {target.name} is strongly typed: it has no INT8 calibrator and reads no "
            "calibration cache (trtexec 11 has no --int8/--calib); INT8 must come as Q/DQ nodes: use --format qdq"
        )
    if target.dla_core is not None and major < 10 and "qdq" in formats:
        raise RftrtError(
            f"DLA with TensorRT {release.version} takes INT8 only from a calibration cache, not explicit Q/DQ "
            "(platforms.md §4); use --format cache"
        )
    if target.dla_core is not None and "cache" in formats and algorithm != "EntropyCalibration2":
        raise RftrtError(f"DLA needs an EntropyCalibration2 cache, not {algorithm}; drop --cache-algorithm")


def default_formats(target: Target) -> tuple[str, ...]:
    """What the target's TensorRT takes: strongly typed → Q/DQ; DLA on TensorRT 8.x → the cache only;
    otherwise both (the cache for implicit INT8, the Q/DQ ONNX for explicit quantization on 10.x)."""
    if target.strongly_typed:
        return ("qdq",)
    if target.dla_core is not None and int(target.release.version.split(".")[0]) < 10:
        return ("cache",)
    return ("cache", "qdq")


def _plan_from_record(record: dict | None) -> PrecisionPlan | None:
    if not record or "plan" not in record:
        return None
    data = record["plan"]
    return PrecisionPlan(
        mode=data["mode"],
        fp32_nodes=list(data["fp32_nodes"]),
        reasons=dict(data["reasons"]),
        max_activation=float(data.get("max_activation", 0.0)),
        measured_on=data.get("measured_on", ""),
    )


def _extend_plan(plan: PrecisionPlan, model: onnx.ModelProto, ranges: Ranges) -> list[str]:
    """Nodes whose calibrated output, or an input, exceeds the plan's FP16 limit join the FP32
    islands (as :func:`~rftrt.precision.plan.plan_precision` decides on its own measurement)."""
    def peak(names) -> float:
        return max((max(abs(v) for v in ranges.observed[t]) for t in names if t in ranges.observed), default=0.0)

    added = []
    for node in model.graph.node:
        if node.name in plan.reasons:
            continue
        if peak(node.output) > RANGE_LIMIT:
            plan.reasons[node.name] = f"range: {peak(node.output):.3g} > {RANGE_LIMIT:.3g} (calibration)"
        elif peak(node.input) > RANGE_LIMIT:
            plan.reasons[node.name] = f"input range: {peak(node.input):.3g} > {RANGE_LIMIT:.3g} (calibration; reads an out-of-range tensor)"
        else:
            continue
        added.append(node.name)
    if added:
        order = {n.name: i for i, n in enumerate(model.graph.node)}
        plan.fp32_nodes = sorted(plan.reasons, key=lambda name: order.get(name, len(order)))
    return added


def _check_request(fp32_onnx: onnx.ModelProto, images, target: Target, method: str, formats, algorithm: str, batch: int):
    """Refuse a calibration the model, the data or the target cannot take; the image source, the
    formats to render and the model's (static batch, height, width)."""
    if method not in METHODS:
        raise RftrtError(f"unknown calibration method {method!r}; available: {', '.join(METHODS)}")
    formats = tuple(formats) if formats else default_formats(target)
    check_formats(target, formats, algorithm)
    shape = model_resolution(fp32_onnx)
    check_fp32_model(fp32_onnx)
    source = ArraySource(images) if isinstance(images, np.ndarray) else images
    size = (source.preprocess.resolution, source.preprocess.resolution) if isinstance(source, ImageSource) else source.resolution
    if size != shape[1:]:
        raise RftrtError(f"calibration images are {size[0]}x{size[1]} but the ONNX takes {shape[1]}x{shape[2]}")
    if batch < 1:
        raise RftrtError(f"calibration batch must be at least 1, got {batch}")
    return source, formats, shape


def _starting_plan(plan: PrecisionPlan | None, record: dict | None, source, fp32_onnx: onnx.ModelProto) -> PrecisionPlan:
    """A copy of the caller's plan, else the stored calibration's, else one measured on the first images."""
    if plan is None:
        plan = _plan_from_record(record)
    if plan is None:
        sample = source.load_all(limit=_PLAN_IMAGES)
        return plan_precision(dynamic_batch(fp32_onnx), sample, f"first {len(sample)} calibration images")
    return PrecisionPlan(plan.mode, list(plan.fp32_nodes), dict(plan.reasons), plan.max_activation, plan.measured_on)


def _wanted_tensors(fp32_onnx: onnx.ModelProto, fp32: set[str]) -> list[str]:
    """Every tensor whose range the cache or the Q/DQ rendering needs."""
    wanted = cache_tensors(fp32_onnx, fp32)
    for name in qdq_tensors(fp32_onnx, fp32):
        if name not in wanted:
            wanted.append(name)
    return wanted


def _measure(fp32_onnx, source, wanted, *, method, batch, static_batch, num_bins, percentile, threads, progress, warnings, log):
    """Ranges of ``wanted`` over the whole source, and its first images (kept for the checks)."""
    bar = Progress(source.expected, f"calibrating ({method})") if progress else None
    first: list[np.ndarray] = []

    def feed():
        for chunk, n in source.batches(static_batch or batch, bar, pad_to=static_batch):
            if sum(len(c) for c in first) < _CHECK_IMAGES:
                first.append(chunk[: min(n, _CHECK_IMAGES)].copy())
            yield chunk, n

    try:
        ranges = collect_ranges(fp32_onnx, feed(), wanted, method, num_bins=num_bins, percentile=percentile, threads=threads)
    finally:
        if bar is not None:
            bar.close()
    for warning in source.warnings:
        if warning not in warnings:
            warnings.append(warning)
            log(f"warning: {warning}")
    return ranges, np.concatenate(first)[:_CHECK_IMAGES]


def _render(result: CalibrationResult, fp32_onnx: onnx.ModelProto, formats: tuple[str, ...]) -> onnx.ModelProto:
    """The cache (parsed back and checked), the Q/DQ ONNX and, strongly typed, its typed rendering;
    returns the Q/DQ ONNX, which the checks run whether or not it is one of the ``formats``."""
    fp32, ranges = set(result.plan.fp32_nodes), result.ranges
    if "cache" in formats:
        names = cache_tensors(fp32_onnx, fp32)
        result.cache_text = write_cache(ranges.amax, result.trt_version, result.algorithm, tensors=names)
        result.cache_tensors = names
        parsed = parse_cache(result.cache_text)
        check_cache_names(parsed, fp32_onnx)
        for name, scale in parsed.scales.items():  # the round trip is exact up to float32 rounding
            if abs(scale * 127.0 - ranges.amax[name]) > 1e-6 * ranges.amax[name]:
                raise AssertionError(f"cache round trip changed {name!r}: {scale * 127.0} != {ranges.amax[name]}")
    qdq, result.qdq_report = insert_qdq(fp32_onnx, ranges.amax, fp32)
    if "qdq" in formats:
        result.qdq_model = qdq
        if result.target.strongly_typed:
            result.typed_model, typed_warnings = render_typed(qdq, fp32)
            result.warnings += typed_warnings
    return qdq


def _check_renderings(result: CalibrationResult, fp32_onnx: onnx.ModelProto, qdq: onnx.ModelProto, images: np.ndarray) -> None:
    """The Q/DQ ONNX (and the typed one) against the FP32 ONNX on ``images``."""
    reference = onnx_logits(fp32_onnx, images)
    inputs = f"{len(images)} calibration images"
    result.checks.append(compare("FP32 ONNX", reference, "INT8 Q/DQ", onnx_logits(qdq, images), inputs, "int8-qdq"))
    if result.typed_model is not None:
        typed = onnx_logits(result.typed_model, images)
        result.checks.append(compare("FP32 ONNX", reference, "INT8 Q/DQ + FP16 (typed)", typed, inputs, "int8-qdq"))


def _new_record(key: CalibrationKey, ranges: Ranges, source, plan: PrecisionPlan, shape: tuple, store: CalibrationStore | None) -> dict:
    """``calibration.json`` of a fresh calibration, saved in ``store`` if there is one."""
    inputs = dict(zip(("batch", "height", "width"), shape))
    record = make_record(key, ranges, {"data": source.as_dict(), "plan": plan.as_dict(), "onnx_inputs": inputs})
    if store is not None:
        store.save(record)
    return record


def calibrate(
    fp32_onnx: onnx.ModelProto,
    images: ImageSource | ArraySource | np.ndarray,
    *,
    target: Target,
    method: str = DEFAULT_METHOD,
    plan: PrecisionPlan | None = None,
    batch: int = 8,
    percentile: float = DEFAULT_PERCENTILE,
    num_bins: int = NUM_BINS,
    trt_version: str | None = None,
    algorithm: str = DEFAULT_ALGORITHM,
    formats: tuple[str, ...] | None = None,
    store: CalibrationStore | None = None,
    force: bool = False,
    threads: int = 2,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> CalibrationResult:
    """Calibrate ``fp32_onnx`` on ``images`` and render it for ``target`` (see the module docstring).

    ``trt_version`` is the full TensorRT version for the cache header (default: the version the
    target was resolved with, e.g. 8.6.12 → ``TRT-8612-…``, or its release, 8.6 → ``TRT-8600-…``); ``formats`` defaults to what the target's dialect takes
    (weak: cache and Q/DQ; strong: Q/DQ). With a ``store``, a calibration of the same ONNX, data and
    method is reused, and a stale one refused (:class:`~rftrt.precision.store.CalibrationStore`).
    """
    source, formats, (static_batch, height, width) = _check_request(fp32_onnx, images, target, method, formats, algorithm, batch)
    warnings = list(getattr(source, "warnings", []))
    for warning in warnings:
        log(f"warning: {warning}")
    start = time.perf_counter()

    sha = model_sha256(fp32_onnx)
    key = CalibrationKey.make(sha, source.data_hash, method, method_settings(method, num_bins, percentile))
    stored = store.lookup(key, force) if store is not None else None
    record = store.read() if stored is not None else None
    plan = _starting_plan(plan, record if stored is not None else None, source, fp32_onnx)
    wanted = _wanted_tensors(fp32_onnx, set(plan.fp32_nodes))

    reused = stored is not None and all(name in stored.amax for name in wanted)
    if reused:
        ranges, check_images = stored, None
        log(f"reusing the calibration in {store.path} (same ONNX, data and method)")
    else:
        ranges, check_images = _measure(
            fp32_onnx, source, wanted, method=method, batch=batch, static_batch=static_batch, num_bins=num_bins,
            percentile=percentile, threads=threads, progress=progress, warnings=warnings, log=log,
        )  # fmt: skip
    calibration_seconds = time.perf_counter() - start

    added = _extend_plan(plan, fp32_onnx, ranges)
    if added:
        warnings.append(f"{len(added)} nodes exceed the FP16 range on the calibration images and stay FP32: {', '.join(added[:3])}")

    result = CalibrationResult(
        method=method,
        ranges=ranges,
        target=target,
        trt_version=trt_version or target.tensorrt_version,
        algorithm=algorithm,
        plan=plan,
        onnx_sha256=sha,
        data_hash=source.data_hash,
        source=record.get("data", {}) if reused and record else source.as_dict(),
        reused=reused,
        warnings=warnings,
    )
    t0 = time.perf_counter()
    qdq = _render(result, fp32_onnx, formats)
    render_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    _check_renderings(result, fp32_onnx, qdq, check_images if check_images is not None else source.load_all(limit=_CHECK_IMAGES))
    result.seconds = {"calibration": calibration_seconds, "render": render_seconds, "check": time.perf_counter() - t1}
    result.seconds.update({f"ranges_{k}": v for k, v in ranges.seconds.items()})
    result.record = record if reused and record is not None else _new_record(key, ranges, source, plan, (static_batch, height, width), store)
    return result


def ranges_from_cache(cache_text: str, model: onnx.ModelProto, source: str = "calibration cache") -> tuple[dict[str, float], list[str]]:
    """Ranges (amax per tensor) read from a TensorRT cache for ``model``; its names must all be the
    model's (TensorRT's own unnamed tensors are left out and returned)."""
    cache = parse_cache(cache_text, source)
    internal = check_cache_names(cache, model, source)
    return {name: cache.amax(name) for name in cache.scales if name not in internal}, internal


@dataclass
class QdqFromCache:
    """Q/DQ renderings whose ranges come from an existing TensorRT cache instead of a calibration."""

    amax: dict[str, float]
    #: TensorRT's own tensors in the cache (no ONNX name), left out
    internal: list[str]
    plan: PrecisionPlan
    qdq_model: onnx.ModelProto
    qdq_report: QdqReport
    #: strongly typed targets only
    typed_model: onnx.ModelProto | None


def qdq_from_cache(model: onnx.ModelProto, cache_text: str, target: Target, source: str = "calibration cache") -> QdqFromCache:
    """Render ``model``'s Q/DQ ONNX (and, strongly typed, its typed ONNX) with the ranges of a
    TensorRT cache; the precision plan is measured on the bundled photographs, as rf-export does."""
    amax, internal = ranges_from_cache(cache_text, model, source)
    _, height, _ = model_resolution(model)
    plan = plan_on_photographs(dynamic_batch(model), height)
    needed = [n for n in qdq_tensors(model, plan.fp32_nodes) if n not in amax]
    if needed:
        raise RftrtError(
            f"{source}: no scale for {len(needed)} tensors the Q/DQ ONNX quantizes (e.g. {needed[0]!r}); "
            "the cache does not cover this model: recalibrate"
        )
    qdq, report = insert_qdq(model, amax, plan.fp32_nodes)
    typed = render_typed(qdq, plan.fp32_nodes)[0] if target.strongly_typed else None
    return QdqFromCache(amax, internal, plan, qdq, report, typed)


def write_renderings(out_dir: Path, stem: str, *, cache_text: str | None = None, qdq_model=None, typed_model=None) -> dict[str, Path]:
    """Write what a calibration rendered into ``out_dir``: ``calibration.cache``, ``<stem>.qdq.onnx``,
    ``<stem>.qdq.fp16.onnx`` (each only if given); their paths by kind (cache, qdq, typed)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    contents = {
        "cache": (out_dir / "calibration.cache", cache_text.encode() if cache_text is not None else None),
        "qdq": (out_dir / f"{stem}.qdq.onnx", qdq_model.SerializeToString() if qdq_model is not None else None),
        "typed": (out_dir / f"{stem}.qdq.fp16.onnx", typed_model.SerializeToString() if typed_model is not None else None),
    }
    written = {}
    for kind, (path, data) in contents.items():
        if data is not None:
            write_file_atomic(path, data)
            written[kind] = path
    return written
