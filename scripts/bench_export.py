#!/usr/bin/env python3
"""Wall time and peak memory of the README's main command, as a user runs it: a fresh process each
time, imports, model, export, passes, precision plan, validation and the bundle included.

    python scripts/bench_export.py [--runs 3] [-- rf-export arguments]

Default arguments: --model rf_b1 --fp16 --target orin. Prints each run (wall time, the process's
peak resident memory from ``wait4``) and the medians.
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
    times, peaks = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            out = Path(tmp) / f"run{run}"
            log = Path(tmp) / f"run{run}.log"
            start = time.perf_counter()
            with open(log, "w") as sink:
                proc = subprocess.Popen([exe, *args.rf_export_args, "--out", str(out)], stdout=sink, stderr=subprocess.STDOUT)
                _, status, usage = os.wait4(proc.pid, 0)
            elapsed = time.perf_counter() - start
            if os.waitstatus_to_exitcode(status) != 0:
                print(log.read_text(), file=sys.stderr)
                return 1
            times.append(elapsed)
            peaks.append(usage.ru_maxrss / 1024**2)  # KiB → GiB
            print(f"run {run + 1}: {elapsed:.2f} s, peak {peaks[-1]:.2f} GiB")
    print(f"rf-export {' '.join(args.rf_export_args)}: median {statistics.median(times):.2f} s, peak memory median "
          f"{statistics.median(peaks):.2f} GiB over {len(times)} runs ({os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
