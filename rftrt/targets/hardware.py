"""The GPUs rftrt computes limits for: peak bandwidth, dense FP16 rate and L2 size, each figure with
its source (``hardware.toml``), and which entry a CUDA device name is."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

from .._data import load_toml
from ..errors import RftrtError

__all__ = ["Hardware", "hardware", "list_hardware", "hardware_key_for_device"]


@dataclass(frozen=True)
class Hardware:
    key: str
    name: str
    memory_gb_s: float
    fp16_dense_tflops: float
    l2_mib: float
    sources: tuple[str, ...]
    l2_sources: tuple[str, ...]
    derivation: str = ""
    notes: str = ""
    l2_notes: str = ""

    @property
    def l2_bytes(self) -> int:
        return int(self.l2_mib * 2**20)

    def as_dict(self) -> dict:
        return asdict(self)


@lru_cache(maxsize=1)
def _raw_table() -> dict[str, dict]:
    return load_toml("rftrt.targets", "hardware.toml")["gpus"]


@lru_cache(maxsize=1)
def _hardware_table() -> dict[str, Hardware]:
    return {
        key: Hardware(
            key=key,
            name=entry["name"],
            memory_gb_s=float(entry["memory_gb_s"]),
            fp16_dense_tflops=float(entry["fp16_dense_tflops"]),
            l2_mib=float(entry["l2_mib"]),
            sources=tuple(entry["sources"]),
            l2_sources=tuple(entry["l2_sources"]),
            derivation=entry.get("derivation", ""),
            notes=entry.get("notes", ""),
            l2_notes=entry.get("l2_notes", ""),
        )
        for key, entry in _raw_table().items()
    }


def list_hardware() -> list[str]:
    return list(_hardware_table())


def hardware(key: str) -> Hardware:
    """The ``hardware.toml`` entry ``key``; an unknown key is an error that lists the known ones."""
    try:
        return _hardware_table()[key.lower()]
    except KeyError:
        raise RftrtError(f"unknown GPU {key!r}; known: {', '.join(list_hardware())}") from None


def hardware_key_for_device(device_name: str) -> str | None:
    """The ``hardware.toml`` key of a CUDA device name (``NVIDIA H100 PCIe`` → ``h100-pcie``), or
    None when it is none of ours."""
    name = device_name.upper()
    best: tuple[int, str] | None = None
    for key, entry in _raw_table().items():
        has = [w.upper() for w in entry.get("device_name_has", [])]
        lacks = [w.upper() for w in entry.get("device_name_lacks", [])]
        if has and all(w in name for w in has) and not any(w in name for w in lacks):
            if best is None or len(has) > best[0]:
                best = (len(has), key)
    return best[1] if best else None
