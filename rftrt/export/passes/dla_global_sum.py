"""DLA: every global spatial sum or mean of a map → a depthwise convolution with a constant kernel
the size of the map.

DLA's Reduce layer runs MAX only (platforms.md §4), so a ``ReduceSum``/``ReduceMean`` over the
spatial axes (2, 3) of an (N, C, H, W) map falls back to the GPU. A depthwise convolution whose
kernel covers the whole map, without padding, computes the same (N, C, 1, 1) tensor, and DLA runs
convolutions with kernels up to 32 per side (:func:`rftrt.targets.dla.dla_rules`; 14×14 and 7×7 at
r224, 16×16/8×8 at r256, 18×18/9×9 at r288). A mean gets the kernel 1/(H·W): no partial sum ever
exceeds the largest |input|, so it cannot overflow FP16 where the input does not. A sum keeps the
kernel 1 (exact, but it grows with H·W: the DLA pipeline turns the attention's sums into means
first, :mod:`.fp16_safety`). A map larger than the kernel limit is left alone and said so.
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from ...targets.dla import dla_rules
from . import PassReport

__all__ = ["global_sums_to_convs", "map_reduction_conv", "spatial_map"]

_SPATIAL = {2, 3}


def spatial_map(tensor: gs.Tensor) -> tuple[int, int, int] | None:
    """(C, H, W) of a 4-D tensor with static C, H and W, else None."""
    shape = tensor.shape
    if shape is None or len(shape) != 4 or not all(isinstance(s, int) for s in shape[1:]):
        return None
    return shape[1], shape[2], shape[3]


def map_reduction_conv(graph: gs.Graph, name: str, source: gs.Tensor, out: gs.Variable, scale: float) -> str | None:
    """Make ``out`` = Σ over the map of ``source`` · ``scale``, one depthwise convolution; None when
    done, else why not (the map is larger than DLA's kernel limit)."""
    channels, height, width = spatial_map(source)
    low, high = dla_rules().layers["Convolution"].limits["kernel"]
    if not (low <= height <= high and low <= width <= high):
        return f"{height}×{width} map: larger than DLA's {high}×{high} kernel, left as it is"
    kernel = gs.Constant(f"{name}/kernel", np.full((channels, 1, height, width), scale, dtype=np.float32))
    attrs = {"group": channels, "kernel_shape": [height, width], "pads": [0, 0, 0, 0], "strides": [1, 1]}
    out.shape = [source.shape[0], channels, 1, 1]
    graph.nodes.append(gs.Node("Conv", name, attrs, [source, kernel], [out]))
    return None


def _axes(node: gs.Node) -> set[int] | None:
    if len(node.inputs) > 1:
        axes = node.inputs[1]
        if not isinstance(axes, gs.Constant):
            return None
        values = np.asarray(axes.values).ravel().tolist()
    else:
        values = node.attrs.get("axes")
    return None if values is None else {int(a) % 4 for a in values}


def global_sums_to_convs(graph: gs.Graph) -> PassReport:
    report = PassReport("dla-global-sum")
    for node in [n for n in graph.nodes if n.op in ("ReduceSum", "ReduceMean")]:
        source = node.inputs[0]
        dims = spatial_map(source)
        if dims is None or _axes(node) != _SPATIAL or node.attrs.get("keepdims", 1) != 1:
            continue
        report.matched += 1
        scale = 1.0 / (dims[1] * dims[2]) if node.op == "ReduceMean" else 1.0
        out = node.outputs[0]
        node.outputs.clear()
        why_not = map_reduction_conv(graph, f"{node.name}/dla_conv", source, out, scale)
        if why_not:
            node.outputs.append(out)
            report.details.append(f"{node.name}: {why_not}")
            continue
        report.changed += 1
    report.details.insert(0, f"{report.changed} spatial {'reductions' if report.changed != 1 else 'reduction'} → depthwise convolutions")
    return report
