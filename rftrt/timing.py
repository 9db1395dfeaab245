"""Timing measurements, the same for every runtime: the interleaved schedule (warm-up, then rounds
that alternate the order of the models, so a slow drift of the machine touches both alike) and the
statistics of the timed iterations.

Standard library only: the device kit (:mod:`rftrt.device`) times engines with it too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

__all__ = ["LatencyStats", "Timed", "interleave", "percentile", "throughput"]


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


class Timed(Protocol):
    """Runs ``iterations`` timed iterations of one model at one batch size; returns ms per iteration."""

    def __call__(self, iterations: int) -> list[float]: ...


def interleave(
    timers: dict[str, Timed],
    warmup: int,
    rounds: int,
    iterations: int,
    on_round: Callable[[int], None] | None = None,
) -> dict[str, list[list[float]]]:
    """Warm every timer up, then run ``rounds`` rounds in which each runs ``iterations`` timed
    iterations, alternating the order of the timers each round. Returns the samples per round."""
    for timer in timers.values():
        if warmup:
            timer(warmup)
    keys = list(timers)
    samples: dict[str, list[list[float]]] = {key: [] for key in keys}
    for index in range(rounds):
        for key in keys if index % 2 == 0 else keys[::-1]:
            samples[key].append([float(x) for x in timers[key](iterations)])
        if on_round is not None:
            on_round(index + 1)
    return samples
