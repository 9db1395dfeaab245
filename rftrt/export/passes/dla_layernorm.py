"""DLA: a LayerNorm over the channels of a (B, C, 1, 1) map → convolutions, ElementWise, Reduce MAX
and Pow, FP16-safe.

DLA has no normalisation layer but Scale; ``LayerNormalization`` falls back to the GPU
(platforms.md §4). Over the channel axis of a (B, C, 1, 1) map (the head's, after
:mod:`.dla_gemm`) it is, with every broadcast of the N111 form::

    d    = x − Conv1×1(x, 1/C)                      the channel mean as a convolution
    s    = max(Max_C(|d|), ε₁)                       (B, 1, 1, 1)
    u    = d / s                                     ∈ [−1, 1]
    r    = Pow(Conv1×1(u · u, 1/C) + (√ε / s)², −½)
    y    = DepthwiseConv1×1(u · r; weight γ, bias β)

which is LayerNorm exactly: d / √(mean(d²) + ε) = u / √(mean(u²) + ε/s²). Dividing by the largest
|d| first keeps the square below 1 and its mean at least 1/C (one element of u is ±1), so nothing
overflows FP16 however large the head's activations (the exported form squares d itself: 3.4·10⁵ on
rf_b1's stress weights); √ε/s cannot overflow because s ≥ ε₁ = 2⁻¹⁴, and where it underflows
ε/s² is negligible beside mean(u²) ≥ 1/C. ``Abs`` is a DLA Unary layer, ``Max_C`` a Reduce MAX.
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from . import PassReport
from .dla_attention import EPS_FP16_NORMAL, reduce_operands

__all__ = ["decompose_layernorm"]


def _applies(node: gs.Node) -> bool:
    shape = node.inputs[0].shape
    return (
        shape is not None and len(shape) == 4 and shape[2:] == [1, 1] and isinstance(shape[1], int)
        and node.attrs.get("axis", -1) in (1, -3)
        and all(isinstance(t, gs.Constant) for t in node.inputs[1:])
        and len(node.outputs) == 1
    )  # fmt: skip


class _Nodes:
    def __init__(self, graph: gs.Graph, node: gs.Node) -> None:
        self.graph, self.name, self.x = graph, node.name, node.inputs[0]

    def __call__(self, op: str, suffix: str, inputs: list, channels: int, attrs: dict | None = None, out: gs.Variable | None = None) -> gs.Variable:
        out = out or gs.Variable(f"{self.name}/{suffix}", dtype=self.x.dtype, shape=[self.x.shape[0], channels, 1, 1])
        self.graph.nodes.append(gs.Node(op, f"{self.name}/{suffix}", attrs or {}, inputs, [out]))
        return out

    def const(self, suffix: str, values) -> gs.Constant:
        return gs.Constant(f"{self.name}/{suffix}", np.asarray(values, dtype=np.float32))


def _decompose(graph: gs.Graph, node: gs.Node) -> None:
    n = _Nodes(graph, node)
    x, y, c = node.inputs[0], node.outputs[0], node.inputs[0].shape[1]
    eps = float(node.attrs.get("epsilon", 1e-5))
    gamma = np.asarray(node.inputs[1].values, dtype=np.float32).reshape(c, 1, 1, 1)
    beta = np.asarray(node.inputs[2].values, dtype=np.float32).reshape(c) if len(node.inputs) > 2 else np.zeros(c, np.float32)
    mean_weight = n.const("mean_weight", np.full((1, c, 1, 1), 1.0 / c))
    node.outputs.clear()
    conv = {"kernel_shape": [1, 1]}
    centred = n("Sub", "centre", [x, n("Conv", "mean", [x, mean_weight], 1, conv)], c)
    inputs, attrs = reduce_operands(graph, f"{node.name}/largest", n("Abs", "abs", [centred], c), [1])
    largest = n("ReduceMax", "largest", inputs, 1, attrs)
    largest = n("Max", "largest_floor", [largest, n.const("eps_normal", EPS_FP16_NORMAL)], 1)
    unit = n("Div", "unit", [centred, largest], c)
    variance = n("Conv", "variance", [n("Mul", "square", [unit, unit], c), mean_weight], 1, conv)
    eps_root = n("Div", "eps_root", [n.const("sqrt_eps", np.sqrt(eps)), largest], 1)
    variance = n("Add", "add_eps", [variance, n("Mul", "eps_scaled", [eps_root, eps_root], 1)], 1)
    inverse = n("Pow", "inverse_std", [variance, n.const("minus_half", -0.5)], 1)
    normed = n("Mul", "normalise", [unit, inverse], c)
    n("Conv", "affine", [normed, n.const("gamma", gamma), n.const("beta", beta)], c, {**conv, "group": c}, out=y)


def decompose_layernorm(graph: gs.Graph) -> PassReport:
    report = PassReport("dla-layernorm")
    for node in [n for n in graph.nodes if n.op == "LayerNormalization"]:
        report.matched += 1
        if not _applies(node):
            report.details.append(f"{node.name}: not over the channels of a (B, C, 1, 1) map, left as it is")
            continue
        channels = node.inputs[0].shape[1]
        _decompose(graph, node)
        report.changed += 1
        report.details.append(f"{node.name}: over {channels} channels → convolutions, ElementWise, Reduce MAX, Pow")
    return report
