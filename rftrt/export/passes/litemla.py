"""LiteMLA: the padded-ones construction rewritten so that a dynamic batch parses.

The official LiteMLA appends a row of ones to v (``F.pad(v, (0, 0, 0, 1), value=1)``) so that one
``(v_pad · kᵀ) · q`` yields the numerator and, in its last row, the denominator; the exported Pad
and the slices of its result depend on shape arithmetic that TensorRT rejects under a dynamic batch
("IShuffleLayer applied to shape tensor must have 0 or 1 reshape dimensions",
mit-han-lab/efficientvit#73). The last row equals ``(Σ_j k̂_j) · q̂_i``, so the core is rebuilt with
that denominator computed directly (canonical form of :mod:`.attention`): no Pad, no Slice.
"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from . import PassReport
from .attention import build_canonical_core, canonical_ops, find_attention_cores

__all__ = ["rewrite_litemla_padded_ones"]


def rewrite_litemla_padded_ones(graph: gs.Graph) -> PassReport:
    report = PassReport("litemla-padded-ones")
    for core in find_attention_cores(graph, kind="litemla"):
        report.matched += 1
        if core.ops() == canonical_ops("litemla", guard=core.guard):
            continue
        build_canonical_core(graph, core)
        report.changed += 1
        report.details.append(
            f"{core.anchor}: {'Pad(v, 1) removed' if core.padded_ones else 'rebuilt'}, G={core.groups} d={core.head_dim}"
        )
    return report
