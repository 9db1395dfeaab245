"""rftrt's own counts of every registry model, recorded (``counts.toml``) so that listing the zoo
answers at once instead of building eight models: exact parameters, and MACs at the published
resolutions by :mod:`rftrt.models.complexity`'s convention (batch 1).

``python scripts/count_models.py --write`` recounts and rewrites the file; ``tests/test_models.py``
recounts every figure and fails on any difference, so the file cannot drift from the models.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._data import load_toml

__all__ = ["RecordedCounts", "recorded_counts", "count_model", "counts_toml"]


@dataclass(frozen=True)
class RecordedCounts:
    params: int
    #: resolution → MACs
    macs: dict[int, int]


def recorded_counts() -> dict[str, RecordedCounts]:
    raw = load_toml("rftrt.models", "counts.toml")["models"]
    return {name: RecordedCounts(int(entry["params"]), {int(r): int(m) for r, m in entry["macs"].items()}) for name, entry in raw.items()}


def count_model(name: str, resolutions: tuple[int, ...]) -> RecordedCounts:
    """Build ``name`` (no weights are needed to count) and count it at each resolution."""
    from .complexity import count_complexity
    from .efficientvit import EfficientViTCls
    from .registry import model_info

    info = model_info(name)
    model = EfficientViTCls(info.family, info.variant).eval()
    counts = {r: count_complexity(model, r) for r in resolutions}
    return RecordedCounts(next(iter(counts.values())).params, {r: c.macs for r, c in counts.items()})


def counts_toml(counts: dict[str, RecordedCounts]) -> str:
    lines = [
        "# rftrt's counts of every registry model (rftrt/models/counts.py says how; do not edit by hand:",
        "# `python scripts/count_models.py --write` rewrites this file, and tests/test_models.py recounts it).",
        "",
    ]
    for name, c in counts.items():
        lines += [f"[models.{name}]", f"params = {c.params}", "macs = { " + ", ".join(f'"{r}" = {m}' for r, m in sorted(c.macs.items())) + " }", ""]
    return "\n".join(lines)
