"""The machine a benchmark ran on: CPU model and cores, load, GPUs and driver (``nvidia-smi``),
Python, platform, library versions and thread settings."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from ... import __version__
from .results import Environment

__all__ = ["collect_environment", "cpu_model", "nvidia_smi_gpus"]

#: the distributions whose versions every report records
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


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def nvidia_smi_gpus() -> tuple[tuple[str, ...], str | None]:
    """The GPUs ``nvidia-smi`` lists (name and memory) and the driver version; ``((), None)`` without it."""
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
    gpus, driver = nvidia_smi_gpus()
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
        cpu=cpu_model(),
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
