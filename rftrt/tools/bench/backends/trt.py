"""A TensorRT engine per model, run with :class:`rftrt.engines.runner.EngineRunner` (cuda-python),
and what the files beside an engine say about it (:class:`EngineInfo`), checked before anything runs."""

from __future__ import annotations

import importlib
import importlib.util
import json
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ....errors import RftrtError
from ..environment import nvidia_smi_gpus
from ..results import BackendInfo, BenchSettings
from ..schedule import interleave
from .base import Backend

__all__ = ["EngineInfo", "TrtBackend", "local_compute_capability"]


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
            from ....targets.profiles import load_target

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
        from ....engines.runner import EngineRunner
        from ....engines.tensorrt_api import import_tensorrt, installed_tensorrt_version

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

