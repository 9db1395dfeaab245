"""Data files shipped with rftrt: real sample photographs in ``images/`` (see its LICENSES.md)."""
