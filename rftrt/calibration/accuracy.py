"""Classification accuracy and INT8-vs-FP32 agreement, on ONNX Runtime or PyTorch.

The INT8 tolerance (:data:`INT8_TOLERANCE`) for a Q/DQ rendering against its FP32 ONNX: all outputs
finite, per-image logit cosine similarity ≥ 0.99, and the same top-1 class for ≥ 90 % of the
*decisive* images: those whose FP32 top-1 margin (best minus second logit) is more than twice the
INT8 rendering's largest logit error on that image. A flip on an image whose two best classes are
closer than the quantization error says nothing about the rendering; random-weight models have
almost only such images. Eight bits lose far more than FP16's eleven, so FP16's 0.999 would reject
good INT8 models; the trained digits model keeps INT8 within a fraction of a point of FP32 (docs/int8.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import onnx

from ..export.validate import Comparison, ort_session

__all__ = ["INT8_TOLERANCE", "Int8Comparison", "compare_int8", "onnx_logits", "torch_logits", "topk_accuracy", "Scores", "score"]

INT8_TOLERANCE = {"min_cosine": 0.99, "min_top1_agreement": 0.9}


@dataclass(frozen=True)
class Int8Comparison(Comparison):
    """A :class:`Comparison` that also counts the decisive images and their top-1 agreement."""

    decisive_images: int = 0
    decisive_agreement: float = 1.0

    def line(self) -> str:
        verdict = "ok" if self.passed else "FAILED"
        return (
            f"{self.candidate} vs {self.reference} on {self.inputs}: max|Δ| {self.max_abs:.2e}, "
            f"cos ≥ {self.min_cosine:.6f}, top-1 {self.top1_agreement:.0%} "
            + (
                f"({self.decisive_agreement:.0%} of the {self.decisive_images} decisive)"
                if self.decisive_images
                else "(none decisive: FP32 top-2 margins within the INT8 error)"
            )
            + ("" if self.finite else ", NON-FINITE")
            + f" [{verdict}]"
        )

    def as_dict(self) -> dict:
        return asdict(self)


def compare_int8(reference: str, ref: np.ndarray, candidate: str, out: np.ndarray, inputs: str) -> Int8Comparison:
    """Like :func:`rftrt.export.validate.compare`, with the INT8 tolerance (``kind="int8"``)."""
    ref64, out64 = ref.astype(np.float64), out.astype(np.float64)
    finite = bool(np.isfinite(out64).all())
    safe = np.nan_to_num(out64, nan=0.0, posinf=0.0, neginf=0.0)
    diff = np.abs(safe - ref64)
    norms = np.linalg.norm(ref64, axis=1) * np.linalg.norm(safe, axis=1)
    cosine = np.where(norms > 0, np.sum(ref64 * safe, axis=1) / np.where(norms > 0, norms, 1.0), 0.0)
    same = ref64.argmax(1) == safe.argmax(1)
    top2 = np.sort(ref64, axis=1)[:, -2:] if ref64.shape[1] > 1 else np.concatenate([ref64, ref64], axis=1)
    decisive = (top2[:, 1] - top2[:, 0]) > 2 * diff.max(axis=1)
    decisive_agreement = float(np.mean(same[decisive])) if decisive.any() else 1.0
    passed = (
        finite
        and float(cosine.min()) >= INT8_TOLERANCE["min_cosine"]
        and decisive_agreement >= INT8_TOLERANCE["min_top1_agreement"]
    )
    return Int8Comparison(
        reference=reference,
        candidate=candidate,
        inputs=inputs,
        kind="int8",
        max_abs=float(diff.max()) if finite else float("inf"),
        mean_abs=float(diff.mean()),
        min_cosine=float(cosine.min()),
        top1_agreement=float(np.mean(same)),
        finite=finite,
        passed=bool(passed),
        decisive_images=int(decisive.sum()),
        decisive_agreement=decisive_agreement,
    )


def onnx_logits(model: onnx.ModelProto, images: np.ndarray, batch: int = 64, threads: int = 2) -> np.ndarray:
    """The first output of ``model`` on ``images`` (ONNX Runtime, CPU), in batches."""
    session = ort_session(model, threads)
    name = session.get_inputs()[0].name
    static = session.get_inputs()[0].shape[0]
    if isinstance(static, int):
        batch = static
    outs = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        n = len(chunk)
        if isinstance(static, int) and n < static:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], static - n, axis=0)])
        outs.append(session.run(None, {name: np.ascontiguousarray(chunk)})[0][:n])
    return np.concatenate(outs)


def torch_logits(model, images: np.ndarray, batch: int = 64) -> np.ndarray:
    import torch

    model.eval()
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(images[s : s + batch])).numpy() for s in range(0, len(images), batch)])


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    """Share (0–1) of rows whose label is among the ``k`` largest logits."""
    k = min(k, logits.shape[1])
    top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


@dataclass(frozen=True)
class Scores:
    """Accuracy of one model on one labelled set, and its agreement with a reference."""

    name: str
    images: int
    top1: float
    top5: float
    agreement: float | None = None  # top-1 agreement with the reference's predictions

    def line(self) -> str:
        agree = f", top-1 agreement with FP32 {self.agreement:.2%}" if self.agreement is not None else ""
        return f"{self.name}: top-1 {self.top1:.2%}, top-5 {self.top5:.2%} on {self.images} images{agree}"

    def as_dict(self) -> dict:
        return {"name": self.name, "images": self.images, "top1": self.top1, "top5": self.top5, "agreement": self.agreement}


def score(name: str, logits: np.ndarray, labels: np.ndarray, reference: np.ndarray | None = None) -> Scores:
    agreement = None if reference is None else float(np.mean(reference.argmax(1) == logits.argmax(1)))
    return Scores(name, len(labels), topk_accuracy(logits, labels, 1), topk_accuracy(logits, labels, 5), agreement)

