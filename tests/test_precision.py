"""The precision plan and its two renderings, checked on ONNX Runtime with real photographs."""

from collections import Counter

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import pytest
import torch
from onnx_cache import load

from rftrt.comparison import compare
from rftrt.data.images import Preprocess, load_batch, sample_image_paths
from rftrt.export.onnx_export import export_onnx
from rftrt.export.onnxrt import run_onnx
from rftrt.export.passes import to_graph
from rftrt.export.passes.attention import find_attention_cores
from rftrt.export.prepare import run_passes
from rftrt.models import create
from rftrt.precision.plan import RANGE_LIMIT, plan_precision
from rftrt.precision.render import render_fp16

RESOLUTION = 128


def _passed(proto: onnx.ModelProto, fp16_safe: bool = True) -> onnx.ModelProto:
    return run_passes(proto, "fp16" if fp16_safe else "fp32")[0]


@pytest.fixture(scope="module")
def photos():
    return load_batch(sample_image_paths(), Preprocess.for_resolution(RESOLUTION))


@pytest.fixture(scope="module")
def rf_b1(photos):
    _, proto = load("rf_b1", RESOLUTION)
    passed = _passed(proto)
    plan = plan_precision(passed, photos, "photos")
    return proto, passed, plan


def test_plan_keeps_attention_cores_and_layernorm_in_fp32(rf_b1):
    _, passed, plan = rf_b1
    graph = to_graph(passed)
    cores = find_attention_cores(graph)
    assert len(cores) == 7
    core_nodes = {n.name for core in cores for n in core.nodes}
    layernorms = {n.name for n in graph.nodes if n.op == "LayerNormalization"}
    assert core_nodes | layernorms == set(plan.fp32_nodes)
    assert not any(r.startswith("range") for r in plan.reasons.values())
    kinds = Counter(n.op for n in graph.nodes if n.name in set(plan.fp32_nodes))
    assert {"Relu", "ReduceSum", "Mul", "Add", "Div", "LayerNormalization"} <= set(kinds)  # exact cores: sums and + ε
    assert kinds["Div"] == 7 and kinds["LayerNormalization"] == 1


def test_strongly_typed_rendering_is_fp16_with_cast_guarded_fp32_islands(rf_b1, photos):
    _, passed, plan = rf_b1
    typed = render_fp16(passed, set(plan.fp32_nodes))
    onnx.checker.check_model(typed)
    graph = to_graph(typed)
    assert graph.inputs[0].dtype == np.float32 and graph.outputs[0].dtype == np.float32
    conv_weights = [n.inputs[1] for n in graph.nodes if n.op == "Conv"]
    assert conv_weights and all(w.values.dtype == np.float16 for w in conv_weights)
    casts = [n for n in graph.nodes if n.op == "Cast"]
    # into and out of 7 cores, into and out of LayerNorm, plus the graph input and output
    assert len(casts) == 2 * 7 + 2 + 2
    for core in find_attention_cores(graph):
        assert all(t.dtype == np.float32 for n in core.nodes for t in n.outputs)
        assert core.x.inputs[0].op == "Cast" and core.x.inputs[0].attrs["to"] == onnx.TensorProto.FLOAT
    reference = run_onnx(passed, {"p": photos})["p"]
    result = compare("FP32", reference, "FP16 plan", run_onnx(typed, {"p": photos})["p"], "photos", "fp16")
    assert result.passed and result.finite and result.top1_agreement == 1.0, result.line()


def _scaled_rf_b1(scale: float):
    torch.manual_seed(0)
    model = create("rf_b1", resolution=RESOLUTION)
    with torch.no_grad():
        for module in model.modules():
            if hasattr(module, "qkv"):  # larger attention activations, as trained models have
                module.qkv.conv.weight.mul_(scale)
    return export_onnx(model, RESOLUTION)


@pytest.mark.parametrize("scale", [1.0, 8.0])
def test_naive_fp16_breaks_where_the_planned_one_holds(photos, scale):
    proto = _scaled_rf_b1(scale)
    reference = run_onnx(proto, {"p": photos})["p"]
    naive = render_fp16(_passed(proto, fp16_safe=False))  # everything FP16, ε = 1e-15 → 0
    naive_result = compare("FP32", reference, "naive FP16", run_onnx(naive, {"p": photos})["p"], "photos", "fp16")
    assert not naive_result.finite or naive_result.top1_agreement < 1.0, naive_result.line()
    passed = _passed(proto)
    plan = plan_precision(passed, photos, "photos")
    planned = render_fp16(passed, set(plan.fp32_nodes))
    planned_result = compare("FP32", reference, "FP16 plan", run_onnx(planned, {"p": photos})["p"], "photos", "fp16")
    # top-1 on the decisive images: at ×8 a random-weight model's near-ties flip within FP16's error
    assert planned_result.passed and planned_result.decisive_agreement == 1.0, planned_result.line()


def test_activation_beyond_fp16_is_pinned_by_measured_range(photos):
    torch.manual_seed(0)
    model = create("rf_b0", resolution=RESOLUTION)
    with torch.no_grad():  # the head's first conv now produces values past FP16's range
        model.head.op_list[0].conv.weight.mul_(1e6)
    passed = _passed(export_onnx(model, RESOLUTION))
    plan = plan_precision(passed, photos, "photos")
    pinned = [name for name, reason in plan.reasons.items() if reason.startswith("range")]
    assert pinned and plan.max_activation > RANGE_LIMIT
    graph = to_graph(passed)
    assert any(n.op == "Conv" and n.name in pinned for n in graph.nodes)
    reference = run_onnx(passed, {"p": photos})["p"]
    planned = render_fp16(passed, set(plan.fp32_nodes))
    assert np.isfinite(run_onnx(planned, {"p": photos})["p"]).all()
    with np.errstate(over="ignore"):  # the point: this rendering overflows
        unguarded = render_fp16(passed, set(plan.fp32_nodes) - set(pinned))
    assert not np.isfinite(run_onnx(unguarded, {"p": photos})["p"]).all()
    assert np.isfinite(reference).all()


def _scaled_chain(scale_down: float, weight_scale: float = 1e6) -> onnx.ModelProto:
    """images → Conv (weights ×1e6: far past FP16) → Mul(scale_down) → Relu → logits: the Mul brings
    the values back into FP16's range, so only the Conv's own output is out of range."""
    rng = np.random.default_rng(0)
    x = gs.Variable("images", np.float32, ("batch", 3, 8, 8))
    conv_out, scaled, y = (gs.Variable(n, np.float32, ("batch", 4, 8, 8)) for n in ("conv_out", "scaled", "logits"))
    weight = gs.Constant("w", (rng.standard_normal((4, 3, 1, 1)) * weight_scale).astype(np.float32))
    nodes = [
        gs.Node("Conv", "conv", {}, [x, weight], [conv_out]),
        gs.Node("Mul", "scale_down", {}, [conv_out, gs.Constant("s", np.array(scale_down, np.float32))], [scaled]),
        gs.Node("Relu", "relu", {}, [scaled], [y]),
    ]
    model = gs.export_onnx(gs.Graph(nodes=nodes, inputs=[x], outputs=[y], opset=17))
    model.ir_version = 8
    return model


def test_consumers_of_an_out_of_range_tensor_stay_fp32_until_it_is_back_in_range():
    model = _scaled_chain(1e-6)
    images = np.random.default_rng(1).standard_normal((4, 3, 8, 8)).astype(np.float32)
    plan = plan_precision(model, images, "noise")
    assert plan.reasons["conv"].startswith("range")
    assert plan.reasons["scale_down"].startswith("input range")  # it reads the Conv's out-of-range output
    assert "relu" not in plan.reasons  # its input is back in range: FP16 from here
    typed = render_fp16(model, set(plan.fp32_nodes))
    casts = [n for n in typed.graph.node if n.op_type == "Cast" and n.attribute[0].i == onnx.TensorProto.FLOAT16]
    assert [n.input[0] for n in casts] == ["scaled"]  # never a Cast of conv_out to FP16
    reference = run_onnx(model, {"x": images})["x"]
    out = run_onnx(typed, {"x": images})["x"]
    assert np.isfinite(out).all() and np.abs(out - reference).max() <= 1e-2 * np.abs(reference).max()


def test_weights_below_fp16_normal_are_counted_per_node():
    model = _scaled_chain(0.5, weight_scale=1.0)
    weights = {t.name: t for t in model.graph.initializer}
    values = onnx.numpy_helper.to_array(weights["w"]).copy()
    values.reshape(-1)[:5] = 1e-6  # five non-zero weights FP16 keeps only as subnormals
    weights["w"].CopyFrom(onnx.numpy_helper.from_array(values, "w"))
    plan = plan_precision(model, np.ones((1, 3, 8, 8), np.float32), "ones")  # everything in range
    assert "conv" not in plan.reasons and plan.weight_underflow == {"conv": 5}
    assert "5 weights below FP16's smallest normal in 1 nodes" in plan.summary()
    assert plan.as_dict()["weight_underflow"] == {"conv": 5}
