"""DLA: ``GlobalAveragePool`` → a depthwise convolution with the constant kernel 1/(H·W).

The ONNX parser imports ``GlobalAveragePool`` as a Reduce layer, which runs on the GPU (DLA's Reduce
is MAX only), and DLA's average pooling takes windows of 1–8: the head's 7×7 map at r224 fits one,
its 9×9 map at r288 does not (platforms.md §9). A depthwise convolution with a kernel
the size of the map is the same mean and is DLA-legal up to 32×32
(:func:`.dla_global_sum.map_reduction_conv`). In FP16 the kernel 1/(H·W) is rounded (1/49 to
within 2⁻¹²): the mean is scaled by a constant, which the head's LayerNorm normalises away.
"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from . import PassReport
from .dla_global_sum import map_reduction_conv, spatial_map

__all__ = ["global_pool_to_conv"]


def global_pool_to_conv(graph: gs.Graph) -> PassReport:
    report = PassReport("dla-pool")
    for node in [n for n in graph.nodes if n.op == "GlobalAveragePool"]:
        dims = spatial_map(node.inputs[0])
        if dims is None:
            continue
        report.matched += 1
        out = node.outputs[0]
        node.outputs.clear()
        why_not = map_reduction_conv(graph, f"{node.name}/dla_conv", node.inputs[0], out, 1.0 / (dims[1] * dims[2]))
        if why_not:
            node.outputs.append(out)
        else:
            report.changed += 1
        report.details.append(f"{node.name}: {why_not or f'{dims[1]}×{dims[2]} depthwise convolution over {dims[0]} channels'}")
    return report
