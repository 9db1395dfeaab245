"""A model that really learned something: the reduced ReduceFormer trained on scikit-learn's digits
(committed checkpoint, scripts/train_digits.py), measured in FP32, FP16 (precision plan) and INT8
Q/DQ on the held-out split with ONNX Runtime. INT8 must stay within 1.0 point of FP32."""

import numpy as np
import pytest
from onnx_cache import digits_fp32_onnx

from rftrt.data.digits import RESOLUTION, load_digits_data
from rftrt.data.sources import ArraySource, spaced_indices
from rftrt.export.onnxrt import onnx_logits
from rftrt.models import LiteMLA, ReduceAttention
from rftrt.models.digits import DIGITS_ARCH, checkpoint_path, load_checkpoint
from rftrt.precision.accuracy import topk_accuracy, torch_logits
from rftrt.precision.int8 import calibrate
from rftrt.precision.plan import plan_precision
from rftrt.precision.ranges import DEFAULT_METHOD, METHODS
from rftrt.precision.render import render_fp16
from rftrt.targets.profiles import load_target

CALIBRATION_IMAGES = 256


@pytest.fixture(scope="module")
def setup():
    model = load_checkpoint()
    data = load_digits_data()
    onnx_model = digits_fp32_onnx(model)
    calib = data.train_images[spaced_indices(len(data.train_images), CALIBRATION_IMAGES)]
    plan = plan_precision(onnx_model, calib[:8], "8 training digits")
    fp32 = onnx_logits(onnx_model, data.test_images)
    return model, data, onnx_model, calib, plan, fp32


def test_checkpoint_is_small_and_a_reduceformer():
    assert checkpoint_path().stat().st_size <= 1 << 20
    model = load_checkpoint()
    assert model.resolution == RESOLUTION
    assert sum(isinstance(m, ReduceAttention) for m in model.modules()) == DIGITS_ARCH.depths[3] + DIGITS_ARCH.depths[4]
    assert not any(isinstance(m, LiteMLA) for m in model.modules())
    assert model.training_summary["test_top1"] >= 95.0


def test_fp32_onnx_matches_pytorch_and_is_accurate(setup):
    model, data, _, _, _, fp32 = setup
    torch_out = torch_logits(model, data.test_images)
    assert np.abs(torch_out - fp32).max() < 1e-3
    assert topk_accuracy(fp32, data.test_labels) >= 0.95
    assert len(data.test_labels) == 540 and len(data.train_labels) == 1257


def test_fp32_fp16_int8_accuracy(setup):
    _, data, onnx_model, calib, plan, fp32 = setup
    y = data.test_labels
    fp16 = onnx_logits(render_fp16(onnx_model, set(plan.fp32_nodes)), data.test_images)
    result = calibrate(onnx_model, ArraySource(calib), target=load_target("l40"), method=DEFAULT_METHOD, plan=plan, progress=False, log=lambda _: None)
    int8 = onnx_logits(result.qdq_model, data.test_images)
    int8_fp16 = onnx_logits(result.typed_model, data.test_images)
    acc = {name: 100 * topk_accuracy(logits, y) for name, logits in
           {"fp32": fp32, "fp16": fp16, "int8": int8, "int8+fp16": int8_fp16}.items()}
    print("digits held-out top-1 (%):", {k: round(v, 2) for k, v in acc.items()})
    assert acc["fp32"] >= 95.0
    assert abs(acc["fp16"] - acc["fp32"]) <= 0.5
    assert acc["int8"] >= acc["fp32"] - 1.0
    assert acc["int8+fp16"] >= acc["fp32"] - 1.0
    assert result.passed, [c.line() for c in result.checks]


@pytest.mark.parametrize("method", [m for m in METHODS if m != DEFAULT_METHOD])
def test_every_method_stays_within_a_point(setup, method):
    _, data, onnx_model, calib, plan, fp32 = setup
    result = calibrate(onnx_model, ArraySource(calib), target=load_target("orin"), method=method, plan=plan, progress=False, log=lambda _: None)
    int8 = onnx_logits(result.qdq_model, data.test_images)
    assert topk_accuracy(int8, data.test_labels) >= topk_accuracy(fp32, data.test_labels) - 0.01


def test_static_batch_onnx_is_calibrated_with_padding(setup):
    model, data, onnx_model, calib, plan, _ = setup
    static = digits_fp32_onnx(model, static_batch=4)  # what a DLA bundle ships: min = opt = max
    assert static.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4
    result = calibrate(static, ArraySource(calib[:10]), target=load_target("orin", dla_core=0), method="minmax", progress=False, log=lambda _: None)
    assert result.ranges.images == 10  # 4 + 4 + 2 real rows; the padding of the last batch is left out
    dynamic = calibrate(onnx_model, ArraySource(calib[:10]), target=load_target("orin"), method="minmax", plan=result.plan, progress=False, log=lambda _: None)
    common = set(result.ranges.amax) & set(dynamic.ranges.amax)
    assert common and all(result.ranges.amax[n] == pytest.approx(dynamic.ranges.amax[n], rel=1e-4) for n in common)
    assert result.cache_text is not None and result.qdq_model is None  # DLA on TensorRT 8.6 takes the cache only
    assert result.passed
