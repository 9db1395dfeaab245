"""Q/DQ placement for TensorRT explicit quantization, on real exported graphs (ReduceFormer and
EfficientViT B0 at 64×64, random weights: placement does not depend on the weights)."""

from collections import Counter

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import pytest

from rftrt.data.images import Preprocess
from rftrt.data.sources import ImageSource
from rftrt.export.onnxrt import run_onnx
from rftrt.export.passes import to_graph
from rftrt.export.passes.attention import find_attention_cores
from rftrt.export.prepare import export_and_pass
from rftrt.models import create
from rftrt.precision.int8 import calibrate
from rftrt.precision.plan import FP16_MIN_NORMAL
from rftrt.precision.qdq import insert_qdq, qdq_tensors, quantize_weight, render_typed
from rftrt.targets.profiles import load_target

RES = 64


def _exported(name: str) -> onnx.ModelProto:
    return export_and_pass(create(name, RES), RES, "int8").passed


@pytest.fixture(scope="module", params=["rf_b0", "evit_b0"])
def calibrated(request):
    model = _exported(request.param)
    source = ImageSource.bundled(Preprocess.for_resolution(RES))
    weak = calibrate(model, source, target=load_target("orin", "10.10"), method="minmax", progress=False, log=lambda _: None)
    strong = calibrate(model, source, target=load_target("l40"), method="minmax", plan=weak.plan, progress=False, log=lambda _: None)
    return request.param, model, weak, strong


def _islands(graph: gs.Graph) -> tuple[set[str], list]:
    cores = find_attention_cores(graph)
    names = {n.name for core in cores for n in core.nodes}
    names |= {n.name for n in graph.nodes if n.op == "LayerNormalization"}
    return names, cores


def _producer(tensor):
    return tensor.inputs[0] if tensor.inputs else None


def test_plan_keeps_attention_cores_and_layernorm_fp32(calibrated):
    name, model, weak, _ = calibrated
    islands, cores = _islands(to_graph(model))
    assert len(cores) == 4
    assert islands <= set(weak.plan.fp32_nodes)


def test_qdq_on_every_conv_gemm_matmul_input_outside_the_islands(calibrated):
    name, model, weak, _ = calibrated
    graph = to_graph(weak.qdq_model)
    islands, _ = _islands(to_graph(model))
    quantized = Counter()
    for node in graph.nodes:
        if node.op not in ("Conv", "Gemm", "MatMul"):
            continue
        if node.name in islands:
            for tensor in node.inputs:  # LiteMLA's MatMuls stay FP32: nothing quantized feeds them
                producer = _producer(tensor) if isinstance(tensor, gs.Variable) else None
                assert producer is None or producer.op != "DequantizeLinear", f"{node.name} is in an FP32 island"
            continue
        quantized[node.op] += 1
        x = node.inputs[0]
        assert _producer(x).op == "DequantizeLinear", f"{node.name}: activation input not quantized"
        q = _producer(_producer(x).inputs[0])
        assert q.op == "QuantizeLinear"
        scale, zero = q.inputs[1], q.inputs[2]
        assert scale.values.shape == () and float(scale.values) > 0  # per-tensor
        assert zero.values.dtype == np.int8 and int(zero.values) == 0  # symmetric INT8
        if isinstance(node.inputs[1], gs.Variable) and _producer(node.inputs[1]).op == "DequantizeLinear":
            dq = _producer(node.inputs[1])
            if isinstance(dq.inputs[0], gs.Constant):  # a weight: per output channel, int8, no Q node
                weights, scales = dq.inputs[0].values, dq.inputs[1].values
                assert weights.dtype == np.int8 and np.abs(weights.astype(int)).max() <= 127
                axis = dq.attrs["axis"]
                assert scales.shape == (weights.shape[axis],)
                expected_axis = 0 if node.op == "Conv" or (node.op == "Gemm" and node.attrs.get("transB", 0)) else weights.ndim - 1
                assert axis == expected_axis
    convs = sum(1 for n in to_graph(model).nodes if n.op == "Conv")
    assert quantized["Conv"] == convs
    assert weak.qdq_report.quantized["Conv"] == convs
    assert weak.qdq_report.weights == sum(quantized.values())


def test_no_qdq_inside_attention_cores_around_layernorm_or_after_a_conv(calibrated):
    name, model, weak, _ = calibrated
    islands, cores = _islands(to_graph(model))
    graph = to_graph(weak.qdq_model)
    by_name = {n.name: n for n in graph.nodes}
    for node in graph.nodes:
        if node.op == "QuantizeLinear":
            producer = _producer(node.inputs[0])
            dq_out = node.outputs[0].outputs[0].outputs[0]
            consumers = dq_out.outputs
            # Q/DQ feeds only quantized ops (never a core node, LayerNorm, HardSwish, Add, ...)
            assert all(c.op in ("Conv", "Gemm", "MatMul") and c.name not in islands for c in consumers)
            if producer is not None:
                # inside a core only the core's output (feeding proj's Conv) is quantized
                if producer.name in islands:
                    assert producer.op == "Reshape" and any(producer.outputs[0] is core.out or producer.outputs[0].name == core.out.name for core in cores)
                assert producer.op != "LayerNormalization"
    for node in graph.nodes:
        if node.op == "LayerNormalization":
            assert _producer(node.inputs[0]).op not in ("DequantizeLinear", "QuantizeLinear")
            assert all(c.op not in ("QuantizeLinear", "DequantizeLinear") for c in node.outputs[0].outputs)
        if node.op == "HardSwish":  # Conv → HardSwish stays one fusable pair
            producer = _producer(node.inputs[0])
            assert producer.op not in ("DequantizeLinear", "QuantizeLinear")
        if node.name in by_name and node.name in islands:
            for tensor in node.inputs:
                p = _producer(tensor) if isinstance(tensor, gs.Variable) else None
                assert p is None or p.op not in ("DequantizeLinear", "QuantizeLinear"), f"Q/DQ inside island at {node.name}"


def test_qdq_models_run_on_ort_and_stay_close(calibrated):
    name, model, weak, strong = calibrated
    # Random weights: the renderings run and track FP32, but 8 bits are held to the INT8 tolerance
    # only on a trained model (test_calibration_digits.py); here they must stay finite and near.
    checks = weak.checks + strong.checks
    assert all(c.finite and c.min_cosine > 0.9 for c in checks), [c.line() for c in checks]
    assert [c.candidate for c in strong.checks] == ["INT8 Q/DQ", "INT8 Q/DQ + FP16 (typed)"]
    assert weak.typed_model is None and weak.cache_text is not None
    assert strong.cache_text is None and strong.typed_model is not None


def test_typed_rendering_is_fp16_with_fp32_islands(calibrated):
    name, model, _, strong = calibrated
    typed = strong.typed_model
    assert next(o.version for o in typed.opset_import if o.domain in ("", "ai.onnx")) >= 19
    graph = to_graph(typed)
    dtypes = {t.name: t.dtype for t in graph.tensors().values() if isinstance(t, gs.Variable)}
    islands, _ = _islands(to_graph(model))
    kinds = Counter()
    for node in graph.nodes:
        if node.op in ("QuantizeLinear", "DequantizeLinear"):
            assert np.asarray(node.inputs[1].values).dtype == np.float16
            assert float(np.min(np.asarray(node.inputs[1].values, dtype=np.float32))) >= FP16_MIN_NORMAL
        if node.op == "Conv":
            kinds[np.dtype(dtypes[node.outputs[0].name]).name] += 1
        if node.name in islands and node.op in ("Div", "ReduceSum", "ReduceMean", "LayerNormalization"):
            assert np.dtype(dtypes[node.outputs[0].name]) == np.float32, node.name
    assert set(kinds) == {"float16"}
    assert typed.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert typed.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_weight_quantization_is_per_channel_symmetric():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * np.array([1, 10, 0.01, 0], np.float32).reshape(4, 1, 1, 1)
    q, scale = quantize_weight(w, 0)
    assert q.dtype == np.int8 and scale.shape == (4,)
    assert np.abs(q[:3]).reshape(3, -1).max(1).tolist() == [127, 127, 127]
    assert (q[3] == 0).all() and scale[3] > 0
    assert np.abs(q.astype(np.float32) * scale.reshape(4, 1, 1, 1) - w).max() <= scale.max() / 2 + 1e-7


def test_tiny_scales_are_raised_for_fp16(calibrated):
    name, model, weak, _ = calibrated
    amax = {n: 1e-4 for n in qdq_tensors(model, weak.plan.fp32_nodes)}  # below 127 · 6.1e-5
    qdq, _ = insert_qdq(model, amax, weak.plan.fp32_nodes)
    typed, warnings = render_typed(qdq, weak.plan.fp32_nodes)
    assert warnings and "raised" in warnings[0]
    out = run_onnx(typed, {"x": np.zeros((1, 3, RES, RES), np.float32)})["x"]
    assert np.isfinite(out).all()
