"""``rf-eval``: top-1/top-5 on an ImageNet-style folder, on PyTorch or an ONNX file (ONNX Runtime),
and agreement with the FP32 reference."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import RftrtError
from . import parser, run
from .args import add_json_option

#: ``--model`` name of the reduced ReduceFormer trained on scikit-learn's digits (rftrt/data/digits_rf.pt).
DIGITS_MODEL = "rf_digits"


def read_class_map(path: Path) -> dict[str, int]:
    """Folder name → class index, from JSON (``{"n01440764": 0, …}``) or text (one folder per line,
    in index order, or ``folder index`` per line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RftrtError(f"{path}: cannot read the class map ({exc.strerror})") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise RftrtError(f"{path}: not JSON ({exc})") from None
        if not isinstance(data, dict) or not all(isinstance(v, int) and not isinstance(v, bool) for v in data.values()):
            raise RftrtError(f"{path}: expected a JSON object mapping folder names to integer class indices")
        return {str(k): int(v) for k, v in data.items()}
    mapping: dict[str, int] = {}
    for number, raw in enumerate(line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")):
        parts = raw.split()
        if len(parts) == 1:
            mapping[parts[0]] = number
        elif len(parts) == 2 and parts[1].lstrip("-").isdigit():
            mapping[parts[0]] = int(parts[1])
        else:
            raise RftrtError(f"{path}: line {raw[:60]!r} is not 'folder' or 'folder index'")
    return mapping


def labelled_images(directory: Path, class_map: dict[str, int] | None) -> tuple[list[tuple[Path, int]], list[str], list[str]]:
    """(path, label) for every image under ``directory/<class>/``, sorted; the class folder names in
    index order; warnings (empty class folders)."""
    from ..data.images import IMAGE_SUFFIXES

    if not directory.is_dir():
        raise RftrtError(f"{directory}: no such directory")
    folders = sorted(entry.name for entry in directory.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    if not folders:
        raise RftrtError(f"{directory}: no class folders; expected one subfolder of images per class (ImageNet layout)")
    if class_map is None:
        class_map = {name: index for index, name in enumerate(folders)}
    else:
        unknown = [name for name in folders if name not in class_map]
        if unknown:
            raise RftrtError(f"{directory}: class folder {unknown[0]!r} (and {len(unknown) - 1} more) not in the class map")
    items: list[tuple[Path, int]] = []
    warnings = []
    empty = []
    for name in folders:
        found = []
        for root, dirs, files in os.walk(directory / name):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found += [Path(root, f) for f in files if not f.startswith(".") and f.lower().endswith(IMAGE_SUFFIXES)]
        if not found:
            empty.append(name)
        items += [(path, class_map[name]) for path in sorted(found)]
    if empty:
        warnings.append(f"{len(empty)} class folders hold no images (e.g. {empty[0]!r})")
    if not items:
        raise RftrtError(f"{directory}: no image files ({', '.join(IMAGE_SUFFIXES)}) in its {len(folders)} class folders")
    names = [name for name, _ in sorted(class_map.items(), key=lambda kv: kv[1])]
    return items, names, warnings


def eval_main(argv: Sequence[str] | None = None) -> int:
    """``rf-eval``: accuracy on an ImageNet-style folder."""
    cli = parser(
        "rf-eval",
        "Top-1/top-5 accuracy on an ImageNet-style folder (one subfolder per class), on PyTorch (FP32) or an ONNX "
        "file on ONNX Runtime, with top-1 agreement against the FP32 reference.",
    )
    what = cli.add_argument_group("model")
    what.add_argument("--model", help=f"registry name (e.g. rf_b1) or {DIGITS_MODEL}: the FP32 PyTorch model, also the reference for --onnx")
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
        import numpy as np

        from ..data.images import Preprocess, load_image
        from ..data.sources import spaced_indices
        from ..export.onnxrt import onnx_logits
        from ..precision.accuracy import score, torch_logits
        from ..precision.int8 import model_resolution

        if args.engine:
            try:
                import tensorrt  # noqa: F401
            except Exception:  # noqa: BLE001 - absent or broken, same answer
                raise RftrtError("--engine needs TensorRT and an NVIDIA GPU, not available here; run rf-eval --engine on the target") from None
            raise RftrtError("--engine evaluation is not wired in this version; evaluate the ONNX with --onnx")
        if not args.model and not args.onnx:
            raise RftrtError("give --model (PyTorch) or --onnx (ONNX Runtime), or both")
        if args.limit is not None and args.limit < 1:
            raise RftrtError(f"--limit must be at least 1, got {args.limit}")
        if args.batch < 1:
            raise RftrtError(f"--batch must be at least 1, got {args.batch}")
        onnx_model = reference_onnx = None
        resolution = args.resolution
        if args.onnx:
            from .calib import _load_onnx

            onnx_model = _load_onnx(args.onnx)
            _, height, width = model_resolution(onnx_model)
            if height != width:
                raise RftrtError(f"{args.onnx} takes {height}x{width} images; EfficientViT preprocessing gives square crops")
            if resolution is not None and resolution != height:
                raise RftrtError(f"--resolution {resolution} but {args.onnx} takes {height}x{height}")
            resolution = height
        if args.reference_onnx:
            from .calib import _load_onnx

            reference_onnx = _load_onnx(args.reference_onnx)
        torch_model = None
        if args.model == DIGITS_MODEL:
            from ..models.digits import load_checkpoint

            torch_model = load_checkpoint(args.weights)
            if resolution is not None and resolution != torch_model.resolution:
                raise RftrtError(f"{DIGITS_MODEL} was trained at {torch_model.resolution}x{torch_model.resolution}, not {resolution}")
            resolution = torch_model.resolution
        elif args.model:
            from ..models import create

            torch_model = create(args.model, resolution or 224, args.weights, args.num_classes)
            resolution = resolution or 224
            if torch_model.load_report.random:
                print("warning: --model without --weights has random weights: its accuracy is chance", file=sys.stderr)
        class_map = read_class_map(Path(args.class_map)) if args.class_map else None
        items, _, warnings = labelled_images(Path(args.data), class_map)
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        listed = len(items)
        if args.limit is not None:
            items = [items[i] for i in spaced_indices(len(items), args.limit)]

        preprocess = Preprocess.for_resolution(resolution)
        images, labels, skipped = [], [], []
        for path, label in items:
            try:
                images.append(preprocess(load_image(path)))
                labels.append(label)
            except RftrtError as exc:
                skipped.append(str(exc))
        if skipped:
            shown = "; ".join(skipped[:3]) + (f"; and {len(skipped) - 3} more" if len(skipped) > 3 else "")
            print(f"warning: skipped {len(skipped)} unreadable images ({shown})", file=sys.stderr)
        if not images:
            raise RftrtError(f"{args.data}: no readable images: all {len(skipped)} image files were skipped")
        x = np.stack(images)
        y = np.asarray(labels)
        outputs = {}
        if torch_model is not None:
            outputs[f"PyTorch FP32 ({args.model})"] = torch_logits(torch_model, x, args.batch)
        if reference_onnx is not None:
            outputs[f"reference ONNX ({Path(args.reference_onnx).name})"] = onnx_logits(reference_onnx, x, args.batch)
        if onnx_model is not None:
            outputs[f"ONNX Runtime ({Path(args.onnx).name})"] = onnx_logits(onnx_model, x, args.batch)
        classes = next(iter(outputs.values())).shape[1]
        if int(y.max()) >= classes:
            raise RftrtError(f"{args.data}: class index {int(y.max())} but the model has {classes} outputs; check --class-map / --num-classes")
        reference_name = next((name for name in outputs if name.startswith("reference ONNX")), None) or next((name for name in outputs if name.startswith("PyTorch")), None)
        reference = outputs.get(reference_name) if reference_name else None
        print(f"{len(y)} images of {listed} in {args.data}" + (f" ({len(skipped)} unreadable skipped)" if skipped else "") + f", {resolution}x{resolution}")
        scores = [score(name, logits, y, reference if name != reference_name else None) for name, logits in outputs.items()]
        for entry in scores:
            print(entry.line())
        if args.json:
            from ..files import write_file_atomic

            report = {"data": str(args.data), "images": int(len(y)), "listed": listed, "skipped": skipped, "resolution": resolution,
                      "reference": reference_name, "scores": [s.as_dict() for s in scores]}
            write_file_atomic(Path(args.json), (json.dumps(report, indent=2) + "\n").encode())
        return 0

    return run("rf-eval", cli, body, argv)
