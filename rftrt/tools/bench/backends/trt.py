"""A TensorRT engine per model, run with :class:`rftrt.engines.runner.EngineRunner` (cuda-python) and
timed as :mod:`rftrt.engines.benchmark` times it (the device kit's ``bench`` uses the same)."""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import replace
from typing import Any

from ....engines.benchmark import ITERATIONS, ROUNDS, WARMUP, EngineTimer
from ....engines.engine_info import EngineInfo
from ....engines.runner import EngineRunner
from ....engines.tensorrt_api import import_tensorrt, installed_tensorrt_version
from ....errors import RftrtError
from ....timing import interleave
from ..environment import nvidia_smi_gpus
from ..results import BackendInfo, BenchSettings
from .base import Backend

__all__ = ["TrtBackend", "local_compute_capability"]


def local_compute_capability() -> str | None:
    """The first CUDA device's compute capability via cuda-python, or None without one."""
    try:
        from ....engines.cuda import gpu_info

        return gpu_info(0)["compute_capability"]
    except Exception:  # noqa: BLE001 - no cuda-python, no driver, no device: all read as "none"
        return None


class TrtBackend(Backend):
    """A TensorRT engine per model, run with :class:`rftrt.engines.runner.EngineRunner`."""

    name = "trt"
    summary = "TensorRT engine (rftrt.engines.runner, cuda-python)"
    timing = "CUDA events around a CUDA-graph replay of execute_async_v3 on the runner's stream (device time; DLA engines: the plain enqueue)"
    precisions = ("fp32", "fp16", "int8")
    default_precision = "fp16"
    copies_default = "exclude"
    copies_choices = ("include", "exclude")
    default_batches = (1, 8, 16, 32)
    default_settings = BenchSettings(warmup=WARMUP, rounds=ROUNDS, iterations=ITERATIONS)

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
        if local_compute_capability() is None:
            return False, f"tensorrt {tensorrt.__version__} imports but no CUDA device is visible through cuda-python"
        try:
            runner = importlib.import_module("rftrt.engines.runner")
        except ImportError as exc:
            return False, f"rftrt.engines.runner (the cuda-python engine runner) does not import ({exc})"
        missing = [m for m in _RUNNER_MEMBERS if not hasattr(getattr(runner, "EngineRunner", None), m)]
        if missing:
            return False, f"rftrt.engines.runner.EngineRunner lacks {', '.join(missing)}, which the trt backend uses"
        if not self.engines:
            return False, "needs --engine FILE (built on this GPU from the bundle: rf-build or build.sh)"
        return True, f"tensorrt {tensorrt.__version__}"

    def device(self) -> str:
        return ", ".join(nvidia_smi_gpus()[0]) or "CUDA GPU"

    def measure(self, models, resolution, batches, precision, settings, progress):

        include = self.copies(settings) == "include"
        samples: dict[str, dict[int, list[list[float]]]] = {name: {} for name in models}
        runners: dict[str, Any] = {}
        self.details = {"tensorrt": installed_tensorrt_version(import_tensorrt("benchmarking an engine"))}
        try:
            for name in models:
                info = EngineInfo.from_file(self.engines[name])
                progress.update(f"[trt] loading {info.path}")
                runner = EngineRunner(info.path, dla_core=info.dla_core, cuda_graph=info.dla_core is None)
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
                timers = {name: EngineTimer(r, batch, resolution, settings.seed, include) for name, r in runners.items()}
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
