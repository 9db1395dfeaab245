"""The precision plan: which nodes stay FP32, decided once and rendered for either TensorRT dialect.

FP32 is kept for

- every attention core (the global reductions, their products and the division; model_spec §5,
  mit-han-lab/efficientvit#15/#116): its sums grow with the token count;
- LayerNormalization (the head's; mit-han-lab/efficientvit#142, NVIDIA/TensorRT#2564);
- any node whose output, measured with ONNX Runtime on real images, exceeds ``RANGE_LIMIT``, or
  whose weights FP16 cannot hold.

Renderings:

- weakly typed (TensorRT 8.6 / 10.x): the FP32 ONNX plus the names of the compute nodes to pin
  (``layer.precision`` / ``--layerPrecisions``; the ONNX parser names layers after ONNX nodes). Pure
  data movement (Reshape, Split) is not listed: TensorRT reformats at the boundary anyway;
- strongly typed (TensorRT 11, or 10.x with ``--stronglyTyped``): an ONNX whose tensors are FP16,
  with each FP32 island guarded by Cast nodes. The graph input and output stay FP32, so golden data
  and callers are the same for both dialects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from .passes import to_graph, to_model
from .passes.attention import find_attention_cores
from .validate import ort_session

__all__ = ["PrecisionPlan", "plan_precision", "render_fp16", "measure_ranges", "RANGE_LIMIT"]

FP16_MAX = float(np.finfo(np.float16).max)
#: Headroom of 4× under FP16's largest value: images not in the measurement set may go higher.
RANGE_LIMIT = FP16_MAX / 4
_DATA_MOVEMENT = {"Reshape", "Split", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Concat"}


@dataclass
class PrecisionPlan:
    """Nodes kept in FP32 (graph order) with the reason for each."""

    mode: str
    fp32_nodes: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)
    max_activation: float = 0.0
    measured_on: str = ""

    def weakly_typed_layers(self, graph: gs.Graph) -> list[str]:
        """The layer names to pin on a weakly typed build: the plan minus pure data movement."""
        kinds = {n.name: n.op for n in graph.nodes}
        return [name for name in self.fp32_nodes if kinds.get(name) not in _DATA_MOVEMENT]

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for reason in self.reasons.values():
            counts[reason.split(":")[0]] = counts.get(reason.split(":")[0], 0) + 1
        parts = ", ".join(f"{n} {r}" for r, n in sorted(counts.items()))
        return f"{len(self.fp32_nodes)} nodes FP32 ({parts}); max |activation| {self.max_activation:.3g}"

    def as_dict(self) -> dict:
        return {
            "mode": self.mode,
            "fp32_nodes": list(self.fp32_nodes),
            "reasons": dict(self.reasons),
            "max_activation": self.max_activation,
            "measured_on": self.measured_on,
        }


def measure_ranges(model: onnx.ModelProto, graph: gs.Graph, images: np.ndarray) -> dict[str, float]:
    """max |value| of every float tensor produced by a node of ``graph`` (``model`` imported, so its
    shapes are inferred once by the caller), over ``images`` (ONNX Runtime, FP32)."""
    tensors = [
        t
        for node in graph.nodes
        for t in node.outputs
        if t.dtype is not None and np.issubdtype(np.dtype(t.dtype), np.floating)
    ]
    probed = onnx.ModelProto()
    probed.CopyFrom(model)
    existing = {o.name for o in probed.graph.output}
    for tensor in tensors:
        if tensor.name not in existing:
            probed.graph.output.add(name=tensor.name)
    session = ort_session(probed)
    names = [o.name for o in session.get_outputs()]
    ranges: dict[str, float] = {}
    input_name = session.get_inputs()[0].name
    for start in range(0, len(images), 8):
        for name, value in zip(names, session.run(names, {input_name: images[start : start + 8]})):
            ranges[name] = max(ranges.get(name, 0.0), float(np.max(np.abs(value))) if value.size else 0.0)
    return ranges


def plan_precision(model: onnx.ModelProto, images: np.ndarray, measured_on: str) -> PrecisionPlan:
    """Decide the FP32 nodes of ``model`` (the FP32 ONNX after the passes)."""
    graph = to_graph(model)
    plan = PrecisionPlan(mode="fp16", measured_on=measured_on)
    reasons: dict[str, str] = {}
    for core in find_attention_cores(graph):
        for node in core.nodes:
            reasons[node.name] = f"attention core: {core.anchor}"
    for node in graph.nodes:
        if node.op == "LayerNormalization":
            reasons[node.name] = "layernorm"
    ranges = measure_ranges(model, graph, images)
    plan.max_activation = max(ranges.values(), default=0.0)
    for node in graph.nodes:
        if node.name in reasons:
            continue
        peak = max((ranges.get(t.name, 0.0) for t in node.outputs), default=0.0)
        weight = max(
            (float(np.max(np.abs(t.values))) for t in node.inputs if isinstance(t, gs.Constant) and _is_float32(t) and t.values.size),
            default=0.0,
        )
        if peak > RANGE_LIMIT:
            reasons[node.name] = f"range: {peak:.3g} > {RANGE_LIMIT:.3g}"
        elif weight > FP16_MAX:
            reasons[node.name] = f"weights: {weight:.3g} > {FP16_MAX:.0f}"
    plan.fp32_nodes = [n.name for n in graph.nodes if n.name in reasons]
    plan.reasons = {name: reasons[name] for name in plan.fp32_nodes}
    return plan


def _is_float32(tensor: gs.Tensor) -> bool:
    return tensor.dtype is not None and np.dtype(tensor.dtype) == np.float32


def render_fp16(model: onnx.ModelProto, fp32_nodes: set[str] | frozenset[str] = frozenset()) -> onnx.ModelProto:
    """The strongly typed rendering: every float tensor FP16 except in ``fp32_nodes``, which get
    Cast guards; graph inputs and outputs stay FP32. With no ``fp32_nodes`` this is the naive
    all-FP16 conversion (kept for comparison: it is what breaks)."""
    graph = to_graph(model).toposort()
    half, single = np.float16, np.float32
    precision: dict[int, type] = {id(t): single for t in graph.inputs}
    casts: dict[tuple[int, type], gs.Variable] = {}
    constants: dict[int, gs.Constant] = {}
    new_nodes: list[gs.Node] = []

    def cast(tensor: gs.Variable, to: type) -> gs.Variable:
        key = (id(tensor), to)
        if key not in casts:
            suffix = "fp16" if to is half else "fp32"
            out = gs.Variable(f"{tensor.name}/to_{suffix}", dtype=to, shape=tensor.shape)
            to_enum = onnx.TensorProto.FLOAT16 if to is half else onnx.TensorProto.FLOAT
            new_nodes.append(gs.Node("Cast", f"{tensor.name}/cast_{suffix}", {"to": to_enum}, [tensor], [out]))
            casts[key] = out
        return casts[key]

    def half_constant(constant: gs.Constant) -> gs.Constant:
        if id(constant) not in constants:
            constants[id(constant)] = gs.Constant(f"{constant.name}/fp16", np.asarray(constant.values).astype(half))
        return constants[id(constant)]

    for node in list(graph.nodes):
        want = single if node.name in fp32_nodes else half
        inputs = []
        for tensor in node.inputs:
            if isinstance(tensor, gs.Constant):
                inputs.append(half_constant(tensor) if want is half and _is_float32(tensor) else tensor)
            elif id(tensor) in precision and precision[id(tensor)] is not want:
                inputs.append(cast(tensor, want))
            else:
                inputs.append(tensor)
        node.inputs = inputs
        if node.op == "Cast" and want is half and node.attrs["to"] == onnx.TensorProto.FLOAT:
            node.attrs["to"] = onnx.TensorProto.FLOAT16
        for tensor in node.outputs:
            if _is_float32(tensor):
                tensor.dtype = want
                precision[id(tensor)] = want
    graph.nodes.extend(new_nodes)

    outputs = []
    for tensor in graph.outputs:
        if precision.get(id(tensor)) is half:
            name = tensor.name
            tensor.name = f"{name}/fp16"
            restored = gs.Variable(name, dtype=single, shape=tensor.shape)
            graph.nodes.append(gs.Node("Cast", f"{name}/cast_fp32", {"to": onnx.TensorProto.FLOAT}, [tensor], [restored]))
            outputs.append(restored)
        else:
            outputs.append(tensor)
    graph.outputs = outputs
    graph.cleanup().toposort()
    return to_model(graph, model)
