#!/usr/bin/env python3
"""Extract the public Python API names of TensorRT from its PyPI "bindings" wheels.

Output: one small JSON file per TensorRT version, ``trt-<version>.json``::

    {
      "tensorrt_version": "10.3.0",
      "wheel": "tensorrt_cu12_bindings-10.3.0-cp311-none-manylinux_2_17_x86_64.whl",
      "wheel_sha256": "...",
      "python": "3.11",
      "method": "...",                       # one line saying how the names were obtained
      "classes":   {"IBuilderConfig": ["add_optimization_profile", ...], ...},
      "bases":     {"IConvolutionLayer": ["ILayer"], ...},
      "enums":     {"BuilderFlag": ["FP16", ...], "ILogger.Severity": [...], ...},
      "functions": ["get_plugin_registry", "init_libnvinfer_plugins", ...],
      "constants": ["bfloat16", "float16", "float32", ...]
    }

The files are used by the project's tests as API-conformance data: code that
calls ``trt.IBuilderConfig.set_memory_pool_limit`` or uses
``trt.BuilderFlag.FP16`` can be checked against what each TensorRT release
actually exposes, without TensorRT being installed.

Usage (re-run from the repository root; needs network access to PyPI)::

    python3 scripts/extract_trt_api.py --out rftrt/engines/data/trt_api
    python3 scripts/extract_trt_api.py --out out/trt_api tensorrt-cu12-bindings==10.8.0.43
    python3 scripts/extract_trt_api.py --check-only --out rftrt/engines/data/trt_api

Standard library only; ``pip`` is called as a subprocess to download wheels.

How the names are obtained
--------------------------
The ``tensorrt*-bindings`` wheels hold a pybind11 extension linked against
the TensorRT runtime libraries, which are not in the wheel and are large.
Statically scanning the ``.so`` for strings finds every name, but cannot say
reliably which class a method or which enum a member belongs to: pybind11
builds signatures and the ``Members:`` blocks of enum docstrings at import
time, and the string literals are not grouped by class in ``.rodata``.  So
this script does not guess; it imports the real module.  Each step is a
module of ``scripts/trt_api/``, whose docstring explains it:

1. ``wheels``: ``pip download`` the wheel for the Python version of the
   interpreter that will import it (``--python``, default: this one), record
   its SHA-256 and unpack it as a package named ``tensorrt``.
2. ``elf`` and ``introspect``: read the extension's ELF dynamic section, write
   stub libraries named like the missing TensorRT libraries whose every
   function traps, import ``tensorrt`` against them in a child process and
   walk the module with ``dir()``.  A successful import proves that the
   module initialiser made no call into TensorRT, so what ``dir()`` sees is
   exactly what a user of that release sees after ``import tensorrt``.
3. ``extract``: cross-check every name against the strings of the ``.so``
   and drop the loop variables ``__init__.py`` leaks; ``record`` writes the
   file.
4. ``known_facts``: check each record against the names known independently
   (``rftrt/engines/data/trt_api/known_facts.json``: e.g. ``BuilderFlag.FP16``
   exists in 8.6/10.x and not in 11.x).  Any failure stops the script before
   anything is written.

Limitations: needs Linux x86-64 with glibc and a CPython version for which
the wheel exists (``tensorrt-bindings==8.6.1`` has no cp312 wheel; 3.11 is
the newest that all four recorded releases have; use ``--python`` to point at
such an interpreter).  Names that exist only on other platforms or in other
build flavours (e.g. Windows-only code paths) are not seen.  Only names are recorded, not
signatures or argument names.  Output is deterministic (sorted keys and
lists); re-running with the same interpreter version gives byte-identical
files.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from trt_api.extract import extract
from trt_api.known_facts import check_known, load_known_facts
from trt_api.log import log
from trt_api.record import record_text
from trt_api.wheels import python_version_of

# The releases recorded in rftrt/engines/data/trt_api (pinned so that a re-run
# reproduces the checked-in files; pass other specs on the command line).
DEFAULT_SPECS = [
    "tensorrt-bindings==8.6.1",  # TensorRT 8.6 GA (only 8.6.x on PyPI)
    "tensorrt-cu12-bindings==10.3.0",  # newest (only) 10.3.x on PyPI
    "tensorrt-cu12-bindings==10.16.1.11",  # newest 10.x on PyPI
    "tensorrt-cu13-bindings==11.4.0.106",  # newest 11.x on PyPI
]


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("specs", nargs="*", default=DEFAULT_SPECS,
                    help="pip requirement specs of bindings wheels (default: the recorded releases)")
    ap.add_argument("--out", type=Path, default=Path("rftrt/engines/data/trt_api"),
                    help="output directory for trt-<version>.json")
    ap.add_argument("--python", default=sys.executable,
                    help="CPython interpreter that imports the wheel (its version selects the wheel)")
    ap.add_argument("--check-only", action="store_true",
                    help="only run the known-name checks on the JSON files already in --out")
    ap.add_argument("--no-checks", action="store_true",
                    help="write the files even if the known-name checks fail (they are still printed)")
    ap.add_argument("--keep-temp", action="store_true", help="keep the temporary directory")
    return ap.parse_args()


def check_recorded(out: Path, facts: dict[str, dict[int, bool]]) -> int:
    """Check the records already in `out` against the known facts; the exit status."""
    bad = 0
    for path in sorted(out.glob("trt-*.json")):
        fails = check_known(json.loads(path.read_text()), facts)
        log(f"{path.name}: {'OK' if not fails else 'FAILED'}")
        for f in fails:
            log("  " + f)
        bad += bool(fails)
    return 1 if bad else 0


def summary(api: dict, fails: list[str]) -> str:
    n_members = sum(len(v) for v in api["classes"].values())
    n_enum = sum(len(v) for v in api["enums"].values())
    return (f"  TensorRT {api['tensorrt_version']}: {len(api['classes'])} classes "
            f"({n_members} member names), {len(api['enums'])} enums ({n_enum} members), "
            f"{len(api['functions'])} functions, {len(api['constants'])} constants; "
            f"known-name checks: {'OK' if not fails else 'FAILED: ' + '; '.join(fails)}")


def extract_all(args: argparse.Namespace, facts: dict[str, dict[int, bool]]) -> list[dict]:
    """The checked record of each release in ``args.specs``, in a temporary directory."""
    pyver = python_version_of(args.python)
    results = []
    tmp = Path(tempfile.mkdtemp(prefix="trt_api_"))
    try:
        for i, spec in enumerate(args.specs):
            api = extract(spec, args.python, pyver, tmp / str(i))
            fails = check_known(api, facts)
            if fails and not args.no_checks:
                raise SystemExit(f"{spec}: known-name checks failed:\n  " + "\n  ".join(fails))
            log(summary(api, fails))
            results.append(api)
    finally:
        if args.keep_temp:
            log(f"temporary files kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return results


def main() -> int:
    args = parse_args()
    facts = load_known_facts()
    if args.check_only:
        return check_recorded(args.out, facts)
    if not (sys.platform.startswith("linux") and os.uname().machine == "x86_64"):
        raise SystemExit("this tool needs Linux x86-64 (the wheels' extension is imported)")
    results = extract_all(args, facts)
    args.out.mkdir(parents=True, exist_ok=True)
    for api in results:
        path = args.out / f"trt-{api['tensorrt_version']}.json"
        path.write_text(record_text(api))
        log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
