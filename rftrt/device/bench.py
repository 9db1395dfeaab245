"""Timing a bundle's engine on the device (the kit's ``bench``): latency and throughput at the batch
sizes of the engine's profile, by the method of ``rf-bench --backend trt``
(:mod:`rftrt.engines.benchmark`: CUDA events, CUDA graphs off DLA)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..engines.benchmark import ITERATIONS, ROUNDS, WARMUP, EngineBenchmark, benchmark_engine
from ..engines.build_spec import BuildSpec
from ..engines.bundle import load_bundle_spec
from ..engines.verify import check_engine
from ..errors import RftrtError

__all__ = ["KitBench", "bench_bundle", "profile_batches"]


@dataclass
class KitBench:
    engine: Path
    spec: BuildSpec
    tensorrt: str
    results: list[EngineBenchmark] = field(default_factory=list)

    def lines(self) -> list[str]:
        head = f"{self.engine.name}: {self.spec.model} r{self.spec.resolution} {self.spec.precision}, TensorRT {self.tensorrt}"
        rows = [f"  batch {r.batch:>3}: median {r.stats.median_ms:.3f} ms, p90 {r.stats.p90_ms:.3f} ms, p99 {r.stats.p99_ms:.3f} ms, "
                f"{r.throughput_img_s:,.0f} img/s (CUDA graph {'on' if r.cuda_graph else 'off: DLA'}, copies {r.copies})" for r in self.results]
        return [head, *rows]

    def as_dict(self) -> dict:
        return {"engine": str(self.engine), "model": self.spec.model, "tensorrt": self.tensorrt, "results": [r.as_dict() for r in self.results]}


def profile_batches(spec: BuildSpec) -> list[int]:
    """The profile's min, opt and max batch sizes, each once."""
    return sorted({spec.batch.min, spec.batch.opt, spec.batch.max})


def bench_bundle(
    bundle: str | Path,
    engine: str | Path | None = None,
    batches: Sequence[int] | None = None,
    *,
    include_copies: bool = False,
    warmup: int = WARMUP,
    rounds: int = ROUNDS,
    iterations: int = ITERATIONS,
    log: Callable[[str], None] = print,
) -> KitBench:
    """Time ``engine`` (default: the bundle's ``<model>.engine``) at ``batches`` (default: the profile's)."""
    spec = load_bundle_spec(Path(bundle))
    engine = Path(engine) if engine is not None else Path(bundle) / spec.engine
    batches = list(batches) if batches else profile_batches(spec)
    outside = [b for b in batches if not spec.batch.min <= b <= spec.batch.max]
    if outside:
        raise RftrtError(f"batch {', '.join(map(str, outside))} is outside the bundle's profile {spec.batch.min}..{spec.batch.max}")
    checked = check_engine(engine, bundle, batches, "timing the engine", log)
    results = benchmark_engine(
        checked.engine, batches, spec.resolution, dla_core=checked.dla_core, include_copies=include_copies,
        warmup=warmup, rounds=rounds, iterations=iterations, log=log,
    )  # fmt: skip
    return KitBench(checked.engine, spec, checked.tensorrt, results)
