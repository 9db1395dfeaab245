#!/usr/bin/env python3
"""Wall time of the README's main command, as a user runs it: a fresh process each time, imports,
model, export, passes, precision plan, validation and the bundle included.

    python scripts/bench_export.py [--runs 3] [-- rf-export arguments]

Default arguments: --model rf_b1 --fp16 --target orin. Prints each run and the median; the issue's
budget is 45 s on a 2-core CI machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT = ["--model", "rf_b1", "--fp16", "--target", "orin"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("rf_export_args", nargs="*", default=DEFAULT)
    args = parser.parse_args()
    exe = shutil.which("rf-export", path=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    if exe is None:
        print("rf-export not found: install the project first (make venv)", file=sys.stderr)
        return 2
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            out = Path(tmp) / f"run{run}"
            start = time.perf_counter()
            proc = subprocess.run([exe, *args.rf_export_args, "--out", str(out)], capture_output=True, text=True)
            elapsed = time.perf_counter() - start
            if proc.returncode != 0:
                print(proc.stdout + proc.stderr, file=sys.stderr)
                return proc.returncode
            times.append(elapsed)
            print(f"run {run + 1}: {elapsed:.2f} s")
    print(f"rf-export {' '.join(args.rf_export_args)}: median {statistics.median(times):.2f} s over {len(times)} runs "
          f"({os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
