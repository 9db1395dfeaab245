"""``rf-calib``: INT8-calibrate an exported FP32 ONNX → TensorRT calibration cache and Q/DQ ONNX."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import RftrtError
from . import log, parser, run, warn
from .args import add_json_option, add_target_options, output_dir

_FORMATS = {"cache": ("cache",), "qdq": ("qdq",), "both": ("cache", "qdq")}


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
        tensorrt_version=target.tensorrt_version,
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
        spec = BuildSpec(onnx=str(onnx_path), fp32_layers=tuple(result.plan.fp32_nodes), calibration_cache=str(files["cache"]), **common)
        commands.append(shlex.join(trtexec_build_command(spec)))
    if "typed" in files:
        spec = BuildSpec(onnx=str(files["typed"]), **common)
        commands.append(shlex.join(trtexec_build_command(spec)))
    elif "qdq" in files and not target.strongly_typed:
        spec = BuildSpec(onnx=str(files["qdq"]), fp32_layers=tuple(result.plan.fp32_nodes), **common)
        commands.append(shlex.join(trtexec_build_command(spec)) + "   # explicit Q/DQ (TensorRT 10.x)")
    return commands


def default_output_dir(onnx_path: Path) -> Path:
    """``<ONNX folder>/<name>.int8``, or beside the folder when it is a bundle: what rf-calib writes
    never lands inside a bundle, whose manifest would then refuse it."""
    folder = onnx_path.parent
    if (folder / "manifest.json").is_file():
        return folder.parent / f"{folder.name}.int8"
    return folder / f"{onnx_path.stem}.int8"


def _parser() -> argparse.ArgumentParser:
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
    out.add_argument("--out", metavar="DIR", type=output_dir("output folder"), help="output folder (default: <ONNX folder>/<ONNX name>.int8; beside a bundle, <bundle>.int8, never inside it)")
    out.add_argument("--force", action="store_true", help="recalibrate even if DIR holds a calibration of another model or data")
    add_json_option(out)
    return cli


def _check_arguments(args: argparse.Namespace):
    """Refuse bad combinations before any work; the resolved target."""
    from ..precision.cache import DEFAULT_ALGORITHM
    from ..precision.int8 import check_formats, default_formats
    from ..targets.profiles import load_target

    if args.calib_images < 1:
        raise RftrtError(f"--calib-images must be at least 1, got {args.calib_images}")
    if args.calib_batch < 1:
        raise RftrtError(f"--calib-batch must be at least 1, got {args.calib_batch}")
    if args.from_cache and args.calib_dir:
        raise RftrtError("--from-cache takes the ranges from the cache; it cannot be combined with --calib-dir")
    target = load_target(args.target, args.trt_version, args.dla)
    if args.cache_algorithm and target.strongly_typed:
        raise RftrtError(f"--cache-algorithm: TensorRT {target.release.version} on {target.name} is strongly typed and reads no calibration cache")
    formats = _FORMATS[args.format] if args.format else None
    check_formats(target, formats or default_formats(target), args.cache_algorithm or DEFAULT_ALGORITHM)
    return target, formats


def _from_cache(args: argparse.Namespace, model, target, onnx_path: Path, out_dir: Path) -> int:
    from ..precision.int8 import qdq_from_cache, write_renderings

    cache_file = Path(args.from_cache)
    if not cache_file.is_file():
        raise RftrtError(f"{cache_file}: no such calibration cache")
    rendered = qdq_from_cache(model, cache_file.read_text(encoding="utf-8", errors="replace"), target, str(cache_file))
    files = write_renderings(out_dir, onnx_path.stem, qdq_model=rendered.qdq_model, typed_model=rendered.typed_model)
    if rendered.internal:
        print(f"note: {len(rendered.internal)} TensorRT-internal tensors in the cache have no ONNX name and were left out")
    print(f"ranges from {cache_file} ({len(rendered.amax)} tensors); {rendered.qdq_report.summary()}")
    for name in files.values():
        print(f"wrote {name}")
    return 0


def _calibrate(args: argparse.Namespace, model, target, formats, onnx_path: Path, out_dir: Path) -> int:
    from ..data.images import Preprocess
    from ..data.sources import ImageSource
    from ..export.metadata import recorded_weights
    from ..files import write_json
    from ..precision.cache import DEFAULT_ALGORITHM
    from ..precision.int8 import calibrate, model_resolution, write_renderings
    from ..precision.store import CalibrationStore

    preprocess = Preprocess.for_resolution(model_resolution(model)[1])
    if args.calib_dir:
        source = ImageSource.from_folder(args.calib_dir, preprocess, args.calib_images)
    else:
        source = ImageSource.bundled(preprocess, min(args.calib_images, 8))
    store = CalibrationStore(out_dir)
    result = calibrate(
        model, source, target=target, method=args.calib_method, batch=args.calib_batch, percentile=args.percentile,
        trt_version=args.trt_version or target.release.version, algorithm=args.cache_algorithm or DEFAULT_ALGORITHM,
        formats=formats, store=store, force=args.force,
        log=log,
    )  # fmt: skip
    files = write_renderings(out_dir, onnx_path.stem, cache_text=result.cache_text, qdq_model=result.qdq_model, typed_model=result.typed_model)
    for line in result.report_lines(onnx_path.name):
        print(line)
    for path in [*files.values(), store.path]:
        print(f"wrote {path}")
    commands = _next_commands(model, result, onnx_path, out_dir, files)
    if commands:
        print("next (on the target):", *commands, sep="\n  ")
    if args.json:
        write_json(Path(args.json), {**result.as_dict(), "files": {k: str(v) for k, v in files.items()}, "record": str(store.path), "next": commands})
    if not result.passed:
        failed = next(c for c in result.checks if not c.passed)
        if recorded_weights(model) == "random":  # as in rf-export: 8-bit accuracy needs a trained model
            warn(f"INT8 check not enforced (random weights): {failed.line()}")
            return 0
        print(f"rf-calib: INT8 check failed: {failed.line()}", file=sys.stderr)
        return 1
    return 0


def calib_main(argv: Sequence[str] | None = None) -> int:
    """``rf-calib``: calibrate an exported FP32 ONNX for INT8 on a folder of images."""

    def body(args: argparse.Namespace) -> int:
        from ..export.onnx_export import load_onnx
        from ..files import check_output_dir
        from ..precision.int8 import check_fp32_model, model_resolution

        target, formats = _check_arguments(args)
        onnx_path = Path(args.onnx)
        model = load_onnx(args.onnx)
        _, height, width = model_resolution(model)
        check_fp32_model(model)
        if height != width:
            raise RftrtError(f"the ONNX takes {height}x{width} images; EfficientViT preprocessing gives square crops")
        out_dir = Path(args.out) if args.out else default_output_dir(onnx_path)
        if out_dir.exists() and not out_dir.is_dir():
            raise RftrtError(f"{out_dir} exists and is not a folder; choose another --out")
        check_output_dir(out_dir, "output folder")
        if args.from_cache:
            return _from_cache(args, model, target, onnx_path, out_dir)
        return _calibrate(args, model, target, formats, onnx_path, out_dir)

    return run("rf-calib", _parser(), body, argv)
