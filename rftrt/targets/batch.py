"""Batch profiles: the optimisation profile's batch sizes, read from and written as ``MIN:OPT:MAX``
or ``N``.

Pure data and the standard library only: the device-side code reads it from ``build.json``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import RftrtError

__all__ = ["BatchProfile", "check_batch", "parse_batch", "format_batch"]


@dataclass(frozen=True)
class BatchProfile:
    """The optimisation profile's batch sizes; ``min == opt == max`` means a static batch."""

    min: int
    opt: int
    max: int

    @property
    def static(self) -> bool:
        return self.min == self.opt == self.max

    def shape(self, which: str, resolution: int) -> list[int]:
        return [getattr(self, which), 3, resolution, resolution]


def check_batch(batch: BatchProfile) -> BatchProfile:
    """``batch`` itself if its sizes are integers with 1 <= min <= opt <= max; an error otherwise."""
    values = (batch.min, batch.opt, batch.max)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise RftrtError(f"batch sizes must be integers, got {format_batch(batch)}")
    if batch.min < 1:
        raise RftrtError(f"batch sizes must be at least 1, got {format_batch(batch)}")
    if not batch.min <= batch.opt <= batch.max:
        raise RftrtError(f"batch {format_batch(batch)} must satisfy min <= opt <= max, e.g. 1:8:32")
    return batch


def parse_batch(text: str) -> BatchProfile:
    """Read ``MIN:OPT:MAX`` (a dynamic batch, e.g. ``1:8:32``) or ``N`` (a static batch of N)."""
    parts = text.strip().split(":")
    if len(parts) not in (1, 3):
        raise RftrtError(f"batch {text!r} is not MIN:OPT:MAX or N; e.g. 1:8:32 (dynamic) or 8 (static)")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise RftrtError(f"batch {text!r} has a part that is not an integer; e.g. 1:8:32 or 8") from None
    if len(values) == 1:
        values *= 3
    return check_batch(BatchProfile(*values))


def format_batch(batch: BatchProfile) -> str:
    """``1:8:32``, or ``8`` for a static batch: what :func:`parse_batch` reads back."""
    return str(batch.opt) if batch.static else f"{batch.min}:{batch.opt}:{batch.max}"
