"""Statistics of timed iterations: percentiles, the latency summary, throughput."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

__all__ = ["LatencyStats", "percentile", "throughput"]


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) with linear interpolation between order statistics."""
    if not samples:
        raise ValueError("no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0–100")
    ordered = sorted(samples)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class LatencyStats:
    """Summary of per-iteration latencies, in milliseconds."""

    n: int
    median_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float]) -> LatencyStats:
        if not samples_ms:
            raise ValueError("no samples")
        return cls(
            n=len(samples_ms),
            median_ms=percentile(samples_ms, 50),
            p90_ms=percentile(samples_ms, 90),
            p99_ms=percentile(samples_ms, 99),
            mean_ms=float(sum(samples_ms) / len(samples_ms)),
            min_ms=float(min(samples_ms)),
            max_ms=float(max(samples_ms)),
        )

    def as_dict(self) -> dict:
        return asdict(self)


def throughput(batch: int, median_ms: float) -> float:
    """Images per second at ``batch`` from the median latency of one batch."""
    return batch * 1000.0 / median_ms if median_ms > 0 else math.inf
