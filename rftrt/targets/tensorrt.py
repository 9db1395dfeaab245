"""TensorRT version numbers: the release a version belongs to, and the number TensorRT itself
prints (trtexec's ``[TensorRT vNNNN]``, a calibration cache's ``TRT-NNNN-…`` header).

Pure standard library: the device-side code uses it too.
"""

from __future__ import annotations

from ..errors import RftrtError

__all__ = ["version_tag", "major_minor", "release_of"]


def version_tag(version: str) -> int:
    """TensorRT's version number as trtexec and calibration caches write it.

    8.x is major·1000 + minor·100 + patch (8.6.12 → 8612); 10.x and later major·10000 + minor·100 +
    patch (10.3 → 100300). A missing patch counts as 0.
    """
    try:
        parts = [int(p) for p in version.split(".")]
    except ValueError:
        raise RftrtError(f"TensorRT version {version!r} is not numeric; write it like 8.6 or 10.3") from None
    if not 2 <= len(parts) <= 3:
        raise RftrtError(f"TensorRT version {version!r} is not MAJOR.MINOR[.PATCH]; write it like 8.6 or 10.3")
    major, minor, patch = (parts + [0])[:3]
    return major * (1000 if major < 10 else 10000) + minor * 100 + patch


def major_minor(version: str) -> tuple[int, int]:
    """(major, minor) of any TensorRT version string with at least two numeric parts (8.6,
    10.3.0.30); an error names what is wrong with it."""
    try:
        parts = [int(p) for p in str(version).split(".")[:2]]
    except ValueError:
        raise RftrtError(f"TensorRT version {version!r} is not numeric; expected e.g. 8.6 or 10.3.0") from None
    if len(parts) != 2:
        raise RftrtError(f"TensorRT version {version!r} is not MAJOR.MINOR[...]; expected e.g. 8.6 or 10.3.0")
    return parts[0], parts[1]


def release_of(version: str) -> str:
    """The release (``MAJOR.MINOR``) a version string names, unchecked: engines and plans from the
    same release are interchangeable, those of another are not."""
    return ".".join(str(version).split(".")[:2])
