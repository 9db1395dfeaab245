"""The onnx-graphsurgeon passes on every model: counts, structure, exactness, idempotence."""

from collections import Counter

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import pytest
from onnx_cache import images, load

from rftrt.errors import RftrtError
from rftrt.export.onnx_export import export_onnx
from rftrt.export.onnxrt import run_onnx
from rftrt.export.passes import run_pass, to_graph, to_model
from rftrt.export.passes.attention import find_attention_cores
from rftrt.export.passes.cleanup import cleanup
from rftrt.export.passes.fp16_safety import EPS_FP16_MIN, make_attention_fp16_safe
from rftrt.export.passes.litemla import rewrite_litemla_padded_ones
from rftrt.export.passes.reduce_attention import canonicalize_reduce_attention
from rftrt.export.prepare import attention_blocks, pass_pipeline
from rftrt.export.stress import STRESS_CASES, core_model, pass_errors
from rftrt.models import list_models

EXACT = 1e-5  # every pass, FP32 on ONNX Runtime, relative to the output's scale


def _ops(graph: gs.Graph) -> Counter:
    return Counter(n.op for n in graph.nodes)


@pytest.mark.parametrize("name", list_models())
def test_each_pass_keeps_outputs_and_finds_every_block(name):
    model, proto = load(name)
    blocks = attention_blocks(model)
    reduce_blocks, litemla_blocks = blocks.reduce, blocks.litemla
    batches = {"two": images(2), "three": images(3, seed=1)}  # dynamic batch: 2 and 3
    reference = run_onnx(proto, batches)
    graph = to_graph(proto)
    names = ["cleanup", "canonicalize_reduce_attention", "rewrite_litemla_padded_ones"]
    assert [fn.__name__ for fn, _ in pass_pipeline("fp16", blocks)] == names  # cores FP32: no approximation
    pipeline = pass_pipeline("fp16", blocks, fp16_cores=True)  # cores in FP16 (DLA)
    assert [fn.__name__ for fn, _ in pipeline] == names + ["make_attention_fp16_safe"]
    assert [expected for _, expected in pipeline] == [None, reduce_blocks, litemla_blocks, reduce_blocks + litemla_blocks]
    for pass_fn, expected in pipeline:
        report = run_pass(graph, pass_fn, expected)
        if expected is not None:
            assert report.matched == expected
        out = run_onnx(to_model(graph, proto), batches)
        for key in batches:
            assert np.abs(out[key] - reference[key]).max() <= EXACT * np.abs(reference[key]).max(), (report.name, key)

    ops = _ops(graph)
    # no shape arithmetic, no padded ones, no leftover casts: the batch is a copy (0) in constant shapes
    assert not {"Shape", "Gather", "Pad", "Slice", "Cast", "Identity", "ConstantOfShape", "Unsqueeze"} & set(ops)
    assert ops["Split"] == reduce_blocks + litemla_blocks
    if name.startswith("rf_"):
        assert ops["MatMul"] == 1 and "Transpose" not in ops  # only the head's Linear
        assert ops["ReduceMean"] == 2 * reduce_blocks and ops["ReduceSum"] == reduce_blocks
    else:
        assert ops["MatMul"] == 1 + 2 * litemla_blocks and ops["Transpose"] == litemla_blocks


def test_canonical_reduce_core_is_minimal():
    _, proto = load("rf_b1")
    graph = to_graph(proto)
    run_pass(graph, cleanup)
    run_pass(graph, canonicalize_reduce_attention, 7)
    for core in find_attention_cores(graph):
        ops = Counter(n.op for n in core.nodes)
        assert ops == Counter(
            {"Reshape": 2, "Split": 1, "Relu": 2, "ReduceSum": 3, "Mul": 3, "Add": 1, "Div": 1}
        ), ops
        group_shape = next(n for n in core.nodes if n.op == "Reshape").inputs[1]
        assert isinstance(group_shape, gs.Constant) and group_shape.values[0] == 0  # batch copied


@pytest.mark.parametrize("pass_fn", [canonicalize_reduce_attention, make_attention_fp16_safe])
def test_passes_are_idempotent(pass_fn):
    _, proto = load("rf_b0")
    graph = to_graph(proto)
    for fn in (cleanup, canonicalize_reduce_attention, make_attention_fp16_safe):
        run_pass(graph, fn)
    before = to_model(graph, proto).SerializeToString()
    report = run_pass(graph, pass_fn)
    assert report.matched == 4 and report.changed == 0
    assert to_model(graph, proto).SerializeToString() == before


def test_fp16_safety_makes_epsilon_representable_and_sums_means():
    _, proto = load("rf_b0")
    graph = to_graph(proto)
    for fn in (cleanup, canonicalize_reduce_attention):
        run_pass(graph, fn)
    assert all(np.float16(c.eps) == 0 for c in find_attention_cores(graph))  # 1e-15 vanishes in FP16
    report = run_pass(graph, make_attention_fp16_safe, 4)
    assert report.changed == 4 and all("means" in d for d in report.details)
    for core in find_attention_cores(graph):
        assert np.float16(core.eps) > 0 and core.eps == pytest.approx(EPS_FP16_MIN)
        assert "Max" in core.ops() and "Add" not in core.ops()


def test_block_count_mismatch_is_an_error():
    _, proto = load("rf_b0")
    graph = to_graph(proto)
    run_pass(graph, cleanup)
    with pytest.raises(RftrtError, match="found 4 blocks but the model has 5"):
        run_pass(graph, canonicalize_reduce_attention, expected=5)


def test_cleanup_on_a_tiny_graph():
    """No-op Casts and Identities go; a real Cast and the constant shape arithmetic fold."""
    x = gs.Variable("x", dtype=np.float32, shape=["n", 4])
    a, b, c, y = (gs.Variable(n, dtype=np.float32) for n in ("a", "b", "c", "y"))
    half = gs.Variable("half", dtype=np.float16)
    shape = gs.Variable("shape", dtype=np.int64)
    nodes = [
        gs.Node("Cast", "noop", {"to": onnx.TensorProto.FLOAT}, [x], [a]),
        gs.Node("Identity", "id", {}, [a], [b]),
        gs.Node("Relu", "relu", {}, [b], [c]),
        gs.Node("Add", "fold_me", {}, [gs.Constant("k1", np.array([2, 2], np.int64)), gs.Constant("k2", np.array([-2, 2], np.int64))], [shape]),
        gs.Node("Reshape", "reshape", {}, [c, shape], [y]),
        gs.Node("Cast", "real", {"to": onnx.TensorProto.FLOAT16}, [y], [half]),
    ]
    graph = gs.Graph(nodes=nodes, inputs=[x], outputs=[half], opset=17)
    model = gs.export_onnx(graph)
    model.ir_version = 8  # what this onnxruntime reads
    graph = to_graph(model)
    report = run_pass(graph, cleanup)
    assert [n.op for n in graph.nodes] == ["Relu", "Reshape", "Cast"]
    assert report.matched == 3
    assert isinstance(graph.nodes[1].inputs[1], gs.Constant)


# --- exactness on inputs built to break the rewrites ---------------------------------------------


@pytest.mark.parametrize("family", ["rf", "evit"])
def test_the_pipeline_is_exact_on_stress_inputs(family):
    """Whole-pixel non-positive q, tiny-positive q, ×0.01 and ×100: every pass of the GPU pipeline
    stays within 1e-5 of the output's scale, element by element."""
    errors = pass_errors(family, [fn for fn, _ in pass_pipeline("fp16")])
    assert {e.inputs for e in errors} == set(STRESS_CASES)
    worst = max(errors, key=lambda e: e.max_relative)
    assert worst.max_relative <= EXACT and worst.elements_off == 0, worst


def test_fp16_safety_approximates_only_where_its_docstring_says():
    """Means with an FP16-sized ε floor: exact to 1e-5 but where ReLU(q) is tiny and positive."""
    errors = {e.inputs: e for e in pass_errors("rf", [fn for fn, _ in pass_pipeline("fp16", fp16_cores=True)]) if e.name == "fp16-safety"}
    assert all(e.max_relative <= EXACT for case, e in errors.items() if case != "tiny q pixels")
    tiny = errors["tiny q pixels"]
    assert tiny.max_relative > 0.1 and 0 < tiny.elements_off < tiny.elements // 10


def _exported_core(family: str) -> tuple[onnx.ModelProto, gs.Graph]:
    exported = export_onnx(core_model(family), 14, channels=48)
    graph = to_graph(exported)
    run_pass(graph, cleanup)
    return exported, graph


def _node(graph: gs.Graph, op: str, index: int = 0) -> gs.Node:
    return [n for n in graph.nodes if n.op == op][index]


def _swap_division(graph: gs.Graph) -> None:
    div = _node(graph, "Div")
    div.inputs = [div.inputs[1], div.inputs[0]]


def _sum_k_over_channels(graph: gs.Graph) -> None:
    sum_k = next(n for n in graph.nodes if n.op == "ReduceSum" and n.inputs[0].inputs and n.inputs[0].inputs[0].op == "Relu")
    sum_k.inputs[1] = gs.Constant("wrong_axes", np.array([-2], np.int64))


def _v_for_k_in_the_numerator(graph: gs.Graph) -> None:
    relu_q, relu_k = _node(graph, "Relu", 0), _node(graph, "Relu", 1)
    product = next(n for n in graph.nodes if n.op == "Mul" and relu_k.outputs[0] in n.inputs)
    product.inputs = [relu_q.outputs[0] if t is relu_k.outputs[0] else t for t in product.inputs]


@pytest.mark.parametrize("defect", [_swap_division, _sum_k_over_channels, _v_for_k_in_the_numerator])
def test_a_core_that_computes_something_else_is_refused_by_name(defect):
    _, graph = _exported_core("rf")
    defect(graph)
    with pytest.raises(RftrtError, match=r"attention core ending in '.*Div' .*refusing to rewrite it"):
        run_pass(graph, canonicalize_reduce_attention)


def test_a_canonical_core_reads_back_as_its_formula():
    for family, pass_fn in (("rf", canonicalize_reduce_attention), ("evit", rewrite_litemla_padded_ones)):
        _, graph = _exported_core(family)
        run_pass(graph, pass_fn)
        cores = find_attention_cores(graph)  # matched and checked again, now in the canonical form
        assert [c.kind for c in cores] == ["reduce" if family == "rf" else "litemla"] and not cores[0].padded_ones
