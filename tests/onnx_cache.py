"""Exported models shared by the export, pass and precision tests (exporting B3 takes seconds)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import onnx
import torch

from rftrt.export.onnx_export import export_onnx
from rftrt.models import LiteMLA, ReduceAttention, create

RESOLUTION = 64


@lru_cache(maxsize=None)
def exported(name: str, resolution: int = RESOLUTION) -> tuple[torch.nn.Module, bytes]:
    torch.manual_seed(0)
    model = create(name, resolution=resolution)
    return model, export_onnx(model, resolution).SerializeToString()


def load(name: str, resolution: int = RESOLUTION) -> tuple[torch.nn.Module, onnx.ModelProto]:
    model, data = exported(name, resolution)
    return model, onnx.load_from_string(data)


def attention_blocks(model: torch.nn.Module) -> tuple[int, int]:
    """(ReduceFormer blocks, LiteMLA blocks)."""
    modules = list(model.modules())
    return sum(isinstance(m, ReduceAttention) for m in modules), sum(isinstance(m, LiteMLA) for m in modules)


def images(n: int = 2, resolution: int = RESOLUTION, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, resolution, resolution)).astype(np.float32)
