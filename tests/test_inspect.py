"""rf-inspect: complexity per stage, op histograms, the traffic rules on hand-built graphs, time
floors, the DLA rules, and the command line."""

import json

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import pytest
from helpers import cli_error

from rftrt._data import load_toml
from rftrt.cli.inspect import inspect_main
from rftrt.errors import RftrtError
from rftrt.models import create, list_models, model_info
from rftrt.targets.dla import dla_rules, parse_dla_rules
from rftrt.targets.hardware import hardware, list_hardware
from rftrt.tools.inspect.complexity import complexity_report
from rftrt.tools.inspect.dla import dla_rule, predict_dla
from rftrt.tools.inspect.exported import export_and_pass
from rftrt.tools.inspect.graph import stage_of
from rftrt.tools.inspect.histogram import op_histogram
from rftrt.tools.inspect.report import format_inspect, inspect_model
from rftrt.tools.inspect.traffic import TrafficEstimate, memory_traffic, time_floor

RES = 64


# --- complexity -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported():
    return {name: export_and_pass(name, RES, "fp16") for name in ("rf_b0", "evit_b0")}


@pytest.mark.parametrize("name", ["rf_b0", "evit_b0"])
def test_stages_sum_to_the_total_and_match_the_model_and_its_graph(name, exported):
    from rftrt.models.complexity import STAGES

    model = exported[name].torch_model
    report = complexity_report(name, RES, model, exported[name].after)
    assert sum(s.params for s in report.stages) == report.params == sum(p.numel() for p in model.parameters())
    for (label, path), stage in zip(STAGES, report.stages):
        assert stage.stage == label and stage.params == sum(p.numel() for p in model.get_submodule(path).parameters())
    assert sum(s.macs for s in report.stages) == report.macs
    if name.startswith("evit"):
        assert {s.stage: s.official_params for s in report.stages} == model_info(name).stage_params
        assert all(s.official_params == s.params for s in report.stages)  # our modules are the official ones
        # the LiteMLA rewrite computes the padded ones-row as a sum: a few MACs fewer in the graph
        assert 0.99 * report.macs < report.graph_macs <= report.macs
    else:
        assert all(s.official_params is None for s in report.stages)
        assert report.graph_macs == report.macs  # torch's counter and the ONNX graph agree exactly
        assert report.attention_elementwise > 0


def test_official_stage_counts_are_sourced_data():
    zoo = load_toml("rftrt.models", "zoo.toml")["models"]
    with_counts = [name for name in list_models() if model_info(name).stage_params]
    assert with_counts == ["evit_b0", "evit_b1", "evit_b2", "evit_b3"]
    for name in with_counts:
        assert zoo[name]["stage_params"]["source"] == "official-modules"
        assert list(model_info(name).stage_params) == ["stem", "stage1", "stage2", "stage3", "stage4", "head"]
    assert sum(model_info("evit_b1").stage_params.values()) == 9_102_024  # model_spec §2.1's total


def test_published_figures_are_beside_ours():
    report = complexity_report("rf_b1", RES)
    assert report.published_params_m == 9.0 and report.published_macs_g is None  # nothing published at r64
    assert (report.paper_resolution, report.paper_params_m, report.paper_macs_g) == (224, 9.0, 0.52)
    assert report.params == 9_034_440 and report.published_source == "reduceformer-paper"


def test_op_histogram_before_and_after_the_passes(exported):
    for model in exported.values():
        hist = op_histogram(model)
        assert hist.nodes_before == len(model.before.graph.node) and hist.nodes_after == len(model.after.graph.node)
        assert hist.before.get("Constant", 0) > 0 and "Constant" not in hist.after and "Shape" not in hist.after
        assert hist.before["Conv"] == hist.after["Conv"]
        assert [p.split(":")[0] for p in hist.passes] == ["cleanup", "reduce-attention", "litemla-padded-ones"]
    assert "MatMul" in op_histogram(exported["evit_b0"]).after
    assert op_histogram(exported["rf_b0"]).after.get("MatMul", 0) <= 1  # the head's Linear only


# --- the traffic rules on hand-built graphs -----------------------------------------------------------


def _conv(name, x, channels, kernel=1, stride=1):
    w = gs.Constant(f"{name}_w", np.ones((channels, x.shape[1], kernel, kernel), np.float32))
    out = gs.Variable(f"{name}_out", np.float32, (x.shape[0], channels, x.shape[2] // stride, x.shape[3] // stride))
    node = gs.Node("Conv", name, {"kernel_shape": [kernel, kernel], "strides": [stride, stride], "pads": [kernel // 2] * 4}, [x, w], [out])
    return node, out


def _unary(op, name, x, **attrs):
    out = gs.Variable(f"{name}_out", np.float32, x.shape)
    return gs.Node(op, name, attrs, [x], [out]), out


def _model(nodes, inputs, outputs):
    graph = gs.Graph(nodes=nodes, inputs=inputs, outputs=outputs, opset=17)
    return gs.export_onnx(graph)


def _residual_graph():
    """x → Conv1 → A → HardSwish → B → Conv2 → C; D = Add(C, B) is the output. All (1, 4, 8, 8)."""
    x = gs.Variable("x", np.float32, (1, 4, 8, 8))
    conv1, a = _conv("/backbone/stages.0/conv1", x, 4)
    hswish, b = _unary("HardSwish", "/backbone/stages.0/hswish", a)
    conv2, c = _conv("/backbone/stages.0/conv2", b, 4)
    d = gs.Variable("d", np.float32, (1, 4, 8, 8))
    add = gs.Node("Add", "/backbone/stages.0/add", {}, [c, b], [d])
    return _model([conv1, hswish, conv2, add], [x], [d])


def test_traffic_rules_on_a_residual_block():
    t = memory_traffic(_residual_graph(), "fp32")
    tensor = 4 * 8 * 8 * 4  # one activation, FP32
    assert t.weights_bytes == 2 * 16 * 4
    assert (t.input_bytes, t.output_bytes) == (tensor, tensor)
    # unfused: A, B and C each written once and read once
    assert (t.activations_unfused_bytes, t.tensors_unfused) == (3 * 2 * tensor, 3)
    # fused: A lives in Conv1's epilogue (HardSwish is its only consumer), C in Conv2's (Add is
    # its only consumer); B has two consumers and is materialised
    assert (t.activations_fused_bytes, t.tensors_fused) == (2 * tensor, 1)
    assert t.by_stage["stage1"] == (3 * 2 * tensor, 2 * tensor)
    assert t.per_image(fused=False) == t.weights_bytes + 2 * tensor + 6 * tensor
    assert t.per_image(fused=True, batch=4) == t.weights_bytes / 4 + 2 * tensor + 2 * tensor


def test_traffic_in_fp16_keeps_the_fp32_islands_at_four_bytes():
    t16 = memory_traffic(_residual_graph(), "fp16", fp32_nodes=set())
    assert t16.activations_unfused_bytes == 3 * 2 * (4 * 8 * 8 * 2) and t16.weights_bytes == 2 * 16 * 2
    assert t16.input_bytes == 4 * 8 * 8 * 4  # the graph input stays FP32
    pinned = memory_traffic(_residual_graph(), "fp16", fp32_nodes={"/backbone/stages.0/hswish"})
    assert pinned.activations_unfused_bytes == 2 * 2 * (256 * 2) + 2 * (256 * 4) and pinned.fp32_tensors == 1


def test_traffic_views_reductions_and_concat():
    x = gs.Variable("x", np.float32, (1, 4, 8, 8))
    mul_out = gs.Variable("m", np.float32, (1, 4, 8, 8))
    mul = gs.Node("Mul", "mul", {}, [x, x], [mul_out])
    shape = gs.Constant("shape", np.array([1, 4, 64], np.int64))
    flat = gs.Variable("flat", np.float32, (1, 4, 64))
    reshape = gs.Node("Reshape", "reshape", {}, [mul_out, shape], [flat])
    axes = gs.Constant("axes", np.array([2], np.int64))
    summed = gs.Variable("s", np.float32, (1, 4, 1))
    reduce = gs.Node("ReduceSum", "sum", {"keepdims": 1}, [flat, axes], [summed])
    relu, r = _unary("Relu", "relu", x)
    cat = gs.Variable("cat", np.float32, (1, 8, 8, 8))
    concat = gs.Node("Concat", "concat", {"axis": 1}, [r, mul_out], [cat])
    model = _model([mul, reshape, reduce, relu, concat], [x], [summed, cat])
    t = memory_traffic(model, "fp32")
    # unfused: m and relu's output (the Reshape is a view; outputs are counted once as writes)
    assert t.tensors_unfused == 2
    # fused: m feeds (through the view) a reduction and a Concat, relu's output a Concat: both elided
    assert t.tensors_fused == 0 and t.activations_fused_bytes == 0
    assert t.output_bytes == (4 + 8 * 64) * 4


def test_time_floor_is_the_larger_of_memory_and_compute():
    traffic = TrafficEstimate("fp16", 10_000_000, 0, 0, 90_000_000, 40_000_000, 0, 0, {}, (0, 0), 0)
    l40 = hardware("l40")
    floor = time_floor(traffic, 500_000_000, l40, batch=1, fused=True)
    assert floor.bytes_per_image == 50_000_000
    assert floor.memory_us == pytest.approx(50e6 / 864e9 * 1e6)
    assert floor.compute_us == pytest.approx(1e9 / 181.05e12 * 1e6)
    assert floor.bound == "memory" and floor.floor_us == floor.memory_us and floor.img_s == pytest.approx(1e6 / floor.memory_us)
    amortised = time_floor(traffic, 500_000_000, l40, batch=10, fused=False)
    assert amortised.bytes_per_image == 91_000_000
    compute = time_floor(traffic, 10**12, l40)
    assert compute.bound == "compute" and compute.floor_us == compute.compute_us


def test_hardware_table_has_sourced_figures():
    assert {"orin", "l40", "h100", "h200"} <= set(list_hardware())
    for key in list_hardware():
        gpu = hardware(key)
        assert gpu.memory_gb_s > 100 and gpu.fp16_dense_tflops > 10 and gpu.sources and gpu.name
    assert "Jetson AGX Orin 64GB" in hardware("orin").name and "DRIVE AGX Orin" in hardware("orin").notes
    with pytest.raises(RftrtError, match="unknown GPU 'a100'; known: orin"):
        hardware("a100")


def test_stage_of_node_names():
    assert stage_of("/backbone/input_stem/op_list.0/conv/Conv") == "stem"
    assert stage_of("/backbone/stages.2/op_list.1/context_module/main/core/Div") == "stage3"
    assert stage_of("/head/op_list.3/linear/Gemm") == "head"
    assert stage_of("something") == "other"


# --- the DLA rules ------------------------------------------------------------------------------------


def _dla_graph():
    """x → Conv(DLA) → HardSwish(GPU) → Conv(DLA) → ReduceSum(GPU) → y."""
    x = gs.Variable("x", np.float32, (1, 4, 8, 8))
    conv1, a = _conv("conv1", x, 4, kernel=3)
    hswish, b = _unary("HardSwish", "hswish", a)
    conv2, c = _conv("conv2", b, 4, kernel=3, stride=2)
    axes = gs.Constant("axes", np.array([2, 3], np.int64))
    y = gs.Variable("y", np.float32, (1, 4, 1, 1))
    reduce = gs.Node("ReduceSum", "sum", {"keepdims": 1}, [c, axes], [y])
    return gs.Graph(nodes=[conv1, hswish, conv2, reduce], inputs=[x], outputs=[y], opset=17)


def test_dla_rules_place_each_node_with_its_reason():
    prediction = predict_dla(_dla_graph(), "fp16")
    placed = {p.name: (p.device, p.reason) for p in prediction.placements}
    assert placed["conv1"][0] == "DLA" and "kernel 1–32" in placed["conv1"][1]
    assert placed["hswish"] == ("GPU", "HardSwish is not a DLA activation (DLA: ReLU, Sigmoid, TanH, Clipped ReLU, Leaky ReLU)")
    assert placed["conv2"][0] == "DLA"
    assert placed["sum"] == ("GPU", "ReduceSum: DLA's Reduce supports MAX only")
    assert (prediction.dla_to_gpu, prediction.gpu_to_dla, prediction.transitions) == (2, 1, 3)
    assert prediction.loadables == 2 and prediction.io_reformats == 1
    assert "PREDICTION" in prediction.label
    assert any("GPU fallback" in n for n in prediction.notes) and any("HardSwish" in n for n in prediction.notes)


def test_dla_rules_precision_limits_and_attributes():
    graph = _dla_graph()
    conv1 = graph.nodes[0]
    assert dla_rule(conv1, "fp32") == ("GPU", "FP32 build: DLA runs FP16 and INT8 only")
    device, reason = dla_rule(conv1, "fp16", {"conv1": "range: 1e6"})
    assert device == "GPU" and "kept FP32 by the precision plan (range: 1e6)" in reason
    assert all(p.device == "GPU" for p in predict_dla(graph, "fp32").placements)
    x = gs.Variable("x", np.float32, (1, 4, 64, 64))
    big, _ = _conv("big", x, 4, kernel=33)
    assert dla_rule(big)[0] == "GPU" and "outside DLA's 1–32" in dla_rule(big)[1]
    relu, r = _unary("Relu", "relu", x)
    assert dla_rule(relu) == ("DLA", "Activation ReLU is supported")
    for axis, device in ((1, "DLA"), (2, "GPU")):
        out = gs.Variable(f"cat{axis}", np.float32, (1, 4, 64, 64))
        assert dla_rule(gs.Node("Concat", "cat", {"axis": axis}, [x, r], [out]))[0] == device
    for low, device in ((0.0, "DLA"), (-1.0, "GPU")):
        clip = gs.Node("Clip", "clip", {}, [x, gs.Constant(f"lo{low}", np.array(low, np.float32)), gs.Constant(f"hi{low}", np.array(6.0, np.float32))], [gs.Variable(f"c{low}", np.float32)])
        assert dla_rule(clip)[0] == device
    assert dla_rule(gs.Node("ReduceMax", "rmax", {}, [x], [gs.Variable("rm", np.float32)]))[0] == "DLA"
    for op in ("MatMul", "LayerNormalization", "HardSigmoid", "Gather"):
        assert dla_rule(gs.Node(op, op, {}, [x], [gs.Variable(op + "_o", np.float32)]))[0] == "GPU"


def test_every_dla_rule_carries_a_source():
    raw = load_toml("rftrt.targets", "dla_rules.toml")
    rules = dla_rules()
    assert rules.sources and all(rules.sources.values())
    for section in ("precision", "loadables", "convolution", "clip", "concat"):
        assert raw[section]["source"] in rules.sources
    assert set(rules.ops) == set(raw["dla"]) | set(raw["gpu"])
    for rule in rules.ops.values():
        assert rule.source in rules.sources and rule.text and rule.device in ("DLA", "GPU")
    assert (rules.conv_kernel, rules.conv_stride, rules.loadables_per_core) == ((1, 32), (1, 8), 16)
    del raw["gpu"]["MatMul"]["source"]
    with pytest.raises(RftrtError, match=r"\[gpu.MatMul\] has source None"):
        parse_dla_rules(raw)
    raw = load_toml("rftrt.targets", "dla_rules.toml")
    raw["dla"]["Conv"] = {"layer": "Convolution", "source": "trt-dla-layers"}
    with pytest.raises(RftrtError, match="Conv has more than one rule"):
        parse_dla_rules(raw)


def test_too_many_loadables_and_dynamic_batch_are_noted():
    x = gs.Variable("x", np.float32, ("batch", 4, 8, 8))
    nodes, t = [], x
    for i in range(17):
        conv, t = _conv(f"conv{i}", t, 4)
        hs, t = _unary("HardSwish", f"hs{i}", t)
        nodes += [conv, hs]
    prediction = predict_dla(gs.Graph(nodes=nodes, inputs=[x], outputs=[t], opset=17), "fp16")
    assert prediction.loadables == 17 and prediction.transitions == 33
    assert any("exceed the 16 per DLA core" in n for n in prediction.notes)
    assert any("dynamic batch" in n for n in prediction.notes)


# --- the whole inspection and the command line -----------------------------------------------------------


@pytest.fixture(scope="module")
def rf_onnx(tmp_path_factory, exported):
    """rf_b0 as exported, its metadata naming the model (as rf-export writes it)."""
    model = onnx.ModelProto()
    model.CopyFrom(exported["rf_b0"].before)
    model.metadata_props.add(key="model", value="rf_b0")
    path = tmp_path_factory.mktemp("onnx") / "rf_b0.onnx"
    onnx.save(model, str(path))
    return path


def test_cli_inspects_an_onnx_file_named_by_its_metadata(rf_onnx, tmp_path, capsys):
    out_json = tmp_path / "inspect.json"
    code = inspect_main(["--onnx", str(rf_onnx), "--resolution", str(RES), "--target", "orin", "--gpu", "orin,h100", "--batch", "1,8", "--json", str(out_json)])
    text = capsys.readouterr().out
    assert code == 0
    for heading in ("## Parameters and MACs", "## Op histogram", "## Memory traffic per image", "## Time floor", "## DLA placement on orin: PREDICTION"):
        assert heading in text
    data = json.loads(out_json.read_text())
    assert data["model"] == "rf_b0" and data["complexity"]["params"] == sum(p.numel() for p in create("rf_b0", RES).parameters())
    assert len(data["time_floors"]) == 2 * 2 * 2  # GPUs × batches × (unfused, fused)
    dla = data["dla_placement"]
    assert dla["dla_nodes"] + dla["gpu_nodes"] == sum(data["op_histogram"]["after"].values())
    assert dla["transitions"] == dla["dla_to_gpu"] + dla["gpu_to_dla"] > 0
    traffic = data["memory_traffic"]
    assert traffic["activations_fused_bytes"] < traffic["activations_unfused_bytes"]
    assert traffic["attention_cores"][0] > 0 and traffic["fp32_tensors"] > 0


def test_inspect_without_dla_target(rf_onnx):
    report = inspect_model(None, RES, onnx.load(str(rf_onnx)), target="l40", gpus=("l40",), precision="fp32", batches=(1,))
    assert report.model == "rf_b0"
    assert report.dla is None and any("has no DLA" in n for n in report.notes)
    assert report.traffic.precision == "fp32" and report.traffic.fp32_tensors == 0
    assert "## DLA placement" not in format_inspect(report)


def _error(capsys, argv):
    return cli_error(capsys, inspect_main, argv, "rf-inspect")


def test_cli_bad_input(capsys, tmp_path, rf_onnx):
    assert "unknown model 'rf_b7'" in _error(capsys, ["--model", "rf_b7"])
    assert "unknown GPU 'v100'" in _error(capsys, ["--model", "rf_b0", "--gpu", "v100"])
    assert "does not exist" in _error(capsys, ["--onnx", str(tmp_path / "none.onnx")])
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    assert "not a readable ONNX model" in _error(capsys, ["--onnx", str(tmp_path / "bad.onnx")])
    assert "takes 64×64 images but --resolution is 224" in _error(capsys, ["--onnx", str(rf_onnx)])
    assert "unknown target" in _error(capsys, ["--model", "rf_b0", "--target", "mars"]).lower()
    assert "--model is required" in _error(capsys, [])
