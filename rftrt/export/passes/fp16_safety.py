"""FP16 safety of the attention cores: for cores that will themselves run in FP16 (DLA, which has no
FP32). On the GPU paths the precision plan keeps every core in FP32 and this pass does not run
(:func:`rftrt.export.prepare.pass_pipeline`), because it is an approximation.

Two hazards (model_spec §5, mit-han-lab/efficientvit#15, #116):

- The global sums grow with the token count N and overflow FP16's 65504. ReduceFormer's numerator
  and denominator both carry one factor N, so its spatial sums become means: the ratio is the same
  up to ε, whose effective size grows N-fold. LiteMLA's matrix products cannot be rescaled this way
  without extra nodes; its sums are kept.
- ε = 1e-15 underflows to 0 in FP16, so a pixel whose ReLU(q) is all zero divides 0 by 0. The
  denominator ``den + ε`` becomes ``max(den, EPS_FP16_MIN)`` with ``EPS_FP16_MIN`` = 2⁻²⁴, the
  smallest positive FP16 value (Equimo's ReduceFormer clamps the same way), so it cannot vanish.

What that costs, measured (``scripts/pass_exactness.py``, one core of each family with q|k|v set
directly): exact to 1e-7 of the output's scale on Gaussian inputs, on pixels where ReLU(q) is zero,
and at ×0.01 and ×100; but **not** where ReLU(q) is tiny and positive (one channel 6e-8 or 1e-8, the
rest ≤ 0). There ``den`` = Σ q̂·mean(k̂) falls below 2⁻²⁴ while the numerator does not vanish: the exact
output is O(1), the floored one is scaled down by den / 2⁻²⁴, a relative error of 0.65 of the output
scale on 354 of 12,544 elements of the ReduceFormer core (none for LiteMLA, whose sums keep ``den``
above the floor). In FP16 itself such q̂ are subnormal or zero, so no FP16 core computes those pixels
exactly; in FP32 the canonical form (sums, ``+ ε``) does, which is why FP32 cores never get this pass.

Runs on canonical cores (after the attention passes) and edits them in place.
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from . import PassReport
from .attention import AttentionCore, find_attention_cores

__all__ = ["make_attention_fp16_safe", "EPS_FP16_MIN"]

#: The smallest positive FP16 value (a subnormal).
EPS_FP16_MIN = float(np.finfo(np.float16).smallest_subnormal)


def _eps_node(core: AttentionCore) -> gs.Node:
    return next(
        n for n in core.nodes if n.op in ("Add", "Max") and any(isinstance(t, gs.Constant) for t in n.inputs)
    )


def _spatial_sums(core: AttentionCore) -> list[gs.Node]:
    """The reductions over the token axis (the last one), as opposed to the channel sum."""
    sums = []
    for node in core.nodes:
        if node.op == "ReduceSum" and node.outputs[0].shape is not None and node.outputs[0].shape[-1] == 1:
            sums.append(node)
    return sums


def _to_mean(node: gs.Node, opset: int) -> None:
    node.op = "ReduceMean"
    if opset < 18:  # ReduceMean takes its axes as an attribute before opset 18
        axes = node.inputs[1]
        node.attrs["axes"] = [int(a) for a in np.asarray(axes.values).ravel()]
        node.inputs = node.inputs[:1]


def make_attention_fp16_safe(graph: gs.Graph) -> PassReport:
    report = PassReport("fp16-safety")
    for core in find_attention_cores(graph):
        report.matched += 1
        changes = []
        if core.kind == "reduce":
            sums = _spatial_sums(core)
            for node in sums:
                _to_mean(node, graph.opset)
            if sums:
                changes.append(f"{len(sums)} spatial sums → means")
        guard = _eps_node(core)
        if guard.op == "Add":
            guard.op = "Max"
            guard.inputs = [
                gs.Constant(f"{guard.name}/eps_floor", np.array(EPS_FP16_MIN, dtype=np.float32)) if isinstance(t, gs.Constant) else t
                for t in guard.inputs
            ]
            changes.append(f"den + {core.eps:g} → max(den, {EPS_FP16_MIN:.3g})")
        if changes:
            report.changed += 1
            kept = "" if core.kind == "reduce" else ", sums kept (FP32 in the precision plan)"
            report.details.append(f"{core.anchor}: " + ", ".join(changes) + kept)
    return report
