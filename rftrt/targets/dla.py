"""The documented DLA rules (``dla_rules.toml`` beside this module, each rule with its source) and the
placement prediction as a bundle carries it (``dla_prediction.json``), checked against TensorRT's own
answer on the device.

:func:`dla_rules` reads and checks the rules: which TensorRT layer each ONNX op becomes on DLA, the
limits of that layer and the check that tests them (:data:`CHECKS`; the checks themselves are
:mod:`rftrt.tools.inspect.dla`, which places a graph's nodes), and the ops that never run on DLA.
:func:`compare_with_tensorrt` is the device side: it sets the prediction a bundle carries beside
``IBuilderConfig.can_run_on_DLA`` for each network layer. It needs no data file and runs on the
device's Python (3.8, standard library only).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .._data import load_toml
from ..errors import RftrtError

__all__ = [
    "CHECKS",
    "PREDICTION_FILE",
    "LayerRule",
    "OpRule",
    "DlaRules",
    "dla_rules",
    "parse_dla_rules",
    "compare_with_tensorrt",
]

_FILE = "dla_rules.toml"
#: The file of a bundle that carries the placement prediction (rf-export writes it for ``--dla N``).
PREDICTION_FILE = "dla_prediction.json"
#: The ways a layer's limits are tested; ``dla_rules.toml`` says which one each layer takes.
CHECKS = ("none", "convolution", "pooling", "clip", "elementwise", "reduce", "matmul", "concat", "shuffle", "slice")
_SHOWN = 20


@dataclass(frozen=True)
class LayerRule:
    """One TensorRT layer kind DLA runs: the check that tests its limits, and the limits."""

    name: str
    check: str
    #: the layer's parameters in ``dla_rules.toml`` (``kernel``, ``window``, ``broadcast``, …)
    limits: dict[str, Any]
    #: the precisions this layer runs on DLA, where narrower than the general ones
    precisions: tuple[str, ...] | None
    source: str


@dataclass(frozen=True)
class OpRule:
    """Where one ONNX op runs: on DLA as ``layer`` (within its limits), or never (``reason``)."""

    op: str
    device: str  # "DLA" or "GPU"
    #: the layer it becomes (DLA), None for an op that never runs there
    layer: LayerRule | None
    #: the layer's operation ("MAX", "Sum", "ReLU", …), where the layer has several
    operation: str | None
    #: [fewest, most] constant inputs (ElementWise and Comparison ops)
    constant_inputs: tuple[int, int] | None
    #: why it never runs on DLA (GPU only)
    reason: str | None
    #: a key of :attr:`DlaRules.sources`
    source: str

    @property
    def key(self) -> str:
        """The rule's name in ``dla_rules.toml``: ``ops.Conv`` or ``gpu.HardSwish``."""
        return f"{'ops' if self.device == 'DLA' else 'gpu'}.{self.op}"


@dataclass(frozen=True)
class DlaRules:
    """The rules of ``dla_rules.toml``, checked: every rule names a known source, every layer a known check."""

    cited_as: str
    sources: dict[str, str]
    #: the precisions DLA runs, as TensorRT names them ("FP16", "INT8")
    precisions: tuple[str, ...]
    loadables_per_core: int
    #: the largest non-batch dimension a DLA layer takes
    max_dimension: int
    #: the source of the general rules
    general_source: str
    layers: dict[str, LayerRule]
    ops: dict[str, OpRule]


def _source(where: str, entry: dict[str, Any], sources: dict[str, str]) -> str:
    source = entry.get("source")
    if source not in sources:
        raise RftrtError(f"{_FILE}: {where} has source {source!r}; every rule names one of [sources]: {', '.join(sources)}")
    return source


def _layer_rules(raw: dict[str, Any], sources: dict[str, str]) -> dict[str, LayerRule]:
    layers = {}
    for name, entry in raw.get("layers", {}).items():
        check = entry.get("check")
        if check not in CHECKS:
            raise RftrtError(f"{_FILE}: [layers.{name}] has check {check!r}; the checks are {', '.join(CHECKS)}")
        limits = {k: v for k, v in entry.items() if k not in ("check", "source", "precisions")}
        precisions = tuple(entry["precisions"]) if "precisions" in entry else None
        layers[name] = LayerRule(name, check, limits, precisions, _source(f"[layers.{name}]", entry, sources))
    return layers


def _op_rules(raw: dict[str, Any], sources: dict[str, str], layers: dict[str, LayerRule]) -> dict[str, OpRule]:
    ops: dict[str, OpRule] = {}
    for op, entry in raw.get("ops", {}).items():
        layer = layers.get(entry.get("layer"))
        if layer is None:
            raise RftrtError(f"{_FILE}: [ops.{op}] names layer {entry.get('layer')!r}; the layers are {', '.join(layers)}")
        bounds = entry.get("constant_inputs")
        constant_inputs = (int(bounds[0]), int(bounds[1])) if bounds is not None else None
        ops[op] = OpRule(op, "DLA", layer, entry.get("operation"), constant_inputs, None, _source(f"[ops.{op}]", entry, sources))
    for op, entry in raw.get("gpu", {}).items():
        if op in ops:
            raise RftrtError(f"{_FILE}: {op} has more than one rule")
        ops[op] = OpRule(op, "GPU", None, None, None, entry["reason"], _source(f"[gpu.{op}]", entry, sources))
    return ops


def parse_dla_rules(raw: dict[str, Any]) -> DlaRules:
    """Check and type the contents of ``dla_rules.toml``; a rule without a known source is an error."""
    sources = dict(raw.get("sources", {}))
    try:
        general = raw["general"]
        layers = _layer_rules(raw, sources)
        return DlaRules(
            cited_as=raw["cited_as"],
            sources=sources,
            precisions=tuple(general["precisions"]),
            loadables_per_core=int(general["loadables_per_core"]),
            max_dimension=int(general["max_dimension"]),
            general_source=_source("[general]", general, sources),
            layers=layers,
            ops=_op_rules(raw, sources, layers),
        )
    except KeyError as exc:
        raise RftrtError(f"{_FILE}: missing {exc.args[0]!r}") from None


@lru_cache(maxsize=1)
def dla_rules() -> DlaRules:
    """The DLA rules shipped with rftrt."""
    return parse_dla_rules(load_toml("rftrt.targets", _FILE))


def compare_with_tensorrt(prediction: dict, node_layers: dict[str, list[int]], layer_on_dla: list[bool]) -> dict:
    """The prediction a bundle carries (``dla_prediction.json``) beside TensorRT's answer.

    ``node_layers`` maps each ONNX node to the indices of its network layers (the parser names them
    after the node), ``layer_on_dla`` is ``IBuilderConfig.can_run_on_DLA`` for each layer. A node is
    on DLA by TensorRT's answer when every one of its layers can run there.
    """
    agree, disagree, unmatched = 0, [], []
    for node in prediction.get("placements", []):
        layers = node_layers.get(node["name"])
        if not layers:
            unmatched.append(node["name"])
            continue
        answer = "DLA" if all(layer_on_dla[i] for i in layers) else "GPU"
        if answer == node["device"]:
            agree += 1
        else:
            disagree.append({"node": node["name"], "op": node["op"], "predicted": node["device"], "tensorrt": answer, "rule": node.get("rule")})
    return {
        "basis": "the bundle's dla_prediction.json beside IBuilderConfig.can_run_on_DLA for each network layer",
        "nodes_compared": agree + len(disagree),
        "agree": agree,
        "disagree": len(disagree),
        "disagreements": disagree[:_SHOWN],
        "nodes_without_a_layer": len(unmatched),
        "predicted": {k: prediction.get(k) for k in ("dla_nodes", "gpu_nodes", "loadables", "without_fallback")},
    }
