"""The DLA rewrites: exact in FP32 on real exports and stress inputs, only layers DLA runs left, every
ElementWise broadcast in a form DLA accepts, and the attention and LayerNorm FP16-safe."""

from collections import Counter

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import pytest
from onnx_cache import images, load

from rftrt.export.onnx_export import export_onnx
from rftrt.export.onnxrt import ort_session, run_onnx
from rftrt.export.passes import run_pass, to_graph, to_model
from rftrt.export.passes.dla_global_sum import global_sums_to_convs
from rftrt.export.passes.dla_hardswish import decompose_hardswish
from rftrt.export.passes.dla_layernorm import decompose_layernorm
from rftrt.export.prepare import attention_blocks, export_and_pass, pass_pipeline
from rftrt.export.stress import STRESS_CASES, core_model, pass_errors, stress_inputs
from rftrt.models import create
from rftrt.precision.render import render_fp16

EXACT = 1e-5  # every pass, FP32 on ONNX Runtime, relative to the output's scale
DLA_PASSES = ["dla-attention", "dla-global-sum", "dla-pool", "dla-gemm", "dla-layernorm", "dla-hardswish"]
#: what the exported graph has that DLA does not run (platforms.md §4, §9)
NOT_ON_DLA = {"HardSwish", "ReduceSum", "ReduceMean", "GlobalAveragePool", "Gemm", "MatMul", "LayerNormalization", "Reshape", "Transpose"}
_ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Max", "Min", "Pow"}


def _dla_pipeline(name: str):
    model, proto = load(name)
    return model, proto, pass_pipeline("fp16", attention_blocks(model), dla=True)


def _broadcast_form(shape: list, out: list) -> str | None:
    """An input's shape against the output's, as DLA names the forms (None: not one of them)."""
    full = [1] * (len(out) - len(shape)) + list(shape)
    if len(out) != 4 or full[0] not in (1, out[0]):
        return None
    chw, target = full[1:], out[1:]
    if chw == target:
        return "CHW"
    if chw == [target[0], 1, 1]:
        return "C11"
    return "111" if chw == [1, 1, 1] else None


def test_the_dla_pipeline_is_the_gpu_one_plus_fp16_safety_and_the_rewrites():
    model, _, pipeline = _dla_pipeline("rf_b1")
    blocks = attention_blocks(model)
    names = [fn.__name__ for fn, _ in pass_pipeline("fp16", blocks, fp16_cores=True)]
    assert [fn.__name__ for fn, _ in pipeline][: len(names)] == names
    assert [expected for _, expected in pipeline][len(names) : len(names) + 2] == [blocks.reduce, 2 * blocks.reduce]
    assert [fn.__name__ for fn, _ in pass_pipeline("fp16", blocks)] == names[:-1]  # GPU targets: no DLA rewrites


@pytest.mark.parametrize("name", ["rf_b1", "evit_b1"])
def test_each_dla_pass_is_exact_on_a_real_export(name):
    """Every DLA rewrite within 1e-5 of the output's scale of the graph before it, on two batches."""
    _, proto, pipeline = _dla_pipeline(name)
    batches = {"two": images(2), "three": images(3, seed=1)}
    graph = to_graph(proto)
    previous = run_onnx(proto, batches)
    seen = []
    for pass_fn, expected in pipeline:
        report = run_pass(graph, pass_fn, expected)
        out = run_onnx(to_model(graph, proto), batches)
        if report.name in DLA_PASSES:
            seen.append(report.name)
            for key in batches:
                assert np.abs(out[key] - previous[key]).max() <= EXACT * np.abs(previous[key]).max(), (report.name, key)
        previous = out
    assert seen == DLA_PASSES
    ops = Counter(n.op for n in graph.nodes)
    left = NOT_ON_DLA & set(ops)
    if name.startswith("rf_"):
        assert not left, left  # nothing the rules send to the GPU
    else:  # LiteMLA's two-activation MatMuls, its token and channel sums and reshapes stay
        assert left == {"MatMul", "ReduceSum", "Reshape", "Transpose"} and ops["MatMul"] == 2 * attention_blocks(load(name)[0]).litemla


def test_after_the_rewrites_every_layer_is_within_dla_limits():
    """rf_b1: convolution kernels ≤ 32, every ElementWise input broadcast as CHW, C11 or 111 (the
    strictest reading of platforms.md §9), Clips are Clipped ReLUs, Pow has a constant exponent."""
    _, proto, pipeline = _dla_pipeline("rf_b1")
    graph = to_graph(proto)
    for pass_fn, expected in pipeline:
        run_pass(graph, pass_fn, expected)
    graph = to_graph(to_model(graph, proto))  # shapes inferred again
    forms = Counter()
    for node in graph.nodes:
        if node.op == "Conv":
            assert max(node.inputs[1].shape[2:]) <= 32, node.name
        if node.op in _ELEMENTWISE:
            out = node.outputs[0].shape
            for tensor in node.inputs:
                form = _broadcast_form(tensor.shape, out)
                assert form is not None, (node.name, tensor.shape, out)
                forms[form] += 1
            assert sum(isinstance(t, gs.Constant) for t in node.inputs) <= 1, node.name
        if node.op == "Clip":
            assert float(node.inputs[1].values) == 0 and float(node.inputs[2].values) <= 127
        if node.op == "Pow":
            assert isinstance(node.inputs[1], gs.Constant)
    assert forms["CHW"] and forms["C11"] and forms["111"]  # all three forms occur, nothing else


@pytest.mark.parametrize("family", ["rf", "evit"])
def test_the_dla_rewrites_are_exact_on_stress_inputs(family):
    """One core on its own, q|k|v set directly (Gaussian, ReLU(q) = 0 pixels, tiny q, ×0.01, ×100):
    without FP16 safety (FP32 cores) every DLA pass is exact element by element."""
    passes = [fn for fn, _ in pass_pipeline("fp32", dla=True)]
    errors = pass_errors(family, passes)
    assert {e.inputs for e in errors} == set(STRESS_CASES)
    dla = [e for e in errors if e.name in DLA_PASSES]
    worst = max(dla, key=lambda e: e.max_relative)
    assert worst.max_relative <= EXACT and worst.elements_off == 0, worst


def test_with_fp16_safety_only_the_tiny_q_pixels_move():
    """The FP16 pipeline: exact but where ReLU(q) is tiny and positive, as fp16_safety documents."""
    errors = [e for e in pass_errors("rf", [fn for fn, _ in pass_pipeline("fp16", dla=True)]) if e.name == "dla-hardswish"]
    assert all(e.max_relative <= EXACT for e in errors if e.inputs != "tiny q pixels")
    tiny = next(e for e in errors if e.inputs == "tiny q pixels")
    assert 0 < tiny.elements_off < tiny.elements // 10


def _fp16_core(form: str) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    exported = export_onnx(core_model("rf"), 14, channels=48)
    passes = pass_pipeline("fp16", dla=form == "dla", fp16_cores=True)
    graph = to_graph(exported)
    for pass_fn, _ in passes:
        run_pass(graph, pass_fn)
    fp32 = to_model(graph, exported)
    return fp32, render_fp16(fp32)


def _largest_intermediate(model: onnx.ModelProto, x: dict[str, np.ndarray]) -> float:
    """The largest |value| of any tensor a node of ``model`` produces on ``x``."""
    probed = onnx.ModelProto()
    probed.CopyFrom(model)
    names = [o for n in model.graph.node for o in n.output if o not in {t.name for t in model.graph.output}]
    probed.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in names)
    session = ort_session(probed)
    return max(float(np.abs(v).max()) for v in session.run(None, {session.get_inputs()[0].name: next(iter(x.values()))}))


def test_the_dla_attention_is_fp16_safe_by_construction():
    """Gaussian q|k|v ×400 (rf_b1's stress activations reach 2·10⁴): the canonical core's
    q̂ · mean(k̂ · v) exceeds FP16's 65504; no tensor of the DLA core exceeds its largest input, and
    its FP16 rendering is finite and within FP16 rounding of the exported core."""
    x = {"x400": stress_inputs()["gaussian"] * 400}
    largest_input = float(np.abs(x["x400"]).max())
    reference = run_onnx(export_onnx(core_model("rf"), 14, channels=48), x)["x400"]
    gpu32, _ = _fp16_core("gpu")
    dla32, dla16 = _fp16_core("dla")
    assert _largest_intermediate(gpu32, x) > float(np.finfo(np.float16).max)
    assert _largest_intermediate(dla32, x) <= largest_input
    out = run_onnx(dla16, x)["x400"]
    assert np.isfinite(out).all() and np.abs(out - reference).max() <= 5e-3 * np.abs(reference).max()


# --- single passes on graphs built here ------------------------------------------------------------


def _graph(nodes: list[gs.Node], inputs: list[gs.Variable], outputs: list[gs.Variable]) -> onnx.ModelProto:
    model = gs.export_onnx(gs.Graph(nodes=nodes, inputs=inputs, outputs=outputs, opset=17))
    model.ir_version = 8  # what this onnxruntime reads
    return model


def test_hardswish_becomes_a_clipped_relu_gate_with_exact_constants():
    x, y = gs.Variable("x", np.float32, [2, 3, 4, 4]), gs.Variable("y", np.float32)
    model = _graph([gs.Node("HardSwish", "hs", {}, [x], [y])], [x], [y])
    graph = to_graph(model)
    report = run_pass(graph, decompose_hardswish)
    assert report.matched == report.changed == 1
    assert sorted(n.op for n in graph.nodes) == ["Add", "Clip", "Div", "Mul"]
    constants = [float(t.values) for n in graph.nodes for t in n.inputs if isinstance(t, gs.Constant)]
    assert all(float(np.float16(c)) == c for c in constants)  # 3, 0, 6, 6: no 1/6 to round
    values = np.linspace(-8, 8, 96, dtype=np.float32).reshape(2, 3, 4, 4)
    exact = values * np.clip(values + 3, 0, 6) / 6
    assert np.abs(run_onnx(to_model(graph, model), {"v": values})["v"] - exact).max() <= 1e-6


def _reduce_mean(side: int) -> onnx.ModelProto:
    x, y = gs.Variable("x", np.float32, [1, 2, side, side]), gs.Variable("y", np.float32)
    return _graph([gs.Node("ReduceMean", "mean", {"axes": [2, 3], "keepdims": 1}, [x], [y])], [x], [y])


def test_a_global_mean_becomes_a_depthwise_convolution_up_to_dla_kernel_limit():
    values = np.random.default_rng(0).standard_normal((1, 2, 32, 32)).astype(np.float32)
    model = _reduce_mean(32)
    graph = to_graph(model)
    assert run_pass(graph, global_sums_to_convs).changed == 1
    conv = graph.nodes[0]
    assert conv.op == "Conv" and conv.attrs["group"] == 2 and conv.inputs[1].shape == (2, 1, 32, 32)
    np.testing.assert_allclose(run_onnx(to_model(graph, model), {"v": values})["v"], values.mean(axis=(2, 3), keepdims=True), atol=1e-6)

    graph = to_graph(_reduce_mean(33))  # larger than DLA's 32×32 kernel: left, and said so
    report = run_pass(graph, global_sums_to_convs)
    assert report.matched == 1 and report.changed == 0 and "33×33" in " ".join(report.details)
    assert [n.op for n in graph.nodes] == ["ReduceMean"]


def _layernorm(channels: int) -> onnx.ModelProto:
    rng = np.random.default_rng(1)
    x, y = gs.Variable("x", np.float32, [2, channels, 1, 1]), gs.Variable("y", np.float32)
    gamma = gs.Constant("gamma", rng.standard_normal((channels, 1, 1)).astype(np.float32))
    beta = gs.Constant("beta", rng.standard_normal((channels, 1, 1)).astype(np.float32))
    return _graph([gs.Node("LayerNormalization", "ln", {"axis": 1, "epsilon": 1e-5}, [x, gamma, beta], [y])], [x], [y])


def test_layernorm_decomposed_is_exact_and_fp16_safe_for_large_activations():
    """Activations up to 3·10⁴ (the head of rf_b1's stress weights): the exported LayerNorm's
    square overflows FP16; the decomposition divides by the largest |x − μ| first."""
    model = _layernorm(64)
    graph = to_graph(model)
    assert run_pass(graph, decompose_layernorm).changed == 1
    assert "LayerNormalization" not in {n.op for n in graph.nodes}
    decomposed = to_model(graph, model)
    rng = np.random.default_rng(2)
    batches = {"unit": rng.standard_normal((2, 64, 1, 1)).astype(np.float32), "large": (rng.standard_normal((2, 64, 1, 1)) * 1e4).astype(np.float32)}
    reference = run_onnx(model, batches)
    out32, out16 = run_onnx(decomposed, batches), run_onnx(render_fp16(decomposed), batches)
    for key in batches:
        scale = np.abs(reference[key]).max()
        assert np.abs(out32[key] - reference[key]).max() <= EXACT * scale
        assert np.isfinite(out16[key]).all() and np.abs(out16[key] - reference[key]).max() <= 1e-2 * scale


def test_from_opset_18_the_reductions_take_their_axes_as_inputs():
    """ReduceMax/ReduceMean take axes as an input from opset 18 (an attribute before): the rewrites
    emit the form of the graph's opset, and the result still matches the export."""
    prepared = export_and_pass(create("rf_b0", 64), 64, "fp16", opset=18, dla=True)
    reduces = [n for n in prepared.passed.graph.node if n.op_type == "ReduceMax"]
    assert reduces and all(len(n.input) == 2 and "axes" not in {a.name for a in n.attribute} for n in reduces)
    x = {"x": images(2)}
    reference = run_onnx(prepared.exported, x)["x"]
    assert np.abs(run_onnx(prepared.passed, x)["x"] - reference).max() <= 1e-5 * np.abs(reference).max()
