"""Rendering a precision plan for the two TensorRT dialects.

Renderings:

- weakly typed (TensorRT 8.6 / 10.x): the FP32 ONNX plus the names of the compute nodes to pin
  (``layer.precision`` / ``--layerPrecisions``; the ONNX parser names layers after ONNX nodes). Pure
  data movement (Reshape, Split) is not listed: TensorRT reformats at the boundary anyway;
- strongly typed (TensorRT 11, or 10.x with ``--stronglyTyped``): an ONNX whose tensors are FP16,
  with each FP32 island guarded by Cast nodes. The graph input and output stay FP32, so golden data
  and callers are the same for both dialects.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from ..export.passes import to_graph, to_model
from .plan import is_float32

__all__ = ["render_fp16"]


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
                inputs.append(half_constant(tensor) if want is half and is_float32(tensor) else tensor)
            elif id(tensor) in precision and precision[id(tensor)] is not want:
                inputs.append(cast(tensor, want))
            else:
                inputs.append(tensor)
        node.inputs = inputs
        if node.op == "Cast" and want is half and node.attrs["to"] == onnx.TensorProto.FLOAT:
            node.attrs["to"] = onnx.TensorProto.FLOAT16
        for tensor in node.outputs:
            if is_float32(tensor):
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
