"""``rf-export``: PyTorch → ONNX → passes → precision plan → validation → engine or bundle."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from ..errors import RftrtError
from . import log, parser, run, warn
from .args import add_json_option, add_target_options, output_dir


def _information(args: argparse.Namespace) -> int:
    """--list-models, --list-targets, --print-config."""
    if args.list_models:
        from ..files import write_json
        from ..tools.zoo import format_zoo_table, zoo_rows

        rows = zoo_rows()
        print(format_zoo_table(rows))
        if args.json:
            write_json(Path(args.json), [r.as_dict() for r in rows])
        return 0
    from ..targets.batch import parse_batch
    from ..targets.profiles import format_target, format_targets_table, load_target

    if args.list_targets:
        print(format_targets_table())
        return 0
    batch = parse_batch(args.batch) if args.batch else None
    print(format_target(load_target(args.target, args.trt_version, args.dla, batch)))
    return 0


def _options(args: argparse.Namespace):
    from ..pipeline import ExportOptions

    return ExportOptions(
        model=args.model,
        target=args.target,
        precision="int8" if args.int8 else "fp16" if args.fp16 else "fp32",
        resolution=args.resolution,
        weights=args.weights,
        num_classes=args.num_classes,
        trt_version=args.trt_version,
        dla_core=args.dla,
        batch=args.batch,
        static=args.static,
        opset=args.opset,
        out_dir=args.out,
        force=args.force,
        calib_dir=args.calib_dir,
        calib_images=args.calib_images,
        calib_batch=args.calib_batch,
        calib_method=args.calib_method,
        triton=args.triton,
    )


def export_main(argv: Sequence[str] | None = None) -> int:
    """``rf-export``: PyTorch → ONNX → passes → precision plan → validation → engine or bundle."""
    cli = parser(
        "rf-export",
        "Export a ReduceFormer/EfficientViT model to a validated TensorRT deployment for a target.",
    )
    what = cli.add_argument_group("model")
    what.add_argument("--model", help="registry name, e.g. rf_b1 (see --list-models)")
    what.add_argument("--resolution", type=int, default=224, help="input size, a multiple of 32 ≥ 64 (default 224)")
    what.add_argument("--weights", metavar="FILE", help="checkpoint (official or timm naming); random weights without it")
    what.add_argument("--num-classes", type=int, default=1000)
    add_target_options(cli, dla="DLA core (Orin targets); makes the batch static and rewrites the network into DLA layers; GPU fallback only where the placement prediction says it is needed")
    how = cli.add_argument_group("export")
    precision = how.add_mutually_exclusive_group()
    precision.add_argument("--fp16", action="store_true", help="FP16 with the precision plan's FP32 islands")
    precision.add_argument("--int8", action="store_true", help="INT8 with FP16 for the rest (calibrated on --calib-dir)")
    how.add_argument("--batch", metavar="MIN:OPT:MAX", help="batch profile (default: the target's, 1:8:32); N for static")
    how.add_argument("--static", action="store_true", help="static batch (the profile's opt batch unless --batch N)")
    how.add_argument("--opset", type=int, help="ONNX opset (default 17, never above the target's ceiling)")
    calib = cli.add_argument_group("INT8 calibration")
    calib.add_argument("--calib-dir", metavar="DIR", help="calibration images (default: the bundled photographs, a smoke test)")
    calib.add_argument("--calib-images", type=int, default=512, metavar="N", help="images to use (default 512)")
    calib.add_argument("--calib-batch", type=int, default=8, metavar="B", help="batch size while collecting ranges")
    calib.add_argument("--calib-method", choices=("entropy", "percentile", "minmax"), help="range method (default percentile)")
    out = cli.add_argument_group("output")
    out.add_argument("--out", metavar="DIR", type=output_dir("bundle folder"), help="bundle directory (default rftrt_out/<model>-r<res>-<target>-trt<ver>-<precision>)")
    out.add_argument("--force", action="store_true", help="replace an existing output directory")
    out.add_argument("--triton", action="store_true", help="also write a Triton model repository beside the bundle (L40; rf-triton for its options)")
    add_json_option(out)
    info = cli.add_argument_group("information")
    info.add_argument("--list-models", action="store_true", help="build every model and print the zoo table")
    info.add_argument("--list-targets", action="store_true", help="print the target profiles")
    info.add_argument("--print-config", action="store_true", help="print the resolved target settings and exit")

    def body(args: argparse.Namespace) -> int:
        if args.list_models or args.list_targets or args.print_config:
            return _information(args)
        if not args.model:
            raise RftrtError("--model is required (e.g. --model rf_b1); see --list-models")
        from ..pipeline import run_export, write_report

        result = run_export(_options(args), log=log)
        for warning in result.warnings:
            warn(warning)
        if args.json:
            write_report(result, args.json)
        print("next:", *result.next_commands, sep="\n  ")
        return 0

    return run("rf-export", cli, body, argv)
