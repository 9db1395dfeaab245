"""ONNX Runtime on the CPU or with the CUDA execution provider. This (parent) process exports the
ONNX files with torch; the timing runs in the ONNX-Runtime-only worker process (:mod:`.ort_worker`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from ....errors import RftrtError
from ..environment import cpu_model, nvidia_smi_gpus
from ..progress import Progress
from ..results import BackendInfo, BenchSettings
from .base import Backend

__all__ = ["OrtBackend"]


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
        return cpu_model() if self.provider == "cpu" else (", ".join(nvidia_smi_gpus()[0]) or "CUDA GPU")

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


def _export_onnx_file(name: str, resolution: int, precision: str, folder: Path, seed: int) -> Path:
    """The ONNX ``rf-export`` would deploy for ``name`` (after the passes; FP16: the typed rendering
    of the precision plan, graph I/O FP32), written to ``folder``."""

    from ....export.prepare import export_and_pass
    from ....models import create
    from ....precision.plan import plan_on_photographs
    from ....precision.render import render_fp16

    model = export_and_pass(create(name, resolution, seed=seed), resolution, precision).passed
    if precision == "fp16":
        model = render_fp16(model, set(plan_on_photographs(model, resolution).fp32_nodes))
    path = folder / f"{name}-r{resolution}-{precision}.onnx"
    path.write_bytes(model.SerializeToString())
    return path


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
