"""Command-line entry points, one module per command, each a thin layer over the library API.

Errors that are the user's to fix are :class:`~rftrt.errors.RftrtError`: one line on stderr and exit
code 2, with the traceback only under ``--verbose``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .. import __version__
from ..errors import RftrtError


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``prog: error: message`` and exit code 2, no usage dump."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def run(prog: str, parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace], int], argv: Sequence[str] | None) -> int:
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


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    """A parser with the options every command has (--version, --verbose)."""
    parser = _Parser(prog=prog, description=description)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--verbose", action="store_true", help="show tracebacks and debug output")
    return parser
