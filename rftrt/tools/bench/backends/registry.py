"""The benchmark backends by name, and which of them can run on this machine."""

from __future__ import annotations

from ....errors import RftrtError
from .base import Backend
from .ort import OrtBackend
from .torch_cuda import TorchCudaBackend
from .trt import TrtBackend

__all__ = ["BACKENDS", "available_backends", "backend", "backend_status"]

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
    return [name for name, ok, _ in backend_status() if ok]


def backend_status() -> list[tuple[str, bool, str]]:
    """(name, available, reason) for every backend."""
    rows = []
    for name in BACKENDS:
        # a placeholder engine: trt's answer then speaks of TensorRT and the GPU, not of missing files
        ok, reason = backend(name, {"_": "_"} if name == "trt" else None).available()
        rows.append((name, ok, reason))
    return rows
