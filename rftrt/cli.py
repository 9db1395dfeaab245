"""Command-line entry points. Each is a thin layer over the library API.

Errors that are the user's to fix are :class:`~rftrt.errors.RftrtError`: one line on stderr and exit
code 2, with the traceback only under ``--verbose``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from . import __version__
from .errors import RftrtError


def _run(prog: str, parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace], int], argv: Sequence[str] | None) -> int:
    args = parser.parse_args(argv)
    try:
        return body(args)
    except RftrtError as exc:
        if getattr(args, "verbose", False):
            raise
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--verbose", action="store_true", help="show tracebacks and debug output")
    return parser


def export_main(argv: Sequence[str] | None = None) -> int:
    """``rf-export``: PyTorch → ONNX → passes → precision plan → validation → engine or bundle."""
    parser = _parser("rf-export", export_main.__doc__.split(": ", 1)[1])
    parser.add_argument("--list-models", action="store_true", help="build every model and print the zoo table")
    parser.add_argument("--model", help="registry name, e.g. rf_b1 (see --list-models)")
    parser.add_argument("--json", metavar="FILE", help="also write the result as JSON")

    def body(args: argparse.Namespace) -> int:
        if args.list_models:
            from .tools.zoo import format_zoo_table, zoo_rows

            rows = zoo_rows()
            print(format_zoo_table(rows))
            if args.json:
                with open(args.json, "w", encoding="utf-8") as f:
                    json.dump([r.as_dict() for r in rows], f, indent=2)
            return 0
        raise RftrtError("export is not implemented yet; use --list-models")

    return _run("rf-export", parser, body, argv)
