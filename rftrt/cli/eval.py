"""``rf-eval``: top-1/top-5 on an ImageNet-style folder, on PyTorch or an ONNX file (ONNX Runtime),
and agreement with the FP32 reference."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from ..errors import RftrtError
from . import parser, run, warn
from .args import add_json_option


def eval_main(argv: Sequence[str] | None = None) -> int:
    """``rf-eval``: accuracy on an ImageNet-style folder."""
    cli = parser(
        "rf-eval",
        "Top-1/top-5 accuracy on an ImageNet-style folder (one subfolder per class), on PyTorch (FP32) or an ONNX "
        "file on ONNX Runtime, with top-1 agreement against the FP32 reference.",
    )
    what = cli.add_argument_group("model")
    what.add_argument("--model", help="registry name (e.g. rf_b1) or rf_digits: the FP32 PyTorch model, also the reference for --onnx")
    what.add_argument("--weights", metavar="FILE", help="checkpoint for --model (random weights without it, except rf_digits)")
    what.add_argument("--num-classes", type=int, default=1000)
    what.add_argument("--resolution", type=int, help="input size (default: the ONNX's, rf_digits' 64, else 224)")
    what.add_argument("--onnx", metavar="FILE", help="evaluate this ONNX on ONNX Runtime (FP32, FP16 or INT8 Q/DQ)")
    what.add_argument("--reference-onnx", metavar="FILE", help="FP32 ONNX to measure --onnx's agreement against (default: --model in PyTorch)")
    what.add_argument("--engine", metavar="FILE", help="a TensorRT engine (on the device, where TensorRT is installed)")
    data = cli.add_argument_group("data")
    data.add_argument("--data", metavar="DIR", required=True, help="one subfolder of images per class; classes are the sorted folder names")
    data.add_argument("--class-map", metavar="FILE", help="folder → class index: JSON object, or text with one folder (or 'folder index') per line")
    data.add_argument("--limit", type=int, metavar="N", help="evaluate N images picked evenly over the sorted list (all classes represented)")
    data.add_argument("--batch", type=int, default=32)
    out = cli.add_argument_group("output")
    add_json_option(out, "the scores")

    def body(args: argparse.Namespace) -> int:
        from ..export.onnx_export import load_onnx
        from ..files import write_json
        from ..tools.evaluate import EvalRequest, evaluate

        if args.engine:
            try:
                import tensorrt  # noqa: F401
            except Exception:  # noqa: BLE001 - absent or broken, same answer
                raise RftrtError("--engine needs TensorRT and an NVIDIA GPU, not available here; run rf-eval --engine on the target") from None
            raise RftrtError("--engine evaluation is not wired in this version; evaluate the ONNX with --onnx")
        request = EvalRequest(
            data=args.data, model=args.model, weights=args.weights, num_classes=args.num_classes, resolution=args.resolution,
            onnx=args.onnx, reference_onnx=args.reference_onnx, class_map=args.class_map, limit=args.limit, batch=args.batch,
        )  # fmt: skip
        report = evaluate(request, load_onnx, warn=warn)
        for line in report.lines():
            print(line)
        if args.json:
            write_json(Path(args.json), report.as_dict())
        return 0

    return run("rf-eval", cli, body, argv)
