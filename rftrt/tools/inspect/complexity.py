"""Parameters and MACs of a registry model per stage, beside the published figures, and the MACs
counted again on its ONNX graph."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import onnx

from ...errors import RftrtError
from ...export.passes import to_graph
from .graph import graph_batch, numel

__all__ = ["ComplexityReport", "StageCount", "complexity_report", "graph_macs"]


def graph_macs(model: onnx.ModelProto) -> int:
    """MACs per image of Conv, Gemm and MatMul nodes, from the ONNX graph's inferred shapes (the
    counting convention of :func:`rftrt.models.count_complexity`)."""
    graph = to_graph(model)
    batch = graph_batch(graph)
    total = 0
    for node in graph.nodes:
        if node.op == "Conv":
            out, weight = node.outputs[0].shape, node.inputs[1].shape
            if out is None or weight is None:
                raise RftrtError(f"shape of {node.name} unknown; cannot count its MACs")
            total += (numel(out) or 0) * int(np.prod(weight[1:]))
        elif node.op in ("Gemm", "MatMul"):
            out, a = node.outputs[0].shape, node.inputs[0].shape
            if out is None or a is None:
                raise RftrtError(f"shape of {node.name} unknown; cannot count its MACs")
            k = a[0] if node.op == "Gemm" and node.attrs.get("transA", 0) else a[-1]
            if not isinstance(k, (int, np.integer)):
                raise RftrtError(f"inner dimension of {node.name} is symbolic ({k}); count MACs after the passes")
            total += (numel(out) or 0) * int(k)
    return total // batch


@dataclass(frozen=True)
class StageCount:
    stage: str
    params: int
    macs: int
    #: the official module's count (``zoo.toml`` stage_params), EfficientViT only
    official_params: int | None = None


@dataclass(frozen=True)
class ComplexityReport:
    model: str
    display: str
    resolution: int
    stages: tuple[StageCount, ...]
    params: int
    macs: int
    #: ReduceFormer's attention-core multiplies and divides (not in ``macs``; 0 for EfficientViT)
    attention_elementwise: int
    #: MACs counted on the ONNX graph after the passes, per image
    graph_macs: int | None
    published_params_m: float | None
    #: the model's own release at this resolution
    published_macs_g: float | None
    published_source: str
    #: the ReduceFormer paper's row: its resolution, params and MACs
    paper_resolution: int | None
    paper_params_m: float | None
    paper_macs_g: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def complexity_report(name: str, resolution: int, torch_model: Any = None, onnx_model: onnx.ModelProto | None = None) -> ComplexityReport:
    """Parameters and MACs of registry model ``name`` per stage, beside the published figures."""
    from ...models import count_complexity, create, model_info
    from ...models.complexity import STAGES

    info = model_info(name)
    model = torch_model if torch_model is not None else create(name, resolution)
    counts = count_complexity(model, resolution)
    stages = tuple(
        StageCount(label, counts.params_by_stage[label], counts.macs_by_stage[label], info.stage_params.get(label)) for label, _ in STAGES
    )
    published = info.by_resolution.get(resolution, {})
    return ComplexityReport(
        model=name,
        display=info.display,
        resolution=resolution,
        stages=stages,
        params=counts.params,
        macs=counts.macs,
        attention_elementwise=counts.attention_elementwise,
        graph_macs=graph_macs(onnx_model) if onnx_model is not None else None,
        published_params_m=info.params_m,
        published_macs_g=published.get("macs_g"),
        published_source=info.source,
        paper_resolution=info.paper.get("resolution"),
        paper_params_m=info.paper.get("params_m"),
        paper_macs_g=info.paper.get("macs_g"),
    )
