"""The plain TensorRT plan file: its magic tag, the TensorRT version in its header, and what is there
instead when it is not a plan. Needs neither TensorRT nor a GPU.

A TensorRT plan starts with the magic tag ``b"ftrt"`` (the little-endian uint32 0x74727466 =
1953657958). Sources: TensorRT 10.9's own error "header.magicTag == rt::PlanMagicTag::kPLAN_MAGIC_TAG
failed … (1825 != 1953657958)" for an engine with 1825 bytes of Ultralytics JSON in front
(ultralytics/ultralytics#20053; 8.6 reports the same check as "plan->header.magicTag ==
rt::kPLAN_MAGIC_TAG", NVIDIA/TensorRT#2915), and Torch-TensorRT's loader, which tells a raw plan from
base64 by ``startswith(b"ftrt")`` (pytorch/TensorRT ``py/torch_tensorrt/dynamo/runtime/_TRTEngine.py``).
Bytes 24, 25, 26 hold the building TensorRT's major, minor and patch version (NVIDIA's answer in
NVIDIA/TensorRT#3073, used by autoware ``tensorrt_common.hpp`` as ``TRT_MAJOR_IDX = 24``); that layout
is not documented, so the version read there only enriches messages and is never a reason to refuse
an engine.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

from ..errors import RftrtError

__all__ = ["PLAN_MAGIC", "PlanHeader", "read_plan_header", "check_plan_file"]

PLAN_MAGIC = b"ftrt"
_VERSION_OFFSET = 24
_SNIFF_BYTES = 1 << 16


@dataclass(frozen=True)
class PlanHeader:
    """What the first bytes of a TensorRT plan say."""

    size: int
    #: (major, minor, patch) of the TensorRT that wrote it, from bytes 24..26; None if implausible
    version: tuple[int, int, int] | None

    @property
    def version_text(self) -> str | None:
        return None if self.version is None else ".".join(map(str, self.version))


def _hex(data: bytes) -> str:
    return " ".join(f"{b:02x}" for b in data)


def _prefix_hint(data: bytes, name: str) -> str:
    """Why ``data`` is not a plan, as specifically as the bytes allow."""
    if len(data) >= 8:
        (length,) = struct.unpack("<I", data[:4])
        start = 4 + length
        if 0 < length and data[start : start + 4] == PLAN_MAGIC:
            try:
                json.loads(data[4:start].decode("utf-8"))
                what = "a 4-byte length and JSON metadata (the Ultralytics layout)"
            except (UnicodeDecodeError, ValueError):
                what = "a 4-byte length and metadata"
            return (
                f"{name} has {start} bytes in front of the TensorRT plan: {what}; TensorRT and trtexec "
                f"read only a plain plan: cut the first {start} bytes off, or rebuild with rf-build, which "
                "keeps metadata in a sidecar <engine>.json"
            )
    if data[:1] == b"\x08" and (b"onnx" in data[:256].lower() or b"pytorch" in data[:256]):
        return f"{name} looks like an ONNX model, not a TensorRT plan: build an engine from the bundle with rf-build first"
    found = data.find(PLAN_MAGIC, 1)
    if found > 0:
        return (
            f"{name} has {found} bytes in front of the TensorRT plan (its magic tag {PLAN_MAGIC.decode()!r} "
            f"is at byte {found}, not 0); TensorRT reads only a plain plan: cut the first {found} bytes off, "
            "or rebuild with rf-build"
        )
    stripped = data.lstrip()
    if stripped[:1] in (b"{", b"["):
        return f"{name} is JSON, not a TensorRT plan (an engine's sidecar is <engine>.json; pass the engine itself)"
    return (
        f"{name} is not a TensorRT plan: it does not start with the magic tag {PLAN_MAGIC.decode()!r} "
        f"(first bytes: {_hex(data[:8]) or 'none, the file is empty'})"
    )


def read_plan_header(data: bytes, name: str = "the engine", size: int | None = None) -> PlanHeader:
    """Check that ``data`` (a plan's first bytes, or all of it) is a plain TensorRT plan.

    Raises :class:`RftrtError` naming what is there instead: metadata in front of the plan (with the
    number of bytes to cut), a JSON file, an ONNX model, an empty or foreign file.
    """
    size = len(data) if size is None else size
    if data[:4] != PLAN_MAGIC:
        raise RftrtError(_prefix_hint(bytes(data[:_SNIFF_BYTES]), name))
    if size < 32:
        raise RftrtError(f"{name} starts like a TensorRT plan but has only {size} bytes: it is truncated; rebuild it")
    major, minor, patch = data[_VERSION_OFFSET], data[_VERSION_OFFSET + 1], data[_VERSION_OFFSET + 2]
    plausible = 7 <= major <= 30 and minor < 100 and patch < 100
    return PlanHeader(size=size, version=(major, minor, patch) if plausible else None)


def check_plan_file(path: Path) -> PlanHeader:
    """:func:`read_plan_header` on a file (reads its first 64 KiB)."""
    path = Path(path)
    if not path.is_file():
        raise RftrtError(f"{path} does not exist or is not a file; pass the engine rf-build wrote")
    with open(path, "rb") as f:
        head = f.read(_SNIFF_BYTES)
    return read_plan_header(head, str(path), size=path.stat().st_size)
