"""Assembling ``rftrt-device.pyz`` from the package's own modules.

The kit is the import closure of its entry point (:data:`ENTRY`, the ``rftrt-device`` command) within
rftrt, read from the source (every ``import`` and ``from … import``, the ones inside functions too),
plus the data files those modules read: the same code the ``rf-build``/``rf-verify`` console scripts
run, not a copy. Where the device's Python has no TOML parser, :mod:`rftrt._data` reads the JSON
copies of the TOML files the kit carries, and the folder listings in ``index.json``.

The closure must not reach torch, ONNX, ONNX Runtime, onnx-graphsurgeon or Polygraphy
(:data:`HOST_ONLY`): building a kit that would is an error. The archive is deterministic: sorted
entries, fixed timestamps, so the same rftrt gives the same bytes (bundles are reproducible).
"""

from __future__ import annotations

import ast
import io
import json
import zipfile
from pathlib import Path

from .. import _data
from ..errors import RftrtError

__all__ = ["KIT_NAME", "ENTRY", "HOST_ONLY", "kit_modules", "module_imports", "build_kit"]

KIT_NAME = "rftrt-device.pyz"
#: The module whose ``main()`` the kit runs.
ENTRY = "rftrt.cli.device"
#: Packages the device does not have (and the kit must not need).
HOST_ONLY = ("torch", "onnx", "onnxruntime", "onnx_graphsurgeon", "polygraphy", "matplotlib", "PIL", "sklearn")
#: Data folders the kit's modules read, by package.
_DATA = {"rftrt.targets": ("profiles",)}
_ROOT = Path(__file__).resolve().parents[1]  # the rftrt package folder
_DATE = (1980, 1, 1, 0, 0, 0)
_MAIN = "import sys\n\nfrom rftrt.cli.device import main\n\nsys.exit(main(archive=sys.argv[0]))\n"


def _source(module: str) -> Path:
    """The source file of ``module``: ``x.py``, else the package's ``x/__init__.py`` (a data folder
    may share a module's name, as ``targets/profiles/`` does ``targets/profiles.py``)."""
    path = _ROOT.parent.joinpath(*module.split("."))
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else path / "__init__.py"


def _absolute(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if _source(module).name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def module_imports(module: str) -> set[str]:
    """Every module ``module`` imports (top-level names for packages outside rftrt)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(_source(module).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, node)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name and not name.startswith("__future__")}


def _existing(name: str) -> str | None:
    """The rftrt module ``name`` is, or lies in (``rftrt.x.f`` for a function f of module rftrt.x)."""
    while name.startswith("rftrt"):
        if _source(name).is_file():
            return name
        name = name.rpartition(".")[0]
    return None


def kit_modules() -> list[str]:
    """The rftrt modules of the kit: the entry point's import closure and every package above them."""
    closure, todo = set(), [ENTRY]
    while todo:
        module = todo.pop()
        if module in closure:
            continue
        closure.add(module)
        for name in module_imports(module):
            if name.split(".")[0] in HOST_ONLY:
                raise RftrtError(f"the device kit would need {name} (imported by {module}), which devices do not have")
            found = _existing(name)
            if found is not None:
                todo.append(found)
    packages = {".".join(m.split(".")[:i]) for m in closure for i in range(1, len(m.split(".")))}
    return sorted(closure | packages)


def _data_files() -> dict[str, bytes]:
    """Each data file the kit's modules read, its JSON copy where it is TOML, and each folder's index."""
    files: dict[str, bytes] = {}
    for package, folders in _DATA.items():
        base = package.replace(".", "/")
        for folder in folders:
            names = [n for n in _data.list_folder(package, folder) if not n.endswith(_data.JSON_SUFFIX)]
            files[f"{base}/{folder}/{_data.INDEX}"] = (json.dumps(sorted(names + [n[:-5] + ".json" for n in names if n.endswith(".toml")])) + "\n").encode()
            for name in names:
                files[f"{base}/{folder}/{name}"] = _data.read_text(package, f"{folder}/{name}").encode()
                if name.endswith(".toml"):
                    parsed = _data.load_toml(package, f"{folder}/{name}")
                    files[f"{base}/{folder}/{name[:-5]}.json"] = (json.dumps(parsed, indent=1, sort_keys=True) + "\n").encode()
    return files


def build_kit() -> bytes:
    """The bytes of ``rftrt-device.pyz``."""
    entries = {f"{m.replace('.', '/')}{'/__init__.py' if _source(m).name == '__init__.py' else '.py'}": _source(m).read_bytes() for m in kit_modules()}
    entries.update(_data_files())
    entries["__main__.py"] = _MAIN.encode()
    buffer = io.BytesIO()
    buffer.write(b"#!/usr/bin/env python3\n")  # as zipapp writes it: the archive follows the line
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, entries[name])
    return buffer.getvalue()
