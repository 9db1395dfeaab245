"""DLA: the classifier head's Gemm/MatMul layers → 1×1 convolutions on (B, C, 1, 1) maps.

After the global pool the head flattens its (B, C, 1, 1) map and runs Linear → LayerNorm →
activation → Linear on (B, C) rows. The ONNX parser makes each Gemm a MatrixMultiply layer, which
DLA does not run (platforms.md §4), and a 2-D tensor is not a DLA map. A Linear with constant
weights W (M×K) is a 1×1 convolution with weight W.reshape(M, K, 1, 1), so this pass keeps the map
4-D from the Flatten to the graph output: every Gemm/MatMul with constant weights becomes a Conv,
a LayerNorm over the last axis becomes one over the channel axis (scale and bias reshaped to
(M, 1, 1)), element-wise activations and scalar-constant arithmetic stay as they are, Flattens of
2-D rows disappear, and one Flatten before the output gives the logits their (B, classes) shape.

A chain that meets anything else (or branches) is left as it is.
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from . import PassReport

__all__ = ["head_to_convs"]

_UNARY = {"Relu", "Sigmoid", "Tanh", "LeakyRelu", "HardSwish", "HardSigmoid", "Clip", "Dropout", "Identity"}
_SCALAR_BINARY = {"Add", "Sub", "Mul", "Div"}


def _constant(tensor: gs.Tensor) -> np.ndarray | None:
    return np.asarray(tensor.values) if isinstance(tensor, gs.Constant) else None


def _is_pooled_map(tensor: gs.Tensor) -> bool:
    shape = tensor.shape
    return shape is not None and len(shape) == 4 and shape[2:] == [1, 1] and isinstance(shape[1], int)


def _linear_weight(node: gs.Node, row: gs.Tensor) -> tuple[np.ndarray, np.ndarray | None] | None:
    """(W as M×K, bias or None) of a Gemm/MatMul ``row · W`` with constant weights, else None."""
    if node.inputs[0] is not row or len(node.inputs) < 2 or (w := _constant(node.inputs[1])) is None or w.ndim != 2:
        return None
    if node.op == "MatMul":
        return w.T, None
    a = node.attrs
    if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or (len(node.inputs) > 2 and a.get("beta", 1.0) != 1.0):
        return None
    bias = _constant(node.inputs[2]) if len(node.inputs) > 2 else None
    if len(node.inputs) > 2 and (bias is None or bias.size != w.shape[1 if not a.get("transB", 0) else 0]):
        return None
    return (w if a.get("transB", 0) else w.T), (None if bias is None else bias.reshape(-1))


def _step(node: gs.Node, row: gs.Tensor) -> str | None:
    """What ``node`` becomes on the map (a kind), or None if the chain cannot pass it."""
    if node.op in ("Gemm", "MatMul"):
        return "linear" if _linear_weight(node, row) is not None else None
    if node.op == "Flatten":
        return "drop" if node.attrs.get("axis", 1) == 1 else None
    if node.op == "LayerNormalization":
        return "norm" if node.attrs.get("axis", -1) in (-1, 1) and all(_constant(t) is not None for t in node.inputs[1:]) else None
    if node.op in _UNARY and all(_constant(t) is not None for t in node.inputs[1:]):
        return "keep"
    if node.op in _SCALAR_BINARY and len(node.inputs) == 2:
        constants = [c for c in map(_constant, node.inputs) if c is not None]
        return "keep" if len(constants) == 1 and constants[0].size == 1 else None
    return None


def _chain(graph: gs.Graph, flatten: gs.Node) -> list[tuple[gs.Node, str]] | None:
    """The nodes from ``flatten`` to a graph output with what each becomes, or None."""
    chain, row = [(flatten, "drop")], flatten.outputs[0]
    while row not in graph.outputs:
        if len(row.outputs) != 1 or (kind := _step(row.outputs[0], row)) is None:
            return None
        chain.append((row.outputs[0], kind))
        row = row.outputs[0].outputs[0]
    return chain


def _to_map(graph: gs.Graph, chain: list[tuple[gs.Node, str]]) -> int:
    """Rewire ``chain`` onto 4-D maps; returns the number of linear layers made convolutions."""
    source = chain[0][0].inputs[0]
    batch, current, linears = source.shape[0], source, 0
    output = chain[-1][0].outputs[0]
    for node, kind in chain:
        row = node.inputs[0]
        if kind == "drop":
            node.outputs.clear()
            continue
        out = gs.Variable(f"{node.name}/map", dtype=row.dtype, shape=None)
        if kind == "linear":
            weight, bias = _linear_weight(node, row)
            inputs = [current, gs.Constant(f"{node.name}/conv_weight", np.ascontiguousarray(weight.reshape(*weight.shape, 1, 1)))]
            inputs += [gs.Constant(f"{node.name}/conv_bias", bias)] if bias is not None else []
            node.op, node.attrs, node.inputs = "Conv", {"kernel_shape": [1, 1]}, inputs
            linears += 1
        elif kind == "norm":
            node.attrs["axis"] = 1
            node.inputs = [current] + [gs.Constant(f"{t.name}/map", _constant(t).reshape(-1, 1, 1)) for t in node.inputs[1:]]
        else:
            node.inputs = [current if t is row else t for t in node.inputs]
        channels = node.inputs[1].shape[0] if kind == "linear" else current.shape[1]
        out.shape = [batch, channels, 1, 1]
        node.outputs = [out]
        current = out
    graph.nodes.append(gs.Node("Flatten", f"{chain[-1][0].name}/flatten", {"axis": 1}, [current], [output]))
    return linears


def head_to_convs(graph: gs.Graph) -> PassReport:
    report = PassReport("dla-gemm")
    for flatten in [n for n in graph.nodes if n.op == "Flatten" and _is_pooled_map(n.inputs[0])]:
        chain = _chain(graph, flatten)
        if chain is None or not any(kind == "linear" for _, kind in chain):
            continue
        report.matched += 1
        linears = _to_map(graph, chain)
        report.changed += 1
        report.details.append(f"{flatten.name}: {linears} Gemm/MatMul → 1×1 Conv, {len(chain)} nodes on (B, C, 1, 1) maps")
    return report
