"""PyTorch on a CUDA GPU, eager or ``torch.compile``: every forward captured in CUDA graphs (one per
rotated input buffer) and timed with CUDA events around each replay."""

from __future__ import annotations

import importlib.util
from dataclasses import replace

from ....errors import RftrtError
from ....timing import interleave
from ..results import BackendInfo, BenchSettings
from .base import Backend

__all__ = ["TorchCudaBackend"]


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

        from ....models import create

        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
        self.resolution = resolution
        self.rotate = settings.rotate
        self.seed = settings.seed
        model = create(name, resolution, seed=settings.seed).eval().to(device="cuda", dtype=self.dtype, memory_format=self.memory_format)
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
