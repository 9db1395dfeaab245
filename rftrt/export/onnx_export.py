"""PyTorch → ONNX with torch's TorchScript-based exporter.

Why not the dynamo exporter: it emits opset 18 at least, and its down-conversion to 17 (the
ceiling of TensorRT 8.x, i.e. DRIVE OS 6 and JetPack 6.0) fails on Pad and on ReduceSum with axes
as inputs, leaving the model at 18. The TorchScript exporter writes opsets 9–20 directly; it is
deprecated upstream but supported by the torch this project pins. ``tests/test_export.py`` exports
every registry model at opset 17 and checks it.

The output is deterministic: same model weights, resolution, opset and batch mode give the same
bytes (no timestamps, node names from the module tree).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import onnx
import torch

from .. import __version__
from ..errors import RftrtError
from .metadata import write_metadata

__all__ = ["export_onnx", "load_onnx", "INPUT_NAME", "OUTPUT_NAME", "EXPORTER_MAX_OPSET", "DEFAULT_OPSET"]

INPUT_NAME = "images"
OUTPUT_NAME = "logits"
#: The TorchScript exporter's highest opset.
EXPORTER_MAX_OPSET = 20
#: Parsed by every TensorRT release this project targets (8.6 reads up to 17).
DEFAULT_OPSET = 17
_MIN_OPSET = 13  # Split with sizes as input, ReduceSum with axes as input


def export_onnx(
    model: torch.nn.Module,
    resolution: int,
    *,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    batch: int = 1,
    metadata: dict[str, str] | None = None,
    channels: int = 3,
) -> onnx.ModelProto:
    """Export ``model`` (FP32, eval mode) with input ``images`` (N, channels, R, R) and output ``logits``.

    With ``dynamic_batch`` the batch dimension is the symbol ``batch``; otherwise it is ``batch``.
    ``metadata`` is stored as ONNX metadata props, sorted by key.
    """
    if not _MIN_OPSET <= opset <= EXPORTER_MAX_OPSET:
        raise RftrtError(f"opset {opset} not supported: use {_MIN_OPSET}…{EXPORTER_MAX_OPSET}")
    model = model.float().eval()
    example = torch.zeros(batch, channels, resolution, resolution)
    dynamic_axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # The exporter warns that it is deprecated and about traced Python shape arithmetic; both are
        # known and the passes remove the shape arithmetic.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            buffer,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
            dynamo=False,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    proto.producer_name, proto.producer_version = "rftrt", __version__
    write_metadata(proto, {"rftrt_version": __version__, **(metadata or {})})
    return proto


def load_onnx(path: str | Path) -> onnx.ModelProto:
    """Read an ONNX file given on the command line; a missing or unreadable one is one line."""
    file = Path(path)
    if not file.is_file():
        raise RftrtError(f"{file}: no such ONNX file")
    try:
        return onnx.load(str(file))
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError and others
        raise RftrtError(f"{file}: not an ONNX model ({' '.join(str(exc).split()) or type(exc).__name__})") from None
