"""Images for validation and calibration: finding, loading and preprocessing them.

The preprocessing is EfficientViT's ImageNet evaluation transform
(``efficientvit/clscore/data_provider/imagenet.py``, ``build_valid_transform``), rebuilt on Pillow
and numpy because torchvision does not install here:

1. resize the shorter side to ``ceil(resolution / crop_ratio)`` with Pillow's bicubic filter (the
   other side is ``int(size * long / short)``, torchvision's ``Resize(int)`` rule);
2. centre-crop ``resolution × resolution`` (torchvision's rounding: ``int(round((h - th) / 2.0))``);
3. scale to [0, 1] (``ToTensor``) and normalise with the ImageNet mean and std, in float32;
4. return CHW float32.

Images are loaded the way torchvision's ``ImageFolder`` loader does (``Image.convert("RGB")``), so a
batch built here is what the reference evaluation would have fed the model.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import RftrtError

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_SUFFIXES",
    "Preprocess",
    "load_image",
    "sample_image_paths",
    "find_images",
    "load_batch",
    "resize_shorter_side",
    "bundled_photographs",
    "center_crop",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: File suffixes taken as images, compared case-insensitively.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

_INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
_MEAN = np.asarray(IMAGENET_MEAN, dtype=np.float32).reshape(3, 1, 1)
_STD = np.asarray(IMAGENET_STD, dtype=np.float32).reshape(3, 1, 1)


def resize_shorter_side(image: Image.Image, size: int, interpolation: str = "bicubic") -> Image.Image:
    """Resize so the shorter side is ``size``, keeping the aspect ratio as torchvision ``Resize(int)`` does.

    The longer side becomes ``int(size * long / short)``; the filter is Pillow's own (antialiased when
    shrinking), which is what torchvision uses for PIL images.
    """
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    new_size = (new_short, new_long) if width <= height else (new_long, new_short)
    if new_size == image.size:
        return image
    return image.resize(new_size, _INTERPOLATIONS[interpolation])


def center_crop(image: Image.Image, size: int) -> Image.Image:
    """The central ``size × size`` window, offsets rounded as torchvision ``CenterCrop`` rounds them."""
    width, height = image.size
    if width < size or height < size:
        raise RftrtError(f"cannot centre-crop {size}x{size} from a {width}x{height} image")
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


@dataclass(frozen=True)
class Preprocess:
    """EfficientViT's evaluation transform at one resolution: PIL image → float32 CHW array.

    ``crop_ratio`` is the fraction of the resized image that the crop keeps: the shorter side is first
    resized to ``ceil(resolution / crop_ratio)``. The official code rounds up (224 at 0.95 → 236);
    timm's ``transforms_imagenet_eval`` rounds down (→ 235), so timm's pipeline differs by a pixel at 224.
    """

    resolution: int
    crop_ratio: float = 0.95
    interpolation: str = "bicubic"

    def __post_init__(self) -> None:
        if not isinstance(self.resolution, numbers.Integral) or self.resolution < 1:
            raise RftrtError(f"resolution must be a positive integer, got {self.resolution!r}")
        if not 0.0 < self.crop_ratio <= 1.0:
            raise RftrtError(f"crop ratio must be in (0, 1], got {self.crop_ratio!r}")
        if self.interpolation not in _INTERPOLATIONS:
            raise RftrtError(
                f"unknown interpolation {self.interpolation!r}; available: {', '.join(_INTERPOLATIONS)}"
            )

    @classmethod
    def for_resolution(cls, resolution: int) -> Preprocess:
        """The transform the published checkpoints were evaluated with at ``resolution``.

        Crop ratio 0.95 at 224 and 1.0 otherwise, as in timm's EfficientViT pretrained configs
        (``crop_pct``); the official configs use 0.95 for B1 and 1.0 by default (model_spec §1.6).
        """
        return cls(resolution, crop_ratio=0.95 if resolution == 224 else 1.0)

    @property
    def resize_size(self) -> int:
        """The shorter side after resizing, before the centre crop."""
        return int(math.ceil(self.resolution / self.crop_ratio))

    def __call__(self, image: Image.Image) -> np.ndarray:
        if image.mode != "RGB":
            image = image.convert("RGB")
        image = resize_shorter_side(image, self.resize_size, self.interpolation)
        image = center_crop(image, self.resolution)
        pixels = np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)
        scaled = pixels.astype(np.float32) / np.float32(255.0)
        return np.ascontiguousarray((scaled - _MEAN) / _STD, dtype=np.float32)


def load_image(path: Path) -> Image.Image:
    """Open an image file and return it fully decoded as RGB.

    Greyscale, palette, CMYK and other modes are converted with Pillow's ``convert("RGB")``. An alpha
    channel is dropped, not composited on a background: that is what torchvision's ``ImageFolder``
    loader does, so the pixels match the reference evaluation. EXIF orientation is not applied, for
    the same reason. A missing, unrecognised or truncated file raises :class:`RftrtError` naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise RftrtError(f"{path}: no such image file")
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except UnidentifiedImageError:
        reason = "unrecognised format"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
    raise RftrtError(f"{path}: not a readable image ({reason})")


def sample_image_paths() -> list[Path]:
    """The real photographs bundled with rftrt (``rftrt/data/images``), sorted by name.

    Each is a 256×256 RGB JPEG; ``rftrt/data/images/LICENSES.md`` gives their sources and licences.
    """
    folder = resources.files("rftrt.data").joinpath("images")
    paths = sorted(
        (Path(str(entry)) for entry in folder.iterdir() if entry.name.lower().endswith(IMAGE_SUFFIXES)),
        key=lambda path: path.name,
    )
    if not paths:
        raise RftrtError(f"no sample images in {folder}; the rftrt installation is incomplete")
    return paths


def find_images(directory: Path) -> list[Path]:
    """Every image file under ``directory``, recursively, sorted by path relative to it.

    A file counts as an image by its suffix (:data:`IMAGE_SUFFIXES`, any case). Hidden files and
    folders (name starting with ``.``, e.g. macOS ``._photo.jpg`` resource forks) are skipped, and
    symbolic links to folders are not followed. No file is opened here.
    """
    directory = Path(directory)
    if not directory.exists():
        raise RftrtError(f"{directory}: no such directory")
    if not directory.is_dir():
        raise RftrtError(f"{directory}: not a directory")
    found: list[tuple[tuple[str, ...], Path]] = []
    looked_at = 0
    for root, dirs, files in os.walk(directory):
        dirs[:] = [name for name in dirs if not name.startswith(".")]
        for name in files:
            if name.startswith("."):
                continue
            looked_at += 1
            if name.lower().endswith(IMAGE_SUFFIXES):
                path = Path(root, name)
                found.append((path.relative_to(directory).parts, path))
    if not found:
        raise RftrtError(
            f"{directory}: no image files ({', '.join(IMAGE_SUFFIXES)}) among the {looked_at} files looked at"
        )
    return [path for _, path in sorted(found)]


def load_batch(paths: Sequence[Path], preprocess: Preprocess) -> np.ndarray:
    """Load and preprocess ``paths`` in order into one NCHW float32 array."""
    if not paths:
        raise RftrtError("no image paths given to load")
    return np.stack([preprocess(load_image(path)) for path in paths])


def bundled_photographs(resolution: int) -> np.ndarray:
    """The bundled photographs, preprocessed for ``resolution``: what validation, the precision
    plan and the golden data are measured on."""
    return load_batch(sample_image_paths(), Preprocess.for_resolution(resolution))
