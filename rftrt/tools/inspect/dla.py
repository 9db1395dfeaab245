"""Where each node of a graph would run on a DLA core, predicted from the documented rules
(:func:`rftrt.targets.dla.dla_rules`: data, each rule with its source), and what the split costs:
DLA↔GPU transitions, DLA loadables against the loadables a core holds, network I/O reformats, and
whether a build without GPU fallback would succeed.

The rules file says which layer an op becomes and that layer's limits; this module holds the checks
that test them (:data:`_CHECKS`, one per name of :data:`rftrt.targets.dla.CHECKS`). A prediction
until a device confirms it: ``rf-build`` writes TensorRT's own answer (``can_run_on_DLA`` per layer)
beside it into the engine's sidecar.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from ...export.passes import to_graph
from ...targets.dla import DlaRules, LayerRule, OpRule, dla_rules

__all__ = ["DlaPrediction", "NodePlacement", "dla_rule", "predict_dla", "predict_dla_onnx", "prediction_bytes"]


@dataclass(frozen=True)
class NodePlacement:
    name: str
    op: str
    device: str  # "DLA" or "GPU"
    #: the rule that decided, as ``dla_rules.toml`` names it (``ops.Conv``, ``gpu.HardSwish``, ``general.precisions``)
    rule: str
    reason: str


def _range(values: Any) -> tuple[int, int]:
    return int(values[0]), int(values[1])


def _within(values: list, bounds: Any) -> bool:
    low, high = _range(bounds)
    return all(isinstance(v, (int, np.integer)) and low <= v <= high for v in values)


def _sides(values: list) -> str:
    return "×".join(str(v) for v in values)


def _constant(tensor: Any) -> np.ndarray | None:
    return np.asarray(tensor.values) if isinstance(tensor, gs.Constant) else None


def _scalar(tensor: Any) -> float | None:
    values = _constant(tensor)
    return float(values.reshape(-1)[0]) if values is not None and values.size == 1 else None


def _shape(tensor: Any) -> list | None:
    shape = getattr(tensor, "shape", None)
    return list(shape) if shape is not None else None


# --- the checks: (passes, what was found) ------------------------------------------------------------
Check = Callable[[gs.Node, OpRule, LayerRule, str], tuple[bool, str]]


def _check_none(node: gs.Node, op: OpRule, layer: LayerRule, precision: str) -> tuple[bool, str]:
    return True, "supported"


def _window_outside(layer_kind: str, window_kind: str, window: list, strides: list, limits: dict) -> str | None:
    """Why a convolution's kernel or a pooling window (``window_kind``) and its strides break DLA's
    limits for ``layer_kind``, or None."""
    if len(window) != limits["dims"]:
        return f"{len(window)}-D {layer_kind}; DLA {layer_kind} is {limits['dims']}-D"
    if not _within(window, limits[window_kind]):
        return "{} {} outside DLA's {}–{}".format(window_kind, _sides(window), *_range(limits[window_kind]))
    if not _within(strides, limits["stride"]):
        return "stride {} outside DLA's {}–{}".format(_sides(strides), *_range(limits["stride"]))
    return None


def _check_convolution(node: gs.Node, op: OpRule, layer: LayerRule, precision: str) -> tuple[bool, str]:
    limits = layer.limits
    weight = _shape(node.inputs[1]) if len(node.inputs) > 1 else None
    kernel = list(node.attrs.get("kernel_shape") or (weight[2:] if weight else []))
    strides = list(node.attrs.get("strides") or [1] * len(kernel))
    outside = _window_outside("convolution", "kernel", kernel, strides, limits)
    if outside:
        return False, outside
    if weight is not None:
        channels = (weight[0], weight[1] * int(node.attrs.get("group", 1)))
        if not all(isinstance(c, int) and c <= limits["max_channels"] for c in channels):
            return False, f"{channels[1]} → {channels[0]} channels; DLA convolution takes at most {limits['max_channels']}"
    group = int(node.attrs.get("group", 1))
    return True, "kernel {}, stride {}{}: within DLA's kernel {}–{}, stride {}–{}".format(
        _sides(kernel), _sides(strides), f", {group} groups" if group > 1 else "", *_range(limits["kernel"]), *_range(limits["stride"])
    )


def _check_pooling(node: gs.Node, op: OpRule, layer: LayerRule, precision: str) -> tuple[bool, str]:
    limits = layer.limits
    window = list(node.attrs.get("kernel_shape", []))
    strides = list(node.attrs.get("strides") or [1] * len(window))
    outside = _window_outside("pooling", "window", window, strides, limits)
    if outside:
        return False, outside
    return True, "window {}, stride {}: within DLA's window {}–{}, stride {}–{}".format(
        _sides(window), _sides(strides), *_range(limits["window"]), *_range(limits["stride"])
    )


def _check_clip(node: gs.Node, op: OpRule, layer: LayerRule, precision: str) -> tuple[bool, str]:
    bounds = [_scalar(node.inputs[i]) if len(node.inputs) > i and node.inputs[i].name else None for i in (1, 2)]
    low = node.attrs.get("min", bounds[0])
    high = node.attrs.get("max", bounds[1])
    want_low, most = layer.limits["min"], layer.limits["max"]
    if low is None or float(low) != want_low or high is None or float(high) > most:
        return False, f"Clip({low}, {high}) is not a Clipped ReLU (constant min {want_low:g}, constant max ≤ {most:g})"
    return True, f"Clip({float(low):g}, {float(high):g}): min {want_low:g}, max ≤ {most:g}"


def _broadcast_form(shape: list | None, out: list | None) -> str | None:
    """The form an input takes against the output's non-batch dimensions: CHW, C11, 111, or None
    (another broadcast); ``"?"`` where a shape is unknown."""
    if shape is None or out is None or not all(isinstance(d, int) for d in out[1:]):
        return "?"
    aligned = [1] * (len(out) - len(shape)) + shape
    mine, theirs = aligned[1:], out[1:]
    if not all(isinstance(d, int) for d in mine):
        return "?"
    if mine == theirs:
        return "CHW"
    if all(d == 1 for d in mine):
        return "111"
    if mine[0] == theirs[0] and all(d == 1 for d in mine[1:]):
        return "C11"
    return None


def _check_elementwise(node: gs.Node, op: OpRule, layer: LayerRule, precision: str) -> tuple[bool, str]:
    constants = sum(isinstance(t, gs.Constant) for t in node.inputs)
    low, high = op.constant_inputs or (0, len(node.inputs))
    if not low <= constants <= high:
        wanted = f"exactly {low}" if low == high else f"{low}–{high}"
        return False, f"{constants} constant inputs; {op.operation} on DLA takes {wanted}"
    out = _shape(node.outputs[0])
    forms = [_broadcast_form(_shape(t), out) for t in node.inputs]
    allowed = layer.limits["broadcast"]
    for tensor, form in zip(node.inputs, forms):
        if form != "?" and form not in allowed:
            return False, f"input {_shape(tensor)} broadcast to {out} as {form or 'another form'}: not one of DLA's forms {'/'.join(allowed)}"
    shown = "/".join(sorted({f for f in forms if f != "?"})) or "shapes unknown"
    return True, f"{constants} constant inputs, broadcast {shown}: within DLA's forms {'/'.join(allowed)}"


def _axes(node: gs.Node) -> list[int] | None:
    if "axes" in node.attrs:
        return [int(a) for a in node.attrs["axes"]]
    values = _constant(node.inputs[1]) if len(node.inputs) > 1 else None
    return [int(a) for a in values.reshape(-1)] if values is not None else None


def _check_reduce(node: gs.Node, op: OpRule, layer: LayerRule, precision: str) -> tuple[bool, str]:
    operations = layer.limits["operations"]
    if op.operation not in operations:
        return False, f"DLA's Reduce supports {'/'.join(operations)} only"
    rank = len(_shape(node.inputs[0]) or [0, 0, 0, 0])
    axes = _axes(node)
    if axes is None or 0 in [a % rank for a in axes]:
        return False, "Reduce over the batch axis (or over all axes); DLA reduces C, H, W only"
    return True, f"over axes {axes}"


def _check_matmul(node: gs.Node, op: OpRule, layer: LayerRule, precision: str) -> tuple[bool, str]:
    if len(node.inputs) > 1 and isinstance(node.inputs[1], gs.Constant):
        return True, "constant second input (a fully connected layer)"
    return False, "both inputs are activations; DLA takes a MatrixMultiply only with a constant second input"


def _check_concat(node: gs.Node, op: OpRule, layer: LayerRule, precision: str) -> tuple[bool, str]:
    rank = len(_shape(node.outputs[0]) or [0, 0, 0, 0])
    axis = int(node.attrs.get("axis", 1))
    if axis % rank == layer.limits["axis"]:
        return True, "along the channel axis"
    return False, f"along axis {axis}; DLA concatenates along the channel axis only"


def _check_shuffle(node: gs.Node, op: OpRule, layer: LayerRule, precision: str) -> tuple[bool, str]:
    most = layer.limits["max_rank"]
    ranks = [len(s) for s in (_shape(node.inputs[0]), _shape(node.outputs[0])) if s is not None]
    if any(r > most for r in ranks):
        return False, f"rank-{max(ranks)} tensor; DLA's Shuffle takes at most {most}-D"
    perm = node.attrs.get("perm")
    if node.op == "Transpose" and perm is not None and int(perm[0]) != 0:
        return False, f"Transpose {list(perm)} moves the batch axis; DLA's Shuffle does not"
    return True, "within DLA's Shuffle"


def _check_slice(node: gs.Node, op: OpRule, layer: LayerRule, precision: str) -> tuple[bool, str]:
    dynamic = [t.name for t in node.inputs[1:] if t.name and not isinstance(t, gs.Constant)]
    if dynamic:
        return False, f"dynamic slice ({dynamic[0]} is computed); DLA slices statically only"
    return True, "static"


_CHECKS: dict[str, Check] = {
    "none": _check_none,
    "convolution": _check_convolution,
    "pooling": _check_pooling,
    "clip": _check_clip,
    "elementwise": _check_elementwise,
    "reduce": _check_reduce,
    "matmul": _check_matmul,
    "concat": _check_concat,
    "shuffle": _check_shuffle,
    "slice": _check_slice,
}


def _too_large(node: gs.Node, rules: DlaRules) -> str | None:
    for tensor in node.outputs:
        dims = [d for d in (_shape(tensor) or [])[1:] if isinstance(d, int)]
        if dims and max(dims) > rules.max_dimension:
            return f"output {_shape(tensor)} has a dimension over DLA's {rules.max_dimension}"
    return None


def dla_rule(node: gs.Node, precision: str = "fp16", fp32_nodes: dict[str, str] | set[str] | None = None) -> tuple[str, str, str]:
    """(``"DLA"`` or ``"GPU"``, the rule that decided, why) for one node under the documented DLA rules."""
    rules = dla_rules()
    runs = " and ".join(rules.precisions)
    if precision.upper() not in rules.precisions:
        return "GPU", "general.precisions", f"{precision.upper()} build: DLA runs {runs} only"
    fp32_nodes = fp32_nodes or set()
    if node.name in fp32_nodes:
        why = fp32_nodes[node.name] if isinstance(fp32_nodes, dict) else "FP32 island"
        return "GPU", "general.precisions", f"kept FP32 by the precision plan ({why}); DLA runs {runs} only"
    op = rules.ops.get(node.op)
    if op is None:
        return "GPU", "unlisted", f"{node.op} is not in the DLA supported-layer list"
    if op.layer is None:
        return "GPU", op.key, str(op.reason)
    layer = op.layer
    name = f"{layer.name} {op.operation}" if op.operation else layer.name
    if layer.precisions is not None and precision.upper() not in layer.precisions:
        return "GPU", f"layers.{layer.name}", f"{name} runs on DLA in {'/'.join(layer.precisions)} only"
    too_large = _too_large(node, rules)
    if too_large:
        return "GPU", "general.max_dimension", too_large
    passed, found = _CHECKS[layer.check](node, op, layer, precision)
    return ("DLA" if passed else "GPU"), f"layers.{layer.name}", f"{name}: {found}"


@dataclass
class DlaPrediction:
    """Where each node would run on a DLA core with GPU fallback, from the documented rules."""

    target: str
    precision: str
    placements: list[NodePlacement]
    #: tensors crossing DLA→GPU and GPU→DLA (each crossing tensor once per direction)
    dla_to_gpu: int
    gpu_to_dla: int
    #: connected groups of DLA nodes: each becomes one DLA loadable
    loadables: int
    #: the network input read by a DLA node / the output produced by one (I/O reformats)
    io_reformats: int
    loadables_per_core: int
    #: the DLA core the build targets (None: any)
    core: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return (
            f"PREDICTION from the documented DLA rules ({dla_rules().cited_as}); not confirmed on a device "
            "(rf-build records TensorRT's answer beside it in the engine's sidecar)"
        )

    @property
    def transitions(self) -> int:
        return self.dla_to_gpu + self.gpu_to_dla

    def count(self, device: str) -> int:
        return sum(p.device == device for p in self.placements)

    @property
    def without_fallback(self) -> bool:
        """Whether a build without GPU fallback would succeed: every node on DLA, in loadables one core holds."""
        return self.count("GPU") == 0 and self.loadables <= self.loadables_per_core

    def without_fallback_reason(self) -> str:
        gpu = [p for p in self.placements if p.device == "GPU"]
        if gpu:
            first = gpu[0]
            return f"fails: {len(gpu)} nodes cannot run on DLA (first: {first.name}, {first.op}: {first.reason})"
        if self.loadables > self.loadables_per_core:
            return f"fails: {self.loadables} DLA loadables, a core holds {self.loadables_per_core}"
        return f"succeeds: every node on DLA in {self.loadables} loadable{'s' if self.loadables != 1 else ''}"

    def by_op(self) -> list[tuple[str, int, int, str]]:
        """(op, on DLA, on GPU, a reason) per op type; the reason of its first GPU node where it has one."""
        rows: dict[str, list] = {}
        for p in self.placements:
            reason = re.sub(r"\(attention core: [^)]*\)", "(attention core)", p.reason)
            row = rows.setdefault(p.op, [0, 0, reason, False])
            row[0 if p.device == "DLA" else 1] += 1
            if p.device == "GPU" and not row[3]:
                row[2], row[3] = reason, True
        return sorted(((op, d, g, r) for op, (d, g, r, _) in rows.items()), key=lambda r: (-(r[1] + r[2]), r[0]))

    def as_dict(self) -> dict:
        return {
            "label": self.label,
            "rules": dla_rules().cited_as,
            "target": self.target,
            "core": self.core,
            "precision": self.precision,
            "dla_nodes": self.count("DLA"),
            "gpu_nodes": self.count("GPU"),
            "dla_to_gpu": self.dla_to_gpu,
            "gpu_to_dla": self.gpu_to_dla,
            "transitions": self.transitions,
            "loadables": self.loadables,
            "loadables_per_core": self.loadables_per_core,
            "without_fallback": self.without_fallback,
            "without_fallback_reason": self.without_fallback_reason(),
            "io_reformats": self.io_reformats,
            "notes": list(self.notes),
            "placements": [asdict(p) for p in self.placements],
        }


def _transitions(graph: gs.Graph, device: dict[int, str], producer: dict[int, gs.Node]) -> tuple[int, int]:
    """(DLA→GPU, GPU→DLA): each tensor counted once per direction it crosses."""
    dla_to_gpu = gpu_to_dla = 0
    for tensor in {id(t): t for n in graph.nodes for t in n.outputs}.values():
        source = producer[id(tensor)]
        targets = {device[id(c)] for c in tensor.outputs if id(c) in device}
        for side in targets - {device[id(source)]}:
            dla_to_gpu += side == "GPU"
            gpu_to_dla += side == "DLA"
    return int(dla_to_gpu), int(gpu_to_dla)


def _gpu_stretches(graph: gs.Graph, device: dict[int, str], producer: dict[int, gs.Node]) -> dict[int, int]:
    """Per node, how many GPU-to-DLA returns lie on the longest path into it. A loadable runs on DLA
    from start to end without waiting on the GPU, so DLA nodes on either side of a GPU stretch belong
    to different loadables even where a skip connection joins them around it."""
    stretches: dict[int, int] = {}
    for node in graph.nodes:  # topological order
        best = 0
        for tensor in node.inputs:
            source = producer.get(id(tensor))
            if source is not None:
                returns = device[id(source)] == "GPU" and device[id(node)] == "DLA"
                best = max(best, stretches[id(source)] + returns)
        stretches[id(node)] = best
    return stretches


def _loadables(graph: gs.Graph, device: dict[int, str], producer: dict[int, gs.Node]) -> int:
    """The connected groups of DLA nodes (union-find over DLA→DLA edges between nodes after the same
    number of GPU stretches, :func:`_gpu_stretches`): one loadable each."""
    parent = {id(n): id(n) for n in graph.nodes if device[id(n)] == "DLA"}
    stretches = _gpu_stretches(graph, device, producer)

    def find(key: int) -> int:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for node in graph.nodes:
        if device[id(node)] != "DLA":
            continue
        for tensor in node.inputs:
            source = producer.get(id(tensor))
            if source is not None and device[id(source)] == "DLA" and stretches[id(source)] == stretches[id(node)]:
                parent[find(id(node))] = find(id(source))
    return len({find(k) for k in parent})


def _notes(graph: gs.Graph, prediction: DlaPrediction) -> list[str]:
    notes = []
    batch = graph.inputs[0].shape[0] if graph.inputs and graph.inputs[0].shape else None
    if not isinstance(batch, int) and prediction.core is None:
        notes.append("the ONNX has a dynamic batch; DLA takes static shapes only (rf-export --dla N makes the batch static)")
    if prediction.loadables > prediction.loadables_per_core:
        notes.append(f"{prediction.loadables} DLA loadables exceed the {prediction.loadables_per_core} per DLA core: TensorRT keeps the excess on the GPU")
    if prediction.count("GPU") and prediction.count("DLA"):
        notes.append("needs GPU fallback (trtexec --allowGPUFallback); every transition adds reformat kernels")
    notes.append(f"a build without GPU fallback {prediction.without_fallback_reason()}")
    return notes


def predict_dla(
    graph: gs.Graph,
    precision: str = "fp16",
    fp32_nodes: dict[str, str] | set[str] | None = None,
    target: str = "orin",
    core: int | None = None,
) -> DlaPrediction:
    """Place every node of ``graph`` on DLA or GPU (:func:`dla_rule`) and count what that costs."""
    rules = dla_rules()
    placements = [NodePlacement(n.name, n.op, *dla_rule(n, precision, fp32_nodes)) for n in graph.nodes]
    device = {id(n): p.device for n, p in zip(graph.nodes, placements)}
    producer = {id(t): n for n in graph.nodes for t in n.outputs}
    dla_to_gpu, gpu_to_dla = _transitions(graph, device, producer)
    io = sum(device[id(c)] == "DLA" for t in graph.inputs for c in t.outputs)
    io += sum(device[id(producer[id(t)])] == "DLA" for t in graph.outputs if id(t) in producer)
    prediction = DlaPrediction(
        target, precision, placements, dla_to_gpu, gpu_to_dla, _loadables(graph, device, producer), int(io), rules.loadables_per_core, core
    )
    prediction.notes = _notes(graph, prediction)
    return prediction


def predict_dla_onnx(
    model: onnx.ModelProto, precision: str, fp32_nodes: set[str] | dict[str, str] | None, target: str, core: int | None
) -> DlaPrediction:
    """:func:`predict_dla` for an ONNX model (shapes inferred as the passes infer them)."""
    return predict_dla(to_graph(model), precision, fp32_nodes, target, core)


def prediction_bytes(prediction: DlaPrediction) -> bytes:
    """The prediction as a bundle carries it (:data:`rftrt.targets.dla.PREDICTION_FILE`): JSON, keys sorted."""
    return (json.dumps(prediction.as_dict(), indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()
