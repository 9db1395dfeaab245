"""Argument groups more than one command takes, defined once so that their flags and help texts
agree everywhere (``--target``, ``--trt-version``, ``--dla``, batch-size lists, ``--json``)."""

from __future__ import annotations

import argparse

__all__ = ["add_target_options", "batch_sizes", "add_json_option", "output_file", "output_dir"]


def add_target_options(
    cli: argparse.ArgumentParser,
    *,
    default: str | None = "orin",
    purpose: str = "",
    dla: str | None = None,
    trt_version: str = "",
) -> argparse._ArgumentGroup:
    """The ``target`` group: ``--target`` (default ``default``), ``--trt-version`` and, with a
    ``dla`` help text, ``--dla``. ``purpose`` and ``trt_version`` add what the command does with them."""
    group = cli.add_argument_group("target")
    default_text = f"default {default}; " if default else ""
    group.add_argument("--target", default=default, help=f"target profile{purpose} ({default_text}rf-export --list-targets)")
    group.add_argument(
        "--trt-version",
        metavar="X.Y[.Z]",
        help="TensorRT release on the target, e.g. 8.6 or 8.6.12 (default: the profile's)" + trt_version,
    )
    if dla is not None:
        group.add_argument("--dla", type=int, metavar="CORE", help=dla)
    return group


def batch_sizes(text: str) -> list[int]:
    """argparse type of ``N[,N…]``: positive batch sizes separated by commas."""
    parts = [x.strip() for x in text.split(",")]
    if "" in parts:
        raise argparse.ArgumentTypeError(f"batch sizes must be integers separated by single commas, got {text!r}")
    try:
        values = [int(x) for x in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"batch sizes must be integers separated by commas, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"batch sizes must be positive integers, got {text!r}")
    return values


def output_file(what: str):
    """argparse type of an output file: refused at once (one line) if it could not be written, so no
    command does its work first and fails at the end."""

    def check(text: str) -> str:
        from ..errors import RftrtError
        from ..files import check_output_file

        try:
            check_output_file(text, what)
        except RftrtError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    return check


def output_dir(what: str):
    """argparse type of an output folder (made if missing): refused at once if it could not be made."""

    def check(text: str) -> str:
        from ..errors import RftrtError
        from ..files import check_output_dir

        try:
            check_output_dir(text, what)
        except RftrtError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    return check


def add_json_option(group: argparse._ArgumentGroup, what: str = "the run's report") -> None:
    group.add_argument("--json", metavar="FILE", type=output_file("JSON report"), help=f"also write {what} as JSON")
