"""What the views read off an exported graph: the reporting stage of a node, element counts, the batch."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import onnx_graphsurgeon as gs

__all__ = ["STAGE_LABELS", "graph_batch", "numel", "stage_of"]

#: The labels of :data:`rftrt.models.complexity.STAGES`, repeated so that reading a graph needs no torch.
STAGE_LABELS = ("stem", "stage1", "stage2", "stage3", "stage4", "head")


def stage_of(node_name: str) -> str:
    """The reporting stage of an exported node, from the module path in its name."""
    if "/input_stem" in node_name:
        return "stem"
    match = re.search(r"/stages\.(\d+)", node_name)
    if match:
        return f"stage{int(match.group(1)) + 1}"
    if node_name.startswith("/head") or "/head/" in node_name:
        return "head"
    return "other"


def graph_batch(graph: gs.Graph) -> int:
    """The static batch of the graph input, or 1 for a dynamic (symbolic) batch."""
    dim = graph.inputs[0].shape[0] if graph.inputs and graph.inputs[0].shape else 1
    return dim if isinstance(dim, int) and dim > 0 else 1


def numel(shape: Any) -> int | None:
    """Element count with symbolic dimensions taken as 1 (per image); None when unknown."""
    if shape is None:
        return None
    count = 1
    for dim in shape:
        if isinstance(dim, (int, np.integer)):
            if dim < 0:
                return None
            count *= int(dim)
        elif dim is None:
            return None
        # a string is a symbolic (batch) dimension: 1 per image
    return count
