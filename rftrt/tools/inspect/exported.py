"""The model every view looks at: exported (or given as ONNX) and passed, as ``rf-export`` does it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import onnx

from ...errors import RftrtError

__all__ = ["ExportedModel", "export_and_pass"]


@dataclass
class ExportedModel:
    """One model exported and passed, as ``rf-export`` does it (without the bundle)."""

    name: str | None
    resolution: int
    precision: str
    #: the ONNX as exported (or as given with ``--onnx``)
    before: onnx.ModelProto
    #: after cleanup, the attention passes and (FP16) the FP16-safety pass
    after: onnx.ModelProto
    passes: list = field(default_factory=list)  # list[PassReport]
    torch_model: Any = None


def _onnx_resolution(model: onnx.ModelProto) -> int | None:
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if len(dims) == 4 and dims[2].HasField("dim_value") and dims[2].dim_value == dims[3].dim_value:
        return int(dims[2].dim_value)
    return None


def export_and_pass(
    name: str | None,
    resolution: int,
    precision: str = "fp32",
    onnx_model: onnx.ModelProto | None = None,
    seed: int = 0,
    dla_batch: int | None = None,
) -> ExportedModel:
    """Export registry model ``name`` (random weights, seeded) or take ``onnx_model``, then run the
    passes of ``rf-export`` on it. With a model name the passes are held to its attention-block count.
    ``dla_batch``: as ``rf-export --dla`` does, export with that static batch and run the DLA rewrites."""

    from ...export.onnx_export import export_onnx
    from ...export.prepare import attention_blocks, run_passes
    from ...models import check_resolution, create

    if precision not in ("fp32", "fp16"):
        raise RftrtError(f"precision {precision!r} not supported here; use fp32 or fp16")
    check_resolution(resolution)
    torch_model = None
    blocks = None
    if name is not None:
        torch_model = create(name, resolution, seed=seed)
        blocks = attention_blocks(torch_model)
    if onnx_model is None:
        if torch_model is None:
            raise RftrtError("give a model name (--model) or an ONNX file (--onnx)")
        before = export_onnx(torch_model, resolution, dynamic_batch=dla_batch is None, batch=dla_batch or 1)
    else:
        found = _onnx_resolution(onnx_model)
        if found is not None and found != resolution:
            raise RftrtError(f"the ONNX takes {found}×{found} images but --resolution is {resolution}; pass --resolution {found}")
        before = onnx_model
    after, reports = run_passes(before, precision, blocks, dla=dla_batch is not None)
    return ExportedModel(name, resolution, precision, before, after, reports, torch_model)
