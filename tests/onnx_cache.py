"""Exported models shared by the export, pass and precision tests (exporting B3 takes seconds)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import onnx
import torch

from rftrt.export.onnx_export import export_onnx
from rftrt.models import create

RESOLUTION = 64


@lru_cache(maxsize=None)
def exported(name: str, resolution: int = RESOLUTION) -> tuple[torch.nn.Module, bytes]:
    torch.manual_seed(0)
    model = create(name, resolution=resolution)
    return model, export_onnx(model, resolution).SerializeToString()


def load(name: str, resolution: int = RESOLUTION) -> tuple[torch.nn.Module, onnx.ModelProto]:
    model, data = exported(name, resolution)
    return model, onnx.load_from_string(data)


def images(n: int = 2, resolution: int = RESOLUTION, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, resolution, resolution)).astype(np.float32)


def digits_fp32_onnx(model: torch.nn.Module | None = None, static_batch: int | None = None) -> onnx.ModelProto:
    """The digits model as the FP32 ONNX an ``rf-export --fp16``/``--int8`` bundle ships: exported with a
    dynamic batch (or ``static_batch``), then the FP16 pass pipeline."""
    from rftrt.data.digits import RESOLUTION as DIGITS_RESOLUTION
    from rftrt.export.prepare import export_and_pass
    from rftrt.models.digits import load_checkpoint

    model = load_checkpoint() if model is None else model
    resolution = getattr(model, "resolution", DIGITS_RESOLUTION)
    metadata = {"model": "rf_digits", "resolution": str(resolution)}
    prepared = export_and_pass(model, resolution, "fp16", dynamic_batch=static_batch is None, batch=static_batch or 1, metadata=metadata)
    return prepared.passed
