"""rf-inspect: complexity per stage, op histograms, the traffic rules on hand-built graphs, the
limits in the JSON, and the command line (the DLA rules: tests/test_dla_rules.py)."""

import json
from dataclasses import replace

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import pytest
from helpers import cli_error

from rftrt._data import load_toml
from rftrt.cli.inspect import inspect_main
from rftrt.errors import RftrtError
from rftrt.models import create, list_models, model_info
from rftrt.targets.hardware import hardware, list_hardware
from rftrt.tools.inspect.complexity import complexity_report
from rftrt.tools.inspect.exported import export_and_pass
from rftrt.tools.inspect.graph import stage_of
from rftrt.tools.inspect.histogram import op_histogram
from rftrt.tools.inspect.report import format_inspect, inspect_model
from rftrt.tools.inspect.traffic import memory_traffic
from rftrt.tools.paper_tables import paper_row

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


def test_hardware_table_has_sourced_figures():
    assert {"orin", "l40", "h100", "h200"} <= set(list_hardware())
    for key in list_hardware():
        gpu = hardware(key)
        assert gpu.memory_gb_s > 100 and gpu.fp16_dense_tflops > 10 and gpu.sources and gpu.name
        assert 1 <= gpu.l2_mib <= 128 and gpu.l2_sources and gpu.l2_bytes == gpu.l2_mib * 2**20
    assert (hardware("orin").l2_mib, hardware("l40").l2_mib, hardware("h100").l2_mib) == (4, 96, 50)
    assert "Jetson AGX Orin 64GB" in hardware("orin").name and "DRIVE AGX Orin" in hardware("orin").notes
    with pytest.raises(RftrtError, match="unknown GPU 'a100'; known: orin"):
        hardware("a100")


def test_stage_of_node_names():
    assert stage_of("/backbone/input_stem/op_list.0/conv/Conv") == "stem"
    assert stage_of("/backbone/stages.2/op_list.1/context_module/main/core/Div") == "stage3"
    assert stage_of("/head/op_list.3/linear/Gemm") == "head"
    assert stage_of("something") == "other"


# --- the whole inspection and the command line -----------------------------------------------------------


@pytest.fixture(scope="module")
def rf_onnx(shared_tmp, exported):
    """rf_b0 as exported, its metadata naming the model (as rf-export writes it)."""
    model = onnx.ModelProto()
    model.CopyFrom(exported["rf_b0"].before)
    model.metadata_props.add(key="model", value="rf_b0")
    path = shared_tmp.mktemp("onnx") / "rf_b0.onnx"
    onnx.save(model, str(path))
    return path


def test_cli_inspects_an_onnx_file_named_by_its_metadata(rf_onnx, tmp_path, capsys):
    out_json = tmp_path / "inspect.json"
    code = inspect_main(["--onnx", str(rf_onnx), "--resolution", str(RES), "--target", "orin", "--gpu", "orin,h100", "--batch", "1,8", "--json", str(out_json)])
    text = capsys.readouterr().out
    assert code == 0
    for heading in ("## Parameters and MACs", "## Op histogram", "## Memory traffic per image", "## Limits per batch", "## DLA placement on orin: PREDICTION"):
        assert heading in text
    data = json.loads(out_json.read_text())
    assert data["model"] == "rf_b0" and data["complexity"]["params"] == sum(p.numel() for p in create("rf_b0", RES).parameters())
    assert "time_floors" not in data  # the rooflines that measurements beat are gone
    assert [(x["gpu"], x["batch"]) for x in data["limits"]] == [("orin", 1), ("orin", 8), ("h100", 1), ("h100", 8)]
    for limit in data["limits"]:
        assert {"gpu", "batch", "lower_bound_us", "estimate_us", "ceiling_img_s"} <= set(limit)
        assert limit["estimate_us"] >= limit["lower_bound_us"] > 0
        assert limit["ceiling_img_s"] == pytest.approx(limit["batch"] * 1e6 / limit["lower_bound_us"])
    assert set(data["limit_kinds"]) == {"lower bound", "model estimate"} and data["paper"] is None  # no r64 row
    assert "lower bound: a time no implementation can beat" in text and "model estimate: " in text
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
    # the paper's measurements, where a row exists, beside our ceiling
    shown = format_inspect(replace(report, paper=paper_row("rf_b1", 224)))
    ceiling = report.limits[0].ceiling_img_s
    row = next(line for line in shown.splitlines() if line.startswith("| l40"))
    assert [c.strip() for c in row.strip("|").split("|")][-2:] == ["4,149", f"{4149 / ceiling:.1%}"]
    assert "Avg Mem BW): 26.02 MB/image" in shown
    assert "paper img/s" in format_inspect(report) and "Avg Mem BW" not in format_inspect(report)


def test_inspect_for_a_dla_core_says_what_a_build_without_fallback_does(rf_onnx):
    """With --dla the graph is the one rf-export --dla deploys: after the DLA rewrites nothing of a
    ReduceFormer is left for the GPU (no HardSwish, no spatial ReduceSum), so a build without GPU
    fallback is predicted to succeed in one loadable."""
    report = inspect_model(None, RES, onnx.load(str(rf_onnx)), target="orin", gpus=("orin",), batches=(1,), dla_core=0)
    dla = report.dla.as_dict()
    assert dla["core"] == 0 and dla["loadables_per_core"] == 16
    assert dla["without_fallback"] is True and dla["without_fallback_reason"].startswith("succeeds: ")
    assert dla["gpu_nodes"] == 0 and dla["loadables"] == 1
    assert not {p["op"] for p in dla["placements"]} & {"HardSwish", "ReduceSum", "GlobalAveragePool", "LayerNormalization", "Gemm"}
    text = format_inspect(report)
    assert "## DLA placement on orin DLA core 0: PREDICTION" in text and "without GPU fallback the build succeeds" in text


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
    assert "--dla needs --target" in _error(capsys, ["--model", "rf_b0", "--dla", "0"])
    assert "has no DLA" in _error(capsys, ["--model", "rf_b0", "--target", "l40", "--dla", "0"])
