#!/usr/bin/env python3
"""Figures of the device kit: its size, its modules and what they import, ``info``'s wall time with
only NumPy, the Python 3.8 check, and how much of the kit's code the test suite runs.

    python scripts/device_kit_report.py [--coverage]

- size: ``rftrt-device.pyz`` as ``rf-export`` writes it;
- ``info`` wall time: median of 5 runs of ``python -I rftrt-device.pyz info`` on an rf_b0 r64
  bundle, in a virtual environment with NumPy linked in and nothing else;
- vermin ``-t=3.8-`` over the kit's modules;
- with ``--coverage`` (needs ``pip install coverage``): the statements of the kit's modules that the
  device-side test files run in-process (the kit's own subprocess runs are not counted).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from rftrt.device.kit import KIT_NAME, _source, kit_modules, module_imports
from rftrt.device.numpy_only import numpy_only_venv
from rftrt.pipeline import ExportOptions, run_export

_TESTS = ["test_device_kit.py", "test_builder.py", "test_verify.py", "test_runtime.py", "test_bench.py", "test_bundle.py", "test_trtexec.py", "test_trt_api_conformance.py", "test_targets.py"]


def _coverage(files: list[str]) -> str:
    root = Path(__file__).parents[1]
    data = Path(tempfile.mkdtemp()) / ".coverage"
    tests = [str(root / "tests" / t) for t in _TESTS]
    env = {"COVERAGE_FILE": str(data)}
    subprocess.run([sys.executable, "-m", "coverage", "run", f"--include={','.join(files)}", "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], cwd=root, env={**__import__("os").environ, **env}, check=True, capture_output=True)
    report = subprocess.run([sys.executable, "-m", "coverage", "report", f"--include={','.join(files)}"], cwd=root, env={**__import__("os").environ, **env}, capture_output=True, text=True, check=True)
    return report.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--coverage", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "bundle"
        run_export(ExportOptions(model="rf_b0", target="orin", precision="fp16", resolution=64, out_dir=str(bundle)), log=lambda _: None)
        kit = bundle / KIT_NAME
        print(f"kit: {kit.stat().st_size:,} bytes ({kit.stat().st_size / 1024:.1f} KiB), {len(kit_modules())} modules")
        python = numpy_only_venv(Path(tmp))
        times = []
        for _ in range(5):
            start = time.perf_counter()
            subprocess.run([str(python), "-I", str(kit), "info"], capture_output=True, check=True, cwd=tmp)
            times.append(time.perf_counter() - start)
        print(f"info with only NumPy: median {statistics.median(times) * 1000:.0f} ms of 5 runs ({', '.join(f'{t * 1000:.0f}' for t in times)} ms)")
    files = [str(_source(m)) for m in kit_modules()]
    vermin = Path(sysconfig.get_path("scripts")) / "vermin"
    result = subprocess.run([str(vermin), "-t=3.8-", "--no-tips", "--violations", *files], capture_output=True, text=True)
    print(f"vermin -t=3.8-: exit {result.returncode}; " + " ".join(line.strip() for line in result.stdout.splitlines() if line.startswith(("Minimum", "Incompatible", "Target"))))
    print("\n| module | lines | imports outside rftrt |\n|---|---:|---|")
    for module in kit_modules():
        outside = sorted({name.split(".")[0] for name in module_imports(module)} - {"rftrt"})
        print(f"| {module} | {len(_source(module).read_text().splitlines())} | {', '.join(outside) or '–'} |")
    if args.coverage:
        print("\nstatements the device-side tests run (coverage, in-process):\n" + _coverage(files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
