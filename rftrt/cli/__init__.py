"""Command-line entry points, one module per command, each a thin layer over the library API.

One convention for every command:

- errors that are the user's to fix are :class:`~rftrt.errors.RftrtError`: one line on stderr and exit
  code 2; ``--verbose`` adds the traceback above that line, and the exit code stays 2;
- warnings go to stderr (``warning: …``), results to stdout;
- output piped into a command that stops reading (``rf-export … | head``) does not abort the work:
  the rest of the output is dropped, the command finishes, and its exit code is its own;
- SIGTERM (a CI job killed at its time limit) is handled like Ctrl-C: the work stops where it is,
  what it had begun writing is removed, and the exit code is 143 (130 for Ctrl-C).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence

from .. import __version__
from ..errors import RftrtError

__all__ = ["run", "parser", "warn", "log"]


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``prog: error: message`` and exit code 2, no usage dump."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class _ClosedPipeSafe:
    """stdout that stops writing, silently, once its reader has gone (BrokenPipeError)."""

    def __init__(self, stream) -> None:
        self._stream, self.closed_reader = stream, False

    def write(self, text: str) -> int:
        if not self.closed_reader:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._drop()
        return len(text)

    def flush(self) -> None:
        if not self.closed_reader:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._drop()

    def _drop(self) -> None:
        self.closed_reader = True
        # Python flushes stdout again at exit; point the file descriptor at /dev/null so that flush is quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())
        os.close(devnull)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


class _Terminated(BaseException):
    """SIGTERM, raised where the process was, so that every ``finally`` and cleanup runs."""


def _raise_terminated(signum, frame) -> None:
    raise _Terminated()


def warn(message: str) -> None:
    """A warning, on stderr."""
    print(f"warning: {message}", file=sys.stderr)


def log(line: str) -> None:
    """A line of a command's progress: on stdout, or on stderr when it is a warning (the library's
    ``log`` callbacks are given this)."""
    print(line, file=sys.stderr if line.startswith("warning:") else sys.stdout)


def run(prog: str, parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace], int], argv: Sequence[str] | None) -> int:
    args = parser.parse_args(argv)
    stdout = sys.stdout
    if not isinstance(stdout, _ClosedPipeSafe) and hasattr(stdout, "fileno"):
        sys.stdout = _ClosedPipeSafe(stdout)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if main_thread else None
    try:
        return body(args)
    except RftrtError as exc:
        if getattr(args, "verbose", False):
            traceback.print_exc()
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except _Terminated:
        print(f"{prog}: terminated", file=sys.stderr)
        return 143
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
        if isinstance(sys.stdout, _ClosedPipeSafe):
            sys.stdout.flush()
            sys.stdout = stdout


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    """A parser with the options every command has (--version, --verbose)."""
    parser = _Parser(prog=prog, description=description)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--verbose", action="store_true", help="show tracebacks and debug output")
    return parser
