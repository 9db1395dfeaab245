"""Benchmarks: latency and throughput per batch size, two models side by side, on several backends.

Method (the same for every backend):

1. **Warm-up**: ``warmup`` untimed iterations per model and batch size (CUDA graphs are captured and
   ``torch.compile`` compiles before that).
2. **Interleaved rounds**: ``rounds`` rounds; in each, every model runs ``iterations`` timed
   iterations, the order of the models alternating from round to round, so that a slow drift of the
   machine (clocks, temperature, a neighbour's load) touches both models alike.
3. **Rotated inputs**: each model cycles through ``rotate`` distinct input batches (on the GPU: one
   captured CUDA graph per input buffer), so no iteration reads an input the previous one left in cache.
4. **Statistics** over all timed iterations: median, p90, p99 (linear interpolation between order
   statistics, numpy's default), throughput = batch / median latency, and for a pair the speed ratio
   = median(vs) / median(model) = throughput(model) / throughput(vs), with its spread over rounds.

What a timed iteration contains depends on the backend, and each result says so (``timing`` and
``copies``):

=============== ================================================== =========================================
backend         timing                                             host↔device copies
=============== ================================================== =========================================
ort             wall clock around ``session.run`` (CPU)            none: host memory
ort-cuda        wall clock around ``session.run``                  included (NumPy in and out) by default;
                                                                   ``copies="exclude"``: IO binding on device
torch           CUDA events around a CUDA-graph replay (eager)     excluded by default (static device input);
torch-compile   CUDA events around a CUDA-graph replay (inductor)  ``include``: pinned H2D + D2H in the events
trt             CUDA events around ``execute_async_v3``            excluded by default (enqueue only, like
                                                                   trtexec's GPU compute time); ``include``:
                                                                   wall clock around ``EngineRunner.infer``
=============== ================================================== =========================================

EfficientViT's published GPU throughputs include the copies; trtexec's "GPU Compute Time" does not.

ONNX Runtime timing runs in a worker process that imports ONNX Runtime and NumPy only (never torch:
ORT's spinning threads and torch's disturb each other), started with
``python -m rftrt.tools.bench --ort-worker``; the parent exports the ONNX files with torch and never
times anything itself.

This module imports neither torch nor onnxruntime at import time.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .. import __version__
from ..errors import RftrtError

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendInfo",
    "BenchReport",
    "BenchSettings",
    "EngineInfo",
    "Environment",
    "LatencyStats",
    "Measurement",
    "PairResult",
    "PaperPair",
    "Progress",
    "available_backends",
    "backend",
    "backend_status",
    "find_engines",
    "collect_environment",
    "interleave",
    "paper_pairs",
    "percentile",
    "run_benchmark",
    "run_paper_table",
]

# --- statistics ----------------------------------------------------------------------------------


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


# --- settings and results ------------------------------------------------------------------------


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


# --- progress ------------------------------------------------------------------------------------


class Progress:
    """One status line on stderr: rewritten in place on a terminal, one line per step otherwise."""

    def __init__(self, enabled: bool = True, stream: Any = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._width = 0
        self._last = ""

    def update(self, text: str, final: bool = False) -> None:
        if not self.enabled:
            return
        if self.tty:
            padding = " " * max(0, self._width - len(text))
            self.stream.write(f"\r{text}{padding}" + ("\n" if final else ""))
            self._width = 0 if final else len(text)
            self.stream.flush()
        elif final or text.split(" round ")[0] != self._last.split(" round ")[0]:
            self.stream.write(text + "\n")
            self.stream.flush()
        self._last = text

    def done(self) -> None:
        if self.enabled and self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0


# --- the interleaved schedule ----------------------------------------------------------------------


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


def _measurement(model: str, resolution: int, batch: int, backend: str, precision: str, rounds: list[list[float]]) -> Measurement:
    flat = [x for r in rounds for x in r]
    stats = LatencyStats.from_samples(flat)
    return Measurement(
        model=model,
        resolution=resolution,
        batch=batch,
        backend=backend,
        precision=precision,
        stats=stats,
        throughput_img_s=throughput(batch, stats.median_ms),
        round_medians_ms=tuple(percentile(r, 50) for r in rounds),
    )


def _pair(a: Measurement, b: Measurement) -> PairResult:
    per_round = [rb / ra for ra, rb in zip(a.round_medians_ms, b.round_medians_ms) if ra > 0]
    return PairResult(
        model=a.model,
        vs=b.model,
        batch=a.batch,
        backend=a.backend,
        ratio=b.stats.median_ms / a.stats.median_ms,
        ratio_range=(min(per_round), max(per_round)) if per_round else (math.nan, math.nan),
        latency_reduction=1.0 - a.stats.median_ms / b.stats.median_ms,
    )


# --- environment ---------------------------------------------------------------------------------

_VERSIONED = (
    "torch",
    "onnxruntime",
    "onnxruntime-gpu",
    "onnx",
    "numpy",
    "tensorrt",
    "cuda-python",
    "triton",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _nvidia_smi() -> tuple[tuple[str, ...], str | None]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return (), None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return (), None
    rows = [[c.strip() for c in line.split(",")] for line in out.strip().splitlines() if line.strip()]
    return tuple(f"{r[0]} ({r[2]})" for r in rows if len(r) >= 3), (rows[0][1] if rows else None)


def collect_environment(threads: dict[str, Any] | None = None) -> Environment:
    """CPU, GPU, driver, library versions and thread settings of this machine, now."""
    versions = {"rftrt": __version__}
    for dist in _VERSIONED:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    gpus, driver = _nvidia_smi()
    if not gpus and "torch" in sys.modules:
        torch = sys.modules["torch"]
        if torch.cuda.is_available():
            gpus = tuple(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count() or 1
    try:
        load = tuple(round(x, 2) for x in os.getloadavg())
    except OSError:  # pragma: no cover
        load = None
    return Environment(
        cpu=_cpu_model(),
        logical_cpus=os.cpu_count() or 1,
        usable_cpus=usable,
        load_average=load,  # type: ignore[arg-type]
        gpus=gpus,
        driver=driver,
        python=platform.python_version(),
        platform=platform.platform(),
        versions=versions,
        threads={"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset"), **(threads or {})},
    )


# --- model preparation (parent process, torch) -----------------------------------------------------


def _export_onnx_file(name: str, resolution: int, precision: str, folder: Path, seed: int) -> Path:
    """The ONNX ``rf-export`` would deploy for ``name`` (after the passes; FP16: the typed rendering
    of the precision plan, graph I/O FP32), written to ``folder``."""
    import torch

    from ..export.prepare import export_and_pass
    from ..models import create
    from ..precision.plan import plan_on_photographs
    from ..precision.render import render_fp16

    torch.manual_seed(seed)
    model = export_and_pass(create(name, resolution), resolution, precision).passed
    if precision == "fp16":
        model = render_fp16(model, set(plan_on_photographs(model, resolution).fp32_nodes))
    path = folder / f"{name}-r{resolution}-{precision}.onnx"
    path.write_bytes(model.SerializeToString())
    return path


# --- backends ------------------------------------------------------------------------------------


class Backend:
    """One way of running the models. Subclasses implement :meth:`available` and :meth:`measure`."""

    name: str = ""
    summary: str = ""
    timing: str = ""
    precisions: tuple[str, ...] = ("fp32",)
    default_precision: str = "fp32"
    copies_default: str = "n/a"
    copies_choices: tuple[str, ...] = ()
    default_batches: tuple[int, ...] = (1, 8)
    default_settings: BenchSettings = BenchSettings()

    def available(self) -> tuple[bool, str]:
        raise NotImplementedError

    def copies(self, settings: BenchSettings) -> str:
        if settings.copies is None:
            return self.copies_default
        if settings.copies not in self.copies_choices:
            raise RftrtError(
                f"backend {self.name} cannot {settings.copies} host↔device copies "
                f"({'choices: ' + ', '.join(self.copies_choices) if self.copies_choices else 'its inputs live in host memory'})"
            )
        return settings.copies

    def check_precision(self, precision: str) -> None:
        if precision not in self.precisions:
            raise RftrtError(f"backend {self.name} runs {', '.join(self.precisions)}, not {precision}")

    def info(self, precision: str, settings: BenchSettings) -> BackendInfo:
        return BackendInfo(self.name, self.device(), precision, self.timing, self.copies_text(settings))

    def device(self) -> str:
        return "CPU"

    def copies_text(self, settings: BenchSettings) -> str:
        mode = self.copies(settings)
        return {"include": "included", "exclude": "excluded"}.get(mode, mode)

    def measure(
        self,
        models: list[str],
        resolution: int,
        batches: list[int],
        precision: str,
        settings: BenchSettings,
        progress: Progress,
    ) -> dict[str, dict[int, list[list[float]]]]:
        """Samples per model and batch size, per round, from one interleaved run."""
        raise NotImplementedError


class OrtBackend(Backend):
    """ONNX Runtime on the CPU or with the CUDA execution provider (timed in an ORT-only worker)."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        if provider == "cpu":
            self.name = "ort"
            self.summary = "ONNX Runtime, CPU execution provider"
            self.timing = "wall clock (time.perf_counter) around session.run, in an ONNX-Runtime-only process"
            self.copies_default = "n/a (host memory)"
            self.default_settings = BenchSettings(warmup=5, rounds=10, iterations=10)
        else:
            self.name = "ort-cuda"
            self.summary = "ONNX Runtime, CUDA execution provider"
            self.timing = "wall clock (time.perf_counter) around session.run (+ output sync), in an ONNX-Runtime-only process"
            self.precisions = ("fp32", "fp16")
            self.copies_default = "include"
            self.copies_choices = ("include", "exclude")
            self.default_batches = (1, 8, 16, 32)
            self.default_settings = BenchSettings(warmup=20, rounds=10, iterations=50)

    def available(self) -> tuple[bool, str]:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            return False, f"onnxruntime does not import ({exc})"
        if self.provider == "cpu":
            return True, f"onnxruntime {ort.__version__}, CPUExecutionProvider"
        providers = ort.get_available_providers()
        if "CUDAExecutionProvider" not in providers:
            return False, (
                f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (providers: {', '.join(providers)}); "
                "it needs onnxruntime-gpu and a CUDA GPU"
            )
        return True, f"onnxruntime {ort.__version__}, CUDAExecutionProvider"

    def copies(self, settings: BenchSettings) -> str:
        if self.provider == "cpu":
            if settings.copies is not None:
                raise RftrtError("backend ort runs in host memory: there are no host↔device copies to include or exclude")
            return self.copies_default
        return super().copies(settings)

    def copies_text(self, settings: BenchSettings) -> str:
        mode = self.copies(settings)
        if mode == "include":
            return "included (NumPy input copied in and logits copied out by session.run)"
        if mode == "exclude":
            return "excluded (IO binding: input and output stay on the device)"
        return mode

    def device(self) -> str:
        return _cpu_model() if self.provider == "cpu" else (", ".join(_nvidia_smi()[0]) or "CUDA GPU")

    def check_precision(self, precision: str) -> None:
        if self.provider == "cpu" and precision == "fp16":
            raise RftrtError("backend ort (CPU) runs fp32 only: ONNX Runtime's CPU provider lacks FP16 kernels for most ops")
        super().check_precision(precision)

    def measure(self, models, resolution, batches, precision, settings, progress):
        with tempfile.TemporaryDirectory(prefix="rf-bench-") as tmp:
            files = {}
            for name in models:
                progress.update(f"[{self.name}] exporting {name} r{resolution} ({precision})")
                files[name] = str(_export_onnx_file(name, resolution, precision, Path(tmp), settings.seed))
            job = {
                "provider": self.provider,
                "files": files,
                "resolution": resolution,
                "batches": batches,
                "settings": settings.as_dict(),
                "copies": self.copies(settings),
            }
            result = _run_ort_worker(job, progress, self.name)
        self.worker = {k: v for k, v in result.items() if k != "samples"}
        return {m: {int(b): r for b, r in per.items()} for m, per in result["samples"].items()}

    def info(self, precision: str, settings: BenchSettings) -> BackendInfo:
        base = super().info(precision, settings)
        details = {"intra_op_threads": settings.threads, "inter_op_threads": 1, "execution_mode": "sequential"}
        details.update(getattr(self, "worker", {}))
        return replace(base, details=details)


def _run_ort_worker(job: dict, progress: Progress, label: str) -> dict:
    """Run the ORT timing worker on ``job``; relay its progress; return its result."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(job["settings"]["threads"]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "rftrt.tools.bench", "--ort-worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write(json.dumps(job))
    proc.stdin.close()
    result: dict | None = None
    error: str | None = None
    for line in proc.stdout:
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "progress" in message:
            progress.update(f"[{label}] {message['progress']}")
        elif "error" in message:
            error = message["error"]
        elif "result" in message:
            result = message["result"]
    stderr = proc.stderr.read()
    code = proc.wait()
    if error is not None:
        raise RftrtError(error)
    if code != 0 or result is None:
        tail = " | ".join(stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"the ONNX Runtime worker failed (exit {code}): {tail}")
    return result


def _ort_worker_main() -> int:
    """``python -m rftrt.tools.bench --ort-worker``: time ONNX models with ONNX Runtime only.

    Reads a JSON job on stdin; writes JSON lines on stdout: ``{"progress": …}``, then ``{"result": …}``
    or ``{"error": …}`` (a user-facing problem, one line)."""
    import onnxruntime as ort

    ort.set_default_logger_severity(3)

    def emit(**message: Any) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    job = json.loads(sys.stdin.read())
    settings = BenchSettings(**job["settings"])
    cuda = job["provider"] == "cuda"
    copies = job["copies"]
    sessions = {}
    for name, path in job["files"].items():
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = settings.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]
        session = ort.InferenceSession(path, options, providers=providers)
        if cuda and session.get_providers()[0] != "CUDAExecutionProvider":
            emit(error=f"ONNX Runtime fell back to {session.get_providers()[0]} for {name}: no usable CUDA device; nothing was timed")
            return 3
        sessions[name] = session

    rng = np.random.default_rng(settings.seed)
    resolution = job["resolution"]
    samples: dict[str, dict[int, list[list[float]]]] = {name: {} for name in sessions}
    for batch in job["batches"]:
        shape = (batch, 3, resolution, resolution)
        timers = {
            name: _ort_timer(session, [rng.standard_normal(shape).astype(np.float32) for _ in range(settings.rotate)], cuda, copies)
            for name, session in sessions.items()
        }
        label = " vs ".join(sessions)
        emit(progress=f"{label} batch {batch}: warm-up")
        rounds = interleave(
            timers,
            settings.warmup,
            settings.rounds,
            settings.iterations,
            lambda i, b=batch: emit(progress=f"{label} batch {b} round {i}/{settings.rounds}"),
        )
        for name, per_round in rounds.items():
            samples[name][batch] = per_round
    emit(
        result={
            "samples": samples,
            "onnxruntime": ort.__version__,
            "providers": {name: s.get_providers() for name, s in sessions.items()},
            "torch_imported_in_timing_process": "torch" in sys.modules,
        }
    )
    return 0


def _ort_timer(session: Any, inputs: list[np.ndarray], cuda: bool, copies: str) -> Timed:
    import onnxruntime as ort

    input_name = session.get_inputs()[0].name
    output_name = session.get_outputs()[0].name
    state = {"k": 0}
    if cuda and copies == "exclude":
        binding = session.io_binding()
        device_inputs = [ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0) for x in inputs]
        classes = session.get_outputs()[0].shape[-1]
        output = ort.OrtValue.ortvalue_from_shape_and_type([inputs[0].shape[0], classes], np.float32, "cuda", 0)
        binding.bind_ortvalue_output(output_name, output)

        def run_bound(iterations: int) -> list[float]:
            times = []
            for _ in range(iterations):
                binding.bind_ortvalue_input(input_name, device_inputs[state["k"] % len(device_inputs)])
                state["k"] += 1
                start = time.perf_counter()
                session.run_with_iobinding(binding)
                binding.synchronize_outputs()
                times.append((time.perf_counter() - start) * 1e3)
            return times

        return run_bound

    def run(iterations: int) -> list[float]:
        times = []
        for _ in range(iterations):
            feed = {input_name: inputs[state["k"] % len(inputs)]}
            state["k"] += 1
            start = time.perf_counter()
            session.run([output_name], feed)
            times.append((time.perf_counter() - start) * 1e3)
        return times

    return run


class TorchCudaBackend(Backend):
    """PyTorch on a CUDA GPU, eager or ``torch.compile``, each forward captured in a CUDA graph."""

    precisions = ("fp16", "fp32")
    default_precision = "fp16"
    copies_default = "exclude"
    copies_choices = ("include", "exclude")
    default_batches = (1, 8, 16, 32)
    default_settings = BenchSettings(warmup=20, rounds=10, iterations=50)

    def __init__(self, compiled: bool) -> None:
        self.compiled = compiled
        self.warnings: list[str] = []
        self.name = "torch-compile" if compiled else "torch"
        self.summary = "PyTorch CUDA, " + ("torch.compile (inductor)" if compiled else "eager") + ", CUDA graphs"
        self.timing = "CUDA events around each CUDA-graph replay (device time), synchronised once per round"

    def available(self) -> tuple[bool, str]:
        try:
            import torch
        except ImportError as exc:  # pragma: no cover - torch is a dependency
            return False, f"torch does not import ({exc})"
        if not torch.cuda.is_available():
            build = torch.version.cuda
            what = f"a CUDA {build} build" if build else "a CPU-only build"
            return False, f"no CUDA device (torch {torch.__version__} is {what})"
        if self.compiled and importlib.util.find_spec("triton") is None:
            return False, "torch.compile on CUDA needs triton, which is not installed"
        return True, f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}"

    def device(self) -> str:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"

    def copies_text(self, settings: BenchSettings) -> str:
        if self.copies(settings) == "include":
            return "included (pinned-host → device input copy and logits → host copy inside the timed events)"
        return "excluded (input already in a device buffer the CUDA graph reads; logits left on the device)"

    def info(self, precision: str, settings: BenchSettings) -> BackendInfo:
        base = super().info(precision, settings)
        import torch

        details = {
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "cudnn_benchmark": True,
            "tf32": {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32},
            "memory_format": "channels_last" if settings.channels_last else "contiguous",
            "cuda_graphs": f"{settings.rotate} per model and batch (one per rotated input buffer), one memory pool",
        }
        if self.compiled:
            details["compile_mode"] = settings.compile_mode
        return replace(base, details=details)

    def measure(self, models, resolution, batches, precision, settings, progress):
        import torch

        if self.compiled and settings.compile_mode in ("reduce-overhead", "max-autotune"):
            raise RftrtError(
                f"compile mode {settings.compile_mode!r} captures its own CUDA graphs; rf-bench captures them itself: "
                "use default or max-autotune-no-cudagraphs"
            )
        torch.backends.cudnn.benchmark = True
        runners = {}
        for name in models:
            progress.update(f"[{self.name}] building {name} r{resolution} ({precision})")
            runners[name] = _TorchCudaModel(name, resolution, precision, self.compiled, settings)
        samples: dict[str, dict[int, list[list[float]]]] = {name: {} for name in models}
        label = " vs ".join(models)
        for batch in batches:
            timers = {}
            try:
                for name, runner in runners.items():
                    progress.update(f"[{self.name}] {name} batch {batch}: " + ("compiling, " if self.compiled else "") + "capturing CUDA graphs")
                    timers[name] = runner.timer(batch, self.copies(settings) == "include")
                    if not timers[name].finite:
                        self.warnings.append(f"{name} at batch {batch} gives non-finite outputs in {precision} (random weights)")
                rounds = interleave(
                    timers,
                    settings.warmup,
                    settings.rounds,
                    settings.iterations,
                    lambda i, b=batch: progress.update(f"[{self.name}] {label} batch {b} round {i}/{settings.rounds}"),
                )
            finally:
                for timer in timers.values():
                    timer.close()
                torch.cuda.empty_cache()
            for name, per_round in rounds.items():
                samples[name][batch] = per_round
        return samples


class _TorchCudaModel:
    """One model on the GPU, ready to be captured at any batch size."""

    def __init__(self, name: str, resolution: int, precision: str, compiled: bool, settings: BenchSettings) -> None:
        import torch

        from ..models import create

        torch.manual_seed(settings.seed)
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
        self.resolution = resolution
        self.rotate = settings.rotate
        self.seed = settings.seed
        model = create(name, resolution).eval().to(device="cuda", dtype=self.dtype, memory_format=self.memory_format)
        self.model = model
        self.fn = torch.compile(model, mode=settings.compile_mode, dynamic=False) if compiled else model

    def timer(self, batch: int, include_copies: bool) -> _GraphTimer:
        return _GraphTimer(self, batch, include_copies)


class _GraphTimer:
    """``rotate`` CUDA graphs of one model at one batch size, each reading its own input buffer."""

    def __init__(self, owner: _TorchCudaModel, batch: int, include_copies: bool) -> None:
        import torch

        generator = torch.Generator(device="cpu").manual_seed(owner.seed + batch)
        shape = (batch, 3, owner.resolution, owner.resolution)
        host = [torch.randn(shape, generator=generator).to(owner.dtype) for _ in range(owner.rotate)]
        self.inputs = [h.to("cuda").contiguous(memory_format=owner.memory_format) for h in host]
        self.include_copies = include_copies
        self.host_inputs = [h.contiguous(memory_format=owner.memory_format).pin_memory() for h in host] if include_copies else []
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(3):  # cuDNN autotuning, and compilation for torch.compile
                owner.fn(self.inputs[0])
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.synchronize()
        pool = torch.cuda.graph_pool_handle()
        self.graphs = []
        self.outputs = []
        for x in self.inputs:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=pool), torch.no_grad():
                y = owner.fn(x)
            self.graphs.append(graph)
            self.outputs.append(y)
        self.host_outputs = [torch.empty(y.shape, dtype=y.dtype, pin_memory=True) for y in self.outputs] if include_copies else []
        self.graphs[0].replay()
        torch.cuda.synchronize()
        self.finite = bool(torch.isfinite(self.outputs[0]).all().item())
        self.k = 0

    def __call__(self, iterations: int) -> list[float]:
        import torch

        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(iterations)]
        for start, end in events:
            i = self.k % len(self.graphs)
            self.k += 1
            start.record()
            if self.include_copies:
                self.inputs[i].copy_(self.host_inputs[i], non_blocking=True)
            self.graphs[i].replay()
            if self.include_copies:
                self.host_outputs[i].copy_(self.outputs[i], non_blocking=True)
            end.record()
        torch.cuda.synchronize()
        return [start.elapsed_time(end) for start, end in events]

    def close(self) -> None:
        self.graphs.clear()
        self.outputs.clear()
        self.inputs.clear()
        self.host_inputs.clear()
        self.host_outputs.clear()


# --- TensorRT ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineInfo:
    """What the files beside an engine say about it: its sidecar ``<engine>.json`` (written by
    rf-build) or the ``build.json`` of its bundle: model, resolution, batch profile, precision, target,
    the GPU it was built on and its DLA core."""

    path: Path
    model: str | None = None
    resolution: int | None = None
    batch: tuple[int, int, int] | None = None
    precision: str | None = None
    target: str | None = None
    #: compute capability and name of the GPU the engine was built on (sidecar only)
    built_on_cc: str | None = None
    built_on_gpu: str | None = None
    dla_core: int | None = None
    sidecar: Path | None = None

    @classmethod
    def from_file(cls, path: str | Path) -> EngineInfo:
        path = Path(path)
        if not path.is_file():
            raise RftrtError(f"engine {path} does not exist")
        for sidecar in (path.with_name(path.name + ".json"), path.parent / "build.json"):
            if not sidecar.is_file():
                continue
            try:
                data = json.loads(sidecar.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise RftrtError(f"{sidecar}: not readable JSON ({exc})") from None
            batch = data.get("batch")
            profile = (int(batch["min"]), int(batch["opt"]), int(batch["max"])) if isinstance(batch, dict) else None
            gpu = data.get("gpu") if isinstance(data.get("gpu"), dict) else {}
            dla = data.get("dla")
            core = dla.get("core") if isinstance(dla, dict) else data.get("dla_core")
            return cls(
                path=path,
                model=data.get("model"),
                resolution=data.get("resolution"),
                batch=profile,
                precision=data.get("precision"),
                target=data.get("target"),
                built_on_cc=gpu.get("compute_capability"),
                built_on_gpu=gpu.get("name"),
                dla_core=core,
                sidecar=sidecar,
            )
        return cls(path)

    def check_batches(self, batches: Sequence[int]) -> None:
        if self.batch is None:
            return
        low, opt, high = self.batch
        outside = [b for b in batches if not low <= b <= high]
        if outside:
            raise RftrtError(
                f"batch {', '.join(map(str, outside))} is outside engine {self.path.name}'s profile "
                f"{low}:{opt}:{high} (min:opt:max); use --batch within {low}–{high} or rebuild the engine for it"
            )

    def check_machine(self, machine: str | None = None, compute_capability: str | None = None) -> None:
        """An engine runs only on the GPU architecture (and TensorRT) it was built for."""
        machine = machine or platform.machine()
        target = None
        if self.target is not None:
            from ..targets.profiles import load_target

            try:
                target = load_target(self.target)
            except RftrtError:
                target = None  # a target this rftrt does not know: TensorRT's own check will speak
        if target is not None and target.arch != machine:
            raise RftrtError(
                f"engine {self.path.name} was built for {target.display} ({target.arch}, SM {target.compute_capability}); "
                f"this machine is {machine}: engines do not move across GPUs, build one here from the bundle"
            )
        built = self.built_on_cc or (target.compute_capability if target is not None else None)
        if compute_capability is not None and built is not None and compute_capability != built:
            what = self.built_on_gpu or (target.display if target is not None else "another GPU")
            raise RftrtError(
                f"engine {self.path.name} was built on {what} (SM {built}); this GPU is SM {compute_capability}: "
                "engines do not move across GPUs, build one here from the bundle"
            )


def _local_compute_capability() -> str | None:
    """The first CUDA device's compute capability via cuda-python, or None without one."""
    try:
        from ..engines.runtime import gpu_info

        return gpu_info(0)["compute_capability"]
    except Exception:  # noqa: BLE001 - no cuda-python, no driver, no device: all read as "none"
        return None


class TrtBackend(Backend):
    """A TensorRT engine per model, run with :class:`rftrt.engines.runtime.EngineRunner`."""

    name = "trt"
    summary = "TensorRT engine (rftrt.engines.runtime, cuda-python)"
    timing = "CUDA events around execute_async_v3 on the runner's stream (device time)"
    precisions = ("fp32", "fp16", "int8")
    default_precision = "fp16"
    copies_default = "exclude"
    copies_choices = ("include", "exclude")
    default_batches = (1, 8, 16, 32)
    default_settings = BenchSettings(warmup=20, rounds=10, iterations=50)

    def __init__(self, engines: dict[str, str] | None = None) -> None:
        self.engines = dict(engines or {})

    def copies_text(self, settings: BenchSettings) -> str:
        if self.copies(settings) == "include":
            return "included (EngineRunner.infer: NumPy → pinned → device, enqueue, device → host, sync; wall clock)"
        return (
            "excluded (enqueue only, like trtexec's GPU compute time; the input stays in the runner's device "
            "buffer, so it is not rotated)"
        )

    def info(self, precision: str, settings: BenchSettings) -> BackendInfo:
        base = super().info(precision, settings)
        timing = self.timing if self.copies(settings) == "exclude" else "wall clock (time.perf_counter) around EngineRunner.infer"
        details = {"engines": dict(self.engines), **getattr(self, "details", {})}
        return replace(base, timing=timing, details=details)

    def available(self) -> tuple[bool, str]:
        if importlib.util.find_spec("tensorrt") is None:
            return False, "tensorrt is not installed (it installs only with NVIDIA's runtime, on the device)"
        try:
            import tensorrt
        except Exception as exc:  # noqa: BLE001 - a bindings-only wheel fails in many ways
            return False, f"tensorrt does not import ({' '.join(str(exc).split())})"
        if _local_compute_capability() is None:
            return False, f"tensorrt {tensorrt.__version__} imports but no CUDA device is visible through cuda-python"
        try:
            runtime = importlib.import_module("rftrt.engines.runtime")
        except ImportError as exc:
            return False, f"rftrt.engines.runtime (the cuda-python engine runner) does not import ({exc})"
        missing = [m for m in _RUNNER_MEMBERS if not hasattr(getattr(runtime, "EngineRunner", None), m)]
        if missing:
            return False, f"rftrt.engines.runtime.EngineRunner lacks {', '.join(missing)}, which the trt backend uses"
        if not self.engines:
            return False, "needs --engine FILE (built on this GPU from the bundle: rf-build or build.sh)"
        return True, f"tensorrt {tensorrt.__version__}"

    def device(self) -> str:
        return ", ".join(_nvidia_smi()[0]) or "CUDA GPU"

    def measure(self, models, resolution, batches, precision, settings, progress):
        from ..engines.runtime import EngineRunner, import_tensorrt, installed_tensorrt_version

        include = self.copies(settings) == "include"
        samples: dict[str, dict[int, list[list[float]]]] = {name: {} for name in models}
        runners: dict[str, Any] = {}
        self.details = {"tensorrt": installed_tensorrt_version(import_tensorrt("benchmarking an engine"))}
        try:
            for name in models:
                info = EngineInfo.from_file(self.engines[name])
                progress.update(f"[trt] loading {info.path}")
                runner = EngineRunner(info.path, dla_core=info.dla_core)
                runner.__enter__()
                runners[name] = runner
                low, high = runner.batch_range
                outside = [b for b in batches if not low <= b <= high]
                if outside:
                    raise RftrtError(
                        f"batch {', '.join(map(str, outside))} is outside engine {info.path.name}'s profile {low}..{high}; "
                        f"use --batch within it"
                    )
            label = " vs ".join(models)
            for batch in batches:
                timers = {name: _TrtTimer(r, batch, resolution, settings.seed, include) for name, r in runners.items()}
                rounds = interleave(
                    timers,
                    settings.warmup,
                    settings.rounds,
                    settings.iterations,
                    lambda i, b=batch: progress.update(f"[trt] {label} batch {b} round {i}/{settings.rounds}"),
                )
                for name, per_round in rounds.items():
                    samples[name][batch] = per_round
        finally:
            for runner in runners.values():
                runner.__exit__(None, None, None)
        return samples


#: The EngineRunner members the trt backend uses: ``infer`` (copies included) and, for device time
#: without copies, ``set_batch``, ``enqueue`` and ``stream``.
_RUNNER_MEMBERS = ("infer", "batch_range", "inputs", "set_batch", "enqueue", "stream")


class _TrtTimer:
    """One engine at one batch size: CUDA events around the enqueue alone (copies excluded), or wall
    clock around ``infer`` (copies included)."""

    def __init__(self, runner: Any, batch: int, resolution: int, seed: int, include_copies: bool) -> None:
        self.runner = runner
        self.include = include_copies
        tensor = runner.inputs[0]
        shape = (batch, *tensor.shape[1:]) if all(d > 0 for d in tensor.shape[1:]) else (batch, 3, resolution, resolution)
        rng = np.random.default_rng(seed + batch)
        self.feeds = [rng.standard_normal(shape).astype(tensor.dtype) for _ in range(4)]
        self.k = 0
        runner.infer(self.feeds[0])  # sets the batch, copies a real input into the device buffer
        if not include_copies:
            from cuda.bindings import runtime as cudart

            self.cudart = cudart
            runner.set_batch(batch)

    def _check(self, result: Any) -> Any:
        err, *rest = result if isinstance(result, tuple) else (result,)
        if err != self.cudart.cudaError_t.cudaSuccess:
            raise RuntimeError(f"CUDA runtime error {err}")
        return rest[0] if len(rest) == 1 else rest

    def __call__(self, iterations: int) -> list[float]:
        if self.include:
            times = []
            for _ in range(iterations):
                feed = self.feeds[self.k % len(self.feeds)]
                self.k += 1
                start = time.perf_counter()
                self.runner.infer(feed)
                times.append((time.perf_counter() - start) * 1e3)
            return times
        cudart = self.cudart
        stream = self.runner.stream.handle
        pairs = [(self._check(cudart.cudaEventCreate()), self._check(cudart.cudaEventCreate())) for _ in range(iterations)]
        try:
            for start, end in pairs:
                self._check(cudart.cudaEventRecord(start, stream))
                self.runner.enqueue()
                self._check(cudart.cudaEventRecord(end, stream))
            self._check(cudart.cudaStreamSynchronize(stream))
            return [float(self._check(cudart.cudaEventElapsedTime(s, e))) for s, e in pairs]
        finally:
            for start, end in pairs:
                cudart.cudaEventDestroy(start)
                cudart.cudaEventDestroy(end)


# --- registry of backends -------------------------------------------------------------------------

BACKENDS: tuple[str, ...] = ("ort", "ort-cuda", "torch", "torch-compile", "trt")


def backend(name: str, engines: dict[str, str] | None = None) -> Backend:
    """A backend by name; an unknown name is an error that lists the backends and which are available."""
    if name == "ort":
        return OrtBackend("cpu")
    if name == "ort-cuda":
        return OrtBackend("cuda")
    if name == "torch":
        return TorchCudaBackend(compiled=False)
    if name == "torch-compile":
        return TorchCudaBackend(compiled=True)
    if name == "trt":
        return TrtBackend(engines)
    raise RftrtError(f"unknown backend {name!r}; backends: {', '.join(BACKENDS)} (available here: {', '.join(available_backends()) or 'none'})")


def available_backends() -> list[str]:
    """The backends that can run on this machine now (``trt`` counts when TensorRT, a GPU and the
    runtime are present, engine files aside)."""
    names = []
    for name in BACKENDS:
        ok, reason = backend(name, {"_": "_"} if name == "trt" else None).available()
        if ok:
            names.append(name)
    return names


def backend_status() -> list[tuple[str, bool, str]]:
    """(name, available, reason) for every backend."""
    rows = []
    for name in BACKENDS:
        ok, reason = backend(name, {"_": "_"} if name == "trt" else None).available()
        rows.append((name, ok, reason))
    return rows


# --- the run -------------------------------------------------------------------------------------


def _check_models(names: Sequence[str]) -> None:
    from ..models import model_info

    for name in names:
        model_info(name)


def run_benchmark(
    model: str,
    vs: str | None,
    backends: Sequence[str],
    resolution: int | None = None,
    batches: Sequence[int] | None = None,
    precision: str | None = None,
    settings: BenchSettings | dict[str, Any] | None = None,
    engines: dict[str, str] | None = None,
    vs_resolution: int | None = None,
    progress: Progress | None = None,
) -> BenchReport:
    """Measure ``model`` (and ``vs``, interleaved) on each backend; see the module docstring.

    ``settings``: a :class:`BenchSettings` for every backend, or a dict of fields that override each
    backend's own defaults (None: the defaults). A named backend that is not available is an error
    naming the reason and the available ones; ``backends=["all"]`` runs every available backend and
    records the others as skipped."""
    from ..models import check_resolution

    started = time.perf_counter()
    progress = progress or Progress(False)
    models = [model] + ([vs] if vs else [])
    if vs is not None and vs == model:
        raise RftrtError(f"--vs {vs} is the model itself; compare two different models")
    _check_models(models)
    engines = dict(engines or {})

    # engines first: their sidecars may fix the resolution, and their mistakes are the user's
    infos = {name: EngineInfo.from_file(path) for name, path in engines.items()}
    resolutions = {name: info.resolution for name, info in infos.items() if info.resolution is not None}
    res = resolution or resolutions.get(model) or 224
    vs_res = vs_resolution or resolutions.get(vs or "", None) or res
    if vs is not None and vs_res != res:
        raise RftrtError(
            f"--vs {vs} would run at {vs_res}×{vs_res} but {model} at {res}×{res}: a side-by-side comparison needs "
            "one resolution (give both the same --resolution, or engines built for the same one)"
        )
    for name, r in resolutions.items():
        if r != res:
            raise RftrtError(f"engine for {name} was built for {r}×{r}, not {res}×{res}; use --resolution {r} or its engine")
    check_resolution(res)

    wanted = list(backends)
    if not wanted:
        raise RftrtError(f"no backend given; backends: {', '.join(BACKENDS)}")
    run_all = wanted == ["all"]
    names = list(BACKENDS) if run_all else wanted
    batch_list = sorted(set(batches)) if batches else list(backend(names[0], engines).default_batches)
    if any((not isinstance(b, int)) or b < 1 for b in batch_list):
        raise RftrtError(f"batch sizes must be positive integers, got {batch_list}")
    chosen: list[Backend] = []
    skipped: dict[str, str] = {}
    for name in names:
        b = backend(name, engines if name == "trt" else None)
        if name == "trt" and not run_all:
            # the user's mistakes first, whether or not this machine can run TensorRT
            for engine_model, info in infos.items():
                if engine_model not in models:
                    raise RftrtError(f"an engine was given for {engine_model}, which is not benchmarked here")
                if info.model is not None and info.model != engine_model:
                    raise RftrtError(f"engine {info.path.name} was built for {info.model}, not {engine_model} ({info.sidecar.name} says so)")
                info.check_machine(compute_capability=_local_compute_capability())
                info.check_batches(batch_list)
            missing = [m for m in models if m not in engines]
            if engines and missing:
                raise RftrtError(f"backend trt needs an engine for every model: none for {', '.join(missing)} (--engine / --vs-engine)")
        ok, reason = b.available()
        if not ok:
            if run_all:
                skipped[name] = reason
                continue
            others = [n for n in available_backends() if n != name]
            raise RftrtError(f"backend {name} is not available here: {reason}; available here: {', '.join(others) or 'none'}")
        chosen.append(b)
    if not chosen:
        raise RftrtError("no backend is available here: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))

    first = chosen[0]

    def settings_for(b: Backend) -> BenchSettings:
        if isinstance(settings, BenchSettings):
            return settings
        return replace(b.default_settings, **(settings or {}))

    report = BenchReport(
        settings=settings_for(first),
        environment=collect_environment(),
        backends=[],
        resolution=res,
        models=models,
        batches=batch_list,
        skipped=skipped,
    )
    _sample_load(report)
    for b in chosen:
        prec = precision or b.default_precision
        if b.name == "trt":
            prec = precision or next((i.precision for i in infos.values() if i.precision), b.default_precision)
        b.check_precision(prec)
        b_settings = settings_for(b)
        b.copies(b_settings)  # validates the choice before any work
        samples = b.measure(models, res, batch_list, prec, b_settings, progress)
        progress.done()
        report.backends.append(b.info(prec, b_settings))
        report.warnings.extend(f"{b.name}: {w}" for w in getattr(b, "warnings", []))
        for batch in batch_list:
            measured = [_measurement(m, res, batch, b.name, prec, samples[m][batch]) for m in models]
            report.measurements.extend(measured)
            if vs is not None:
                report.pairs.append(_pair(measured[0], measured[1]))
    report.environment = replace(report.environment, threads={**report.environment.threads, **_thread_settings(report)})
    _sample_load(report)
    report.seconds = time.perf_counter() - started
    return report


def _thread_settings(report: BenchReport) -> dict[str, Any]:
    threads: dict[str, Any] = {}
    if any(b.name.startswith("ort") for b in report.backends):
        threads["onnxruntime_intra_op"] = report.settings.threads
    if any(b.name.startswith("torch") for b in report.backends):
        threads["torch_intra_op"] = sys.modules["torch"].get_num_threads()
    return threads


_LOADED = "the machine was loaded by other work"


def _sample_load(report: BenchReport) -> None:
    try:
        report.load_samples.append(round(os.getloadavg()[0], 2))
    except OSError:  # pragma: no cover - no load average on this platform
        return
    report.note_load()


# --- the paper's table ----------------------------------------------------------------------------


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
    """The paper's comparisons, from ``zoo.toml``: each ReduceFormer row with the EfficientViT row of
    the same size at the same resolution (B1/B2/B3: Orin latency and L40 throughput, six pairs of
    figures, plus B1's L40 throughput at batch 8/16/32)."""
    from ..models import list_models, model_info

    pairs = []
    for name in list_models():
        info = model_info(name)
        if info.family != "rf" or not info.paper:
            continue
        other = model_info(f"evit_{info.variant}")
        if other.paper.get("resolution") != info.paper["resolution"]:
            continue
        mine, theirs = info.paper.get("l40_fp16_img_s", {}), other.paper.get("l40_fp16_img_s", {})
        pairs.append(
            PaperPair(
                model=name,
                vs=other.name,
                resolution=int(info.paper["resolution"]),
                orin_fp16_ms=(float(info.paper["orin_fp16_ms"]), float(other.paper["orin_fp16_ms"])),
                l40_fp16_img_s={int(b): (float(mine[b]), float(theirs[b])) for b in mine if b in theirs},
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


if __name__ == "__main__":
    if sys.argv[1:] == ["--ort-worker"]:
        sys.exit(_ort_worker_main())
    sys.exit("usage: python -m rftrt.tools.bench --ort-worker  (internal: rf-bench's ONNX Runtime timing process)")
