"""scikit-learn's ``digits`` as images: the labelled data the digits-trained ReduceFormer
(:mod:`rftrt.models.digits`) learns from and the INT8 checks measure accuracy on.

- **Data.** ``sklearn.datasets.load_digits``: 1797 labelled 8×8 greyscale digits (values 0–16). Each
  becomes an 8-bit image (``round(v · 255 / 16)``), upsampled to :data:`RESOLUTION`² with Pillow's
  bicubic filter and converted to RGB, then normalised exactly as
  :class:`~rftrt.data.images.Preprocess` does (ImageNet mean/std). Written out as PNG files
  (:func:`write_image_folder`) and read back through ``Preprocess``, they give the same arrays, so the
  folder-based tools (``rf-calib --calib-dir``, ``rf-eval --data``) see the same inputs as training.
- **Split.** Fixed: ``train_test_split(test_size=0.3, random_state=0, stratify=labels)``, 1257 training
  and 540 held-out images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import RftrtError
from .images import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["RESOLUTION", "NUM_CLASSES", "SPLIT", "DigitsData", "load_digits_data", "digit_image", "write_image_folder", "normalised_black"]

RESOLUTION = 64
NUM_CLASSES = 10
SPLIT = {"test_size": 0.3, "random_state": 0}
_MEAN = np.asarray(IMAGENET_MEAN, dtype=np.float32).reshape(1, 3, 1, 1)
_STD = np.asarray(IMAGENET_STD, dtype=np.float32).reshape(1, 3, 1, 1)


def normalised_black() -> np.ndarray:
    """A black pixel after normalisation, shape (1, 3, 1, 1): the background of shifted digits."""
    return ((0.0 - _MEAN) / _STD).astype(np.float32)


@dataclass
class DigitsData:
    """The fixed split as normalised NCHW float32 arrays, and the uint8 RGB images behind them."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    train_pixels: np.ndarray  # (N, H, W, 3) uint8
    test_pixels: np.ndarray


def digit_image(values: np.ndarray, resolution: int = RESOLUTION) -> Image.Image:
    """One 8×8 digit (values 0–16) as an RGB ``resolution``² image (bicubic upsampling)."""
    grey = np.clip(np.rint(np.asarray(values, dtype=np.float64).reshape(8, 8) * 255.0 / 16.0), 0, 255).astype(np.uint8)
    return Image.fromarray(grey, mode="L").resize((resolution, resolution), Image.Resampling.BICUBIC).convert("RGB")


def _normalise(pixels: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 → (N, 3, H, W) float32, as ``Preprocess`` computes it."""
    chw = pixels.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0)
    return np.ascontiguousarray((chw - _MEAN) / _STD, dtype=np.float32)


def load_digits_data(resolution: int = RESOLUTION) -> DigitsData:
    """scikit-learn's digits, upsampled, in the fixed split (needs scikit-learn: the ``test`` extra)."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise RftrtError("the digits data needs scikit-learn: pip install 'rftrt[test]' (or scikit-learn)") from None
    digits = load_digits()
    pixels = np.stack([np.asarray(digit_image(v, resolution)) for v in digits.data])
    labels = digits.target.astype(np.int64)
    train_idx, test_idx = train_test_split(np.arange(len(labels)), stratify=labels, **SPLIT)
    return DigitsData(
        train_images=_normalise(pixels[train_idx]),
        train_labels=labels[train_idx],
        test_images=_normalise(pixels[test_idx]),
        test_labels=labels[test_idx],
        train_pixels=pixels[train_idx],
        test_pixels=pixels[test_idx],
    )


def write_image_folder(pixels: np.ndarray, labels: np.ndarray, directory: str | Path, limit: int | None = None) -> Path:
    """Write images as ``directory/<label>/<index>.png`` (an ImageNet-style folder, 10 classes)."""
    directory = Path(directory)
    count = len(pixels) if limit is None else min(limit, len(pixels))
    for index in range(count):
        folder = directory / str(int(labels[index]))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels[index]).save(folder / f"{index:04d}.png")
    return directory
