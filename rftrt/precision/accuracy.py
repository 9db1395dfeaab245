"""Classification accuracy on labelled images, and agreement with a reference model's predictions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["torch_logits", "topk_accuracy", "Scores", "score"]


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

