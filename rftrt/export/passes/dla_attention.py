"""DLA: every ReduceFormer core rebuilt as a DLA core runs it, on maps with legal broadcasts and
FP16-safe by construction.

**Broadcasts.** The canonical core (:mod:`.attention`) works on (B, G, d, N) groups: its products
broadcast q̂ (B, G, d, N) against ΣK (B, G, d, 1) and its division broadcasts the denominator
(B, G, 1, N) across d, read as NCHW the forms NCH1 and NC1W. DLA's ElementWise layers broadcast
only as NCHW, NC11 and N111 (platforms.md §9: stated for the comparisons, not confirmed for
Sum/Prod; this pass takes the strictest reading and uses those forms only, constants included).
So the core works on (B, G·d, H, W) maps, the layout of the tensor it feeds: one Split of x into
its 3G pieces of d channels and one Concat per role (DLA Slice and Concatenation along channels;
channel g·d + c of q, k and v is channel c of head g). The per-head channel sum is a grouped 1×1
convolution with constant weights (G groups of d inputs → d outputs, all ones): it also spreads the
head's sum over the head's d channels, so the denominator arrives in the numerator's shape.

**FP16.** DLA has no FP32, and the exported core's intermediates grow with the cube of the
activations (q̂ · mean(k̂ · v)): 6·10⁵ at r224 on rf_b1's default weights with the input ×4, beyond
FP16's 65504. The core's output is invariant to the scale of k̂ per channel in its value term and
to one scale of all q̂ · ΣK per sample, so it is computed as a product of two bounded factors::

    k̃   = k̂ / max(Max_HW(k̂), ε₁)                  ∈ [0, 1]      per channel
    r    = mean(k̃ · v) / max(mean(k̃), ε₁)          |r| ≤ max|v|  the k̂-weighted mean of v
    m    = mean(k̃) · max(Max_HW(k̂), ε₁)           = mean(k̂)
    m̃    = m / max(Max_C(m), ε₁) · (1/d)           ∈ [0, 1/d]    one scale per sample
    t    = q̂ · m̃                                    ≤ q̂ / d
    w    = t / max(GroupConv1×1_ones(t), ε)         ∈ [0, 1]      the channel's share of its head
    out  = w · r                                    = q̂ · mean(k̂ · v) / Σ_head q̂ · mean(k̂)

No intermediate exceeds the largest |q̂|, k̂ or |v| entering the core, so a core whose inputs fit
FP16 cannot overflow; every division has a floor. ``Max_HW`` and ``Max_C`` are ReduceMax (DLA's
Reduce runs MAX), the means are ReduceMean over the map, which :mod:`.dla_global_sum` turns into
depthwise convolutions; both share one kernel, so FP16's rounding of 1/(H·W) cancels in ``r``.
ε is the core's own floor (the FP16 floor after :mod:`.fp16_safety`), ε₁ = 2⁻¹⁴ the smallest normal
FP16 number: it only guards channels that are all zero, whatever a device does with subnormals.

In FP32 this equals the core it replaces to rounding, except where the floor ε bites: where
Σ_head q̂ · mean(k̂) is below ε · d · Max_C(m) instead of below ε (the "tiny q" pixels of
:mod:`rftrt.export.stress`, which FP16 cannot represent either).
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from . import PassReport
from .attention import AttentionCore, find_attention_cores

__all__ = ["reduce_attention_for_dla", "reduce_operands", "EPS_FP16_NORMAL"]

#: The smallest normal FP16 number, 2⁻¹⁴.
EPS_FP16_NORMAL = float(np.finfo(np.float16).tiny)


def reduce_operands(graph: gs.Graph, name: str, tensor: gs.Variable, axes: list[int]) -> tuple[list, dict]:
    """Inputs and attributes of a ReduceMax/ReduceMean over ``axes`` (kept) for the graph's opset:
    the axes are an input from opset 18 on, an attribute before."""
    if graph.opset >= 18:
        return [tensor, gs.Constant(f"{name}_axes", np.array(axes, dtype=np.int64))], {"keepdims": 1}
    return [tensor], {"keepdims": 1, "axes": axes}


class _Builder:
    """New nodes of one core, named after it."""

    def __init__(self, graph: gs.Graph, core: AttentionCore) -> None:
        self.graph, self.core, self.name = graph, core, core.anchor + "/dla_core"
        batch, channels = core.x.shape[0], core.groups * core.head_dim
        self.shapes = {"map": [batch, channels, core.height, core.width], "channel": [batch, channels, 1, 1], "sample": [batch, 1, 1, 1]}
        self.floor = self.constant("eps_normal", EPS_FP16_NORMAL)

    def node(self, op: str, suffix: str, inputs: list, shape: str, attrs: dict | None = None, out: gs.Variable | None = None) -> gs.Variable:
        out = out or gs.Variable(f"{self.name}/{suffix}", dtype=self.core.x.dtype, shape=self.shapes[shape])
        self.graph.nodes.append(gs.Node(op, f"{self.name}/{suffix}", attrs or {}, inputs, [out]))
        return out

    def constant(self, suffix: str, values) -> gs.Constant:
        array = np.asarray(values, dtype=np.int64 if isinstance(values, list) else np.float32)
        return gs.Constant(f"{self.name}/{suffix}", array)

    def reduce(self, op: str, suffix: str, tensor: gs.Variable, axes: list[int], shape: str) -> gs.Variable:
        inputs, attrs = reduce_operands(self.graph, f"{self.name}/{suffix}", tensor, axes)
        return self.node(op, suffix, inputs, shape, attrs)

    def floored(self, suffix: str, tensor: gs.Variable, shape: str, floor: gs.Constant | None = None) -> gs.Variable:
        return self.node("Max", suffix, [tensor, floor or self.floor], shape)

    def split_qkv(self) -> tuple[gs.Variable, ...]:
        core, g, d = self.core, self.core.groups, self.core.head_dim
        pieces = [gs.Variable(f"{self.name}/part{i}", dtype=core.x.dtype, shape=[core.x.shape[0], d, core.height, core.width]) for i in range(3 * g)]
        self.graph.nodes.append(gs.Node("Split", f"{self.name}/split", {"axis": 1}, [core.x, self.constant("split_sizes", [d] * 3 * g)], pieces))
        # the pieces run q₀ k₀ v₀ q₁ k₁ v₁ …: every third one, from 0, 1 and 2
        return tuple(self.node("Concat", role, pieces[i::3], "map", {"axis": 1}) for i, role in enumerate("qkv"))


def _value_term(b: _Builder, k_hat: gs.Variable, v: gs.Variable) -> tuple[gs.Variable, gs.Variable]:
    """(r, m): the k̂-weighted mean of v per channel, and mean(k̂), from k̂ scaled to [0, 1]."""
    k_max = b.floored("k_max_floor", b.reduce("ReduceMax", "k_max", k_hat, [2, 3], "channel"), "channel")
    k_unit = b.node("Div", "k_unit", [k_hat, k_max], "map")
    mean_k_unit = b.reduce("ReduceMean", "mean_k", k_unit, [2, 3], "channel")
    mean_kv = b.reduce("ReduceMean", "mean_kv", b.node("Mul", "mul_k_v", [k_unit, v], "map"), [2, 3], "channel")
    r = b.node("Div", "value", [mean_kv, b.floored("mean_k_floor", mean_k_unit, "channel")], "channel")
    return r, b.node("Mul", "mean_k_scaled", [mean_k_unit, k_max], "channel")


def _rebuild(graph: gs.Graph, core: AttentionCore) -> None:
    b = _Builder(graph, core)
    q, k, v = b.split_qkv()
    q_hat = b.node("Relu", "relu_q", [q], "map")
    r, mean_k = _value_term(b, b.node("Relu", "relu_k", [k], "map"), v)
    largest = b.floored("mean_k_max_floor", b.reduce("ReduceMax", "mean_k_max", mean_k, [1, 2, 3], "sample"), "sample")
    mean_k_unit = b.node("Div", "mean_k_unit", [mean_k, largest], "channel")
    mean_k_spread = b.node("Mul", "mean_k_spread", [mean_k_unit, b.constant("inverse_head_dim", 1.0 / core.head_dim)], "channel")
    share = b.node("Mul", "mul_q_mean_k", [q_hat, mean_k_spread], "map")
    ones = b.constant("head_sum_weight", np.ones((core.groups * core.head_dim, core.head_dim, 1, 1)))
    head_sum = b.node("Conv", "head_sum", [share, ones], "map", {"group": core.groups, "kernel_shape": [1, 1]})
    weight = b.node("Div", "share", [share, b.floored("den_floor", head_sum, "map", b.constant("eps", core.eps))], "map")
    core.out.inputs[0].outputs.clear()
    b.node("Mul", "attend", [weight, r], "map", out=core.out)


def reduce_attention_for_dla(graph: gs.Graph) -> PassReport:
    report = PassReport("dla-attention")
    for core in find_attention_cores(graph, kind="reduce"):
        report.matched += 1
        _rebuild(graph, core)
        report.changed += 1
        report.details.append(f"{core.anchor}: G={core.groups} d={core.head_dim} on {core.height}×{core.width} maps")
    return report
