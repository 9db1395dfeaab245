"""``rf-inspect``: parameters, MACs, op histogram, memory traffic, time limits and DLA placement of a model."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from ..errors import RftrtError
from . import parser, run
from .args import add_json_option, batch_sizes, output_file


def _csv(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def inspect_main(argv: Sequence[str] | None = None) -> int:
    """``rf-inspect``: a look inside a model, before any device is involved."""
    cli = parser(
        "rf-inspect",
        "Parameters and MACs per stage beside the paper, the ONNX op histogram before/after the passes, the memory "
        "traffic per image, a lower bound and a model estimate of the time per batch on named GPUs (beside the paper's "
        "measurements), and the predicted DLA placement for a target.",
    )
    what = cli.add_argument_group("model")
    what.add_argument("--model", help="registry name, e.g. rf_b1 (optional with --onnx when its metadata names it)")
    what.add_argument("--resolution", type=int, default=224, help="input size (default 224)")
    what.add_argument("--onnx", metavar="FILE", help="inspect this ONNX (as exported) instead of exporting the model")
    how = cli.add_argument_group("analysis")
    how.add_argument("--target", help="predict the DLA placement on this target profile (e.g. orin)")
    how.add_argument("--dla", type=int, metavar="CORE", help="the DLA core of --target the network is built for (static batch, as rf-export --dla)")
    how.add_argument("--gpu", type=_csv, default=["orin", "l40", "h100", "h200"], metavar="GPU[,GPU…]", help="limits on these GPUs (hardware.toml; default orin,l40,h100,h200)")
    how.add_argument("--precision", choices=("fp16", "fp32"), default="fp16", help="element size of the traffic estimate and the DLA build (default fp16)")
    how.add_argument("--batch", type=batch_sizes, default=[1, 8, 32], metavar="N[,N…]", help="batch sizes of the limits (weights read once per batch; default 1,8,32)")
    how.add_argument("--summary", action="store_true", help="leave out the per-node DLA placement table")
    out = cli.add_argument_group("output")
    add_json_option(out, "everything")
    out.add_argument("--markdown", metavar="FILE", type=output_file("Markdown report"), help="write the report as Markdown")

    def body(args: argparse.Namespace) -> int:
        import onnx

        from ..targets.hardware import hardware
        from ..tools.inspect.report import format_inspect, inspect_model, write_inspect_json, write_inspect_markdown

        for key in args.gpu:
            hardware(key)  # unknown names fail before any work
        if not args.model and not args.onnx:
            raise RftrtError("--model is required (e.g. --model rf_b1), or give --onnx FILE")
        model = None
        if args.onnx:
            path = Path(args.onnx)
            if not path.is_file():
                raise RftrtError(f"{path} does not exist")
            try:
                model = onnx.load(str(path))
            except Exception as exc:  # noqa: BLE001 - protobuf raises several kinds
                raise RftrtError(f"{path}: not a readable ONNX model ({' '.join(str(exc).split())})") from None
        if args.dla is not None and not args.target:
            raise RftrtError("--dla needs --target (e.g. --target orin --dla 0)")
        report = inspect_model(args.model, args.resolution, model, args.target, tuple(args.gpu), args.precision, tuple(args.batch), args.dla)
        print(format_inspect(report, nodes=not args.summary))
        if args.json:
            write_inspect_json(report, args.json)
            print(f"wrote {args.json}")
        if args.markdown:
            write_inspect_markdown(report, args.markdown, nodes=not args.summary)
            print(f"wrote {args.markdown}")
        return 0

    return run("rf-inspect", cli, body, argv)
