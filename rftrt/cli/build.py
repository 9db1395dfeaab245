"""``rf-build``: turn an rf-export bundle into a TensorRT engine, on the device."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from . import parser, run


def build_main(argv: Sequence[str] | None = None) -> int:
    """``rf-build BUNDLE``: verify the bundle, check TensorRT and the GPU, build, write engine + sidecar."""
    cli = parser(
        "rf-build",
        "Build a bundle's TensorRT engine here, on the target device, with the TensorRT release the bundle is for. "
        "Writes the plain plan and a sidecar <engine>.json (versions, GPU, hashes, flags, per-layer precision).",
    )
    cli.add_argument("bundle", metavar="BUNDLE", help="bundle directory written by rf-export")
    cli.add_argument("--out", metavar="FILE", help="engine file (default: BUNDLE/<model>.engine); the sidecar is FILE.json")
    cli.add_argument(
        "--timing-cache", metavar="FILE", help="TensorRT timing cache to read if present and write back (default: BUNDLE/timing.cache)"
    )
    cli.add_argument(
        "--allow-other-gpu",
        action="store_true",
        help="build even if this GPU's architecture is not the target's (the engine then only runs on GPUs like this one)",
    )

    def body(args: argparse.Namespace) -> int:
        from ..engines.build import build_bundle

        result = build_bundle(
            args.bundle,
            out=args.out,
            timing_cache=args.timing_cache,
            allow_other_gpu=args.allow_other_gpu,
            verbose=args.verbose,
        )
        print(f"built {result.summary()}")
        print("next:", f"rf-verify {result.engine} --bundle {args.bundle}", sep="\n  ")
        return 0

    return run("rf-build", cli, body, argv)
