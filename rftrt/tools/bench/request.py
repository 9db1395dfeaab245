"""What ``rf-bench`` is asked for, checked as a whole (which options go together) and run: two
models side by side on some backends, or the paper's table on one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ...errors import RftrtError
from .backends.registry import BACKENDS, backend
from .paper import run_paper_table
from .progress import Progress
from .results import BenchReport
from .run import run_benchmark

__all__ = ["BenchRequest"]


@dataclass(frozen=True)
class BenchRequest:
    """``model`` (against ``vs``) on ``backends`` (names, or ``["all"]``), or with ``paper_table`` the
    paper's pairs on one backend (the trt one taking its engines from ``engine_dir``)."""

    model: str | None = None
    vs: str | None = None
    backends: Sequence[str] = ("ort",)
    resolution: int | None = None
    vs_resolution: int | None = None
    batches: Sequence[int] | None = None
    precision: str | None = None
    #: fields of :class:`~.results.BenchSettings` that override each backend's defaults
    settings: dict[str, Any] = field(default_factory=dict)
    engine: str | None = None
    vs_engine: str | None = None
    engine_dir: str | None = None
    paper_table: bool = False

    @property
    def engines(self) -> dict[str, str]:
        """Engine file per model, for those given one."""
        return {k: v for k, v in ((self.model, self.engine), (self.vs, self.vs_engine)) if v}

    def check(self) -> None:
        """Refuse unknown backends and options that do not go together, before anything runs."""
        if "triton" in self.backends:
            raise RftrtError("--backend triton runs on its own, against a server: rf-bench --backend triton --url HOST:PORT --bundle BUNDLE")
        for name in self.backends:
            if name != "all" and name not in BACKENDS:
                backend(name)  # raises, naming the backends and the available ones
        if self.paper_table:
            if self.model or self.vs or self.engine or self.vs_engine:
                raise RftrtError("--paper-table runs the paper's pairs itself: leave out --model, --vs and the engines")
            if len(self.backends) != 1 or list(self.backends) == ["all"]:
                raise RftrtError("--paper-table runs on one backend; name it with --backend")
            return
        if not self.model:
            raise RftrtError("--model is required (e.g. --model rf_b1 --vs evit_b1), or use --paper-table")
        if self.engine_dir:
            raise RftrtError("--engine-dir is for --paper-table; give --engine and --vs-engine here")
        if self.vs_engine and not self.vs:
            raise RftrtError("--vs-engine needs --vs")
        if self.engines and "trt" not in self.backends:
            raise RftrtError("--engine and --vs-engine are for --backend trt")

    def run(self, progress: Progress | None = None) -> BenchReport:
        """Check the request, then measure: :func:`~.paper.run_paper_table` or :func:`~.run.run_benchmark`."""
        self.check()
        if self.paper_table:
            return run_paper_table(self.backends[0], self.batches, self.precision, self.settings, progress, self.engine_dir)
        return run_benchmark(
            self.model,
            self.vs,
            list(self.backends),
            self.resolution,
            self.batches,
            self.precision,
            self.settings,
            self.engines,
            self.vs_resolution,
            progress,
        )
