"""Timing a TensorRT engine on its device: one method for ``rf-bench --backend trt`` and the device
kit's ``bench``.

- copies excluded (the default): the input is copied into the runner's device buffer once, then
  CUDA events around each enqueue give device time, like trtexec's "GPU Compute Time"; the enqueue
  replays a CUDA graph captured for the batch size (``--useCudaGraph`` in build.sh's benchmark), so
  batch 1 does not measure launch overhead. DLA engines cannot be captured (NVIDIA/TensorRT#3524):
  they run the plain ``execute_async_v3``, and say so;
- copies included: wall clock around ``EngineRunner.infer`` (NumPy → pinned → device, enqueue,
  device → host, synchronise).

Warm-up, then interleaved rounds (:func:`rftrt.timing.interleave`), statistics over every timed
iteration (:class:`rftrt.timing.LatencyStats`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..timing import LatencyStats, interleave, throughput
from .cuda import time_on_stream
from .runner import EngineRunner

__all__ = ["EngineTimer", "EngineBenchmark", "benchmark_engine", "WARMUP", "ROUNDS", "ITERATIONS"]

#: rf-bench's trt backend and the kit's defaults: untimed iterations, rounds, timed iterations per round.
WARMUP, ROUNDS, ITERATIONS = 20, 10, 50
_ROTATED_INPUTS = 4


class EngineTimer:
    """One engine at one batch size (a :class:`rftrt.timing.Timed`)."""

    def __init__(self, runner: EngineRunner, batch: int, resolution: int, seed: int, include_copies: bool) -> None:
        self.runner = runner
        self.include = include_copies
        tensor = runner.inputs[0]
        shape = (batch, *tensor.shape[1:]) if all(d > 0 for d in tensor.shape[1:]) else (batch, 3, resolution, resolution)
        rng = np.random.default_rng(seed + batch)
        self.feeds = [rng.standard_normal(shape).astype(tensor.dtype) for _ in range(_ROTATED_INPUTS)]
        self.k = 0
        runner.infer(self.feeds[0])  # sets the batch, copies a real input into the device buffer
        if not include_copies:
            runner.set_batch(batch)

    def __call__(self, iterations: int) -> list[float]:
        if not self.include:
            return time_on_stream(self.runner.stream, self.runner.enqueue, iterations)
        times = []
        for _ in range(iterations):
            feed = self.feeds[self.k % len(self.feeds)]
            self.k += 1
            start = time.perf_counter()
            self.runner.infer(feed)
            times.append((time.perf_counter() - start) * 1e3)
        return times


@dataclass(frozen=True)
class EngineBenchmark:
    """One engine at one batch size: latency statistics and throughput."""

    batch: int
    stats: LatencyStats
    throughput_img_s: float
    cuda_graph: bool
    copies: str

    def as_dict(self) -> dict:
        return {"batch": self.batch, "stats": self.stats.as_dict(), "throughput_img_s": self.throughput_img_s, "cuda_graph": self.cuda_graph, "copies": self.copies}


def benchmark_engine(
    engine: str | Path,
    batches: list[int],
    resolution: int,
    *,
    dla_core: int | None = None,
    include_copies: bool = False,
    warmup: int = WARMUP,
    rounds: int = ROUNDS,
    iterations: int = ITERATIONS,
    seed: int = 0,
    log: Any = print,
) -> list[EngineBenchmark]:
    """Time ``engine`` at each batch size of ``batches`` (each inside its profile)."""
    cuda_graph = dla_core is None
    results = []
    with EngineRunner(engine, dla_core=dla_core, cuda_graph=cuda_graph, log=log) as runner:
        for batch in batches:
            timer = EngineTimer(runner, batch, resolution, seed, include_copies)
            samples = interleave({"engine": timer}, warmup, rounds, iterations)["engine"]
            stats = LatencyStats.from_samples([x for r in samples for x in r])
            copies = "included" if include_copies else "excluded"
            results.append(EngineBenchmark(batch, stats, throughput(batch, stats.median_ms), cuda_graph, copies))
    return results
