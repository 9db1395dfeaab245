"""The DLA placement prediction: the rules file (every rule with its source, every layer with a check the
code has), each rule on a small hand-built graph, the graph-level counts (transitions, loadables, a
build without GPU fallback), the DLA-legal forms of the attention and the head, the prediction a DLA
bundle carries, and the comparison with TensorRT's per-layer answer that rf-build records."""

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import pytest

from rftrt._data import load_toml
from rftrt.engines.build import read_dla_prediction
from rftrt.engines.build_spec import BuildSpec
from rftrt.engines.bundle import verify_bundle
from rftrt.errors import RftrtError
from rftrt.export.onnx_export import export_onnx
from rftrt.export.prepare import attention_blocks, run_passes
from rftrt.models import create
from rftrt.pipeline import ExportOptions, run_export
from rftrt.targets.dla import CHECKS, PREDICTION_FILE, compare_with_tensorrt, dla_rules, parse_dla_rules
from rftrt.tools.inspect import dla as predictor
from rftrt.tools.inspect.dla import dla_rule, predict_dla, predict_dla_onnx

F = np.float32
_count = iter(range(10**6))


def var(shape, name=None):
    return gs.Variable(name or f"t{next(_count)}", F, shape)


def const(values, name=None):
    return gs.Constant(name or f"c{next(_count)}", np.asarray(values, F))


def node(op, inputs, out_shape, attrs=None, name=None):
    out = var(out_shape)
    return gs.Node(op, name or f"{op}{next(_count)}", attrs or {}, inputs, [out]), out


def conv(x, c_out, kernel, stride=1, group=1, c_in=None):
    c_in = c_in or x.shape[1]
    weight = const(np.ones((c_out, c_in // group, kernel, kernel)))
    h = (x.shape[2] - kernel) // stride + 1
    return node("Conv", [x, weight], (x.shape[0], c_out, h, h), {"kernel_shape": [kernel, kernel], "strides": [stride, stride], "group": group})


def place(n, precision="fp16", fp32=None):
    return dla_rule(n, precision, fp32)


# --- the rules file --------------------------------------------------------------------------------


def test_every_rule_names_a_source_and_every_layer_a_check_the_code_has():
    rules = dla_rules()
    assert rules.sources and all(rules.sources.values())
    assert rules.general_source in rules.sources
    assert all(layer.source in rules.sources and layer.check in CHECKS for layer in rules.layers.values())
    assert all(op.source in rules.sources for op in rules.ops.values())
    assert set(predictor._CHECKS) == set(CHECKS)
    assert (rules.loadables_per_core, rules.max_dimension, rules.precisions) == (16, 8192, ("FP16", "INT8"))
    limits = rules.layers["Pooling"].limits
    assert (limits["window"], limits["stride"]) == ([1, 8], [1, 16])
    assert rules.layers["Reduce"].limits["operations"] == ["MAX"]


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda raw: raw["ops"]["Conv"].pop("source"), r"\[ops.Conv\] has source None"),
        (lambda raw: raw["layers"]["Pooling"].update(check="window"), r"\[layers.Pooling\] has check 'window'"),
        (lambda raw: raw["ops"]["Conv"].update(layer="Conv2d"), r"\[ops.Conv\] names layer 'Conv2d'"),
        (lambda raw: raw["ops"].update(HardSwish={"layer": "Activation", "source": "trt-dla-layers"}), "HardSwish has more than one rule"),
        (lambda raw: raw.pop("general"), "missing 'general'"),
    ],
)
def test_a_broken_rules_file_is_refused(edit, message):
    raw = load_toml("rftrt.targets", "dla_rules.toml")
    edit(raw)
    with pytest.raises(RftrtError, match=message):
        parse_dla_rules(raw)


# --- one rule at a time -----------------------------------------------------------------------------

X = (1, 8, 14, 14)


def test_precision_rules():
    n, _ = conv(var(X), 8, 3)
    assert place(n) == ("DLA", "layers.Convolution", "Convolution: kernel 3×3, stride 1×1: within DLA's kernel 1–32, stride 1–8")
    assert place(n, "fp32") == ("GPU", "general.precisions", "FP32 build: DLA runs FP16 and INT8 only")
    device, rule, reason = place(n, "fp16", {n.name: "attention core"})
    assert (device, rule) == ("GPU", "general.precisions") and "kept FP32 by the precision plan (attention core)" in reason
    assert place(n, "int8")[0] == "DLA"


@pytest.mark.parametrize(
    "kernel,stride,group,c_in,device",
    [
        (32, 1, 8, None, "DLA"),  # a depthwise global sum over a 32×32 map
        (33, 1, 8, None, "GPU"),
        (1, 1, 2, None, "DLA"),  # grouped 1×1: per-head channel sums
        (3, 8, 1, None, "DLA"),
        (3, 9, 1, None, "GPU"),
    ],
)
def test_convolution_kernel_stride_and_groups(kernel, stride, group, c_in, device):
    side = max(kernel, 40)
    n, _ = conv(var((1, 8, side, side)), 8, kernel, stride, group)
    assert place(n)[0] == device


def test_convolution_channels_and_dimensions():
    wide, _ = conv(var((1, 8200, 4, 4)), 8, 1)
    assert place(wide)[0] == "GPU" and "at most 8192" in place(wide)[2]
    huge, _ = node("Relu", [var((1, 1, 1, 9000))], (1, 1, 1, 9000))
    assert place(huge)[:2] == ("GPU", "general.max_dimension")


@pytest.mark.parametrize("op,window,stride,device", [("MaxPool", 8, 8, "DLA"), ("MaxPool", 9, 1, "GPU"), ("AveragePool", 2, 16, "DLA"), ("AveragePool", 2, 17, "GPU")])
def test_pooling_windows_1_to_8_and_strides_1_to_16(op, window, stride, device):
    n, _ = node(op, [var((1, 8, 64, 64))], (1, 8, 4, 4), {"kernel_shape": [window, window], "strides": [stride, stride]})
    assert place(n)[0] == device


def test_global_average_pool_is_no_pooling_layer():
    n, _ = node("GlobalAveragePool", [var(X)], (1, 8, 1, 1))
    device, rule, reason = place(n)
    assert (device, rule) == ("GPU", "gpu.GlobalAveragePool") and "Reduce" in reason
    assert dla_rules().ops["GlobalAveragePool"].source == "jetson-dla-tutorial"


@pytest.mark.parametrize("op,axes,device", [("ReduceMax", [2, 3], "DLA"), ("ReduceMax", [0], "GPU"), ("ReduceSum", [2, 3], "GPU"), ("ReduceMean", [2, 3], "GPU")])
def test_reduce_is_max_only_and_never_over_the_batch(op, axes, device):
    n, _ = node(op, [var(X), gs.Constant(f"axes{next(_count)}", np.array(axes, np.int64))], (1, 8, 1, 1), {"keepdims": 1})
    assert place(n)[0] == device
    if op != "ReduceMax":
        assert "supports MAX only" in place(n)[2]


def test_matmul_only_with_a_constant_second_input():
    a, b = var((1, 4, 16, 8)), var((1, 4, 8, 16))
    two, _ = node("MatMul", [a, b], (1, 4, 16, 16))
    weighted, _ = node("MatMul", [a, const(np.ones((8, 16)))], (1, 4, 16, 16))
    gemm, _ = node("Gemm", [var((1, 8)), const(np.ones((10, 8))), const(np.zeros(10))], (1, 10), {"transB": 1})
    assert place(two)[0] == "GPU" and "constant second input" in place(two)[2]
    assert place(weighted)[0] == "DLA" and place(gemm)[0] == "DLA"


def test_pow_needs_exactly_one_constant_and_div_at_most_one():
    x, y = var(X), var(X)
    assert place(node("Pow", [x, const(-0.5)], X)[0])[0] == "DLA"
    assert place(node("Pow", [x, y], X)[0])[0] == "GPU"
    assert place(node("Div", [x, y], X)[0])[0] == "DLA"
    assert place(node("Div", [x, const(np.ones((1, 8, 1, 1)))], X)[0])[0] == "DLA"
    both, _ = node("Div", [const(np.ones(X)), const(np.ones(X))], X)
    assert place(both)[0] == "GPU" and "2 constant inputs" in place(both)[2]


@pytest.mark.parametrize(
    "other,device",
    [
        ((1, 8, 14, 14), "DLA"),  # CHW
        ((1, 8, 1, 1), "DLA"),  # C11
        ((8, 1, 1), "DLA"),  # C11 once right-aligned
        ((), "DLA"),  # 111
        ((1, 1, 14, 14), "GPU"),  # 1HW
        ((1, 8, 14, 1), "GPU"),  # CH1
    ],
)
def test_elementwise_broadcast_forms(other, device):
    for tensor in (const(np.ones(other)), var(other)):
        assert place(node("Mul", [var(X), tensor], X)[0])[0] == device


def test_activations_clip_concat_shuffle_slice_and_comparisons():
    x = var(X)
    assert place(node("Relu", [x], X)[0])[0] == "DLA"
    assert place(node("HardSwish", [x], X)[0])[:2] == ("GPU", "gpu.HardSwish")
    for low, high, device in ((0.0, 6.0, "DLA"), (-1.0, 6.0, "GPU"), (0.0, 200.0, "GPU")):
        assert place(node("Clip", [x, const(low), const(high)], X)[0])[0] == device
    assert place(node("Clip", [x, const(0.0)], X)[0])[0] == "GPU"  # no upper bound: no Clipped ReLU
    for axis, device in ((1, "DLA"), (-3, "DLA"), (2, "GPU")):
        assert place(node("Concat", [x, var(X)], (1, 8, 28, 14), {"axis": axis})[0])[0] == device
    assert place(node("Transpose", [x], (1, 14, 8, 14), {"perm": [0, 2, 1, 3]})[0])[0] == "DLA"
    assert place(node("Transpose", [x], (8, 1, 14, 14), {"perm": [1, 0, 2, 3]})[0])[0] == "GPU"
    assert place(node("Reshape", [x, gs.Constant(f"s{next(_count)}", np.array([1, 2, 4, 14, 14], np.int64))], (1, 2, 4, 14, 14))[0])[0] == "GPU"
    starts = [gs.Constant(f"i{next(_count)}", np.array([0], np.int64)) for _ in range(2)]
    assert place(node("Slice", [x, *starts], X)[0])[0] == "DLA"
    assert place(node("Slice", [x, var((1,)), starts[1]], X)[0])[0] == "GPU"
    equal, _ = node("Equal", [x, var(X)], X)
    assert place(equal, "fp16")[:2] == ("GPU", "layers.Comparison") and place(equal, "int8")[0] == "DLA"
    assert place(node("Gather", [x, var((2,))], X)[0])[:2] == ("GPU", "gpu.Gather")
    assert place(node("NonZero", [x], X)[0])[:2] == ("GPU", "unlisted")


# --- whole graphs -----------------------------------------------------------------------------------


def _graph(nodes, x, outputs):
    return gs.Graph(nodes=nodes, inputs=[x], outputs=outputs, opset=17)


def test_transitions_loadables_and_a_build_without_fallback():
    """x → Conv(DLA) → HardSwish(GPU) → Conv(DLA) → ReduceSum(GPU) → y."""
    x = var((1, 4, 16, 16))
    c1, a = conv(x, 4, 3)
    hs, b = node("HardSwish", [a], a.shape)
    c2, c = conv(b, 4, 3, 2)
    red, y = node("ReduceSum", [c, gs.Constant("ax", np.array([2, 3], np.int64))], (1, 4, 1, 1), {"keepdims": 1})
    prediction = predict_dla(_graph([c1, hs, c2, red], x, [y]), "fp16", core=0)
    assert [p.device for p in prediction.placements] == ["DLA", "GPU", "DLA", "GPU"]
    assert (prediction.dla_to_gpu, prediction.gpu_to_dla, prediction.loadables, prediction.io_reformats) == (2, 1, 2, 1)
    assert not prediction.without_fallback and "fails: 2 nodes cannot run on DLA" in prediction.without_fallback_reason()
    data = prediction.as_dict()
    assert data["core"] == 0 and data["without_fallback"] is False and data["placements"][1]["rule"] == "gpu.HardSwish"
    assert "PREDICTION" in data["label"]


def test_a_skip_connection_around_a_gpu_stretch_does_not_join_two_loadables():
    """x → Conv(DLA) → a → HardSwish(GPU) → Conv(DLA) → c; Add(a, c) on DLA. The Add waits on the GPU
    through c, so it cannot be in the first Conv's loadable although a joins them directly."""
    x = var((1, 4, 16, 16))
    c1, a = conv(x, 4, 1)
    hs, b = node("HardSwish", [a], a.shape)
    c2, c = conv(b, 4, 1)
    add, y = node("Add", [a, c], a.shape)
    prediction = predict_dla(_graph([c1, hs, c2, add], x, [y]), "fp16", core=0)
    assert [p.device for p in prediction.placements] == ["DLA", "GPU", "DLA", "DLA"]
    assert prediction.loadables == 2


def test_more_loadables_than_a_core_holds():
    x = var(("batch", 4, 8, 8))
    nodes, t = [], x
    for _ in range(17):
        c, t = conv(t, 4, 1)
        h, t = node("HardSwish", [t], t.shape)
        nodes += [c, h]
    prediction = predict_dla(_graph(nodes, x, [t]))
    assert prediction.loadables == 17 and prediction.transitions == 33
    assert any("exceed the 16 per DLA core" in n for n in prediction.notes)
    assert any("dynamic batch" in n for n in prediction.notes)


def _dla_legal_block(x, side):
    """The forms the DLA rewrites produce: HardSwish as x·Clip(x+3, 0, 6)·(1/6); a global spatial mean
    as a depthwise convolution with a constant kernel the size of the map; per-head channel sums as a
    grouped 1×1 convolution; the attention's broadcasts as C11 products and sums with constants."""
    c = x.shape[1]
    add3, a = node("Add", [x, const(3.0)], x.shape)
    clip, b = node("Clip", [a, const(0.0), const(6.0)], x.shape)
    mul, m = node("Mul", [x, b], x.shape)
    sixth, h = node("Mul", [m, const(1 / 6)], x.shape)
    mean = const(np.full((c, 1, side, side), 1.0 / (side * side)))
    pool, g = node("Conv", [h, mean], (x.shape[0], c, 1, 1), {"kernel_shape": [side, side], "group": c})
    heads, s = node("Conv", [g, const(np.ones((c, 2, 1, 1)))], (x.shape[0], c, 1, 1), {"kernel_shape": [1, 1], "group": c // 2})
    eps, e = node("Add", [s, const(1e-4)], s.shape)
    inv, r = node("Pow", [e, const(-1.0)], s.shape)
    scale, o = node("Mul", [h, r], x.shape)
    bias, out = node("Add", [o, const(np.zeros((c, 1, 1)))], x.shape)
    return [add3, clip, mul, sixth, pool, heads, eps, inv, scale, bias], out


@pytest.mark.parametrize("side", [7, 14, 18, 32])
def test_the_dla_rewrites_forms_are_all_on_dla_in_one_loadable(side):
    x = var((8, 16, side, side))
    nodes, out = _dla_legal_block(x, side)
    prediction = predict_dla(_graph(nodes, x, [out]), core=0)
    assert prediction.count("GPU") == 0, [p for p in prediction.placements if p.device == "GPU"]
    assert (prediction.loadables, prediction.transitions, prediction.without_fallback) == (1, 0, True)
    assert prediction.without_fallback_reason() == "succeeds: every node on DLA in 1 loadable"


def test_a_global_average_pool_head_stays_on_the_gpu_and_splits_the_network():
    x = var((8, 16, 7, 7))
    nodes, out = _dla_legal_block(x, 7)
    gap, g = node("GlobalAveragePool", [out], (8, 16, 1, 1))
    fc, y = node("Conv", [g, const(np.ones((10, 16, 1, 1)))], (8, 10, 1, 1), {"kernel_shape": [1, 1]})
    prediction = predict_dla(_graph(nodes + [gap, fc], x, [y]), core=0)
    assert [p.device for p in prediction.placements[-2:]] == ["GPU", "DLA"]
    assert (prediction.loadables, prediction.transitions, prediction.without_fallback) == (2, 2, False)


# --- TensorRT's answer beside the prediction -----------------------------------------------------------


def test_compare_with_tensorrt():
    x = var((1, 4, 16, 16))
    c1, a = conv(x, 4, 3)
    hs, y = node("HardSwish", [a], a.shape)
    record = predict_dla(_graph([c1, hs], x, [y]), core=0).as_dict()
    layers = {c1.name: [0], hs.name: [1, 2]}
    same = compare_with_tensorrt(record, layers, [True, False, True])
    assert (same["nodes_compared"], same["agree"], same["disagree"], same["nodes_without_a_layer"]) == (2, 2, 0, 0)
    other = compare_with_tensorrt(record, {c1.name: [0]}, [False])
    assert (other["agree"], other["disagree"], other["nodes_without_a_layer"]) == (0, 1, 1)
    assert other["disagreements"] == [{"node": c1.name, "op": "Conv", "predicted": "DLA", "tensorrt": "GPU", "rule": "layers.Convolution"}]
    assert other["predicted"]["without_fallback"] is False


# --- the bundle carries the prediction; rf-build reads it back -------------------------------------------


def test_a_dla_bundle_carries_the_prediction_for_its_own_onnx(tmp_path):
    options = ExportOptions(out_dir=str(tmp_path / "b"), resolution=64, model="rf_b0", target="orin", precision="fp16", dla_core=0)
    out = run_export(options, log=lambda line: None).out_dir
    verify_bundle(out)  # listed in the manifest
    spec = BuildSpec.from_json((out / "build.json").read_text())
    prediction = read_dla_prediction(out)
    assert prediction["core"] == 0 and prediction["target"] == "orin" and "PREDICTION" in prediction["label"]
    model = onnx.load(str(out / spec.onnx))
    assert [p["name"] for p in prediction["placements"]] == [n.name for n in model.graph.node]
    pinned = [p for p in prediction["placements"] if p["name"] in set(spec.fp32_layers)]
    assert all(p["device"] == "GPU" and p["rule"] == "general.precisions" for p in pinned)
    assert prediction["dla_nodes"] + prediction["gpu_nodes"] == len(model.graph.node)
    # the DLA passes leave a ReduceFormer nothing the GPU must run: one loadable, no fallback needed
    assert (prediction["gpu_nodes"], prediction["loadables"], prediction["without_fallback"]) == (0, 1, True)
    assert PREDICTION_FILE in (out / "README.md").read_text()


def test_rf_build_refuses_a_broken_prediction_file(tmp_path):
    assert read_dla_prediction(tmp_path) is None
    (tmp_path / PREDICTION_FILE).write_text("{not json")
    with pytest.raises(RftrtError, match="is not valid JSON"):
        read_dla_prediction(tmp_path)
    (tmp_path / PREDICTION_FILE).write_text('{"label": "x"}')
    with pytest.raises(RftrtError, match="no placements"):
        read_dla_prediction(tmp_path)


# --- the graphs the DLA passes make ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["rf_b0", "evit_b0"])
def test_after_the_dla_passes_reduceformer_is_all_dla_and_efficientvit_keeps_its_matmuls(name):
    model = create(name, 64, seed=0)
    exported = export_onnx(model, 64, dynamic_batch=False, batch=8)
    passed, _ = run_passes(exported, "fp16", attention_blocks(model), dla=True)
    prediction = predict_dla_onnx(passed, "fp16", None, "orin", 0)
    gpu = [p for p in prediction.placements if p.device == "GPU"]
    if name.startswith("rf"):
        assert not gpu, gpu[:3]
        assert (prediction.loadables, prediction.transitions, prediction.without_fallback) == (1, 0, True)
    else:  # LiteMLA's two-activation products cannot leave the GPU
        assert {p.op for p in gpu} >= {"MatMul"} and all(p.rule == "layers.MatrixMultiply" for p in gpu if p.op == "MatMul")
        assert prediction.transitions > 0 and not prediction.without_fallback
