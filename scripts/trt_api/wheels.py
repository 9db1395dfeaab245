"""Download a TensorRT bindings wheel from PyPI and unpack its extension as package ``tensorrt``.

The ``tensorrt*-bindings`` wheels hold the pybind11 extension ``tensorrt_bindings/tensorrt.so``
plus a small ``__init__.py`` (10.1x/11.x also a ``plugin/`` sub-package); none of 8.6.1, 10.3.0,
10.16.1.11 and 11.4.0.106 ships ``.pyi`` stubs (a note is logged if a wheel does, but the real
module is still read). The wheel is built per CPython version, so it is downloaded for the version
of the interpreter that will import it (``pip download --no-deps --only-binary=:all:``; all
manylinux/linux x86-64 platform tags in ``PLATFORMS`` are offered to pip at once), and its SHA-256
is recorded.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from .log import log

PLATFORMS = [
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux_2_28_x86_64",
    "manylinux_2_31_x86_64",
    "manylinux_2_34_x86_64",
    "manylinux_2_35_x86_64",
    "linux_x86_64",
]


def python_version_of(python: str) -> str:
    """``"3.11"`` for the interpreter `python`."""
    out = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def download_wheel(spec: str, dest: Path, pyver: str) -> Path:
    """pip-download the binary wheel for `spec` (no dependencies) into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps",
        "--only-binary=:all:", "--python-version", pyver,
        "--implementation", "cp", "--disable-pip-version-check",
        "-d", str(dest),
    ]
    for plat in PLATFORMS:
        cmd += ["--platform", plat]
    cmd.append(spec)
    res = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("*.whl"))
    if res.returncode != 0 or len(wheels) != 1:
        raise SystemExit(
            f"pip could not download a cp{pyver.replace('.', '')} linux x86-64 wheel for "
            f"{spec!r} (exit {res.returncode}); try --python with another interpreter "
            f"version.\n{res.stdout}\n{res.stderr}"
        )
    return wheels[0]


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def version_from_wheel_name(wheel_name: str) -> str:
    """The release in a wheel's file name (``tensorrt_cu12_bindings-10.3.0-cp311-...`` -> ``10.3.0``),
    for a module without ``__version__``."""
    return re.match(r"tensorrt[_a-z0-9]*-([0-9][^-]*)-", wheel_name).group(1)


def unpack_bindings(wheel: Path, site: Path) -> Path:
    """Unpack the wheel's `tensorrt_bindings/` (or `tensorrt/`) as package `tensorrt` under `site`;
    return the path of its extension."""
    pkg = site / "tensorrt"
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        if any(n.endswith(".pyi") for n in names):
            log(f"  note: wheel ships .pyi stubs: {[n for n in names if n.endswith('.pyi')]}")
        tops = {n.split("/", 1)[0] for n in names if "/" in n and ".dist-info" not in n.split("/", 1)[0]}
        top = "tensorrt_bindings" if "tensorrt_bindings" in tops else "tensorrt"
        if top not in tops:
            raise SystemExit(f"{wheel.name}: no tensorrt_bindings/ or tensorrt/ package in {sorted(tops)}")
        for n in names:
            if not n.startswith(top + "/") or n.endswith("/"):
                continue
            target = pkg / n[len(top) + 1:]
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(n) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
    sos = sorted(pkg.glob("tensorrt*.so"))
    if len(sos) != 1:
        raise SystemExit(f"{wheel.name}: expected one tensorrt*.so extension, found {sos}")
    return sos[0]
