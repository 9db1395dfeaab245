"""One TensorRT release from its bindings wheel to its ``trt-<version>.json`` record.

Download and unpack the wheel (``wheels``), import it against stub libraries and walk it
(``introspect``), then check the result before it becomes a record: every extracted name that is
not added by ``__init__.py`` must occur among the NUL-terminated strings of the ``.so`` (pybind11
registers names from C string literals), and the module-level loop variables that ``__init__.py``
leaks (``attr`` and ``value``) are dropped.
"""

from __future__ import annotations

import re
from pathlib import Path

from .elf import occurs_as_c_string
from .introspect import introspect
from .log import log
from .names import distinct_names, loop_only_names
from .record import api_record
from .wheels import download_wheel, sha256_of, unpack_bindings, version_from_wheel_name


def cross_check_strings(names: dict, so: Path, init_text: str) -> None:
    """Exit unless every name in `names` occurs in the strings of `so` or in `init_text`."""
    so_bytes = so.read_bytes()
    all_names = distinct_names(names)
    not_in_so = [n for n in sorted(all_names)
                 if not occurs_as_c_string(so_bytes, n) and not re.search(r"\b%s\b" % re.escape(n), init_text)]
    if not_in_so:
        raise SystemExit(f"names neither in the .so strings nor in __init__.py: {not_in_so}")
    log(f"  cross-check: all {len(all_names)} distinct names occur in the .so strings or __init__.py")


def drop_leaked_names(names: dict, init_text: str) -> None:
    """Remove from `names` the module-level loop variables of `init_text`: they are not API."""
    leaked = loop_only_names(init_text)
    names["constants"] = [n for n in names["constants"] if n not in leaked]
    names["functions"] = [n for n in names["functions"] if n not in leaked]


def extract(spec: str, python: str, pyver: str, workdir: Path) -> dict:
    """The record of the release `spec` (a pip requirement), imported by `python` (version `pyver`);
    `workdir` holds the wheel and the unpacked package."""
    log(f"== {spec}")
    wheel = download_wheel(spec, workdir / "wheel", pyver)
    digest = sha256_of(wheel)
    log(f"  wheel {wheel.name} sha256 {digest}")
    site = workdir / "site"
    so = unpack_bindings(wheel, site)
    names = introspect(python, so, site)
    init_text = (so.parent / "__init__.py").read_text()
    cross_check_strings(names, so, init_text)
    drop_leaked_names(names, init_text)
    version = names["version"] or version_from_wheel_name(wheel.name)
    return api_record(version, wheel, digest, pyver, names)
