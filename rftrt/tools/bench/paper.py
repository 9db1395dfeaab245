"""The ReduceFormer paper's table: its B1/B2/B3 pairs and measured figures (``tools/paper_tables.toml``), the
engines for them in a folder, and every pair measured on one backend with the paper's figures beside."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...engines.engine_info import EngineInfo
from ...errors import RftrtError
from .progress import Progress
from .results import BenchReport, BenchSettings
from .run import run_benchmark

__all__ = ["PaperPair", "find_engines", "paper_pairs", "run_paper_table"]


@dataclass(frozen=True)
class PaperPair:
    """A ReduceFormer model and the EfficientViT it is compared with in the paper's table."""

    model: str
    vs: str
    resolution: int
    orin_fp16_ms: tuple[float, float]
    #: batch → (model img/s, vs img/s) on L40, TensorRT FP16
    l40_fp16_img_s: dict[int, tuple[float, float]]

    @property
    def orin_ratio(self) -> float:
        return self.orin_fp16_ms[1] / self.orin_fp16_ms[0]

    def l40_ratio(self, batch: int) -> float | None:
        if batch not in self.l40_fp16_img_s:
            return None
        ours, theirs = self.l40_fp16_img_s[batch]
        return ours / theirs

    def as_dict(self) -> dict:
        return {
            "model": self.model,
            "vs": self.vs,
            "resolution": self.resolution,
            "orin_fp16_ms": list(self.orin_fp16_ms),
            "orin_ratio": self.orin_ratio,
            "l40_fp16_img_s": {str(b): list(v) for b, v in self.l40_fp16_img_s.items()},
            "l40_ratio": {str(b): self.l40_ratio(b) for b in self.l40_fp16_img_s},
        }


def paper_pairs() -> list[PaperPair]:
    """The paper's comparisons: each ReduceFormer model at its resolution in the paper (``zoo.toml``)
    with the EfficientViT model of the same size, and their measurements in the paper's tables
    (:mod:`rftrt.tools.paper_tables`: Orin latency at batch 1, L40 throughput at every batch both
    models were measured at)."""
    from ...models import list_models, model_info
    from ..paper_tables import paper_row

    pairs = []
    for name in list_models():
        info = model_info(name)
        if info.family != "rf" or not info.paper:
            continue
        other = model_info(f"evit_{info.variant}")
        if other.paper.get("resolution") != info.paper["resolution"]:
            continue
        resolution = int(info.paper["resolution"])
        mine, theirs = paper_row(name, resolution), paper_row(other.name, resolution)
        if mine is None or theirs is None:
            continue
        pairs.append(
            PaperPair(
                model=name,
                vs=other.name,
                resolution=resolution,
                orin_fp16_ms=(mine.orin_fp16_ms, theirs.orin_fp16_ms),
                l40_fp16_img_s={b: (v, theirs.l40_img_s[b]) for b, v in mine.l40_img_s.items() if b in theirs.l40_img_s},
            )
        )
    return pairs


def find_engines(folder: str | Path, wanted: Sequence[tuple[str, int]]) -> dict[str, str]:
    """Engines under ``folder`` for each (model, resolution): a ``*.engine``/``*.plan`` whose sidecar
    (or bundle build.json) names that model and resolution, else one named ``<model>.engine``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RftrtError(f"engine folder {folder} does not exist")
    candidates = sorted([*folder.rglob("*.engine"), *folder.rglob("*.plan")])
    found: dict[str, str] = {}
    for model, resolution in wanted:
        for path in candidates:
            info = EngineInfo.from_file(path)
            if info.model == model and info.resolution in (None, resolution):
                found[model] = str(path)
                break
        else:
            named = [p for p in candidates if p.stem == model]
            if named:
                found[model] = str(named[0])
    missing = [m for m, _ in wanted if m not in found]
    if missing:
        raise RftrtError(
            f"no engine for {', '.join(missing)} under {folder} (looked for *.engine with a sidecar naming the model, "
            "or <model>.engine); build them on this GPU from their bundles"
        )
    return found


def run_paper_table(
    backend_name: str,
    batches: Sequence[int] | None = None,
    precision: str | None = None,
    settings: BenchSettings | dict[str, Any] | None = None,
    progress: Progress | None = None,
    engine_dir: str | Path | None = None,
) -> BenchReport:
    """Every paper pair at its resolution on one backend (batches: the paper's for that pair unless
    given); the paper's figures are attached to the report beside ours. The trt backend takes its
    engines from ``engine_dir`` (:func:`find_engines`)."""
    reports = []
    pairs = paper_pairs()
    engines: dict[str, str] = {}
    if backend_name == "trt":
        if engine_dir is None:
            raise RftrtError("--paper-table --backend trt needs --engine-dir DIR holding the six models' engines")
        engines = find_engines(engine_dir, [(m, p.resolution) for p in pairs for m in (p.model, p.vs)])
    for pair in pairs:
        wanted = list(batches) if batches else sorted(pair.l40_fp16_img_s) or [1]
        pair_engines = {m: engines[m] for m in (pair.model, pair.vs) if m in engines}
        reports.append(
            run_benchmark(
                pair.model, pair.vs, [backend_name], pair.resolution, wanted, precision, settings, pair_engines, progress=progress
            )
        )
    merged = reports[0]
    for other in reports[1:]:
        merged.merge(other)
    merged.models = [m for p in pairs for m in (p.model, p.vs)]
    merged.batches = sorted({m.batch for m in merged.measurements})
    merged.resolution = None
    merged.paper = [p.as_dict() for p in pairs]
    return merged
