"""Where each node of a graph would run on a DLA core with GPU fallback, predicted from the
documented rules (:func:`rftrt.targets.dla.dla_rules`), and what the split costs: DLA↔GPU
transitions, DLA loadables, network I/O reformats.

A prediction until a device confirms it: ``trtexec --verbose`` prints the placement a build chose.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import onnx_graphsurgeon as gs

from ...targets.dla import DlaRules, dla_rules

__all__ = ["DlaPrediction", "NodePlacement", "dla_rule", "predict_dla"]


@dataclass(frozen=True)
class NodePlacement:
    name: str
    op: str
    device: str  # "DLA" or "GPU"
    reason: str


def _constant_scalar(tensor: Any) -> float | None:
    if isinstance(tensor, gs.Constant) and tensor.values.size == 1:
        return float(tensor.values.reshape(-1)[0])
    return None


def _conv_rule(node: gs.Node, rules: DlaRules) -> tuple[str, str]:
    weight = node.inputs[1].shape if len(node.inputs) > 1 else None
    kernel = list(node.attrs.get("kernel_shape") or (weight[2:] if weight else []))
    strides = list(node.attrs.get("strides") or [1] * len(kernel))
    (k_low, k_high), (s_low, s_high) = rules.conv_kernel, rules.conv_stride
    if len(kernel) != rules.conv_dims:
        return "GPU", f"{len(kernel)}-D convolution; DLA convolution is {rules.conv_dims}-D"
    if not all(isinstance(k, int) and k_low <= k <= k_high for k in kernel):
        return "GPU", f"kernel {kernel[0]}×{kernel[1]} outside DLA's {k_low}–{k_high}"
    if not all(s_low <= s <= s_high for s in strides):
        return "GPU", f"stride {strides} outside DLA's {s_low}–{s_high}"
    return "DLA", (
        f"Convolution {kernel[0]}×{kernel[1]}, stride {strides[0]}×{strides[1]}: "
        f"within DLA limits (kernel {k_low}–{k_high}, stride {s_low}–{s_high})"
    )


def _clip_rule(node: gs.Node, rules: DlaRules) -> tuple[str, str]:
    low = _constant_scalar(node.inputs[1]) if len(node.inputs) > 1 else node.attrs.get("min")
    if low == rules.clip_min:
        return "DLA", f"Clip with min {rules.clip_min:g} is a Clipped ReLU activation"
    return "GPU", f"Clip with min ≠ {rules.clip_min:g} is not a Clipped ReLU"


def _concat_rule(node: gs.Node, rules: DlaRules) -> tuple[str, str]:
    rank = len(node.outputs[0].shape) if node.outputs[0].shape is not None else 4
    axis = node.attrs.get("axis", 1)
    if axis % rank == rules.concat_axis:
        return "DLA", "Concatenation along the channel axis is supported"
    return "GPU", f"Concatenation along axis {axis}; DLA concatenates along the channel axis only"


_ATTRIBUTE_RULES = {"Conv": _conv_rule, "Clip": _clip_rule, "Concat": _concat_rule}


def dla_rule(node: gs.Node, precision: str = "fp16", fp32_nodes: dict[str, str] | set[str] | None = None) -> tuple[str, str]:
    """(``"DLA"`` or ``"GPU"``, reason) for one node under the documented DLA rules."""
    rules = dla_rules()
    runs = " and ".join(rules.precisions)
    if precision == "fp32":
        return "GPU", f"FP32 build: DLA runs {runs} only"
    fp32_nodes = fp32_nodes or set()
    if node.name in fp32_nodes:
        why = fp32_nodes[node.name] if isinstance(fp32_nodes, dict) else "FP32 island"
        return "GPU", f"kept FP32 by the precision plan ({why}); DLA runs {runs} only"
    if node.op in _ATTRIBUTE_RULES:
        return _ATTRIBUTE_RULES[node.op](node, rules)
    rule = rules.ops.get(node.op)
    if rule is None:
        return "GPU", f"{node.op} is not in the DLA supported-layer list"
    if rule.device == "DLA":
        return "DLA", f"{rule.text} is supported"
    return "GPU", rule.text


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
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"PREDICTION from the documented DLA rules ({dla_rules().cited_as}); not confirmed on a device"

    @property
    def transitions(self) -> int:
        return self.dla_to_gpu + self.gpu_to_dla

    def count(self, device: str) -> int:
        return sum(p.device == device for p in self.placements)

    def by_op(self) -> list[tuple[str, int, int, str]]:
        """(op, on DLA, on GPU, a reason) per op type."""
        rows: dict[str, list] = {}
        for p in self.placements:
            reason = re.sub(r"\(attention core: [^)]*\)", "(attention core)", p.reason)
            row = rows.setdefault(p.op, [0, 0, reason])
            row[0 if p.device == "DLA" else 1] += 1
        return sorted(((op, d, g, r) for op, (d, g, r) in rows.items()), key=lambda r: (-(r[1] + r[2]), r[0]))

    def as_dict(self) -> dict:
        return {
            "label": self.label,
            "target": self.target,
            "precision": self.precision,
            "dla_nodes": self.count("DLA"),
            "gpu_nodes": self.count("GPU"),
            "dla_to_gpu": self.dla_to_gpu,
            "gpu_to_dla": self.gpu_to_dla,
            "transitions": self.transitions,
            "loadables": self.loadables,
            "io_reformats": self.io_reformats,
            "notes": list(self.notes),
            "placements": [asdict(p) for p in self.placements],
        }


def _transitions(graph: gs.Graph, device: dict[int, str], producer: dict[int, gs.Node]) -> tuple[int, int]:
    """(DLA→GPU, GPU→DLA): each tensor counted once per direction it crosses."""
    dla_to_gpu = gpu_to_dla = 0
    for tensor in {id(t): t for n in graph.nodes for t in n.outputs}.values():
        source = producer[id(tensor)]
        targets = {device[id(c)] for c in tensor.outputs}
        for side in targets - {device[id(source)]}:
            dla_to_gpu += side == "GPU"
            gpu_to_dla += side == "DLA"
    return int(dla_to_gpu), int(gpu_to_dla)


def _loadables(graph: gs.Graph, device: dict[int, str], producer: dict[int, gs.Node]) -> int:
    """The connected groups of DLA nodes (union-find over DLA→DLA edges): one loadable each."""
    parent = {id(n): id(n) for n in graph.nodes if device[id(n)] == "DLA"}

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
            if source is not None and device[id(source)] == "DLA":
                parent[find(id(node))] = find(id(source))
    return len({find(k) for k in parent})


def _notes(graph: gs.Graph, placements: list[NodePlacement], loadables: int, max_loadables: int) -> list[str]:
    notes = []
    batch = graph.inputs[0].shape[0] if graph.inputs and graph.inputs[0].shape else None
    if not isinstance(batch, int):
        notes.append("the ONNX has a dynamic batch; DLA takes static shapes only (rf-export --dla N makes the batch static)")
    if loadables > max_loadables:
        notes.append(f"{loadables} DLA loadables exceed the {max_loadables} per DLA core: TensorRT keeps the excess on the GPU")
    if any(p.device == "GPU" for p in placements) and any(p.device == "DLA" for p in placements):
        notes.append("needs GPU fallback (trtexec --allowGPUFallback); every transition adds reformat kernels")
    if any(p.op == "HardSwish" and p.device == "GPU" for p in placements):
        notes.append("HardSwish = x·clip(x+3, 0, 6)/6 uses only DLA layers: rewriting it would keep those nodes on DLA")
    return notes


def predict_dla(
    graph: gs.Graph,
    precision: str = "fp16",
    fp32_nodes: dict[str, str] | set[str] | None = None,
    target: str = "orin",
    max_loadables: int | None = None,
) -> DlaPrediction:
    """Place every node of ``graph`` on DLA or GPU (:func:`dla_rule`) and count what that costs.
    ``max_loadables`` defaults to the documented loadables per DLA core."""
    if max_loadables is None:
        max_loadables = dla_rules().loadables_per_core
    placements = [NodePlacement(n.name, n.op, *dla_rule(n, precision, fp32_nodes)) for n in graph.nodes]
    device = {id(n): p.device for n, p in zip(graph.nodes, placements)}
    producer = {id(t): n for n in graph.nodes for t in n.outputs}
    dla_to_gpu, gpu_to_dla = _transitions(graph, device, producer)
    loadables = _loadables(graph, device, producer)
    io = sum(device[id(c)] == "DLA" for t in graph.inputs for c in t.outputs)
    io += sum(device[id(producer[id(t)])] == "DLA" for t in graph.outputs if id(t) in producer)
    notes = _notes(graph, placements, loadables, max_loadables)
    return DlaPrediction(target, precision, placements, dla_to_gpu, gpu_to_dla, loadables, int(io), notes)
