"""ReduceFormer attention canonicalisation.

The exporter writes each core as three Slices of a reshape computed from ``Shape`` ops, FP32 casts
around it, and sums in the order PyTorch evaluated them. Every core is rebuilt in the canonical form
of :mod:`.attention`: one Split, constant reshapes, three reductions (no duplicates), two products
and one division, no transposes. The number of cores found must equal the model's attention blocks.
"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from . import PassReport
from .attention import build_canonical_core, canonical_ops, find_attention_cores

__all__ = ["canonicalize_reduce_attention"]


def _is_canonical(core, spatial_op: str) -> bool:
    return core.ops() == canonical_ops("reduce", spatial_op, core.guard)


def canonicalize_reduce_attention(graph: gs.Graph) -> PassReport:
    report = PassReport("reduce-attention")
    for core in find_attention_cores(graph, kind="reduce"):
        report.matched += 1
        spatial_op = "ReduceMean" if "ReduceMean" in core.ops() else "ReduceSum"
        if _is_canonical(core, spatial_op):
            continue
        build_canonical_core(graph, core, spatial_op=spatial_op)
        report.changed += 1
        report.details.append(f"{core.anchor}: G={core.groups} d={core.head_dim} N={core.height * core.width}")
    return report
