"""``rf-triton``: an L40 bundle → a Triton Inference Server model repository, validated against
Triton's own schema; or ``--check`` an existing repository against its bundle."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from . import log, parser, run
from .args import add_json_option, batch_sizes, output_dir

_DESCRIPTION = (
    "Write a Triton model repository from an L40 bundle: the TensorRT plan's config.pbtxt with its version folder "
    "(the device kit's build places model.plan there), an ONNX Runtime variant, and a README; every config is "
    "validated with Triton's ModelConfig schema and against the bundle's build.json."
)


def add_serving_options(group: argparse._ArgumentGroup) -> None:
    """The serving options (rf-export --triton takes the same)."""
    group.add_argument("--max-batch", type=int, metavar="N", help="max_batch_size (default: the profile's max; never above it)")
    group.add_argument("--preferred-batch", type=batch_sizes, metavar="N[,N…]", help="dynamic batching's preferred sizes (default: the profile's opt and max)")
    group.add_argument("--queue-delay-us", type=int, metavar="US", help="dynamic batching's max queue delay in µs (default 100)")
    group.add_argument("--instances", type=int, metavar="N", help="instances of the plan per GPU group (default 1)")
    group.add_argument("--gpus", type=_gpu_indices, metavar="I[,I…]", help="GPU indices the plan's instances run on (default: every GPU)")


def _gpu_indices(text: str) -> list[int]:
    """argparse type of ``--gpus``: GPU indices (0 and up) separated by commas."""
    try:
        values = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"GPU indices must be integers separated by commas, got {text!r}") from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"GPU indices start at 0, got {text!r}")
    return values


def serving_options(args: argparse.Namespace):
    """The :class:`~rftrt.serving.ServingOptions` the arguments ask for."""
    from ..serving import ServingOptions

    given = {
        "max_batch_size": args.max_batch,
        "preferred_batch_sizes": tuple(args.preferred_batch) if args.preferred_batch else None,
        "max_queue_delay_us": args.queue_delay_us,
        "instance_count": args.instances,
        "gpus": tuple(args.gpus) if args.gpus else None,
    }
    return ServingOptions(**{k: v for k, v in given.items() if v is not None})


def triton_main(argv: Sequence[str] | None = None) -> int:
    """``rf-triton BUNDLE``: write (or ``--check``) the bundle's Triton model repository."""
    cli = parser("rf-triton", _DESCRIPTION)
    cli.add_argument("bundle", metavar="BUNDLE", help="an L40 bundle written by rf-export")
    out = cli.add_argument_group("output")
    out.add_argument("--out", metavar="DIR", type=output_dir("repository folder"), help="repository folder (default: BUNDLE-triton beside the bundle)")
    out.add_argument("--force", action="store_true", help="replace an existing repository")
    out.add_argument("--check", metavar="REPO", help="only validate the existing repository REPO against Triton's schema and the bundle")
    add_json_option(out, "the validation results")
    add_serving_options(cli.add_argument_group("serving"))

    def body(args: argparse.Namespace) -> int:
        from ..files import write_json
        from ..serving import check_repository, write_repository

        if args.check:
            report = check_repository(args.check, args.bundle)
        else:
            report = write_repository(args.bundle, args.out, options=serving_options(args), force=args.force, log=log)
            print(f"wrote {report.path}/ ({len(report.files) + 1} files with its manifest) in {report.seconds:.2f} s")
        for line in report.lines():
            print(line)
        if args.json:
            write_json(Path(args.json), report.as_dict())
        return 0

    return run("rf-triton", cli, body, argv)
