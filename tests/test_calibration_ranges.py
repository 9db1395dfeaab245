"""Activation ranges: the entropy search against its reference loop, percentile, the histogram, and
the ONNX Runtime collection against onnxruntime.quantization's own MinMax calibrator."""

from collections import Counter

import numpy as np
import pytest
from onnx_cache import digits_fp32_onnx

from rftrt.data.digits import load_digits_data
from rftrt.errors import RftrtError
from rftrt.models.digits import load_checkpoint
from rftrt.precision.ranges import AbsHistogram, collect_ranges, entropy_amax, entropy_divergences, float_activations, ort_minmax_ranges, percentile_amax


def _reference_divergences(hist, start_bin=128, levels=128):
    """pytorch-quantization's ``_compute_amax_entropy`` loop (calib/histogram.py), written out plainly."""
    bins = np.array(hist, dtype=np.float64)
    bins[0] = bins[1]
    out = []
    for i in range(start_bin, len(bins) + 1):
        space = np.linspace(0, i, num=levels + 1)
        digitized = np.digitize(range(i), space) - 1
        digitized[bins[:i] == 0] = -1
        counts = np.zeros(levels)
        for idx, d in enumerate(digitized):
            if d != -1:
                counts[d] += bins[idx]
        for key, val in Counter(digitized).items():
            if key != -1:
                counts[key] /= val
        q = np.array([counts[d] if d != -1 else 0.0 for d in digitized])
        p = np.array(bins[:i])
        p[-1] += bins[i:].sum()
        p, q = p / p.sum(), q / q.sum()
        with np.errstate(all="ignore"):
            terms = np.where(p > 0, np.where(q > 0, p * np.log(p / q), np.inf), 0.0)
        out.append(terms.sum())
    return np.array(out)


@pytest.mark.parametrize("case", ["gaussian", "wide", "relu-with-gaps", "heavy-tail"])
def test_entropy_matches_the_reference_loop(case):
    rng = np.random.default_rng(7)
    x = np.abs(rng.standard_normal(200_000))
    if case == "wide":
        x *= 40
    if case == "relu-with-gaps":
        x[x < 0.4] = 0
    if case == "heavy-tail":
        x = np.abs(rng.standard_cauchy(200_000)).clip(0, 200)
    hist, edges = np.histogram(x, 320, (0, x.max()))
    if case == "relu-with-gaps":
        hist[200:230] = 0  # empty bins inside the range, and an empty last kept bin for some thresholds
    ours = entropy_divergences(hist)
    reference = _reference_divergences(hist)
    assert np.array_equal(np.isfinite(ours), np.isfinite(reference))
    finite = np.isfinite(reference)
    np.testing.assert_allclose(ours[finite], reference[finite], rtol=1e-9, atol=1e-12)
    # the pick: the largest threshold with the smallest divergence, as the reference does
    best = len(reference) - 1 - int(np.argmin(reference[::-1]))
    assert entropy_amax(hist, edges[1] - edges[0]) == pytest.approx(edges[best + 128])


def test_percentile_reads_the_cumulative_histogram():
    hist = np.zeros(2048, dtype=np.int64)
    hist[:1000] = 10  # 10 000 values spread over bins 0..999
    hist[2047] = 1  # one outlier
    assert percentile_amax(hist, 0.01, 99.99) == pytest.approx(10.0)  # bin 999's upper edge
    assert percentile_amax(hist, 0.01, 100.0) == pytest.approx(20.48)
    assert percentile_amax(np.zeros(16, dtype=np.int64), 0.5) == 0.0


def test_histogram_grows_and_merges_exactly():
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal(5000).astype(np.float32) * s for s in (1.0, 3.0, 50.0)]
    hist = AbsHistogram(bins=64, max_bins=256)
    scratch = np.empty(5000, dtype=np.int64)
    for batch in batches:
        hist.add(batch.copy(), float(np.abs(batch).max()), scratch)
    assert hist.hist.sum() == 15000 and hist.bins <= 256
    everything = np.abs(np.concatenate(batches))
    assert everything.max() < hist.width * hist.bins
    expected, _ = np.histogram(everything, hist.bins, (0, hist.width * hist.bins))
    # bin edges computed by multiplication may put a value on the neighbouring side of an edge
    assert np.abs(expected - hist.hist).sum() <= 4
    zeros = AbsHistogram(bins=8)
    zeros.add(np.zeros(10, np.float32), 0.0, scratch)
    zeros.add(np.array([0.0, 1.0], np.float32), 1.0, scratch)
    assert zeros.hist[0] == 11 and zeros.hist.sum() == 12


@pytest.fixture(scope="module")
def digits():
    model = digits_fp32_onnx(load_checkpoint())
    data = load_digits_data()
    return model, data.train_images[:48]


def test_minmax_equals_onnxruntime_minmax_calibrator(digits):
    model, images = digits
    names = float_activations(model)
    ours = collect_ranges(model, (images[s : s + 16] for s in range(0, 48, 16)), names, "minmax")
    theirs = ort_minmax_ranges(model, (images[s : s + 16] for s in range(0, 48, 16)), names)
    assert set(theirs) == set(names) == set(ours.amax)
    for name in names:
        assert ours.amax[name] == pytest.approx(theirs[name], rel=1e-5, abs=1e-6), name
    assert ours.images == 48


def test_methods_order_and_padding(digits):
    model, images = digits
    names = float_activations(model)
    ranges = {m: collect_ranges(model, [images], names, m) for m in ("minmax", "percentile", "entropy")}
    for name in names:
        peak = ranges["minmax"].amax[name]
        assert 0 < ranges["percentile"].amax[name] <= peak * (1 + 1e-6)
        assert 0 < ranges["entropy"].amax[name] <= peak * (1 + 1e-6)
    assert any(ranges["entropy"].amax[n] < 0.9 * ranges["minmax"].amax[n] for n in names)  # entropy clips tails
    # padded rows of a static batch are left out of the statistics
    padded = np.concatenate([images[:5], np.full((3,) + images.shape[1:], 50.0, np.float32)])
    with_padding = collect_ranges(model, [(padded, 5)], names, "minmax")
    without = collect_ranges(model, [images[:5]], names, "minmax")
    assert with_padding.amax == pytest.approx(without.amax)
    assert with_padding.images == 5


def test_collection_errors(digits):
    model, images = digits
    names = float_activations(model)
    with pytest.raises(RftrtError, match="unknown calibration method"):
        collect_ranges(model, [images], names, "kl")
    with pytest.raises(RftrtError, match="no calibration images"):
        collect_ranges(model, [], names, "minmax")
    with pytest.raises(RftrtError, match="not finite"):
        collect_ranges(model, [np.full_like(images[:2], np.inf)], names, "minmax")
