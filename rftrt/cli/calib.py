"""``rf-calib``: INT8-calibrate an exported FP32 ONNX → TensorRT calibration cache and Q/DQ ONNX."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import RftrtError
from . import parser, run
from .args import add_json_option, add_target_options

_FORMATS = {"cache": ("cache",), "qdq": ("qdq",), "both": ("cache", "qdq")}


def _load_onnx(path: str):
    import onnx

    file = Path(path)
    if not file.is_file():
        raise RftrtError(f"{file}: no such ONNX file")
    try:
        return onnx.load(str(file))
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError and others
        raise RftrtError(f"{file}: not an ONNX model ({' '.join(str(exc).split()) or type(exc).__name__})") from None


def _next_commands(model, result, onnx_path: Path, out: Path, files: dict[str, Path]) -> list[str]:
    """trtexec build lines for what was written: the FP32 ONNX with the cache (weakly typed), the typed
    Q/DQ ONNX (strongly typed), or the FP32 Q/DQ ONNX (explicit quantization on TensorRT 10.x)."""
    from ..engines.build_spec import BuildSpec
    from ..engines.trtexec import trtexec_build_command
    from ..precision.int8 import model_resolution
    from ..targets.batch import BatchProfile

    target = result.target
    static, height, _ = model_resolution(model)
    batch = BatchProfile(static, static, static) if static else target.batch
    commands = []
    common = dict(
        model=onnx_path.stem,
        resolution=height,
        target=target.name,
        tensorrt_version=target.release.version,
        dialect=target.release.dialect,
        input_name=model.graph.input[0].name,
        output_name=model.graph.output[0].name,
        batch=batch,
        precision="int8",
        dla_core=target.dla_core,
        workspace_mib=target.workspace_mib,
        builder_optimization_level=target.builder_optimization_level,
        engine=str(out / f"{onnx_path.stem}.int8.engine"),
        timing_cache=str(out / "timing.cache"),
    )
    if "cache" in files:
        spec = BuildSpec(onnx=str(onnx_path), fp32_layers=tuple(result.plan.weakly_typed_layers(model)), calibration_cache=str(files["cache"]), **common)
        commands.append(" ".join(trtexec_build_command(spec)))
    if "typed" in files:
        spec = BuildSpec(onnx=str(files["typed"]), **common)
        commands.append(" ".join(trtexec_build_command(spec)))
    elif "qdq" in files and not target.strongly_typed:
        spec = BuildSpec(onnx=str(files["qdq"]), fp32_layers=tuple(result.plan.weakly_typed_layers(model)), **common)
        commands.append(" ".join(trtexec_build_command(spec)) + "   # explicit Q/DQ (TensorRT 10.x)")
    return commands


def calib_main(argv: Sequence[str] | None = None) -> int:
    """``rf-calib``: calibrate an exported FP32 ONNX for INT8 on a folder of images."""
    from ..precision.ranges import DEFAULT_METHOD, DEFAULT_PERCENTILE, METHODS

    cli = parser(
        "rf-calib",
        "INT8-calibrate an exported FP32 ONNX on real images: a TensorRT calibration cache (TensorRT 8.6/10.x, "
        "DLA) and a Q/DQ ONNX (explicit quantization, TensorRT 10/11).",
    )
    cli.add_argument("onnx", metavar="ONNX", help="the FP32 ONNX (after rf-export's passes: a weakly typed or fp32 bundle's)")
    data = cli.add_argument_group("calibration data")
    data.add_argument("--calib-dir", metavar="DIR", help="folder of images (jpg/png/bmp/webp, recursive); default: the bundled photographs (a smoke test)")
    data.add_argument("--calib-images", type=int, default=512, metavar="N", help="images to use, picked evenly over the sorted folder (default 512)")
    data.add_argument("--calib-batch", type=int, default=8, metavar="B", help="images per ONNX Runtime run (default 8; a static-batch ONNX uses its own)")
    how = cli.add_argument_group("method")
    how.add_argument("--calib-method", choices=METHODS, default=DEFAULT_METHOD, help=f"range estimator (default {DEFAULT_METHOD}; docs/int8.md has the comparison)")
    how.add_argument("--percentile", type=float, default=DEFAULT_PERCENTILE, help=f"for --calib-method percentile (default {DEFAULT_PERCENTILE})")
    how.add_argument("--from-cache", metavar="FILE", help="take the ranges from an existing TensorRT cache instead of calibrating (renders its Q/DQ ONNX)")
    add_target_options(cli, trt_version="; the cache header carries it", dla="the engine will run on this DLA core (TensorRT 8.x DLA takes a cache only)")
    out = cli.add_argument_group("output")
    out.add_argument("--format", choices=sorted(_FORMATS), help="what to write (default: what the target's TensorRT takes: weakly typed both, strongly typed qdq)")
    out.add_argument("--cache-algorithm", default=None, metavar="NAME", help="calibrator named in the cache header (default EntropyCalibration2, what trtexec --calib and DLA read)")
    out.add_argument("--out", metavar="DIR", help="output folder (default: <ONNX folder>/<ONNX name>.int8)")
    out.add_argument("--force", action="store_true", help="recalibrate even if DIR holds a calibration of another model or data")
    add_json_option(out)

    def body(args: argparse.Namespace) -> int:
        from ..data.images import Preprocess
        from ..data.sources import ImageSource
        from ..files import write_file_atomic
        from ..precision.cache import DEFAULT_ALGORITHM
        from ..precision.int8 import calibrate, check_formats, check_fp32_model, default_formats, dynamic_batch, model_resolution, ranges_from_cache
        from ..precision.qdq import insert_qdq, qdq_tensors, render_typed
        from ..precision.store import CalibrationStore
        from ..targets.profiles import load_target

        if args.calib_images < 1:
            raise RftrtError(f"--calib-images must be at least 1, got {args.calib_images}")
        if args.calib_batch < 1:
            raise RftrtError(f"--calib-batch must be at least 1, got {args.calib_batch}")
        if args.from_cache and args.calib_dir:
            raise RftrtError("--from-cache takes the ranges from the cache; it cannot be combined with --calib-dir")
        target = load_target(args.target, args.trt_version, args.dla)
        algorithm = args.cache_algorithm or DEFAULT_ALGORITHM
        formats = _FORMATS[args.format] if args.format else None
        if args.cache_algorithm and target.strongly_typed:
            raise RftrtError(f"--cache-algorithm: TensorRT {target.release.version} on {target.name} is strongly typed and reads no calibration cache")
        check_formats(target, formats or default_formats(target), algorithm)
        onnx_path = Path(args.onnx)
        model = _load_onnx(args.onnx)
        static, height, width = model_resolution(model)
        check_fp32_model(model)
        if height != width:
            raise RftrtError(f"the ONNX takes {height}x{width} images; EfficientViT preprocessing gives square crops")
        out_dir = Path(args.out) if args.out else onnx_path.parent / f"{onnx_path.stem}.int8"
        if out_dir.exists() and not out_dir.is_dir():
            raise RftrtError(f"{out_dir} exists and is not a folder; choose another --out")
        header_version = args.trt_version or target.release.version
        files: dict[str, Path] = {}
        lines: list[str] = []

        if args.from_cache:
            cache_file = Path(args.from_cache)
            if not cache_file.is_file():
                raise RftrtError(f"{cache_file}: no such calibration cache")
            amax, internal = ranges_from_cache(cache_file.read_text(encoding="utf-8", errors="replace"), model, str(cache_file))
            from ..precision.plan import plan_precision

            plan = plan_precision(dynamic_batch(model), ImageSource.bundled(Preprocess.for_resolution(height)).load_all(), "bundled photographs")
            needed = [n for n in qdq_tensors(model, plan.fp32_nodes) if n not in amax]
            if needed:
                raise RftrtError(
                    f"{cache_file}: no scale for {len(needed)} tensors the Q/DQ ONNX quantizes (e.g. {needed[0]!r}); "
                    "the cache does not cover this model: recalibrate"
                )
            out_dir.mkdir(parents=True, exist_ok=True)
            qdq, report = insert_qdq(model, amax, plan.fp32_nodes)
            files["qdq"] = out_dir / f"{onnx_path.stem}.qdq.onnx"
            write_file_atomic(files["qdq"], qdq.SerializeToString())
            if target.strongly_typed:
                typed, _ = render_typed(qdq, plan.fp32_nodes)
                files["typed"] = out_dir / f"{onnx_path.stem}.qdq.fp16.onnx"
                write_file_atomic(files["typed"], typed.SerializeToString())
            if internal:
                print(f"note: {len(internal)} TensorRT-internal tensors in the cache have no ONNX name and were left out")
            print(f"ranges from {cache_file} ({len(amax)} tensors); {report.summary()}")
            for name in files.values():
                print(f"wrote {name}")
            return 0

        preprocess = Preprocess.for_resolution(height)
        if args.calib_dir:
            source = ImageSource.from_folder(args.calib_dir, preprocess, args.calib_images)
        else:
            source = ImageSource.bundled(preprocess, min(args.calib_images, 8))
        store = CalibrationStore(out_dir)
        result = calibrate(
            model,
            source,
            target=target,
            method=args.calib_method,
            batch=args.calib_batch,
            percentile=args.percentile,
            trt_version=header_version,
            algorithm=algorithm,
            formats=formats,
            store=store,
            force=args.force,
            log=lambda line: print(line, file=sys.stderr if line.startswith("warning") else sys.stdout),
        )
        if result.cache_text is not None:
            files["cache"] = out_dir / "calibration.cache"
            write_file_atomic(files["cache"], result.cache_text.encode())
        if result.qdq_model is not None:
            files["qdq"] = out_dir / f"{onnx_path.stem}.qdq.onnx"
            write_file_atomic(files["qdq"], result.qdq_model.SerializeToString())
        if result.typed_model is not None:
            files["typed"] = out_dir / f"{onnx_path.stem}.qdq.fp16.onnx"
            write_file_atomic(files["typed"], result.typed_model.SerializeToString())

        source_line = result.source.get("description", "")
        lines.append(f"calibrated {onnx_path.name}: {result.summary()}; data: {source_line}")
        lines.append(f"precision plan: {result.plan.summary()}")
        if result.qdq_report:
            lines.append(result.qdq_report.summary())
        if result.cache_text is not None:
            lines.append(f"cache: {result.cache_text.splitlines()[0]}, {len(result.cache_tensors)} tensors")
        for check in result.checks:
            lines.append(check.line())
        for line in lines:
            print(line)
        for path in files.values():
            print(f"wrote {path}")
        print(f"wrote {store.path}")
        commands = _next_commands(model, result, onnx_path, out_dir, files)
        if commands:
            print("next (on the target):", *commands, sep="\n  ")
        if args.json:
            report = {**result.as_dict(), "files": {k: str(v) for k, v in files.items()}, "record": str(store.path), "next": commands}
            write_file_atomic(Path(args.json), (json.dumps(report, indent=2, sort_keys=True) + "\n").encode())
        if not result.passed:
            failed = next(c for c in result.checks if not c.passed)
            print(f"rf-calib: INT8 check failed: {failed.line()}", file=sys.stderr)
            return 1
        return 0

    return run("rf-calib", cli, body, argv)

