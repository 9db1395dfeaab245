"""The ReduceFormer paper's measurements (``paper_tables.toml``: every row of its Tables 1 and 2 that
names a registry model, with the source): read by rf-inspect's limits and memory estimate, rf-bench's
paper table and ``--list-models``. The one place these figures are kept; ``models/zoo.toml`` keeps
what identifies a model (parameters, MACs, accuracy, the paper's resolution)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .._data import load_toml

__all__ = ["PaperRow", "paper_row", "paper_rows"]


@dataclass(frozen=True)
class PaperRow:
    """One model at one resolution in the paper's tables (``paper_tables.toml``)."""

    model: str
    resolution: int
    #: Table 1, batch 1 (None where the row is only in Table 2)
    orin_fp16_ms: float | None
    orin_mb_per_image: float | None
    #: batch → img/s on L40 (Table 1: batch 1; Table 2: 8, 16, 32)
    l40_img_s: dict[int, float]

    def measured_img_s(self) -> dict[tuple[str, int], float]:
        """(hardware.toml key, batch) → the paper's throughput; Orin's from its batch-1 latency."""
        found = {("l40", b): v for b, v in self.l40_img_s.items()}
        if self.orin_fp16_ms is not None:
            found[("orin", 1)] = 1000.0 / self.orin_fp16_ms
        return found


@lru_cache(maxsize=1)
def paper_rows() -> tuple[PaperRow, ...]:
    """Every row of the paper's tables that names a registry model."""
    rows = []
    for raw in load_toml("rftrt.tools", "paper_tables.toml")["rows"]:
        t1, t2 = raw.get("table1", {}), raw.get("table2", {})
        l40 = {int(b): float(v) for b, v in t2.get("l40_img_s", {}).items()}
        if "l40_img_s" in t1:
            l40[1] = float(t1["l40_img_s"])
        rows.append(PaperRow(raw["model"], int(raw["resolution"]), t1.get("orin_fp16_ms"), t1.get("orin_mb_per_image"), dict(sorted(l40.items()))))
    return tuple(rows)


def paper_row(model: str | None, resolution: int) -> PaperRow | None:
    """The paper's row for ``model`` at ``resolution``, or None when it has none."""
    return next((r for r in paper_rows() if r.model == model and r.resolution == resolution), None)
