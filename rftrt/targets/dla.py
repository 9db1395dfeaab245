"""The documented DLA rules: which ONNX ops run on a DLA core, the limits of the ones whose
attributes decide, and the source of each rule (``dla_rules.toml`` beside this module)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .._data import load_toml
from ..errors import RftrtError

__all__ = ["OpRule", "DlaRules", "dla_rules", "parse_dla_rules"]

_FILE = "dla_rules.toml"
#: sections holding one rule each (with its ``source``), and the ONNX ops whose rule is one of them
_LIMIT_SECTIONS = {"precision": None, "loadables": None, "convolution": "Conv", "clip": "Clip", "concat": "Concat"}


@dataclass(frozen=True)
class OpRule:
    """Where one ONNX op runs whatever its attributes: on DLA as ``layer``, or on the GPU for ``reason``."""

    op: str
    device: str  # "DLA" or "GPU"
    #: DLA: the TensorRT layer the op becomes; GPU: why it is not on DLA
    text: str
    #: a key of :attr:`DlaRules.sources`
    source: str


@dataclass(frozen=True)
class DlaRules:
    """The rules of ``dla_rules.toml``, checked: every rule names a known source."""

    cited_as: str
    sources: dict[str, str]
    #: the precisions DLA runs, as TensorRT names them ("FP16", "INT8")
    precisions: tuple[str, ...]
    loadables_per_core: int
    conv_dims: int
    #: inclusive (low, high) ranges
    conv_kernel: tuple[int, int]
    conv_stride: tuple[int, int]
    clip_min: float
    concat_axis: int
    ops: dict[str, OpRule]


def _source(where: str, entry: dict[str, Any], sources: dict[str, str]) -> str:
    source = entry.get("source")
    if source not in sources:
        raise RftrtError(f"{_FILE}: {where} has source {source!r}; every rule names one of [sources]: {', '.join(sources)}")
    return source


def _op_rules(raw: dict[str, Any], sources: dict[str, str]) -> dict[str, OpRule]:
    ops: dict[str, OpRule] = {}
    for device, key in (("DLA", "layer"), ("GPU", "reason")):
        for op, entry in raw.get(device.lower(), {}).items():
            if op in ops or op in _LIMIT_SECTIONS.values():
                raise RftrtError(f"{_FILE}: {op} has more than one rule")
            ops[op] = OpRule(op, device, entry[key], _source(f"[{device.lower()}.{op}]", entry, sources))
    return ops


def parse_dla_rules(raw: dict[str, Any]) -> DlaRules:
    """Check and type the contents of ``dla_rules.toml``; a rule without a known source is an error."""
    sources = dict(raw.get("sources", {}))
    try:
        for section in _LIMIT_SECTIONS:
            _source(f"[{section}]", raw[section], sources)
        conv = raw["convolution"]
        return DlaRules(
            cited_as=raw["cited_as"],
            sources=sources,
            precisions=tuple(raw["precision"]["runs"]),
            loadables_per_core=int(raw["loadables"]["per_core"]),
            conv_dims=int(conv["dims"]),
            conv_kernel=(int(conv["kernel"][0]), int(conv["kernel"][1])),
            conv_stride=(int(conv["stride"][0]), int(conv["stride"][1])),
            clip_min=float(raw["clip"]["min"]),
            concat_axis=int(raw["concat"]["axis"]),
            ops=_op_rules(raw, sources),
        )
    except KeyError as exc:
        raise RftrtError(f"{_FILE}: missing {exc.args[0]!r}") from None


@lru_cache(maxsize=1)
def dla_rules() -> DlaRules:
    """The DLA rules shipped with rftrt."""
    return parse_dla_rules(load_toml("rftrt.targets", _FILE))
