"""The precision plan: which nodes stay FP32, decided once and rendered for either TensorRT dialect.

FP32 is kept for

- every attention core (the global reductions, their products and the division; model_spec §5,
  mit-han-lab/efficientvit#15/#116): its sums grow with the token count;
- LayerNormalization (the head's; mit-han-lab/efficientvit#142, NVIDIA/TensorRT#2564);
- any node whose output, measured with ONNX Runtime on real images, exceeds ``RANGE_LIMIT``, or
  whose weights FP16 cannot hold;
- every consumer of such an out-of-range tensor: FP16 there would mean a ``Cast`` of that tensor to
  FP16 (inf), so the island grows along the graph until the values are back in range (a consumer
  whose own output is in range is the last FP32 node; its consumers read an in-range tensor).

Weights that FP16 keeps only as subnormals or flushes to zero (non-zero |w| below its smallest
normal, 6.1e-5) are counted per node (:attr:`PrecisionPlan.weight_underflow`) and reported; a few
are harmless, many in one layer say it should stay FP32.

The plan is rendered for either dialect by :mod:`rftrt.precision.render`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from ..data.images import bundled_photographs
from ..export.onnxrt import ort_session, with_scalar_probes
from ..export.passes import to_graph
from ..export.passes.attention import find_attention_cores

__all__ = ["FP16_MIN_NORMAL", "PrecisionPlan", "plan_precision", "plan_on_photographs", "structural_fp32_nodes", "measure_ranges", "is_float32", "RANGE_LIMIT", "FP16_MAX"]

FP16_MAX = float(np.finfo(np.float16).max)
#: Headroom of 16× under FP16's largest value. Images not in the measurement set go higher: inputs at
#: 8× the measured images' scale (the stress check of scripts/compare_modelopt.py; a camera with
#: another exposure or normalisation) overflowed FP16 convolutions with 4× headroom. With 16×, such
#: inputs stay 2× below FP16's largest value in every layer the plan leaves in FP16.
RANGE_LIMIT = FP16_MAX / 16
FP16_MIN_NORMAL = float(np.finfo(np.float16).tiny)


@dataclass
class PrecisionPlan:
    """Nodes kept in FP32 (graph order) with the reason for each."""

    mode: str
    fp32_nodes: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)
    max_activation: float = 0.0
    measured_on: str = ""
    #: node → how many of its non-zero FP32 weights fall below FP16's smallest normal (FP16 nodes only)
    weight_underflow: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for reason in self.reasons.values():
            counts[reason.split(":")[0]] = counts.get(reason.split(":")[0], 0) + 1
        parts = ", ".join(f"{n} {r}" for r, n in sorted(counts.items()))
        underflow = sum(self.weight_underflow.values())
        tiny = f"; {underflow} weights below FP16's smallest normal in {len(self.weight_underflow)} nodes" if underflow else ""
        return f"{len(self.fp32_nodes)} nodes FP32 ({parts}); max |activation| {self.max_activation:.3g}{tiny}"

    def as_dict(self) -> dict:
        return {
            "mode": self.mode,
            "fp32_nodes": list(self.fp32_nodes),
            "reasons": dict(self.reasons),
            "max_activation": self.max_activation,
            "measured_on": self.measured_on,
            "weight_underflow": dict(self.weight_underflow),
        }


def measure_ranges(model: onnx.ModelProto, graph: gs.Graph, images: np.ndarray, batch: int = 1) -> dict[str, float]:
    """max |value| of every float tensor produced by a node of ``graph`` (``model`` imported, so its
    shapes are inferred once by the caller), over ``images`` (ONNX Runtime, FP32).

    The maxima are computed inside the graph (an ``Abs`` and a ``ReduceMax`` per tensor, whose
    scalar is an extra output), so ONNX Runtime never hands back the tensors themselves, one image
    at a time in a lean session: the memory is about one image's inference, not every activation of
    every image (rf_b3 r288: 1.9 GB peak instead of 5.4)."""
    floats = {t.name for node in graph.nodes for t in node.outputs if t.dtype is not None and np.issubdtype(np.dtype(t.dtype), np.floating)}

    def peak(tensor: str, output: str) -> list[onnx.NodeProto]:
        return [onnx.helper.make_node("Abs", [tensor], [f"{output}/abs"]), onnx.helper.make_node("ReduceMax", [f"{output}/abs"], [output], keepdims=0)]

    probed, tensors = with_scalar_probes(model, floats.__contains__, peak)
    session = ort_session(probed, lean=True)
    ranges = dict.fromkeys(tensors, 0.0)
    input_name = session.get_inputs()[0].name
    static = session.get_inputs()[0].shape[0]
    batch = static if isinstance(static, int) else batch  # a static-batch ONNX takes exactly its batch
    for start in range(0, len(images), batch):
        for name, value in zip(tensors, session.run(None, {input_name: images[start : start + batch]})):
            ranges[name] = max(ranges[name], float(value))
    return ranges


def structural_fp32_nodes(graph: gs.Graph) -> dict[str, str]:
    """The nodes the plan keeps FP32 whatever the ranges (attention cores, LayerNorm), with why."""
    reasons: dict[str, str] = {}
    for core in find_attention_cores(graph):
        for node in core.nodes:
            reasons[node.name] = f"attention core: {core.anchor}"
    for node in graph.nodes:
        if node.op == "LayerNormalization":
            reasons[node.name] = "layernorm"
    return reasons


def plan_precision(model: onnx.ModelProto, images: np.ndarray, measured_on: str) -> PrecisionPlan:
    """Decide the FP32 nodes of ``model`` (the FP32 ONNX after the passes)."""
    graph = to_graph(model)
    plan = PrecisionPlan(mode="fp16", measured_on=measured_on)
    reasons = structural_fp32_nodes(graph)
    ranges = measure_ranges(model, graph, images)
    plan.max_activation = max(ranges.values(), default=0.0)
    for node in graph.nodes:
        if node.name not in reasons:
            reason = _range_reason(node, ranges)
            if reason:
                reasons[node.name] = reason
    for node in graph.nodes:
        if node.name not in reasons and (count := _underflowing_weights(node)):
            plan.weight_underflow[node.name] = count
    plan.fp32_nodes = [n.name for n in graph.nodes if n.name in reasons]
    plan.reasons = {name: reasons[name] for name in plan.fp32_nodes}
    return plan


def _float32_weights(node: gs.Node) -> list[np.ndarray]:
    return [np.asarray(t.values) for t in node.inputs if isinstance(t, gs.Constant) and is_float32(t) and t.values.size]


def _range_reason(node: gs.Node, ranges: dict[str, float]) -> str | None:
    """Why ``node`` must stay FP32 by what flows through it, or None."""
    peak = max((ranges.get(t.name, 0.0) for t in node.outputs), default=0.0)
    if peak > RANGE_LIMIT:
        return f"range: {peak:.3g} > {RANGE_LIMIT:.3g}"
    fed = max((ranges.get(t.name, 0.0) for t in node.inputs if isinstance(t, gs.Variable)), default=0.0)
    if fed > RANGE_LIMIT:
        return f"input range: {fed:.3g} > {RANGE_LIMIT:.3g} (reads an out-of-range tensor)"
    weight = max((float(np.max(np.abs(w))) for w in _float32_weights(node)), default=0.0)
    if weight > FP16_MAX:
        return f"weights: {weight:.3g} > {FP16_MAX:.0f}"
    return None


def _underflowing_weights(node: gs.Node) -> int:
    return sum(int(np.count_nonzero((np.abs(w) < FP16_MIN_NORMAL) & (w != 0))) for w in _float32_weights(node))


def is_float32(tensor: gs.Tensor) -> bool:
    return tensor.dtype is not None and np.dtype(tensor.dtype) == np.float32


def plan_on_photographs(model: onnx.ModelProto, resolution: int) -> PrecisionPlan:
    """The plan of ``model`` with its ranges measured on the bundled photographs, as ``rf-export``
    measures them."""
    photos = bundled_photographs(resolution)
    return plan_precision(model, photos, f"{len(photos)} bundled photographs")
