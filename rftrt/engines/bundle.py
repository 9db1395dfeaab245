"""The on-device bundle: a directory of files plus a ``manifest.json`` of their sha256 and sizes.

A bundle is written all at once or not at all: its files go to a temporary directory beside the
destination (same filesystem), are flushed to disk, and the directory is renamed into place, so a
crash, a full disk or Ctrl-C never leaves a half-written bundle under the real name. The manifest has
sorted keys and no timestamps: the same files and versions give a byte-identical manifest.

On the device, :func:`load_bundle_spec` opens a bundle: it verifies the files against the manifest
(allowing the :data:`BUILD_OUTPUTS` that builds and benchmarks add) and reads ``build.json``.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath

from ..errors import RftrtError
from ..files import deferred_signals, exchange_paths, fsync_dir, remove_path, sha256_bytes, sha256_file, write_durable
from .build_spec import BuildSpec

__all__ = ["BundleFile", "BundleReport", "MANIFEST", "BUILD_OUTPUTS", "write_bundle", "verify_bundle", "load_bundle_spec", "open_bundle"]

MANIFEST = "manifest.json"
MANIFEST_SCHEMA = 1
_EXECUTABLE_SUFFIXES = (".sh",)

#: Files a build or benchmark writes into a bundle that its manifest does not list.
BUILD_OUTPUTS = ("*.engine", "*.engine.json", "*.plan", "*.plan.json", "timing.cache", "*.log", "verify*.json")


@dataclass(frozen=True)
class BundleFile:
    """One file of a bundle as the manifest records it."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class BundleReport:
    """A written or verified bundle: where it is, its files (sorted by name) and the versions that made it."""

    path: Path
    files: tuple[BundleFile, ...]
    versions: Mapping[str, str] = field(default_factory=dict)


# --- writing ------------------------------------------------------------------------------------


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise RftrtError(f"bundle file name {name!r} must be a non-empty string")
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name or path.as_posix() != name:
        raise RftrtError(f"bundle file name {name!r} must be a plain relative path such as model.onnx")
    if name == MANIFEST:
        raise RftrtError(f"{MANIFEST} is written by the bundle writer; leave it out of the files")
    return name


def _manifest_bytes(files: tuple[BundleFile, ...], versions: Mapping[str, str]) -> bytes:
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "files": {f.name: {"sha256": f.sha256, "size": f.size} for f in files},
        "versions": {str(k): str(v) for k, v in versions.items()},
    }
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _make_parent(parent: Path) -> list[Path]:
    """Create ``parent`` and any missing ancestors; return the ones created, deepest first."""
    created = []
    probe = parent
    while not probe.exists() and probe != probe.parent:
        created.append(probe)
        probe = probe.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RftrtError(f"cannot create {parent}: {exc.strerror}; choose another output directory") from None
    return created


def write_bundle(
    out_dir: Path,
    files: Mapping[str, bytes],
    *,
    force: bool = False,
    versions: Mapping[str, str],
    log: Callable[[str], None] | None = None,
) -> BundleReport:
    """Write ``files`` (relative name → bytes) and their ``manifest.json`` to ``out_dir``, atomically.

    An existing ``out_dir`` is refused unless ``force``; then the new bundle replaces it (old one renamed
    aside, new one renamed in, old one deleted). Files ending in ``.sh`` are made executable. On any
    exception, KeyboardInterrupt included, nothing is left behind: no temporary directory and no
    ``out_dir`` (an existing one is kept as it was).
    """
    out_dir = Path(out_dir)
    names = sorted(_check_name(name) for name in files)
    _check_replaceable(out_dir, force)
    others = _not_in_manifest(out_dir) if out_dir.is_dir() else []
    if others and log is not None:
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        log(f"warning: replacing {out_dir} deletes {len(others)} files other commands wrote there: {shown}")

    parent = out_dir.absolute().parent
    created_parents = _make_parent(parent)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=parent))
    except OSError as exc:
        _remove_empty(created_parents)
        raise RftrtError(f"cannot write to {parent}: {exc.strerror}; choose another output directory") from None

    try:
        os.chmod(tmp, 0o755)
        records = []
        for name in names:
            data = files[name]
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError(f"bundle file {name!r} must be bytes, got {type(data).__name__}")
            data = bytes(data)
            target = tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            write_durable(target, data, 0o755 if name.endswith(_EXECUTABLE_SUFFIXES) else 0o644)
            records.append(BundleFile(name=name, size=len(data), sha256=sha256_bytes(data)))
        report_files = tuple(records)
        write_durable(tmp / MANIFEST, _manifest_bytes(report_files, versions), 0o644)
        for sub in sorted({(tmp / n).parent for n in names} | {tmp}, key=lambda p: len(p.parts), reverse=True):
            fsync_dir(sub)
        _move_into_place(tmp, out_dir, force)
    except BaseException as exc:
        remove_path(tmp)
        _remove_empty(created_parents)
        if isinstance(exc, OSError):
            raise RftrtError(f"cannot write bundle {out_dir}: {exc.strerror or exc}; check the disk and the path") from None
        raise
    fsync_dir(parent)
    return BundleReport(path=out_dir, files=report_files, versions=dict(versions))


def _check_replaceable(out_dir: Path, force: bool) -> None:
    if not out_dir.exists() and not out_dir.is_symlink():
        return
    if not force:
        raise RftrtError(f"{out_dir} exists; pass --force to replace it")
    # --force replaces a bundle, never an arbitrary folder someone pointed --out at by mistake.
    if not out_dir.is_dir() or out_dir.is_symlink():
        raise RftrtError(f"{out_dir} exists and is not a directory; refusing to replace it, choose another output path")
    if not (out_dir / MANIFEST).is_file() and any(out_dir.iterdir()):
        raise RftrtError(f"{out_dir} exists and is not a bundle (no {MANIFEST}); refusing to replace it, choose another output path")


def _not_in_manifest(bundle_dir: Path) -> list[str]:
    """The files in a bundle folder that its manifest does not list (an engine, a calibration …)."""
    try:
        listed = set(json.loads((bundle_dir / MANIFEST).read_text(encoding="utf-8"))["files"]) | {MANIFEST}
    except (OSError, ValueError, KeyError, TypeError):
        listed = {MANIFEST}
    return sorted(p.relative_to(bundle_dir).as_posix() for p in bundle_dir.rglob("*") if p.is_file() and p.relative_to(bundle_dir).as_posix() not in listed)


def _remove_empty(dirs: list[Path]) -> None:
    for d in dirs:  # deepest first
        try:
            d.rmdir()
        except OSError:
            pass


def _move_into_place(tmp: Path, out_dir: Path, force: bool) -> None:
    """``tmp`` becomes ``out_dir``. Replacing a bundle is one atomic exchange where the filesystem
    has it (Linux), else two renames; either way SIGINT and SIGTERM are held back meanwhile, so at
    every moment ``out_dir`` is the old bundle or the new one, and no folder is left at a hidden name."""
    if not out_dir.exists() and not out_dir.is_symlink():
        os.rename(tmp, out_dir)
        return
    _check_replaceable(out_dir, force)  # again: it may have appeared or changed since the start
    with deferred_signals():
        if exchange_paths(tmp, out_dir):
            old = tmp  # the exchange left the old bundle at the temporary name
        else:
            old = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}")
            os.rename(out_dir, old)
            try:
                os.rename(tmp, out_dir)
            except BaseException:
                os.rename(old, out_dir)
                raise
        remove_path(old)


# --- verifying ----------------------------------------------------------------------------------


def _read_manifest(bundle_dir: Path) -> dict:
    manifest_path = bundle_dir / MANIFEST
    if not bundle_dir.is_dir():
        raise RftrtError(f"bundle {bundle_dir} is not a directory; pass the folder rf-export wrote")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RftrtError(f"{bundle_dir} has no {MANIFEST}; it is not a bundle, or an incomplete one: re-export it") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise RftrtError(f"{manifest_path} is not valid JSON ({exc}); re-export the bundle") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA or not isinstance(manifest.get("files"), dict):
        raise RftrtError(f"{manifest_path} is not a schema-{MANIFEST_SCHEMA} bundle manifest; re-export the bundle with this rftrt")
    return manifest


def verify_bundle(bundle_dir: Path, *, ignore: Collection[str] = ()) -> BundleReport:
    """Re-hash every file against ``manifest.json``; any changed, missing or unlisted file is an error.

    ``ignore`` holds glob patterns (``fnmatch``, on names relative to the bundle) of files that may be
    there without being listed, such as what build.sh writes: ``model.engine``, ``*.log``.
    """
    bundle_dir = Path(bundle_dir)
    manifest = _read_manifest(bundle_dir)
    problems: list[str] = []
    records = []
    for name, entry in sorted(manifest["files"].items()):
        try:
            _check_name(name)
        except RftrtError:
            problems.append(f"the manifest lists {name!r}, which is not a file name inside the bundle")
            continue
        if not isinstance(entry, dict):
            problems.append(f"the manifest entry of {name} is not an object")
            continue
        path = bundle_dir / name
        if not path.is_file():
            problems.append(f"{name} is missing")
            continue
        size, sha = path.stat().st_size, sha256_file(path)
        if size != entry.get("size") or sha != entry.get("sha256"):
            problems.append(f"{name} has changed (sha256 {sha[:12]}…, manifest {str(entry.get('sha256'))[:12]}…)")
        records.append(BundleFile(name=name, size=size, sha256=sha))
    listed = set(manifest["files"]) | {MANIFEST}
    for path in sorted(bundle_dir.rglob("*")):
        name = path.relative_to(bundle_dir).as_posix()
        if path.is_dir() and not path.is_symlink():
            continue
        if name not in listed and not any(fnmatch(name, pattern) for pattern in ignore):
            problems.append(f"{name} is not in the manifest")
    if problems:
        raise RftrtError(f"bundle {bundle_dir} does not match its {MANIFEST}: {'; '.join(problems)}; re-export the bundle")
    versions = manifest.get("versions") or {}
    return BundleReport(path=bundle_dir, files=tuple(records), versions=dict(versions))


# --- opening a bundle on the device -------------------------------------------------------------


def load_bundle_spec(bundle_dir: Path) -> BuildSpec:
    """Verify a bundle against its manifest (build outputs may be there) and read its build.json."""
    return open_bundle(bundle_dir)[1]


def open_bundle(bundle_dir: Path) -> tuple[BundleReport, BuildSpec]:
    """A bundle verified against its manifest (build outputs may be there), and its build.json."""
    bundle_dir = Path(bundle_dir)
    report = verify_bundle(bundle_dir, ignore=BUILD_OUTPUTS)
    path = bundle_dir / "build.json"
    if not path.is_file():
        raise RftrtError(f"{bundle_dir} has no build.json; it is not an rf-export bundle")
    try:
        return report, BuildSpec.from_json(path.read_text(encoding="utf-8"))
    except (ValueError, TypeError, KeyError) as exc:
        raise RftrtError(f"{path} is not a valid build specification ({exc}); re-export the bundle") from None
