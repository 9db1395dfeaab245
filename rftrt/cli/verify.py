"""``rf-verify``: a built engine against its bundle's ONNX Runtime reference; exit 0 pass, 1 mismatch, 2 bad input."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from . import log, parser, run
from .args import add_json_option

_DESCRIPTION = (
    "Run a TensorRT engine on its bundle's golden images and compare with the ONNX Runtime reference, "
    "with precision-aware tolerances, a NaN/Inf check and top-1 agreement. "
    "Exit code 0: within tolerance; 1: mismatch; 2: bad input."
)


def add_verify_arguments(cli: argparse.ArgumentParser, bundle_default: str | None = None) -> None:
    """rf-verify's arguments (the kit's ``verify`` takes the same; its engine defaults to the
    bundle's ``<model>.engine`` and its bundle to its folder)."""
    if bundle_default is None:
        cli.add_argument("engine", metavar="ENGINE", help="engine file written by rf-build (its sidecar ENGINE.json is read if present)")
        cli.add_argument("--bundle", required=True, metavar="BUNDLE", help="the bundle the engine was built from")
    else:
        cli.add_argument("engine", metavar="ENGINE", nargs="?", help="engine file (default: BUNDLE/<model>.engine, what build writes)")
        cli.add_argument("--bundle", default=bundle_default, metavar="BUNDLE", help="the bundle the engine was built from (default: the folder the kit is in)")
    add_json_option(cli, "the result")
    cli.add_argument("--batch", type=int, metavar="N", help="run at batch N, cycling the golden images (default: the golden batch)")
    cli.add_argument("--cuda-graph", action="store_true", help="capture the enqueue in a CUDA graph (not for DLA engines)")


def verify_command(args: argparse.Namespace) -> int:
    from ..engines.bundle import load_bundle_spec
    from ..engines.verify import verify_engine
    from ..errors import RftrtError
    from ..files import write_json

    if args.batch is not None and args.batch < 1:
        raise RftrtError(f"--batch must be at least 1, got {args.batch}")
    engine = args.engine or str(Path(args.bundle) / load_bundle_spec(Path(args.bundle)).engine)
    result = verify_engine(engine, args.bundle, batch=args.batch, cuda_graph=args.cuda_graph, verbose=args.verbose, log=log)
    for line in result.lines():
        print(line)
    if args.json:
        write_json(Path(args.json), result.as_dict())
    return 0 if result.passed else 1


def verify_main(argv: Sequence[str] | None = None) -> int:
    """``rf-verify ENGINE --bundle BUNDLE``: run the engine on the golden images and judge its logits."""
    cli = parser("rf-verify", _DESCRIPTION)
    add_verify_arguments(cli)
    return run("rf-verify", cli, verify_command, argv)
