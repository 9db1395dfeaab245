"""Accuracy on a labelled image folder (``rf-eval``): a PyTorch model, an ONNX on ONNX Runtime, or
both, each scored top-1/top-5 and, against the FP32 reference, by top-1 agreement."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.digits import NUM_CLASSES as NUM_DIGITS
from ..data.images import Preprocess
from ..data.labelled import labelled_images, load_labelled, read_class_map
from ..data.sources import spaced_indices
from ..errors import RftrtError
from ..precision.accuracy import Scores, score

__all__ = ["DIGITS_MODEL", "EvalRequest", "EvalReport", "evaluate"]

#: ``--model`` name of the reduced ReduceFormer trained on scikit-learn's digits (rftrt/data/digits_rf.pt).
DIGITS_MODEL = "rf_digits"


@dataclass(frozen=True)
class EvalRequest:
    data: str
    model: str | None = None
    weights: str | None = None
    num_classes: int = 1000
    resolution: int | None = None
    onnx: str | None = None
    reference_onnx: str | None = None
    class_map: str | None = None
    limit: int | None = None
    batch: int = 32


@dataclass
class EvalReport:
    data: str
    images: int
    listed: int
    resolution: int
    reference: str | None
    scores: list[Scores] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    #: which weights each model evaluated carries, by its score name
    weights: dict[str, str] = field(default_factory=dict)

    def lines(self) -> list[str]:
        skipped = f" ({len(self.skipped)} unreadable skipped)" if self.skipped else ""
        head = f"{self.images} images of {self.listed} in {self.data}{skipped}, {self.resolution}x{self.resolution}"
        return [head] + [f"weights of {name}: {weights}" for name, weights in self.weights.items()] + [entry.line() for entry in self.scores]

    def as_dict(self) -> dict:
        return {
            "data": self.data,
            "images": self.images,
            "listed": self.listed,
            "skipped": self.skipped,
            "resolution": self.resolution,
            "reference": self.reference,
            "scores": [s.as_dict() for s in self.scores],
            "weights": dict(self.weights),
        }


def _check(request: EvalRequest) -> None:
    if not request.model and not request.onnx:
        raise RftrtError("give --model (PyTorch) or --onnx (ONNX Runtime), or both")
    if request.limit is not None and request.limit < 1:
        raise RftrtError(f"--limit must be at least 1, got {request.limit}")
    if request.batch < 1:
        raise RftrtError(f"--batch must be at least 1, got {request.batch}")


def _onnx_resolution(request: EvalRequest, onnx_model, resolution: int | None) -> int | None:
    from ..precision.int8 import model_resolution

    _, height, width = model_resolution(onnx_model)
    if height != width:
        raise RftrtError(f"{request.onnx} takes {height}x{width} images; EfficientViT preprocessing gives square crops")
    if resolution is not None and resolution != height:
        raise RftrtError(f"--resolution {resolution} but {request.onnx} takes {height}x{height}")
    return height


def _torch_model(request: EvalRequest, resolution: int | None, warn: Callable[[str], None]):
    """The PyTorch model of ``--model`` (None without one) and the resolution it takes."""
    if request.model == DIGITS_MODEL:
        from ..models.digits import load_checkpoint

        model = load_checkpoint(request.weights)
        if resolution is not None and resolution != model.resolution:
            raise RftrtError(f"{DIGITS_MODEL} was trained at {model.resolution}x{model.resolution}, not {resolution}")
        return model, model.resolution
    if request.model:
        from ..models import create

        model = create(request.model, resolution or 224, request.weights, request.num_classes)
        if model.load_report.random:
            warn("--model without --weights has random weights: its accuracy is chance")
        return model, resolution or 224
    return None, resolution


def _torch_weights(model) -> str:
    report = getattr(model, "load_report", None)
    if report is None:  # the digits model, from its committed checkpoint
        return "the digits checkpoint"
    return report.describe()


def _onnx_weights(model) -> str:
    """What an ONNX says of its weights (rf-export records them in its metadata)."""
    from ..export.metadata import read_metadata, recorded_weights  # onnx is loaded by now; not at import

    sha = recorded_weights(model)
    if sha is None:
        return "not recorded (not an rf-export ONNX)"
    if sha == "random":
        return read_metadata(model).get("weights", "random")
    return f"checkpoint sha256 {sha[:12]}…"


def _onnx_classes(model) -> int | None:
    dims = model.graph.output[0].type.tensor_type.shape.dim
    return int(dims[1].dim_value) if len(dims) == 2 and dims[1].HasField("dim_value") else None


def _check_classes(request: EvalRequest, onnx_model, reference_onnx) -> None:
    """Every model evaluated together must have the same classes (checked before any is built)."""
    counts = {}
    if request.model:
        counts[f"--model {request.model}"] = NUM_DIGITS if request.model == DIGITS_MODEL else request.num_classes
    for flag, model in (("--onnx", onnx_model), ("--reference-onnx", reference_onnx)):
        if model is not None and _onnx_classes(model) is not None:
            counts[flag] = _onnx_classes(model)
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{flag} {n}" for flag, n in counts.items())
        raise RftrtError(f"the models have different class counts ({listed}); pass --num-classes to match, or other files")


def _weights(request: EvalRequest, torch_model, onnx_model, reference_onnx) -> dict[str, str]:
    weights = {}
    if torch_model is not None:
        weights[f"PyTorch FP32 ({request.model})"] = _torch_weights(torch_model)
    if reference_onnx is not None:
        weights[f"reference ONNX ({Path(request.reference_onnx).name})"] = _onnx_weights(reference_onnx)
    if onnx_model is not None:
        weights[f"ONNX Runtime ({Path(request.onnx).name})"] = _onnx_weights(onnx_model)
    return weights


def _outputs(request: EvalRequest, x: np.ndarray, torch_model, onnx_model, reference_onnx) -> dict[str, np.ndarray]:
    from ..export.onnxrt import onnx_logits
    from ..precision.accuracy import torch_logits

    outputs = {}
    if torch_model is not None:
        outputs[f"PyTorch FP32 ({request.model})"] = torch_logits(torch_model, x, request.batch)
    if reference_onnx is not None:
        outputs[f"reference ONNX ({Path(request.reference_onnx).name})"] = onnx_logits(reference_onnx, x, request.batch)
    if onnx_model is not None:
        outputs[f"ONNX Runtime ({Path(request.onnx).name})"] = onnx_logits(onnx_model, x, request.batch)
    return outputs


def evaluate(request: EvalRequest, load_onnx: Callable, warn: Callable[[str], None]) -> EvalReport:
    """Score the request's models on its folder; ``load_onnx(path)`` reads an ONNX file, ``warn``
    hears every warning."""
    _check(request)
    onnx_model = load_onnx(request.onnx) if request.onnx else None
    resolution = _onnx_resolution(request, onnx_model, request.resolution) if onnx_model is not None else request.resolution
    reference_onnx = load_onnx(request.reference_onnx) if request.reference_onnx else None
    _check_classes(request, onnx_model, reference_onnx)
    torch_model, resolution = _torch_model(request, resolution, warn)
    class_map = read_class_map(Path(request.class_map)) if request.class_map else None
    items, _, warnings = labelled_images(Path(request.data), class_map)
    for warning in warnings:
        warn(warning)
    listed = len(items)
    if request.limit is not None:
        items = [items[i] for i in spaced_indices(len(items), request.limit)]
    x, y, skipped = load_labelled(items, Preprocess.for_resolution(resolution))
    if skipped:
        shown = "; ".join(skipped[:3]) + (f"; and {len(skipped) - 3} more" if len(skipped) > 3 else "")
        warn(f"skipped {len(skipped)} unreadable images ({shown})")
    if not len(y):
        raise RftrtError(f"{request.data}: no readable images: all {len(skipped)} image files were skipped")
    outputs = _outputs(request, x, torch_model, onnx_model, reference_onnx)
    classes = next(iter(outputs.values())).shape[1]
    if int(y.max()) >= classes:
        raise RftrtError(f"{request.data}: class index {int(y.max())} but the model has {classes} outputs; check --class-map / --num-classes")
    reference_name = next((n for n in outputs if n.startswith("reference ONNX")), None) or next((n for n in outputs if n.startswith("PyTorch")), None)
    reference = outputs.get(reference_name) if reference_name else None
    scores = [score(name, logits, y, reference if name != reference_name else None) for name, logits in outputs.items()]
    weights = _weights(request, torch_model, onnx_model, reference_onnx)
    return EvalReport(str(request.data), int(len(y)), listed, resolution, reference_name, scores, skipped, weights)
