"""Reading the data files shipped inside the package (model figures, target profiles, …)."""

from __future__ import annotations

import sys
from importlib import resources
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


def load_toml(package: str, name: str) -> dict[str, Any]:
    """Parse the TOML file ``name`` shipped in ``package`` (e.g. ``"rftrt.models"``)."""
    return tomllib.loads(resources.files(package).joinpath(name).read_text(encoding="utf-8"))
