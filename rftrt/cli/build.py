"""``rf-build``: turn an rf-export bundle into a TensorRT engine, on the device."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Callable, Sequence

from . import log, parser, run
from .args import output_file

_DESCRIPTION = (
    "Build a bundle's TensorRT engine here, on the target device, with the TensorRT release the bundle is for. "
    "Writes the plain plan and a sidecar <engine>.json (versions, GPU, hashes, flags, per-layer precision)."
)


def add_build_arguments(cli: argparse.ArgumentParser, bundle_default: str | None = None) -> None:
    """rf-build's arguments (the kit's ``build`` takes the same, its bundle defaulting to its folder)."""
    if bundle_default is None:
        cli.add_argument("bundle", metavar="BUNDLE", help="bundle directory written by rf-export")
    else:
        cli.add_argument("bundle", metavar="BUNDLE", nargs="?", default=bundle_default, help="bundle directory (default: the folder the kit is in)")
    cli.add_argument("--out", metavar="FILE", type=output_file("engine"), help="engine file (default: BUNDLE/<model>.engine); the sidecar is FILE.json")
    cli.add_argument(
        "--timing-cache", metavar="FILE", help="TensorRT timing cache to read if present and write back (default: BUNDLE/timing.cache)"
    )
    cli.add_argument(
        "--allow-other-gpu",
        action="store_true",
        help="build even if this GPU's architecture is not the target's (the engine then only runs on GPUs like this one)",
    )


def build_command(args: argparse.Namespace, next_command: Callable[[str, str], str]) -> int:
    """Build the engine; ``next_command(engine, bundle)`` is the verification to suggest."""
    from ..engines.build import build_bundle

    result = build_bundle(args.bundle, out=args.out, timing_cache=args.timing_cache, allow_other_gpu=args.allow_other_gpu, verbose=args.verbose, log=log)
    print(f"built {result.summary()}")
    print("next:", next_command(str(result.engine), args.bundle), sep="\n  ")
    return 0


def build_main(argv: Sequence[str] | None = None) -> int:
    """``rf-build BUNDLE``: verify the bundle, check TensorRT and the GPU, build, write engine + sidecar."""
    cli = parser("rf-build", _DESCRIPTION)
    add_build_arguments(cli)
    return run("rf-build", cli, lambda args: build_command(args, lambda engine, bundle: shlex.join(["rf-verify", engine, "--bundle", bundle])), argv)
