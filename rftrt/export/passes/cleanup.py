"""Cleanup: what the exporter leaves behind that no runtime needs.

- ``Identity`` nodes and ``Cast`` nodes to the type their input already has (the exporter records
  the model's ``.float()``/``.to(dtype)`` around the FP32 attention core as FP32→FP32 casts);
- constant subgraphs, including shape arithmetic on static dimensions (``Shape → Gather → …`` of
  C, H and W), folded to initializers; only the dynamic batch dimension keeps shape ops, and the
  attention passes replace those with constant reshapes;
- nodes whose outputs no longer reach a graph output.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from . import PassReport

__all__ = ["cleanup"]

_MAX_FOLD_ROUNDS = 5


def _bypass(graph: gs.Graph, node: gs.Node) -> bool:
    """Point the consumers of a pass-through node at its input; keep it if it feeds a graph output."""
    source, out = node.inputs[0], node.outputs[0]
    if out in graph.outputs:
        return False
    for consumer in list(out.outputs):
        consumer.inputs = [source if t is out else t for t in consumer.inputs]
    node.outputs.clear()
    return True


def _is_noop_cast(node: gs.Node) -> bool:
    if node.op != "Cast" or node.inputs[0].dtype is None:
        return False
    target = onnx.helper.tensor_dtype_to_np_dtype(node.attrs["to"])
    return np.dtype(node.inputs[0].dtype) == target


def cleanup(graph: gs.Graph) -> PassReport:
    report = PassReport("cleanup")
    removed = 0
    for node in list(graph.nodes):
        if node.op == "Identity" or _is_noop_cast(node):
            removed += _bypass(graph, node)
    report.details.append(f"{removed} Identity/no-op Cast nodes bypassed")

    before = len(graph.cleanup().nodes)
    for _ in range(_MAX_FOLD_ROUNDS):
        count = len(graph.nodes)
        graph.fold_constants(fold_shapes=True, error_ok=False).cleanup()
        if len(graph.nodes) == count:
            break
    folded = before - len(graph.nodes)
    report.details.append(f"{folded} nodes folded into constants")
    report.matched = report.changed = removed + folded
    return report
