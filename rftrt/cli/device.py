"""``rftrt-device`` (in every bundle as ``rftrt-device.pyz``): on the device, what the bundle is and
what the device has (``info``), the engine built (``build``), checked against the bundle's reference
(``verify``) and timed (``bench``), with nothing installed but what the device ships.

``build`` and ``verify`` are ``rf-build`` and ``rf-verify`` with the bundle defaulting to the folder
the kit is in. Each command refuses where TensorRT or a GPU is missing, with one line and exit code 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from . import parser, run
from .args import add_json_option, batch_sizes
from .build import add_build_arguments, build_command
from .verify import add_verify_arguments, verify_command

__all__ = ["main", "kit_folder"]

PROG = "rftrt-device"


def kit_folder() -> Path:
    """The folder the kit sits in (run as ``python3 rftrt-device.pyz``), else the current folder."""
    archive = Path(__file__).resolve().parents[2]  # …/rftrt-device.pyz/rftrt/cli/device.py
    return archive.parent if archive.is_file() else Path.cwd()


def _kit_command(archive: str) -> str:
    return f"python3 {archive}" if archive.endswith(".pyz") else PROG


def _info(args: argparse.Namespace) -> int:
    from ..device.info import describe
    from ..files import write_json

    info = describe(args.bundle)
    for line in info.lines():
        print(line)
    if args.json:
        write_json(Path(args.json), info.as_dict())
    return 0


def _bench(args: argparse.Namespace) -> int:
    from ..device.bench import bench_bundle
    from ..files import write_json

    timing = {k: getattr(args, k) for k in ("warmup", "rounds", "iterations") if getattr(args, k) is not None}
    result = bench_bundle(args.bundle, args.engine, args.batch, include_copies=args.copies == "include", **timing)
    for line in result.lines():
        print(line)
    if args.json:
        write_json(Path(args.json), result.as_dict())
    return 0


def _parser(folder: str, kit: str) -> argparse.ArgumentParser:
    cli = parser(PROG, __doc__.split("\n\n")[0])
    commands = cli.add_subparsers(dest="command", required=True, metavar="COMMAND")
    info = commands.add_parser("info", help="what the bundle is, what this device has, whether they match (exit 0 even without TensorRT)")
    info.add_argument("--bundle", default=folder, metavar="BUNDLE", help="the bundle (default: the folder the kit is in)")
    add_json_option(info, "the report")
    add_build_arguments(commands.add_parser("build", help="build the bundle's engine (what rf-build does)"), folder)
    add_verify_arguments(commands.add_parser("verify", help="the engine against the bundle's reference (what rf-verify does)"), folder)
    bench = commands.add_parser("bench", help="latency and throughput at the profile's batch sizes (CUDA events, CUDA graphs off DLA)")
    bench.add_argument("engine", metavar="ENGINE", nargs="?", help="engine file (default: BUNDLE/<model>.engine)")
    bench.add_argument("--bundle", default=folder, metavar="BUNDLE", help="the bundle (default: the folder the kit is in)")
    bench.add_argument("--batch", type=batch_sizes, metavar="N[,N…]", help="batch sizes (default: the profile's min, opt and max)")
    bench.add_argument("--copies", choices=("include", "exclude"), default="exclude", help="time host↔device copies too (default: exclude)")
    for name in ("warmup", "rounds", "iterations"):
        bench.add_argument(f"--{name}", type=int, metavar="N", help=f"{name} (default: rf-bench's)")
    add_json_option(bench, "the results")
    for sub in (info, bench, *(commands.choices[c] for c in ("build", "verify"))):
        sub.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    cli.set_defaults(kit=kit)
    return cli


def main(argv: Sequence[str] | None = None, archive: str = PROG) -> int:
    """Run one kit command; ``archive`` is how the kit was started (for the next commands it prints)."""
    kit = _kit_command(archive)
    commands = {
        "info": _info,
        "build": lambda args: build_command(args, lambda engine, bundle: f"{kit} verify"),
        "verify": verify_command,
        "bench": _bench,
    }
    return run(PROG, _parser(str(kit_folder()), kit), lambda args: commands[args.command](args), argv)
