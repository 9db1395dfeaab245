"""Writing files so that readers never see half of one, and hashing them.

A leaf module (standard library only) that every stage shares: reports, sidecars, bundles and
calibration records are all written through :func:`write_file_atomic` or the same primitives.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from .errors import RftrtError

__all__ = ["write_file_atomic", "write_json", "check_output_file", "check_output_dir", "deferred_signals", "exchange_paths", "write_durable", "fsync_dir", "remove_path", "sha256_file", "sha256_bytes"]

_CHUNK = 1 << 20


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (new files, a rename) durable; not every filesystem allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_durable(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path``, flushed to disk, with permissions ``mode``."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(path, mode)


def remove_path(path: Path) -> None:
    """Remove a file or a directory tree; nothing if it is not there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def write_file_atomic(path: Path, data: bytes) -> None:
    """Write one file (a JSON report, a sidecar) by temp file + rename: readers see the old or the new file, never half of one."""
    path = Path(path)
    parent = path.absolute().parent
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=parent)
    except OSError as exc:
        raise RftrtError(f"cannot write to {parent}: {exc.strerror}; choose another path") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as exc:
        remove_path(tmp)
        if isinstance(exc, OSError):
            raise RftrtError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise
    fsync_dir(parent)


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB chunks (engines and checkpoints are large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_json(path: Path, data: object) -> None:
    """A JSON report (sorted keys, indented, newline-terminated), written atomically."""
    write_file_atomic(Path(path), (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def read_json_record(path: Path, is_record: Callable[[object], bool], kind: str, remedy: str) -> dict | None:
    """The JSON object in ``path``, or None where there is no such file. A file that is not JSON, or
    whose content ``is_record`` rejects (it is not ``kind``), is one line naming ``remedy``."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise RftrtError(f"{path} is not valid JSON ({exc}); {remedy}") from None
    if not isinstance(data, dict) or not is_record(data):
        raise RftrtError(f"{path} is not {kind}; {remedy}")
    return data


def _probe(folder: Path) -> str | None:
    """Why nothing can be created in ``folder``, or None (tried, not guessed: permissions, read-only
    mounts and full disks all show)."""
    try:
        fd, name = tempfile.mkstemp(prefix=".rftrt-probe-", dir=folder)
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(fd)
    os.unlink(name)
    return None


def check_output_file(path: str | Path, what: str = "output") -> None:
    """Refuse, before any work, a file that could not be written: its folder must exist and take files."""
    path = Path(path)
    parent = path.absolute().parent
    if path.is_dir():
        raise RftrtError(f"cannot write the {what} {path}: it is a folder; give a file name")
    if not parent.is_dir():
        raise RftrtError(f"cannot write the {what} {path}: folder {parent} does not exist")
    why = _probe(parent)
    if why:
        raise RftrtError(f"cannot write the {what} {path}: {why} in {parent}")


def check_output_dir(path: str | Path, what: str = "output folder") -> None:
    """Refuse, before any work, a folder that could not be made: its nearest existing ancestor must
    be a folder that takes new entries (the folder itself, if it exists)."""
    path = Path(path).absolute()
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise RftrtError(f"cannot write the {what} {path}: {probe} is not a folder")
    why = _probe(probe)
    if why:
        raise RftrtError(f"cannot write the {what} {path}: {why} in {probe}")


@contextmanager
def deferred_signals():
    """Hold SIGINT and SIGTERM back for the duration, so that a few filesystem steps that must
    happen together do: a signal that arrives meanwhile is recorded and acted on (its own handler
    called) when the steps are done. Python runs signal handlers in the main thread whichever thread
    the signal reached, so replacing the handlers (not a thread's signal mask) is what holds them;
    outside the main thread it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[tuple[int, object]] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: arrived.append((signum, frame))) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for signum, frame in arrived[:1]:
            handler = previous[signum]
            if callable(handler):
                handler(signum, frame)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def exchange_paths(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); False where
    the system or the filesystem cannot, and nothing was changed."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(error, os.strerror(error), str(a))
