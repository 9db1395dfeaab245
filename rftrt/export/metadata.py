"""What rf-export records in an ONNX's metadata (model, resolution, how the weights were made), and
reading it back; ONNX only, so commands that only read an ONNX need not import torch."""
from __future__ import annotations

import onnx

__all__ = ["write_metadata", "read_metadata", "recorded_weights"]


def write_metadata(model: onnx.ModelProto, props: dict[str, object]) -> None:
    """Replace the model's metadata with ``props``, in sorted order (deterministic bytes)."""
    del model.metadata_props[:]
    for key in sorted(props):
        model.metadata_props.add(key=key, value=str(props[key]))


def read_metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def recorded_weights(model: onnx.ModelProto) -> str | None:
    """What rf-export recorded of the weights: "random" (seeded initialisation), a checkpoint's
    sha256, or None for an ONNX rf-export did not write."""
    return read_metadata(model).get("weights_sha256")
