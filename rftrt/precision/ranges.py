"""Activation ranges measured with ONNX Runtime on the CPU: MinMax, Percentile and Entropy.

One pass over the calibration images. Every tensor to calibrate is made a graph output and bound to
a preallocated buffer (ORT ``IOBinding``: no per-run allocation of the ~64 MB of activations an
rf_b1 image at 224 produces). Per tensor and batch, the exact min and max are kept and, for the
histogram methods, a histogram of ``|x|`` is updated.

Methods (``amax`` is the symmetric range; TensorRT's scale is ``amax / 127``):

- ``minmax``: the largest ``|x|`` seen (TensorRT's MinMaxCalibration);
- ``percentile``: the ``percentile`` (default 99.99) of ``|x|``, read off the histogram (upper
  edge of the bin where the cumulative count crosses it);
- ``entropy``: TensorRT's EntropyCalibration2 as NVIDIA's pytorch-quantization implements it
  (``calib/histogram.py``, ``_compute_amax_entropy``): 2048-bin histogram of ``|x|``, every
  threshold from bin 128 to the last, the reference distribution with the clipped outliers folded
  into its last bin, the candidate quantised to 128 levels (zero bins stay zero), and the threshold
  with the smallest KL divergence (the last one on ties). The loop over thresholds is rewritten in
  closed form with prefix sums (:func:`entropy_divergences`), O(thresholds · 128) instead of
  O(thresholds · bins) Python work; ``tests/test_calibration_ranges.py`` checks it against the
  loop.

Why not ``onnxruntime.quantization`` throughout (see ``docs/int8.md`` and
``scripts/bench_calibration.py`` for the measurements):

- its Entropy calibrator through ``quantize_static`` uses 128 bins and returns MinMax's ranges; with
  2048 bins it runs a Python loop per threshold (minutes per model), on a *signed* histogram, which
  is not TensorRT's algorithm;
- its histogram collection keeps every batch's outputs until the reader is exhausted and, after the
  first batch, bins with explicit edges (``np.histogram(bins=edges)``, a binary search per
  element), several times slower than the uniform-bin ``bincount`` here;
- its MinMax calibrator (in-graph ReduceMin/ReduceMax) is correct, and :func:`ort_minmax_ranges`
  reuses it; the one-pass collector here produces the same numbers while also gathering the
  histograms, so only one inference pass is needed whatever the method.

Histograms keep a fixed bin width from the first batch (``max / 2048``) and add bins when a later
batch goes higher, as pytorch-quantization does; past 16384 bins neighbouring bins are merged
pairwise (exactly), so memory and the entropy search stay bounded.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx

from ..errors import RftrtError
from ..export.onnxrt import ort_session

__all__ = [
    "METHODS",
    "DEFAULT_METHOD",
    "DEFAULT_PERCENTILE",
    "NUM_BINS",
    "Ranges",
    "AbsHistogram",
    "collect_ranges",
    "entropy_divergences",
    "entropy_amax",
    "percentile_amax",
    "ort_minmax_ranges",
]

METHODS = ("entropy", "percentile", "minmax")
#: The default of rf-calib: on the trained digits model (scripts/bench_calibration.py, docs/int8.md)
#: percentile and minmax are tied within one held-out image and entropy is worse; of the two tied,
#: percentile is the one a single outlying activation cannot stretch.
DEFAULT_METHOD = "percentile"
DEFAULT_PERCENTILE = 99.99
NUM_BINS = 2048
_MAX_BINS = 8 * NUM_BINS
_START_BIN = 128
_LEVELS = 128  # int8: 127 positive levels and zero, as TensorRT's entropy calibrator counts them


@dataclass
class Ranges:
    """The calibrated range of every tensor, and how it was obtained."""

    method: str
    #: tensor name → symmetric range (scale = amax / 127)
    amax: dict[str, float]
    #: tensor name → (min, max) actually seen
    observed: dict[str, tuple[float, float]]
    images: int
    settings: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)

    def scale(self, name: str) -> float:
        return self.amax[name] / 127.0

    def as_dict(self) -> dict:
        return {
            "method": self.method,
            "images": self.images,
            "settings": dict(self.settings),
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "amax": dict(self.amax),
            "observed": {k: list(v) for k, v in self.observed.items()},
        }

    @classmethod
    def from_dict(cls, data: dict) -> Ranges:
        return cls(
            method=data["method"],
            amax={k: float(v) for k, v in data["amax"].items()},
            observed={k: (float(v[0]), float(v[1])) for k, v in data["observed"].items()},
            images=int(data["images"]),
            settings=dict(data.get("settings", {})),
            seconds=dict(data.get("seconds", {})),
        )


# --- thresholds from a histogram of |x| ---------------------------------------------------------


def _xlogx(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, x * np.log(np.where(x > 0, x, 1.0)), 0.0)


def entropy_divergences(hist: np.ndarray, start_bin: int = _START_BIN, levels: int = _LEVELS) -> np.ndarray:
    """KL(P‖Q) for every threshold ``i`` in ``start_bin … len(hist)`` (bins kept), as
    pytorch-quantization's ``_compute_amax_entropy`` computes it one threshold at a time.

    For threshold ``i``: P is ``hist[:i]`` with the count beyond ``i`` added to its last bin; Q
    merges ``hist[:i]`` into ``levels`` groups (bin ``j`` in group ``floor(levels·j / i)``) and
    spreads each group's count evenly over its non-empty bins. Both are normalised. Bin 0 (the
    zeros, a spike after ReLU) counts as much as bin 1, as in the reference. With prefix sums over
    the bins, the sums over each group are differences of two prefix values, so each threshold
    costs O(levels).
    """
    bins = np.asarray(hist, dtype=np.float64).copy()
    n = bins.size
    if n < start_bin:
        raise ValueError(f"histogram has {n} bins, fewer than the first threshold {start_bin}")
    bins[0] = bins[1]
    total = bins.sum()
    thresholds = np.arange(start_bin, n + 1)
    if total <= 0:
        return np.full(thresholds.size, np.inf)
    nonzero = bins > 0
    cum = np.concatenate(([0.0], np.cumsum(bins)))
    cum_nonzero = np.concatenate(([0], np.cumsum(nonzero)))
    cum_xlogx = np.concatenate(([0.0], np.cumsum(_xlogx(bins))))

    k = np.arange(levels + 1)
    bounds = (k[None, :] * thresholds[:, None] + levels - 1) // levels  # ceil(k·i / levels), (T, levels+1)
    sums = cum[bounds[:, 1:]] - cum[bounds[:, :-1]]
    counts = cum_nonzero[bounds[:, 1:]] - cum_nonzero[bounds[:, :-1]]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_q = np.where(counts > 0, np.log(np.where(sums > 0, sums, 1.0) / np.maximum(counts, 1)), 0.0)
    kept = cum[thresholds]
    outliers = total - kept
    last = bins[thresholds - 1]
    # Σ p log p over the kept bins, with the outliers folded into the last one
    a = cum_xlogx[thresholds - 1] + _xlogx(last + outliers)
    # Σ p log q: every group's mass times its log q, plus the outliers at the last bin's q
    b = np.sum(sums * log_q, axis=1) + outliers * log_q[:, levels - 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = (a - b) / total + np.log(np.where(kept > 0, kept, 1.0) / total)
    kl[(kept <= 0) | ((last == 0) & (outliers > 0))] = np.inf
    return kl


def entropy_amax(hist: np.ndarray, width: float, start_bin: int = _START_BIN) -> float:
    """The threshold (a bin edge) with the smallest KL divergence, the largest such on ties."""
    kl = entropy_divergences(hist, start_bin)
    best = kl.size - 1 - int(np.argmin(kl[::-1]))
    return float((best + start_bin) * width)


def percentile_amax(hist: np.ndarray, width: float, percentile: float = DEFAULT_PERCENTILE) -> float:
    """The upper edge of the bin in which the cumulative share of ``|x|`` reaches ``percentile`` %."""
    total = hist.sum()
    if total <= 0:
        return 0.0
    cdf = np.cumsum(hist) / total
    index = int(np.searchsorted(cdf, percentile / 100.0))
    return float(min(index + 1, hist.size) * width)


class AbsHistogram:
    """A histogram of ``|x|`` on ``[0, width·bins)``, fed batch by batch.

    The width is fixed by the first batch with a non-zero value (``max / bins``); a later batch that
    goes beyond the last edge adds bins of the same width; past ``max_bins`` neighbouring bins are
    merged pairwise (exact, the edges line up) and the width doubles.
    """

    def __init__(self, bins: int = NUM_BINS, max_bins: int = _MAX_BINS) -> None:
        self.initial_bins, self.max_bins = bins, max_bins
        self.width = 0.0
        self.hist = np.zeros(0, dtype=np.int64)
        self.zeros = 0  # values seen before the width was known (all of them zero)

    @property
    def bins(self) -> int:
        return self.hist.size

    def _cover(self, amax: float) -> None:
        if self.width == 0.0:
            self.width = amax / self.initial_bins
            self.hist = np.zeros(self.initial_bins, dtype=np.int64)
            self.hist[0] += self.zeros
            self.zeros = 0
            return
        needed = math.floor(amax / self.width) + 1
        if needed <= self.hist.size:
            return
        factor = 1
        while math.ceil(needed / factor) > self.max_bins:
            factor *= 2
        hist = self.hist
        if factor > 1:
            padded = np.zeros(-(-hist.size // factor) * factor, dtype=np.int64)
            padded[: hist.size] = hist
            hist = padded.reshape(-1, factor).sum(axis=1)
            self.width *= factor
        size = math.floor(amax / self.width) + 1
        grown = np.zeros(max(size, hist.size), dtype=np.int64)
        grown[: hist.size] = hist
        self.hist = grown

    def add(self, values: np.ndarray, amax: float, scratch: np.ndarray) -> None:
        """Add ``values`` (a float32 array that is overwritten: |x| scaled to bin units) whose largest
        magnitude is ``amax``; ``scratch`` is an int64 buffer at least as large."""
        flat = values.reshape(-1)
        if amax == 0.0:
            if self.width == 0.0:
                self.zeros += flat.size
            else:
                self.hist[0] += flat.size
            return
        self._cover(amax)
        np.abs(flat, out=flat)
        np.multiply(flat, np.float32(1.0 / self.width), out=flat)
        index = scratch[: flat.size]
        np.copyto(index, flat, casting="unsafe")  # truncation = floor for |x| ≥ 0
        counts = np.bincount(index, minlength=self.hist.size)
        if counts.size > self.hist.size:  # |x| == last edge after rounding
            counts[self.hist.size - 1] += counts[self.hist.size :].sum()
        self.hist += counts[: self.hist.size]


# --- collection ---------------------------------------------------------------------------------


def _probe_model(model: onnx.ModelProto, tensors: Sequence[str]) -> onnx.ModelProto:
    """``model`` with every tensor in ``tensors`` as a graph output, typed and shaped."""
    inferred = onnx.shape_inference.infer_shapes(model)
    infos = {vi.name: vi for vi in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input)}
    probed = onnx.ModelProto()
    probed.CopyFrom(model)
    existing = {o.name for o in probed.graph.output}
    inputs = {i.name for i in probed.graph.input}
    for name in tensors:
        if name in existing or name in inputs:
            continue
        if name in infos:
            probed.graph.output.append(infos[name])
        else:
            probed.graph.output.add(name=name)
    return probed


class _Bindings:
    """Preallocated output buffers for one batch size, bound to an ORT session. Outputs whose shape
    is not known ahead are left for ORT to allocate."""

    def __init__(self, session, input_name: str, batch_dim, batch: int, names: Sequence[str]) -> None:
        self.io = session.io_binding()
        self.input_name = input_name
        self.order = list(names)
        self.buffers: dict[str, np.ndarray] = {}
        self.unbound: set[str] = set()
        shapes = {o.name: o.shape for o in session.get_outputs()}
        for name in self.order:
            shape = shapes.get(name)
            dims = None
            if shape is not None:
                dims = [batch if isinstance(d, str) and d == batch_dim else d for d in shape]
                if not all(isinstance(d, int) for d in dims):
                    dims = None
            if dims is None:
                self.io.bind_output(name, "cpu")
                self.unbound.add(name)
                continue
            buffer = np.empty(dims, dtype=np.float32)
            self.io.bind_output(name, "cpu", 0, np.float32, dims, buffer.ctypes.data)
            self.buffers[name] = buffer

    def run(self, session, images: np.ndarray) -> dict[str, np.ndarray]:
        self.io.bind_cpu_input(self.input_name, images)
        session.run_with_iobinding(self.io)
        out = dict(self.buffers)
        if self.unbound:
            for name, value in zip(self.order, self.io.get_outputs()):  # in binding order
                if name in self.unbound:
                    out[name] = value.numpy()
        return out


def float_activations(model: onnx.ModelProto) -> list[str]:
    """The graph's float32 input and every float32 tensor a node produces, in graph order."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {vi.name: vi.type.tensor_type.elem_type for vi in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input)}
    names = [i.name for i in model.graph.input if types.get(i.name) == onnx.TensorProto.FLOAT]
    seen = set(names)
    for node in model.graph.node:
        for name in node.output:
            if name and name not in seen and types.get(name) == onnx.TensorProto.FLOAT:
                names.append(name)
                seen.add(name)
    return names


def method_settings(method: str, num_bins: int, percentile: float) -> dict:
    """The parameters that make ``method``'s ranges what they are (a stored calibration must match them)."""
    settings: dict = {}
    if method != "minmax":
        settings["num_bins"] = num_bins
    if method == "percentile":
        settings["percentile"] = percentile
    return settings


class _Observed:
    """Running min/max (and, for histogram methods, |value| histograms) of each tensor."""

    def __init__(self, tensors: Sequence[str], method: str, num_bins: int) -> None:
        self.tensors = list(tensors)
        self.histograms = {name: AbsHistogram(num_bins) for name in tensors} if method != "minmax" else {}
        self.low = {name: math.inf for name in tensors}
        self.high = {name: -math.inf for name in tensors}
        self._scratch = np.empty(0, dtype=np.int64)

    def add(self, name: str, value: np.ndarray, first_image: int, n: int) -> None:
        if value.size == 0:
            return
        lo, hi = float(value.min()), float(value.max())
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise RftrtError(
                f"tensor {name!r} is not finite on calibration images {first_image}–{first_image + n - 1} "
                "(the FP32 model overflows or divides by zero there); check the model and the images"
            )
        self.low[name], self.high[name] = min(self.low[name], lo), max(self.high[name], hi)
        if self.histograms:
            if self._scratch.size < value.size:
                self._scratch = np.empty(value.size, dtype=np.int64)
            self.histograms[name].add(np.ascontiguousarray(value), max(-lo, hi), self._scratch)

    def check_complete(self, images: int) -> None:
        if images == 0:
            raise RftrtError("no calibration images: the image source yielded no batch")
        missing = [name for name in self.tensors if self.low[name] == math.inf]
        if missing:
            raise RftrtError(f"tensor {missing[0]!r} (and {len(missing) - 1} more) produced no values during calibration")

    def amax(self, name: str, method: str, percentile: float) -> float:
        """The range of ``name``: its peak (minmax) or the method's threshold, never above the peak;
        a tensor that was all zeros gets 1.0 (any scale represents it exactly)."""
        peak = max(-self.low[name], self.high[name])
        value = peak
        if method != "minmax":
            histogram = self.histograms[name]
            if histogram.width == 0.0:
                value = 0.0
            elif method == "entropy":
                value = min(entropy_amax(histogram.hist, histogram.width), peak)
            else:
                value = min(percentile_amax(histogram.hist, histogram.width, percentile), peak)
        return value if value > 0 else (peak if peak > 0 else 1.0)


def _check_collection(method: str, percentile: float, tensors: Sequence[str]) -> None:
    if method not in METHODS:
        raise RftrtError(f"unknown calibration method {method!r}; available: {', '.join(METHODS)}")
    if not 0.0 < percentile <= 100.0:
        raise RftrtError(f"percentile must be in (0, 100], got {percentile!r}")
    if not tensors:
        raise RftrtError("no tensors to calibrate")


def collect_ranges(
    model: onnx.ModelProto,
    batches: Iterable[np.ndarray | tuple[np.ndarray, int]],
    tensors: Sequence[str],
    method: str = DEFAULT_METHOD,
    *,
    num_bins: int = NUM_BINS,
    percentile: float = DEFAULT_PERCENTILE,
    threads: int = 2,
) -> Ranges:
    """Measure the ranges of ``tensors`` of the FP32 ``model`` over ``batches`` (NCHW float32).

    A batch may come as ``(array, rows)``: only its first ``rows`` rows are images, the rest padding
    for a static-batch model, left out of the statistics. A tensor that goes non-finite is an error.
    """
    _check_collection(method, percentile, tensors)
    start = time.perf_counter()
    session = ort_session(_probe_model(model, tensors), threads, spinning=False)
    graph_input = session.get_inputs()[0]
    batch_dim = graph_input.shape[0] if graph_input.shape else None
    observed = _Observed(tensors, method, num_bins)
    bindings: dict[int, _Bindings] = {}
    seconds = {"setup": time.perf_counter() - start, "inference": 0.0, "statistics": 0.0}
    images = 0
    for item in batches:
        batch, n = item if isinstance(item, tuple) else (item, len(item))
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if len(batch) not in bindings:
            bound = [name for name in tensors if name != graph_input.name]
            bindings[len(batch)] = _Bindings(session, graph_input.name, batch_dim, len(batch), bound)
        t0 = time.perf_counter()
        outputs = bindings[len(batch)].run(session, batch)
        t1 = time.perf_counter()
        for name in tensors:
            value = batch.copy() if name == graph_input.name else outputs[name]
            if n < len(batch) and value.ndim and value.shape[0] == len(batch):
                value = value[:n]
            observed.add(name, value, images, n)
        seconds["inference"] += t1 - t0
        seconds["statistics"] += time.perf_counter() - t1
        images += n
    observed.check_complete(images)
    t2 = time.perf_counter()
    amax = {name: observed.amax(name, method, percentile) for name in tensors}
    seconds["thresholds"] = time.perf_counter() - t2
    seconds["total"] = time.perf_counter() - start
    return Ranges(
        method=method,
        amax=amax,
        observed={name: (observed.low[name], observed.high[name]) for name in tensors},
        images=images,
        settings={"threads": threads, **method_settings(method, num_bins, percentile)},
        seconds=seconds,
    )


def ort_minmax_ranges(model: onnx.ModelProto, batches: Iterable[np.ndarray], tensors: Sequence[str] | None = None) -> dict[str, float]:
    """max |x| per tensor from onnxruntime.quantization's own ``MinMaxCalibrater`` (in-graph
    ReduceMin/ReduceMax, symmetric): the library's answer, used to cross-check :func:`collect_ranges`."""
    import tempfile
    from pathlib import Path

    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator

    class _Reader:
        def __init__(self, name: str, data: Iterable[np.ndarray]) -> None:
            self.name, self.data = name, iter(data)

        def get_next(self):
            batch = next(self.data, None)
            return None if batch is None else {self.name: np.ascontiguousarray(batch, dtype=np.float32)}

    with tempfile.TemporaryDirectory(prefix="rftrt-ortcal-") as folder:
        path = Path(folder) / "model.onnx"
        onnx.save(model, path)
        calibrator = create_calibrator(
            path,
            augmented_model_path=str(Path(folder) / "augmented.onnx"),
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"symmetric": True},
        )
        calibrator.collect_data(_Reader(model.graph.input[0].name, batches))
        data = calibrator.compute_data()
    wanted = set(tensors) if tensors is not None else None
    out = {}
    for name, value in data.items():
        if wanted is None or name in wanted:
            low, high = value.range_value
            out[name] = float(max(np.max(np.abs(low)), np.max(np.abs(high))))
    return out

