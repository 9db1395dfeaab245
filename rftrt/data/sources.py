"""Calibration images: where they come from, which ones are used, and in what order.

An :class:`ImageSource` is a folder of images (jpg/png/bmp/webp, any case, recursive) or, with no
folder, the photographs bundled with rftrt, which make a smoke test and not a calibration set (a
warning says so). Everything about it is deterministic:

- the files are listed in sorted relative-path order (:func:`~rftrt.data.images.find_images`);
- ``count`` of them are picked evenly spaced over that order (index ``floor(i · total / count)``), so
  an ImageNet-style folder sorted by class contributes every class in proportion, with no random
  generator whose stream could change between numpy versions;
- an unreadable file is skipped, named and counted, and replaced by the next unpicked file in
  sorted order, so a corrupt image does not shrink the set;
- fewer readable images than asked is a warning with the count; none at all is an error naming how
  many files were skipped and why.

Preprocessing is :class:`~rftrt.data.images.Preprocess` (EfficientViT's evaluation transform:
bicubic resize of the shorter side to ``ceil(resolution / crop_ratio)``, centre crop, ImageNet
mean/std; crop ratio 0.95 at 224 and 1.0 elsewhere), so calibration sees what evaluation sees.

The :attr:`ImageSource.data_hash` identifies the data without reading pixels: the preprocessing,
the number of images asked for and every listed file's relative path, size and modification time.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from ..errors import RftrtError
from .images import Preprocess, find_images, load_image, sample_image_paths

__all__ = ["ImageSource", "ArraySource", "Progress", "spaced_indices", "BUNDLED_WARNING"]

BUNDLED_WARNING = (
    "no --calib-dir: calibrating on the {n} photographs bundled with rftrt; that is a smoke test, "
    "not a calibration set: use a few hundred images from the deployment's own data"
)


def spaced_indices(total: int, count: int) -> list[int]:
    """``count`` indices spread evenly over ``range(total)`` (all of them when ``count >= total``)."""
    if count >= total:
        return list(range(total))
    return [(i * total) // count for i in range(count)]


class Progress:
    """A progress bar on a terminal (redrawn at most ten times a second); on anything else, one line
    at the end, so logs and captured output stay readable."""

    def __init__(self, total: int, label: str, unit: str = "images", stream: TextIO | None = None) -> None:
        self.total, self.label, self.unit = total, label, unit
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.start = time.perf_counter()
        self._last = 0.0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if self._tty and (now - self._last > 0.1 or self.done >= self.total):
            self._last = now
            self._draw(now, end="")

    def _draw(self, now: float, end: str) -> None:
        elapsed = now - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        frac = min(self.done / self.total, 1.0) if self.total else 1.0
        bar = "#" * int(frac * 30)
        eta = (self.total - self.done) / rate if rate > 0 and self.done < self.total else 0.0
        line = (
            f"{self.label} [{bar:<30}] {self.done}/{self.total} {self.unit} "
            f"{rate:.1f}/s {elapsed:.0f}s" + (f" eta {eta:.0f}s" if eta else "")
        )
        print(("\r" if self._tty else "") + line, end=end, file=self.stream, flush=True)

    def close(self) -> None:
        """Finish the bar (or print the one summary line); nothing if no image was processed."""
        if self.done:
            self._draw(time.perf_counter(), end="\n")

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start


@dataclass
class ImageSource:
    """A deterministic, preprocessed stream of calibration images.

    Build it with :meth:`from_folder` or :meth:`bundled`. :meth:`batches` decodes lazily, so a large
    ``count`` never sits in memory at once; after iterating, :attr:`used` and :attr:`skipped` say
    which files went in and which could not be read.
    """

    description: str
    preprocess: Preprocess
    requested: int
    #: candidate files in the order they are tried: the evenly spaced picks, then the rest as spares
    candidates: list[Path]
    root: Path | None = None
    listed: int = 0
    data_hash: str = ""
    warnings: list[str] = field(default_factory=list)
    used: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    #: cycle the candidates to reach ``requested`` (the bundled photographs only)
    cycle: bool = False

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def from_folder(cls, directory: str | Path, preprocess: Preprocess, count: int) -> ImageSource:
        """``count`` images from ``directory`` (recursive), picked evenly over the sorted listing."""
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise RftrtError(f"the number of calibration images must be a positive integer, got {count!r}")
        directory = Path(directory)
        paths = find_images(directory)  # raises for a missing, non-directory or image-less folder
        picked = spaced_indices(len(paths), count)
        chosen = set(picked)
        order = [paths[i] for i in picked] + [p for i, p in enumerate(paths) if i not in chosen]
        source = cls(
            description=f"{min(count, len(paths))} of {len(paths)} images in {directory}",
            preprocess=preprocess,
            requested=count,
            candidates=order,
            root=directory,
            listed=len(paths),
        )
        source.data_hash = _listing_hash(directory, paths, preprocess, count)
        source.check_readable()
        return source

    @property
    def expected(self) -> int:
        """How many images the source will give: those asked for, or the folder's, if it has fewer
        (unreadable files found on the way lower it further)."""
        return self.requested if self.cycle else min(self.requested, self.listed)

    def check_readable(self) -> None:
        """Refuse, before any work, a folder of which no image decodes (a good folder costs one image)."""
        readable = next(self._readable(), None)
        if readable is None:
            raise self._nothing_readable()
        self.used, self.skipped = [], []

    @classmethod
    def bundled(cls, preprocess: Preprocess, count: int | None = None) -> ImageSource:
        """The photographs shipped with rftrt, with the smoke-test warning; ``count`` cycles them."""
        paths = sample_image_paths()
        count = len(paths) if count is None else count
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise RftrtError(f"the number of calibration images must be a positive integer, got {count!r}")
        source = cls(
            description=f"{len(paths)} bundled photographs",
            preprocess=preprocess,
            requested=count,
            candidates=list(paths),
            root=paths[0].parent,
            listed=len(paths),
            cycle=True,
        )
        source.warnings.append(BUNDLED_WARNING.format(n=len(paths)))
        source.data_hash = _listing_hash(paths[0].parent, paths, preprocess, count)
        return source

    # --- reading ------------------------------------------------------------------------------

    def _readable(self) -> Iterator[tuple[Path, np.ndarray]]:
        """Preprocessed images in candidate order, skipping (and recording) unreadable files."""
        self.used, self.skipped = [], []
        for path in self.candidates:
            try:
                image = load_image(path)
            except RftrtError as exc:
                self.skipped.append((path, _reason(str(exc), path)))
                continue
            yield path, self.preprocess(image)

    def images(self) -> Iterator[np.ndarray]:
        """Exactly ``requested`` preprocessed CHW images (fewer, with a warning, if the folder runs out)."""
        produced = 0
        if self.cycle:  # the bundled photographs are cycled to reach ``requested``
            decoded = list(self._readable())
            if not decoded:
                raise self._nothing_readable()
            for i in range(self.requested):
                path, pixels = decoded[i % len(decoded)]
                if i < len(decoded):
                    self.used.append(path)
                yield pixels
            return
        for path, pixels in self._readable():
            self.used.append(path)
            produced += 1
            yield pixels
            if produced >= self.requested:
                break
        if produced == 0:
            raise self._nothing_readable()
        found = []
        if self.skipped:
            found.append(self.skipped_summary())
        if produced < self.requested:
            found.append(
                f"calibrating on {produced} images, fewer than the {self.requested} asked for "
                f"({self.listed} image files in {self.root}, {len(self.skipped)} unreadable)"
            )
        self.warnings += [w for w in found if w not in self.warnings]

    def batches(self, batch_size: int, progress: Progress | None = None, pad_to: int | None = None) -> Iterator[tuple[np.ndarray, int]]:
        """``(batch, real_rows)``: NCHW float32 batches of ``batch_size`` (the last one smaller or,
        with ``pad_to``, completed to ``pad_to`` rows by repeating the first images; ``real_rows``
        says how many rows are images of this pass)."""
        if batch_size < 1:
            raise RftrtError(f"calibration batch must be at least 1, got {batch_size}")
        pending: list[np.ndarray] = []
        first: list[np.ndarray] = []
        for pixels in self.images():
            pending.append(pixels)
            if len(first) < batch_size:
                first.append(pixels)
            if len(pending) == batch_size:
                yield np.stack(pending), batch_size
                if progress:
                    progress.update(batch_size)
                pending = []
        if pending:
            n = len(pending)
            if pad_to is not None:
                pending += [first[i % len(first)] for i in range(pad_to - n)]
            yield np.stack(pending), n
            if progress:
                progress.update(n)

    def load_all(self, limit: int | None = None) -> np.ndarray:
        """Every image (or the first ``limit``) as one NCHW array; for small sets."""
        out = []
        for pixels in self.images():
            out.append(pixels)
            if limit is not None and len(out) >= limit:
                break
        return np.stack(out)

    # --- reporting ----------------------------------------------------------------------------

    def skipped_summary(self, show: int = 3) -> str:
        names = "; ".join(f"{self._rel(p)}: {why}" for p, why in self.skipped[:show])
        more = f"; and {len(self.skipped) - show} more" if len(self.skipped) > show else ""
        return f"skipped {len(self.skipped)} unreadable image file{'s' if len(self.skipped) != 1 else ''} ({names}{more})"

    def _nothing_readable(self) -> RftrtError:
        where = self.root if self.root is not None else "the image list"
        return RftrtError(f"{where}: no readable images: all {len(self.skipped)} image files were skipped ({self.skipped_summary().split('(', 1)[1]}")

    def _rel(self, path: Path) -> str:
        if self.root is not None:
            try:
                return str(path.relative_to(self.root))
            except ValueError:
                pass
        return str(path)

    def as_dict(self) -> dict:
        return {
            "description": self.description,
            "root": str(self.root) if self.root is not None else None,
            "listed": self.listed,
            "requested": self.requested,
            "used": len(self.used),
            "skipped": [{"file": self._rel(p), "reason": why} for p, why in self.skipped],
            "data_hash": self.data_hash,
            "preprocess": {
                "resolution": self.preprocess.resolution,
                "crop_ratio": self.preprocess.crop_ratio,
                "interpolation": self.preprocess.interpolation,
            },
        }


def _reason(message: str, path: Path) -> str:
    """``load_image``'s message without the leading path (the summary names the file itself)."""
    prefix = f"{path}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def _listing_hash(root: Path, paths: list[Path], preprocess: Preprocess, count: int) -> str:
    digest = hashlib.sha256()
    digest.update(
        f"rftrt-calib-data/1 res={preprocess.resolution} crop={preprocess.crop_ratio} "
        f"interp={preprocess.interpolation} count={count}\n".encode()
    )
    for path in paths:
        try:
            stat = path.stat()
            size, mtime = stat.st_size, stat.st_mtime_ns
        except OSError:
            size, mtime = -1, -1
        try:
            rel = path.relative_to(root).as_posix()
        except ValueError:
            rel = path.as_posix()
        digest.update(f"{rel}\t{size}\t{mtime}\n".encode())
    return digest.hexdigest()



class ArraySource:
    """Already preprocessed images (NCHW float32) as a calibration source: what the export pipeline
    or a test holds in memory. The data hash is the sha256 of the array's bytes and shape."""

    def __init__(self, images: np.ndarray, description: str = "") -> None:
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[1] != 3:
            raise RftrtError(f"calibration images must be an (N, 3, H, W) array, got shape {images.shape}")
        if len(images) == 0:
            raise RftrtError("calibration images: the array is empty")
        if not np.issubdtype(images.dtype, np.floating) or not np.isfinite(images).all():
            raise RftrtError("calibration images must be finite floating-point values (preprocessed, not raw pixels)")
        self.array = np.ascontiguousarray(images, dtype=np.float32)
        self.description = description or f"{len(images)} preprocessed images"
        self.requested = self.expected = len(images)
        self.warnings: list[str] = []
        self.skipped: list[tuple[Path, str]] = []
        self.used = list(range(len(images)))
        digest = hashlib.sha256(f"rftrt-calib-array/1 {self.array.shape}\n".encode())
        digest.update(self.array.tobytes())
        self.data_hash = digest.hexdigest()

    @property
    def resolution(self) -> tuple[int, int]:
        return int(self.array.shape[2]), int(self.array.shape[3])

    def batches(self, batch_size: int, progress: Progress | None = None, pad_to: int | None = None) -> Iterator[tuple[np.ndarray, int]]:
        if batch_size < 1:
            raise RftrtError(f"calibration batch must be at least 1, got {batch_size}")
        for start in range(0, len(self.array), batch_size):
            chunk = self.array[start : start + batch_size]
            n = len(chunk)
            if pad_to is not None and n < pad_to:
                chunk = np.concatenate([chunk, self.array[np.arange(pad_to - n) % len(self.array)]])
            yield chunk, n
            if progress:
                progress.update(n)

    def load_all(self, limit: int | None = None) -> np.ndarray:
        return self.array if limit is None else self.array[:limit]

    def as_dict(self) -> dict:
        return {"description": self.description, "requested": self.requested, "used": len(self.array), "skipped": [], "data_hash": self.data_hash}
