"""Reading the data files shipped inside the package (model figures, target profiles, …).

They are read through the package's loader (``pkgutil.get_data``), so they are found in an installed
package and inside the device kit's zipapp alike. Where Python has no TOML parser (3.8–3.10 without
``tomli``: the Python DRIVE OS and JetPack ship), a TOML file is read from the JSON copy the kit
carries beside it (``name.toml`` → ``name.json``, made by :mod:`rftrt.device.kit` from the same file);
a folder's listing likewise from the kit's ``index.json`` where ``importlib.resources.files`` is
missing (Python 3.8).
"""

from __future__ import annotations

import json
import pkgutil
from importlib import resources
from typing import Any

try:
    import tomllib  # novermin - guarded: the kit reads JSON copies without it
except ImportError:  # Python < 3.11
    try:
        import tomli as tomllib
    except ImportError:  # a device's Python: the kit's JSON copies stand in
        tomllib = None

__all__ = ["read_text", "load_toml", "list_folder", "JSON_SUFFIX", "INDEX"]

JSON_SUFFIX = ".json"
INDEX = "index.json"


def read_text(package: str, name: str) -> str:
    """The text of the data file ``name`` (a ``/``-separated path) shipped in ``package``."""
    data = pkgutil.get_data(package, name)
    if data is None:
        raise FileNotFoundError(f"{package}: no data file {name}")
    return data.decode("utf-8")


def load_toml(package: str, name: str) -> dict[str, Any]:
    """Parse the TOML file ``name`` shipped in ``package`` (e.g. ``"rftrt.models"``)."""
    if tomllib is None:
        return json.loads(read_text(package, name[: -len(".toml")] + JSON_SUFFIX))
    return tomllib.loads(read_text(package, name))


def list_folder(package: str, folder: str) -> list[str]:
    """The file names in the data folder ``folder`` of ``package``, sorted."""
    files = getattr(resources, "files", None)
    if files is None:  # Python 3.8
        return sorted(json.loads(read_text(package, f"{folder}/{INDEX}")))
    return sorted(entry.name for entry in files(package).joinpath(folder).iterdir() if entry.is_file())
