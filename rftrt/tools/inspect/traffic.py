"""Memory traffic per image of the ONNX TensorRT is given (after the passes), under two rules; the
on-chip model of :mod:`.limits` turns it into time on a named GPU (``rftrt/targets/hardware.toml``).

- *unfused*: weights are read once per batch, the input is read once, every activation is written
  once and read once, the output is written once. Reshape, Flatten, Squeeze, Unsqueeze and Identity
  are views and move nothing.
- *fused*: as unfused, except that a tensor is not materialised when (a) its only consumer is an
  element-wise node (the element-wise op runs in its producer's epilogue or in a fused point-wise
  chain), (b) it is produced by an element-wise node and its only consumer is a reduction (the
  element-wise op is the reduction's prologue), (c) one of its consumers is a Concat (the producer
  writes straight into the Concat's output: concatenation elision) or (d) it is a Split/Slice output
  (consumers read the slice where it lies).

The fused rule follows the fusions TensorRT documents in its Layer Fusion Catalog
(docs.nvidia.com/deeplearning/tensorrt/latest/performance/fusion-catalog.html: convolution with an
activation or element-wise operation, point-wise fusion, reductions with their point-wise prologue,
concatenation elision). :func:`fused_schedule` gives the same rule node by node, in execution order,
for the on-chip model of :mod:`.limits`.

Element sizes follow the precision: FP16 is 2 bytes except the precision plan's FP32 islands (the
attention cores and LayerNorm: 4 bytes); the graph input and output stay FP32 in every rendering.
The reads of a tensor with several consumers are counted once (as the rules say). Neither rule knows
about on-chip memory, so neither is a limit: TensorRT keeps tensors in L2 and beats both (the
lower bound of :mod:`.limits` is the limit).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from ...errors import RftrtError
from ...export.passes import to_graph
from ...export.passes.attention import find_attention_cores
from ...precision.plan import structural_fp32_nodes
from .graph import STAGE_LABELS, graph_batch, numel, stage_of

__all__ = ["TRAFFIC_RULES", "Step", "TrafficEstimate", "fused_schedule", "memory_traffic"]

TRAFFIC_RULES = {
    "unfused": "weights read once per batch; input read once; every activation written once and read once; "
    "output written once; Reshape/Flatten/Squeeze/Unsqueeze/Identity are views",
    "fused": "as unfused, but a tensor is not materialised when its only consumer is element-wise (epilogue / "
    "point-wise chain), when an element-wise result feeds only a reduction (prologue), when a Concat consumes it "
    "(concatenation elision) or when it is a Split/Slice output (read in place)",
}

_VIEW_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"})
_SLICE_OPS = frozenset({"Split", "Slice"})
_ELEMENTWISE_OPS = frozenset(
    {
        "Abs", "Add", "BatchNormalization", "Cast", "Clip", "Div", "Elu", "Erf", "Exp", "HardSigmoid",
        "HardSwish", "LeakyRelu", "Log", "Max", "Min", "Mul", "Neg", "Pow", "PRelu", "Reciprocal", "Relu",
        "Selu", "Sigmoid", "Sqrt", "Sub", "Tanh", "Where",
    }
)  # fmt: skip
_REDUCTION_OPS = frozenset(
    {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "GlobalAveragePool", "GlobalMaxPool"}
)


@dataclass(frozen=True)
class TrafficEstimate:
    """Bytes moved for one image (activations) and one batch (weights), under both rules."""

    precision: str
    weights_bytes: int
    input_bytes: int
    output_bytes: int
    #: activations written + read, per image
    activations_unfused_bytes: int
    activations_fused_bytes: int
    tensors_unfused: int
    tensors_fused: int
    #: stage → (unfused, fused) activation bytes per image
    by_stage: dict[str, tuple[int, int]]
    #: the attention cores' share, (unfused, fused)
    attention_cores: tuple[int, int]
    #: tensors counted at 4 bytes in an FP16 estimate (the FP32 islands)
    fp32_tensors: int

    def per_image(self, fused: bool = True, batch: int = 1) -> float:
        """Bytes per image at ``batch``: the weights are read once per batch."""
        activations = self.activations_fused_bytes if fused else self.activations_unfused_bytes
        return self.weights_bytes / batch + self.input_bytes + self.output_bytes + activations

    def as_dict(self) -> dict:
        data = asdict(self)
        data["by_stage"] = {k: list(v) for k, v in self.by_stage.items()}
        data["attention_cores"] = list(self.attention_cores)
        data["per_image_unfused_batch1"] = self.per_image(False, 1)
        data["per_image_fused_batch1"] = self.per_image(True, 1)
        data["rules"] = dict(TRAFFIC_RULES)
        return data


def _is_float(tensor: gs.Tensor) -> bool:
    return tensor.dtype is not None and np.issubdtype(np.dtype(tensor.dtype), np.floating)


def _weights_bytes(graph: gs.Graph, islands: set[str], low: int) -> int:
    """Bytes of the float constants the compute nodes read, each constant once (at its largest size)."""
    weights: dict[str, int] = {}
    for node in graph.nodes:
        for tensor in node.inputs:
            if isinstance(tensor, gs.Constant) and _is_float(tensor) and node.op not in _VIEW_OPS:
                size = 4 if node.name in islands else low
                weights[tensor.name] = max(weights.get(tensor.name, 0), int(tensor.values.size) * size)
    return sum(weights.values())


def _consumers(tensor: gs.Tensor) -> list[gs.Node]:
    """The nodes reading ``tensor``, looking through views (a view's consumers read the original)."""
    found: list[gs.Node] = []
    for consumer in tensor.outputs:
        if consumer.op in _VIEW_OPS:
            found.extend(c for out in consumer.outputs for c in _consumers(out))
        else:
            found.append(consumer)
    return found


def _fused_away(producer: gs.Node, tensor: gs.Tensor) -> bool:
    """Whether ``tensor`` stays out of memory under the fused rule (see :data:`TRAFFIC_RULES`)."""
    if producer.op in _SLICE_OPS:
        return True
    consumers = _consumers(tensor)
    if any(c.op == "Concat" for c in consumers):
        return True
    if len(consumers) != 1:
        return False
    consumer = consumers[0]
    if consumer.op in _ELEMENTWISE_OPS:
        return True
    return consumer.op in _REDUCTION_OPS and producer.op in _ELEMENTWISE_OPS


@dataclass
class _Activations:
    """Running totals of the activation traffic, [unfused, fused] each."""

    bytes: list[int]
    tensors: list[int]
    by_stage: dict[str, list[int]]
    cores: list[int]
    fp32_tensors: int = 0

    def add(self, column: int, traffic: int, stage: str, in_core: bool) -> None:
        self.bytes[column] += traffic
        self.tensors[column] += 1
        self.by_stage[stage][column] += traffic
        if in_core:
            self.cores[column] += traffic


def _activation_traffic(graph: gs.Graph, precision: str, islands: set[str], low: int, batch: int) -> _Activations:
    """Every activation written and read once per image, and what the fused rule leaves of it."""
    core_nodes = {n.name for core in find_attention_cores(graph) for n in core.nodes}
    outputs = {t.name for t in graph.outputs}
    totals = _Activations([0, 0], [0, 0], {label: [0, 0] for label in (*STAGE_LABELS, "other")}, [0, 0])
    for node in graph.nodes:
        if node.op in _VIEW_OPS:
            continue
        for tensor in node.outputs:
            if tensor.name in outputs or not _is_float(tensor):
                continue
            count = numel(tensor.shape)
            if count is None:
                raise RftrtError(f"shape of {tensor.name!r} unknown; cannot estimate memory traffic")
            size = 4 if node.name in islands else low
            totals.fp32_tensors += size == 4 and precision == "fp16"
            traffic = 2 * count * size // batch
            stage, in_core = stage_of(node.name), node.name in core_nodes
            totals.add(0, traffic, stage, in_core)
            if not _fused_away(node, tensor):
                totals.add(1, traffic, stage, in_core)
    return totals


def _element_sizes(graph: gs.Graph, precision: str, fp32_nodes: set[str] | None) -> tuple[set[str], int]:
    """The nodes whose tensors count 4 bytes (FP16: the plan's FP32 nodes, by default its structural
    islands) and the element size of all others."""
    if precision not in ("fp16", "fp32"):
        raise RftrtError(f"precision {precision!r} not supported for the traffic estimate; use fp16 or fp32")
    if precision == "fp32":
        return set(), 4
    return (set(structural_fp32_nodes(graph)) if fp32_nodes is None else set(fp32_nodes)), 2


def memory_traffic(model: onnx.ModelProto, precision: str = "fp16", fp32_nodes: set[str] | None = None) -> TrafficEstimate:
    """Estimate the memory traffic of ``model`` (the ONNX after the passes) under both rules of
    :data:`TRAFFIC_RULES`. ``fp32_nodes`` (FP16 only) are the precision plan's FP32 nodes; by default
    its structural islands (attention cores, LayerNorm)."""
    graph = to_graph(model)
    batch = graph_batch(graph)
    islands, low = _element_sizes(graph, precision, fp32_nodes)
    activations = _activation_traffic(graph, precision, islands, low, batch)
    return TrafficEstimate(
        precision=precision,
        weights_bytes=_weights_bytes(graph, islands, low),
        input_bytes=sum((numel(t.shape) or 0) * 4 for t in graph.inputs) // batch,
        output_bytes=sum((numel(t.shape) or 0) * 4 for t in graph.outputs) // batch,
        activations_unfused_bytes=activations.bytes[0],
        activations_fused_bytes=activations.bytes[1],
        tensors_unfused=activations.tensors[0],
        tensors_fused=activations.tensors[1],
        by_stage={k: (v[0], v[1]) for k, v in activations.by_stage.items() if v[0] or k != "other"},
        attention_cores=(activations.cores[0], activations.cores[1]),
        fp32_tensors=int(activations.fp32_tensors),
    )


@dataclass(frozen=True)
class Step:
    """One compute node in execution order, as the fused rule sees it."""

    node: str
    #: the weights this node is the first to read (each constant once), bytes
    weights_bytes: int
    #: materialised activations it reads (through views)
    reads: tuple[str, ...]
    #: materialised activations it writes: (tensor, bytes per image)
    writes: tuple[tuple[str, int], ...]


def fused_schedule(model: onnx.ModelProto, precision: str = "fp16", fp32_nodes: set[str] | None = None) -> list[Step]:
    """The nodes of ``model`` (after the passes) in graph order with the activations the fused rule
    materialises, sized as :func:`memory_traffic` sizes them (the graph input and output left out:
    they are compulsory traffic)."""
    graph = to_graph(model)
    batch = graph_batch(graph)
    islands, low = _element_sizes(graph, precision, fp32_nodes)
    outputs = {t.name for t in graph.outputs}
    reads: dict[str, list[str]] = {}
    writes: dict[str, list[tuple[str, int]]] = {}
    for node in graph.nodes:
        if node.op in _VIEW_OPS:
            continue
        for tensor in node.outputs:
            if tensor.name in outputs or not _is_float(tensor) or _fused_away(node, tensor):
                continue
            size = (numel(tensor.shape) or 0) * (4 if node.name in islands else low) // batch
            writes.setdefault(node.name, []).append((tensor.name, size))
            for consumer in _consumers(tensor):
                reads.setdefault(consumer.name, []).append(tensor.name)
    steps, seen = [], set()
    for node in graph.nodes:
        if node.op in _VIEW_OPS:
            continue
        weights = 0
        for tensor in node.inputs:
            if isinstance(tensor, gs.Constant) and _is_float(tensor) and tensor.name not in seen:
                seen.add(tensor.name)
                weights += int(tensor.values.size) * (4 if node.name in islands else low)
        steps.append(Step(node.name, weights, tuple(dict.fromkeys(reads.get(node.name, []))), tuple(writes.get(node.name, []))))
    return steps
