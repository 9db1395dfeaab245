"""EfficientViT-B and ReduceFormer-B in PyTorch, their registry and checkpoint loading."""

from .checkpoint import LoadReport, load_weights, official_to_timm, timm_to_official
from .complexity import Complexity, count_complexity
from .efficientvit import EfficientViTCls
from .layers import EPS_FP16, EPS_FP32, LiteMLA, ReduceAttention
from .registry import PUBLISHED_RESOLUTIONS, ModelInfo, check_resolution, create, list_models, model_info

__all__ = [
    "Complexity",
    "EPS_FP16",
    "EPS_FP32",
    "EfficientViTCls",
    "LiteMLA",
    "LoadReport",
    "ModelInfo",
    "PUBLISHED_RESOLUTIONS",
    "ReduceAttention",
    "check_resolution",
    "count_complexity",
    "create",
    "list_models",
    "load_weights",
    "model_info",
    "official_to_timm",
    "timm_to_official",
]
