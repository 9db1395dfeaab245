"""A virtual environment that holds only this interpreter's NumPy (linked in, nothing downloaded):
what a device's Python has, for running the device kit as a device would (``python -I``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

__all__ = ["numpy_only_venv"]


def numpy_only_venv(root: Path) -> Path:
    """Create ``root/venv`` with NumPy as its only package; returns its python."""
    import numpy

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    python = root / "venv" / "bin" / "python"
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.strip())
    installed = Path(numpy.__file__).parent
    for name in [installed.name] + [p.name for p in installed.parent.glob("numpy.libs")]:
        (site / name).symlink_to(installed.parent / name)
    return python
