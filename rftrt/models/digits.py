"""A reduced ReduceFormer trained on scikit-learn's ``digits`` (:mod:`rftrt.data.digits`): a model
that really learned something, so that INT8 accuracy can be measured without downloadable weights.

- **Model.** :class:`DigitsReduceFormer`: ReduceFormer-B's blocks (conv stem + DSConv, MBConv stages,
  ReduceFormer attention + MBConv blocks in stages 3–4, the B-series head) at smaller widths
  (:data:`DIGITS_ARCH`). At 64² the attention stages run on 4×4 and 2×2 token maps. It subclasses
  :class:`~rftrt.models.efficientvit.EfficientViTCls` with its own :class:`ArchConfig`, so the
  registry (``ARCHS``, ``create``) is untouched.
- **Training.** :func:`train`: AdamW, one-cycle learning rate (peak 8e-3), 15 epochs, label
  smoothing 0.1, random shifts of up to :data:`_SHIFT` pixels, seed 0, deterministic on the CPU;
  ``scripts/train_digits.py`` runs it and writes the checkpoint ``rftrt/data/digits_rf.pt`` that the
  tests load.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.digits import NUM_CLASSES, RESOLUTION, SPLIT, DigitsData, normalised_black
from ..errors import RftrtError
from .efficientvit import ArchConfig, Backbone, ClsHead, EfficientViTCls
from .layers import ReduceAttention

__all__ = [
    "DIGITS_ARCH",
    "CHECKPOINT",
    "DigitsReduceFormer",
    "train",
    "evaluate",
    "load_checkpoint",
    "save_checkpoint",
    "checkpoint_path",
]

#: ReduceFormer-B blocks at digits-sized widths: stem 8, stages 16/24/32/48, head dim 8, head 96→96.
DIGITS_ARCH = ArchConfig(widths=(8, 16, 24, 32, 48), depths=(1, 1, 1, 1, 1), head_dim=8, head_widths=(96, 96))
CHECKPOINT = "digits_rf.pt"
_SHIFT = 2


class DigitsReduceFormer(EfficientViTCls):
    """ReduceFormer-B with a custom :class:`ArchConfig` (the registry's classes take names only)."""

    def __init__(self, arch: ArchConfig = DIGITS_ARCH, num_classes: int = NUM_CLASSES) -> None:
        nn.Module.__init__(self)
        self.family = "rf"
        self.variant = "digits"
        self.num_classes = num_classes
        self.backbone = Backbone(arch, ReduceAttention)
        self.head = ClsHead(self.backbone.out_channels, arch.head_widths, num_classes)


def _shifted(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random translations of up to ``_SHIFT`` pixels (background fill: normalised black)."""
    n, c, h, w = images.shape
    pad = _SHIFT
    background = torch.from_numpy(normalised_black())
    canvas = background.expand(n, c, h + 2 * pad, w + 2 * pad).clone()
    canvas[:, :, pad : pad + h, pad : pad + w] = images
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).tolist()
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).tolist()
    return torch.stack([canvas[i, :, y : y + h, x : x + w] for i, (y, x) in enumerate(zip(dy, dx))])


@torch.no_grad()
def evaluate(model: nn.Module, images: np.ndarray, labels: np.ndarray, batch: int = 256) -> float:
    """Top-1 accuracy (%) of ``model`` in eval mode."""
    model.eval()
    correct = 0
    for start in range(0, len(images), batch):
        logits = model(torch.from_numpy(images[start : start + batch]))
        correct += int((logits.argmax(1).numpy() == labels[start : start + batch]).sum())
    return 100.0 * correct / len(images)


def train(
    data: DigitsData,
    epochs: int = 15,
    batch: int = 64,
    lr: float = 8e-3,
    seed: int = 0,
    log: Callable[[str], None] = print,
    log_every: int = 5,
) -> tuple[DigitsReduceFormer, dict]:
    """Train :class:`DigitsReduceFormer` on the training split; returns the model and a summary."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = DigitsReduceFormer()
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    steps = epochs * math.ceil(len(data.train_images) / batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps, pct_start=0.1)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    images = torch.from_numpy(data.train_images)
    labels = torch.from_numpy(data.train_labels)
    start, cpu = time.perf_counter(), time.process_time()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(images), generator=generator)
        total = 0.0
        for first in range(0, len(order), batch):
            idx = order[first : first + batch]
            x = _shifted(images[idx], generator)
            loss = loss_fn(model(x), labels[idx])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
        if log_every and (epoch % log_every == log_every - 1 or epoch == epochs - 1):
            accuracy = evaluate(model, data.test_images, data.test_labels)
            log(
                f"epoch {epoch + 1:3d}/{epochs}  loss {total / len(order):.3f}  held-out top-1 {accuracy:.2f}%  "
                f"({time.perf_counter() - start:.0f} s wall, {time.process_time() - cpu:.0f} s CPU)"
            )
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    accuracy = evaluate(model, data.test_images, data.test_labels)
    return model.eval(), {"epochs": epochs, "batch": batch, "lr": lr, "seed": seed, "seconds": round(seconds, 1), "cpu_seconds": round(cpu_seconds, 1), "test_top1": accuracy}


def checkpoint_path() -> Path:
    """The committed checkpoint, ``rftrt/data/digits_rf.pt``."""
    return Path(str(resources.files("rftrt.data").joinpath(CHECKPOINT)))


def save_checkpoint(model: DigitsReduceFormer, summary: dict, path: str | Path, resolution: int = RESOLUTION) -> Path:
    path = Path(path)
    torch.save(
        {
            "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "arch": asdict(DIGITS_ARCH),
            "resolution": resolution,
            "num_classes": NUM_CLASSES,
            "split": dict(SPLIT),
            "training": dict(summary),
        },
        path,
    )
    return path


def load_checkpoint(path: str | Path | None = None) -> DigitsReduceFormer:
    """The trained digits model (default: the committed checkpoint), in eval mode."""
    path = checkpoint_path() if path is None else Path(path)
    if not path.is_file():
        raise RftrtError(f"{path}: no digits checkpoint; run scripts/train_digits.py to make it")
    data = torch.load(path, map_location="cpu", weights_only=True)
    arch = ArchConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in data["arch"].items()})
    model = DigitsReduceFormer(arch, data["num_classes"])
    model.load_state_dict(data["state_dict"])
    model.training_summary = data.get("training", {})
    model.resolution = int(data["resolution"])
    return model.eval()
