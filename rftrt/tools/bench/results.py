"""What a benchmark is asked to do and what it found, as data: settings, backend descriptions,
measurements, pairs, the machine, and the whole report (``--json`` writes :meth:`BenchReport.as_dict`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ... import __version__
from ...errors import RftrtError
from ...timing import LatencyStats, percentile, throughput

__all__ = ["BackendInfo", "BenchReport", "BenchSettings", "Environment", "Measurement", "PairResult"]


@dataclass(frozen=True)
class BenchSettings:
    """How long and how to measure. ``None`` fields take the backend's default."""

    warmup: int = 10
    rounds: int = 10
    iterations: int = 20
    rotate: int = 4
    #: ONNX Runtime intra-op threads (1 by default: stable timings on small machines)
    threads: int = 1
    #: "include" or "exclude" host↔device copies; None: the backend's default
    copies: str | None = None
    #: torch backends: channels-last activations (what cuDNN's FP16 tensor-core kernels prefer)
    channels_last: bool = True
    #: torch-compile: the ``torch.compile`` mode. rftrt captures the CUDA graphs itself, so a mode
    #: that adds its own (``reduce-overhead``, ``max-autotune``) is refused; ``default`` compiles
    #: fastest, ``max-autotune-no-cudagraphs`` also autotunes the kernels and takes much longer
    compile_mode: str = "default"
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("warmup", "rounds", "iterations", "rotate", "threads"):
            value = getattr(self, name)
            minimum = 0 if name == "warmup" else 1
            if not isinstance(value, int) or value < minimum:
                raise RftrtError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
        if self.copies not in (None, "include", "exclude"):
            raise RftrtError(f"copies must be 'include' or 'exclude', got {self.copies!r}")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class BackendInfo:
    """What a backend's numbers mean: where they ran, how they were timed, what they include."""

    name: str
    device: str
    precision: str
    timing: str
    copies: str
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Measurement:
    model: str
    resolution: int
    batch: int
    backend: str
    precision: str
    stats: LatencyStats
    throughput_img_s: float
    #: median latency of each round, ms
    round_medians_ms: tuple[float, ...]

    @classmethod
    def from_rounds(cls, model: str, resolution: int, batch: int, backend: str, precision: str, rounds: Sequence[Sequence[float]]) -> Measurement:
        """The statistics of every timed iteration of every round (ms per iteration, per round)."""
        stats = LatencyStats.from_samples([x for r in rounds for x in r])
        return cls(
            model=model,
            resolution=resolution,
            batch=batch,
            backend=backend,
            precision=precision,
            stats=stats,
            throughput_img_s=throughput(batch, stats.median_ms),
            round_medians_ms=tuple(percentile(r, 50) for r in rounds),
        )

    def as_dict(self) -> dict:
        data = asdict(self)
        data["stats"] = self.stats.as_dict()
        return data


@dataclass(frozen=True)
class PairResult:
    """``model`` against ``vs`` at one batch size, both from the same interleaved run."""

    model: str
    vs: str
    batch: int
    backend: str
    #: throughput(model) / throughput(vs) = median latency(vs) / median latency(model)
    ratio: float
    #: lowest and highest per-round ratio
    ratio_range: tuple[float, float]
    #: 1 − latency(model) / latency(vs)
    latency_reduction: float

    @classmethod
    def from_measurements(cls, a: Measurement, b: Measurement) -> PairResult:
        """``a`` (the model) against ``b`` (vs), measured in the same rounds."""
        per_round = [rb / ra for ra, rb in zip(a.round_medians_ms, b.round_medians_ms) if ra > 0]
        return cls(
            model=a.model,
            vs=b.model,
            batch=a.batch,
            backend=a.backend,
            ratio=b.stats.median_ms / a.stats.median_ms,
            ratio_range=(min(per_round), max(per_round)) if per_round else (math.nan, math.nan),
            latency_reduction=1.0 - a.stats.median_ms / b.stats.median_ms,
        )

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Environment:
    cpu: str
    logical_cpus: int
    usable_cpus: int
    load_average: tuple[float, float, float] | None
    gpus: tuple[str, ...]
    driver: str | None
    python: str
    platform: str
    versions: dict[str, str]
    threads: dict[str, Any]

    def as_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        load = "n/a" if self.load_average is None else ", ".join(f"{x:.2f}" for x in self.load_average)
        versions = ", ".join(f"{k} {v}" for k, v in self.versions.items())
        threads = ", ".join(f"{k}={v}" for k, v in self.threads.items())
        return [
            f"CPU: {self.cpu} ({self.usable_cpus} usable of {self.logical_cpus} logical), load average {load}",
            f"GPU: {', '.join(self.gpus) if self.gpus else 'none'}" + (f", driver {self.driver}" if self.driver else ""),
            f"Python {self.python} on {self.platform}",
            f"Versions: {versions}",
            f"Threads: {threads}",
        ]


_LOADED = "the machine was loaded by other work"


@dataclass
class BenchReport:
    """One ``rf-bench`` run as data (``--json`` writes :meth:`as_dict`)."""

    settings: BenchSettings
    environment: Environment
    backends: list[BackendInfo]
    resolution: int | None
    models: list[str]
    batches: list[int]
    measurements: list[Measurement] = field(default_factory=list)
    pairs: list[PairResult] = field(default_factory=list)
    paper: list[dict] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: 1-minute load averages sampled before and after each backend's run
    load_samples: list[float] = field(default_factory=list)

    def merge(self, other: BenchReport) -> None:
        """Add ``other``'s measurements (another pair, same backend) to this report."""
        self.measurements.extend(other.measurements)
        self.pairs.extend(other.pairs)
        self.models.extend(m for m in other.models if m not in self.models)
        self.load_samples.extend(other.load_samples)
        self.warnings.extend(w for w in other.warnings if w not in self.warnings and not w.startswith(_LOADED))
        self.seconds += other.seconds
        self.note_load()

    def note_load(self) -> None:
        """One warning when the machine was loaded at any sample (load > ¾ of the usable CPUs)."""
        self.warnings = [w for w in self.warnings if not w.startswith(_LOADED)]
        cpus = self.environment.usable_cpus
        if self.load_samples and max(self.load_samples) > 0.75 * cpus:
            low, high = min(self.load_samples), max(self.load_samples)
            span = f"{high:.2f}" if low == high else f"{low:.2f}–{high:.2f}"
            self.warnings.insert(0, f"{_LOADED}: 1-minute load average {span} on {cpus} usable CPUs; timings are disturbed")

    def measurement(self, model: str, batch: int, backend: str) -> Measurement | None:
        return next((m for m in self.measurements if (m.model, m.batch, m.backend) == (model, batch, backend)), None)

    def as_dict(self) -> dict:
        return {
            "rftrt_version": __version__,
            "settings": self.settings.as_dict(),
            "environment": self.environment.as_dict(),
            "backends": [b.as_dict() for b in self.backends],
            "resolution": self.resolution,
            "models": list(self.models),
            "batches": list(self.batches),
            "measurements": [m.as_dict() for m in self.measurements],
            "pairs": [p.as_dict() for p in self.pairs],
            "paper": list(self.paper),
            "skipped": dict(self.skipped),
            "warnings": list(self.warnings),
            "load_samples": list(self.load_samples),
            "seconds": self.seconds,
        }
