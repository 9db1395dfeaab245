"""Reusing a calibration, and refusing a stale one.

A calibration directory holds ``calibration.json``: the sha256 of the FP32 ONNX it was measured on,
the hash of the calibration data (:attr:`~rftrt.data.sources.ImageSource.data_hash`: preprocessing,
image count, and every listed file's path, size and mtime), the method and its settings, and the
measured ranges. The cache and the Q/DQ ONNX are renderings of those ranges and are rewritten from
them for any TensorRT version, so a target change needs no recalibration.

:meth:`CalibrationStore.lookup` returns the stored ranges when model, data and method all match,
nothing when there is no record, and raises :class:`~rftrt.errors.RftrtError` with the reason when
the record is for another model, other data or another method: a stale calibration is never used
silently, and never overwritten without ``force``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import onnx

from .. import __version__
from ..errors import RftrtError
from ..files import write_file_atomic
from .ranges import Ranges

__all__ = ["CalibrationStore", "CalibrationKey", "make_record", "record_bytes", "model_sha256", "RECORD"]

RECORD = "calibration.json"
_SCHEMA = 1


def model_sha256(model: onnx.ModelProto) -> str:
    """sha256 of the model's deterministic serialisation (the bytes a bundle writes)."""
    return hashlib.sha256(model.SerializeToString(deterministic=True)).hexdigest()


@dataclass(frozen=True)
class CalibrationKey:
    """What a calibration depends on."""

    onnx_sha256: str
    data_hash: str
    method: str
    settings: tuple[tuple[str, object], ...] = ()

    @classmethod
    def make(cls, onnx_sha256: str, data_hash: str, method: str, settings: dict | None = None) -> CalibrationKey:
        return cls(onnx_sha256, data_hash, method, tuple(sorted((settings or {}).items())))


class CalibrationStore:
    """``calibration.json`` in ``directory``."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / RECORD

    def read(self) -> dict | None:
        if not self.path.is_file():
            return None
        try:
            record = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RftrtError(f"{self.path}: unreadable calibration record ({exc}); remove it or pass --force") from None
        if not isinstance(record, dict) or record.get("schema") != _SCHEMA:
            raise RftrtError(f"{self.path}: not a calibration record of this rftrt (schema {record.get('schema') if isinstance(record, dict) else '?'}); pass --force to replace it")
        return record

    def lookup(self, key: CalibrationKey, force: bool = False) -> Ranges | None:
        """The stored ranges for ``key``; None when there is none (or ``force``); an error when the
        stored calibration is for another model, other data, or another method."""
        if force:
            return None
        record = self.read()
        if record is None:
            return None
        stored = record["key"]
        if stored["onnx_sha256"] != key.onnx_sha256:
            raise RftrtError(
                f"{self.path} is a calibration of another model (ONNX sha256 {stored['onnx_sha256'][:12]}…, this one "
                f"{key.onnx_sha256[:12]}…): the model changed; recalibrate with --force or use another --out"
            )
        if stored["data_hash"] != key.data_hash:
            raise RftrtError(
                f"{self.path} was calibrated on other data ({record.get('data', {}).get('description', 'unknown')}; "
                f"data hash {stored['data_hash'][:12]}…, now {key.data_hash[:12]}…): the images changed; "
                "recalibrate with --force or use another --out"
            )
        if stored["method"] != key.method or dict(stored.get("settings", {})) != dict(key.settings):
            settings = ", ".join(f"{k}={v}" for k, v in stored.get("settings", {}).items())
            raise RftrtError(
                f"{self.path} was calibrated with {stored['method']}" + (f" ({settings})" if settings else "")
                + f", not {key.method}" + (f" ({', '.join(f'{k}={v}' for k, v in key.settings)})" if key.settings else "")
                + "; recalibrate with --force or use another --out"
            )
        return Ranges.from_dict(record["ranges"])

    def save(self, record: dict) -> Path:
        """Write a record made by :func:`make_record` as ``calibration.json``."""
        self.directory.mkdir(parents=True, exist_ok=True)
        write_file_atomic(self.path, record_bytes(record))
        return self.path


def make_record(key: CalibrationKey, ranges: Ranges, extra: dict | None = None) -> dict:
    """The content of ``calibration.json``: the key, ``extra`` (data, plan, …) and the ranges."""
    return {
        "schema": _SCHEMA,
        "rftrt_version": __version__,
        "key": {
            "onnx_sha256": key.onnx_sha256,
            "data_hash": key.data_hash,
            "method": key.method,
            "settings": dict(key.settings),
        },
        **(extra or {}),
        "ranges": ranges.as_dict(),
    }


def record_bytes(record: dict) -> bytes:
    """``calibration.json`` as written (for a bundle's file list)."""
    return (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()
