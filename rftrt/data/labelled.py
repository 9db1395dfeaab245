"""Labelled image folders (ImageNet layout: one subfolder of images per class) and the class map
that names their classes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import RftrtError
from .images import IMAGE_SUFFIXES, Preprocess, load_image

__all__ = ["read_class_map", "labelled_images", "load_labelled"]


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


def load_labelled(items: list[tuple[Path, int]], preprocess: Preprocess) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The readable images of ``items`` preprocessed (N, 3, R, R), their labels, and one message per
    unreadable image skipped."""
    images, labels, skipped = [], [], []
    for path, label in items:
        try:
            images.append(preprocess(load_image(path)))
            labels.append(label)
        except RftrtError as exc:
            skipped.append(str(exc))
    if not images:
        return np.zeros((0,)), np.zeros((0,), dtype=np.int64), skipped
    return np.stack(images), np.asarray(labels), skipped
