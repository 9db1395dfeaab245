"""The zoo table: every registry model's counts (recorded: :mod:`rftrt.models.counts`), beside its
published figures. Nothing is built, so the table is there at once."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..models import PUBLISHED_RESOLUTIONS, list_models, model_info
from ..models.counts import recorded_counts
from .paper_tables import paper_row

__all__ = ["ZooRow", "zoo_rows", "format_zoo_table"]


@dataclass(frozen=True)
class ZooRow:
    name: str
    display: str
    resolution: int
    params: int
    macs_g: float
    published_params_m: float | None
    published_macs_g: float | None
    published_top1: float | None
    paper_orin_fp16_ms: float | None
    paper_l40_bs1_img_s: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def zoo_rows(names: list[str] | None = None, resolutions: tuple[int, ...] = PUBLISHED_RESOLUTIONS) -> list[ZooRow]:
    """Each model at each resolution, from the recorded counts."""
    rows = []
    recorded = recorded_counts()
    for name in names or list_models():
        info = model_info(name)
        counts = recorded[name]
        for resolution in resolutions:
            published = info.by_resolution.get(resolution, {})
            measured = paper_row(name, resolution) if info.paper.get("resolution") == resolution else None
            rows.append(
                ZooRow(
                    name=name,
                    display=info.display,
                    resolution=resolution,
                    params=counts.params,
                    macs_g=counts.macs[resolution] / 1e9,
                    published_params_m=info.params_m,
                    published_macs_g=published.get("macs_g"),
                    published_top1=published.get("top1"),
                    paper_orin_fp16_ms=measured.orin_fp16_ms if measured else None,
                    paper_l40_bs1_img_s=measured.l40_img_s.get(1) if measured else None,
                )
            )
    return rows


def _cell(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)



def format_zoo_table(rows: list[ZooRow]) -> str:
    """A Markdown table (readable in a terminal and in a README)."""
    lines = [
        "| model | res | params | published (M) | MACs (G) | published | top-1 | Orin FP16 ms | L40 bs1 img/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.name} | {r.resolution} | {r.params:,} | {_cell(r.published_params_m, '.1f')} "
            f"| {r.macs_g:.4f} | {_cell(r.published_macs_g, '.2f')} | {_cell(r.published_top1, '.2f')} "
            f"| {_cell(r.paper_orin_fp16_ms, '.2f')} | {_cell(r.paper_l40_bs1_img_s, '.0f')} |"
        )
    lines.append("")
    lines.append(
        "MACs: convolutions, linear layers and matrix products (torch FlopCounterMode / 2), batch 1. "
        "Published: EfficientViT README (B0: timm card), ReduceFormer paper; latency and throughput are the "
        "paper's TensorRT FP16 figures at its resolution."
    )
    return "\n".join(lines)
