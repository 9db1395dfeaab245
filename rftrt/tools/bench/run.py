"""One benchmark run: check the request (models, engines, resolution, batches, backends), then
measure every model on each backend, interleaved, and put the report together."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ...engines.engine_info import EngineInfo
from ...errors import RftrtError
from .backends.base import Backend
from .backends.registry import BACKENDS, available_backends, backend
from .backends.trt import local_compute_capability
from .environment import collect_environment
from .progress import Progress
from .results import BenchReport, BenchSettings, Measurement, PairResult

__all__ = ["run_benchmark"]


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
    """Measure ``model`` (and ``vs``, interleaved) on each backend; see :mod:`rftrt.tools.bench`.

    ``settings``: a :class:`BenchSettings` for every backend, or a dict of fields that override each
    backend's own defaults (None: the defaults). A named backend that is not available is an error
    naming the reason and the available ones; ``backends=["all"]`` runs every available backend and
    records the others as skipped."""
    started = time.perf_counter()
    progress = progress or Progress(False)
    models = [model] + ([vs] if vs else [])
    if vs is not None and vs == model:
        raise RftrtError(f"--vs {vs} is the model itself; compare two different models")
    _check_models(models)
    engines = dict(engines or {})

    # engines first: their sidecars may fix the resolution, and their mistakes are the user's
    infos = {name: EngineInfo.from_file(path) for name, path in engines.items()}
    res = _resolution(model, vs, resolution, vs_resolution, infos)
    names, run_all = _backend_names(backends)
    batch_list = sorted(set(batches)) if batches else list(backend(names[0], engines).default_batches)
    if any((not isinstance(b, int)) or b < 1 for b in batch_list):
        raise RftrtError(f"batch sizes must be positive integers, got {batch_list}")
    chosen, skipped = _choose_backends(names, run_all, models, engines, infos, batch_list)

    report = BenchReport(
        settings=_settings_for(chosen[0], settings),
        environment=collect_environment(),
        backends=[],
        resolution=res,
        models=models,
        batches=batch_list,
        skipped=skipped,
    )
    _sample_load(report)
    for b in chosen:
        _measure_on(report, b, infos, precision, settings, progress, paired=vs is not None)
    report.environment = replace(report.environment, threads={**report.environment.threads, **_thread_settings(report)})
    _sample_load(report)
    report.seconds = time.perf_counter() - started
    return report


def _check_models(names: Sequence[str]) -> None:
    from ...models import model_info

    for name in names:
        model_info(name)


def _resolution(model: str, vs: str | None, resolution: int | None, vs_resolution: int | None, infos: dict[str, EngineInfo]) -> int:
    """The one input size of the run: the one asked for, else the engines', else 224."""
    from ...models import check_resolution

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
    return res


def _backend_names(backends: Sequence[str]) -> tuple[list[str], bool]:
    """The backends to try, and whether they are ``all`` of them (the unavailable ones then skipped)."""
    wanted = list(backends)
    if not wanted:
        raise RftrtError(f"no backend given; backends: {', '.join(BACKENDS)}")
    run_all = wanted == ["all"]
    return (list(BACKENDS) if run_all else wanted), run_all


def _choose_backends(
    names: list[str], run_all: bool, models: list[str], engines: dict[str, str], infos: dict[str, EngineInfo], batches: list[int]
) -> tuple[list[Backend], dict[str, str]]:
    """The backends that will run and the reasons of those skipped; a named one that cannot run is an error."""
    chosen: list[Backend] = []
    skipped: dict[str, str] = {}
    for name in names:
        b = backend(name, engines if name == "trt" else None)
        if name == "trt" and not run_all:
            # the user's mistakes first, whether or not this machine can run TensorRT
            _check_engines(models, engines, infos, batches)
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
    return chosen, skipped


def _check_engines(models: list[str], engines: dict[str, str], infos: dict[str, EngineInfo], batches: list[int]) -> None:
    """Every engine is for a benchmarked model, built for it, on this GPU, for these batch sizes; and
    with engines given, every model has one."""
    for engine_model, info in infos.items():
        if engine_model not in models:
            raise RftrtError(f"an engine was given for {engine_model}, which is not benchmarked here")
        if info.model is not None and info.model != engine_model:
            raise RftrtError(f"engine {info.path.name} was built for {info.model}, not {engine_model} ({info.sidecar.name} says so)")
        info.check_machine(compute_capability=local_compute_capability())
        info.check_batches(batches)
    missing = [m for m in models if m not in engines]
    if engines and missing:
        raise RftrtError(f"backend trt needs an engine for every model: none for {', '.join(missing)} (--engine / --vs-engine)")


def _settings_for(b: Backend, settings: BenchSettings | dict[str, Any] | None) -> BenchSettings:
    if isinstance(settings, BenchSettings):
        return settings
    return replace(b.default_settings, **(settings or {}))


def _measure_on(
    report: BenchReport,
    b: Backend,
    infos: dict[str, EngineInfo],
    precision: str | None,
    settings: BenchSettings | dict[str, Any] | None,
    progress: Progress,
    paired: bool,
) -> None:
    """Measure the report's models on one backend and add its description, measurements and pairs."""
    prec = precision or b.default_precision
    if b.name == "trt":
        prec = precision or next((i.precision for i in infos.values() if i.precision), b.default_precision)
    b.check_precision(prec)
    b_settings = _settings_for(b, settings)
    b.copies(b_settings)  # validates the choice before any work
    samples = b.measure(report.models, report.resolution, report.batches, prec, b_settings, progress)
    progress.done()
    report.backends.append(b.info(prec, b_settings))
    report.warnings.extend(f"{b.name}: {w}" for w in getattr(b, "warnings", []))
    for batch in report.batches:
        measured = [Measurement.from_rounds(m, report.resolution, batch, b.name, prec, samples[m][batch]) for m in report.models]
        report.measurements.extend(measured)
        if paired:
            report.pairs.append(PairResult.from_measurements(measured[0], measured[1]))


def _thread_settings(report: BenchReport) -> dict[str, Any]:
    threads: dict[str, Any] = {}
    if any(b.name.startswith("ort") for b in report.backends):
        threads["onnxruntime_intra_op"] = report.settings.threads
    if any(b.name.startswith("torch") for b in report.backends):
        threads["torch_intra_op"] = sys.modules["torch"].get_num_threads()
    return threads


def _sample_load(report: BenchReport) -> None:
    try:
        report.load_samples.append(round(os.getloadavg()[0], 2))
    except OSError:  # pragma: no cover - no load average on this platform
        return
    report.note_load()
