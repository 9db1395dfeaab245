"""The ``trt-<version>.json`` record of one release: its fields and its deterministic text.

Keys and lists are sorted and each class, enum or scalar field takes one line, so re-running with
the same interpreter version gives byte-identical files (the ``wheel``/``wheel_sha256`` fields name
the per-Python-version wheel, so they differ if another Python version is used).
"""

from __future__ import annotations

import json
from pathlib import Path

METHOD = ("import of the wheel's extension against generated stub TensorRT libraries; "
          "names from dir()/__members__ (see scripts/extract_trt_api.py)")


def api_record(version: str, wheel: Path, digest: str, pyver: str, names: dict) -> dict:
    """The record of release `version`, read from `wheel` (SHA-256 `digest`) with Python `pyver`;
    `names` holds its classes, bases, enums, functions and constants."""
    return {
        "tensorrt_version": version,
        "wheel": wheel.name,
        "wheel_sha256": digest,
        "python": pyver,
        "method": METHOD,
        "classes": names["classes"],
        "bases": names["bases"],
        "enums": names["enums"],
        "functions": names["functions"],
        "constants": names["constants"],
    }


def record_text(api: dict) -> str:
    """Deterministic JSON: keys sorted, one class/enum (or scalar field) per line."""
    lines = ["{"]
    keys = sorted(api)
    for i, key in enumerate(keys):
        value = api[key]
        comma = "," if i < len(keys) - 1 else ""
        if isinstance(value, dict):
            lines.append(f" {json.dumps(key)}: {{")
            sub = sorted(value)
            for j, name in enumerate(sub):
                sep = "," if j < len(sub) - 1 else ""
                lines.append(f"  {json.dumps(name)}: {json.dumps(value[name])}{sep}")
            lines.append(" }" + comma)
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value)}{comma}")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == api
    return text
