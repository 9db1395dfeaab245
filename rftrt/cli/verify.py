"""``rf-verify``: a built engine against its bundle's ONNX Runtime reference; exit 0 pass, 1 mismatch, 2 bad input."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from . import parser, run
from .args import add_json_option


def verify_main(argv: Sequence[str] | None = None) -> int:
    """``rf-verify ENGINE --bundle BUNDLE``: run the engine on the golden images and judge its logits."""
    cli = parser(
        "rf-verify",
        "Run a TensorRT engine on its bundle's golden images and compare with the ONNX Runtime reference, "
        "with precision-aware tolerances, a NaN/Inf check and top-1 agreement. "
        "Exit code 0: within tolerance; 1: mismatch; 2: bad input.",
    )
    cli.add_argument("engine", metavar="ENGINE", help="engine file written by rf-build (its sidecar ENGINE.json is read if present)")
    cli.add_argument("--bundle", required=True, metavar="BUNDLE", help="the bundle the engine was built from")
    add_json_option(cli, "the result")
    cli.add_argument("--batch", type=int, metavar="N", help="run at batch N, cycling the golden images (default: the golden batch)")
    cli.add_argument("--cuda-graph", action="store_true", help="capture the enqueue in a CUDA graph (not for DLA engines)")

    def body(args: argparse.Namespace) -> int:
        from ..engines.verify import verify_engine
        from ..files import write_file_atomic

        result = verify_engine(
            args.engine, args.bundle, batch=args.batch, cuda_graph=args.cuda_graph, verbose=args.verbose
        )
        for line in result.lines():
            print(line)
        if args.json:
            write_file_atomic(Path(args.json), (json.dumps(result.as_dict(), indent=2, sort_keys=True) + "\n").encode())
        return 0 if result.passed else 1

    return run("rf-verify", cli, body, argv)
