"""The onnx-graphsurgeon passes on every model: counts, structure, exactness, idempotence."""

from collections import Counter

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import pytest
from onnx_cache import images, load

from rftrt.errors import RftrtError
from rftrt.export.onnxrt import run_onnx
from rftrt.export.passes import run_pass, to_graph, to_model
from rftrt.export.passes.attention import find_attention_cores
from rftrt.export.passes.cleanup import cleanup
from rftrt.export.passes.fp16_safety import EPS_FP16_MIN, make_attention_fp16_safe
from rftrt.export.passes.reduce_attention import canonicalize_reduce_attention
from rftrt.export.prepare import attention_blocks, pass_pipeline
from rftrt.models import list_models

EXACT = 1e-5  # the bound for every pass, FP32 on ONNX Runtime


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
    pipeline = pass_pipeline("fp16", blocks)
    assert [fn.__name__ for fn, _ in pipeline] == [
        "cleanup", "canonicalize_reduce_attention", "rewrite_litemla_padded_ones", "make_attention_fp16_safe"
    ]  # fmt: skip
    assert [expected for _, expected in pipeline] == [None, reduce_blocks, litemla_blocks, reduce_blocks + litemla_blocks]
    for pass_fn, expected in pipeline:
        report = run_pass(graph, pass_fn, expected)
        if expected is not None:
            assert report.matched == expected
        out = run_onnx(to_model(graph, proto), batches)
        for key in batches:
            assert np.abs(out[key] - reference[key]).max() <= EXACT, (report.name, key)

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
