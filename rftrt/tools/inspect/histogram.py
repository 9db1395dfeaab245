"""The op histogram of a model: node counts per op type as exported and after the passes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import onnx

from .exported import ExportedModel

__all__ = ["OpHistogram", "op_histogram"]


@dataclass(frozen=True)
class OpHistogram:
    before: dict[str, int]
    after: dict[str, int]
    #: one summary line per pass, in the order they ran
    passes: tuple[str, ...]

    @property
    def nodes_before(self) -> int:
        return sum(self.before.values())

    @property
    def nodes_after(self) -> int:
        return sum(self.after.values())

    def rows(self) -> list[tuple[str, int, int]]:
        """(op, before, after), most frequent after the passes first."""
        ops = set(self.before) | set(self.after)
        return sorted(((op, self.before.get(op, 0), self.after.get(op, 0)) for op in ops), key=lambda r: (-r[2], -r[1], r[0]))

    def as_dict(self) -> dict:
        return {"before": dict(self.before), "after": dict(self.after), "passes": list(self.passes)}


def _count_ops(model: onnx.ModelProto) -> dict[str, int]:
    return dict(sorted(Counter(n.op_type for n in model.graph.node).items()))


def op_histogram(exported: ExportedModel) -> OpHistogram:
    """The op counts of ``exported`` before and after its passes."""
    return OpHistogram(_count_ops(exported.before), _count_ops(exported.after), tuple(p.summary() for p in exported.passes))
