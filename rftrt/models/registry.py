"""The model registry: names, published figures, construction with optional weights.

Names are ``<family>_<variant>``: ``evit_b0`` … ``evit_b3`` (EfficientViT-B) and ``rf_b0`` …
``rf_b3`` (ReduceFormer-B). The published figures live in ``zoo.toml`` beside this file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from .._data import load_toml
from ..errors import RftrtError
from .checkpoint import LoadReport, load_weights
from .efficientvit import EfficientViTCls
from .init import signal_preserving_init

__all__ = [
    "ModelInfo",
    "list_models",
    "model_info",
    "create",
    "check_resolution",
    "PUBLISHED_RESOLUTIONS",
]

#: Resolutions with published EfficientViT checkpoints and figures.
PUBLISHED_RESOLUTIONS = (224, 256, 288)
_MIN_RESOLUTION = 64
_STRIDE = 32


@dataclass(frozen=True)
class ModelInfo:
    """A registry entry with the figures published for it (empty where none are)."""

    name: str
    family: str
    variant: str
    display: str
    source: str
    params_m: float | None = None
    #: resolution → {"macs_g": …, "top1": …} from the model's own release
    by_resolution: dict[int, dict[str, float]] = field(default_factory=dict)
    #: the ReduceFormer paper's row: resolution, params_m, macs_g, top1 (its measurements of speed:
    #: rftrt/tools/paper_tables.toml)
    paper: dict[str, Any] = field(default_factory=dict)
    #: stage label → parameters of the official modules (EfficientViT only)
    stage_params: dict[str, int] = field(default_factory=dict)


@lru_cache(maxsize=1)
def _zoo() -> dict[str, ModelInfo]:
    entries = {}
    for name, raw in load_toml("rftrt.models", "zoo.toml")["models"].items():
        by_resolution = {int(k[1:]): v for k, v in raw.items() if k.startswith("r") and k[1:].isdigit()}
        entries[name] = ModelInfo(
            name=name,
            family=raw["family"],
            variant=raw["variant"],
            display=raw["display"],
            source=raw["source"],
            params_m=raw.get("params_m"),
            by_resolution=by_resolution,
            paper=raw.get("paper", {}),
            stage_params=raw.get("stage_params", {}).get("counts", {}),
        )
    return entries


def list_models() -> list[str]:
    """All registry names, EfficientViT first, then ReduceFormer, each by size."""
    return list(_zoo())


def model_info(name: str) -> ModelInfo:
    """The registry entry for ``name``; an unknown name is an error that lists the valid ones."""
    try:
        return _zoo()[name]
    except KeyError:
        raise RftrtError(f"unknown model {name!r}; available: {', '.join(list_models())}") from None


def check_resolution(resolution: int) -> int:
    """Accept a multiple of 32 that is at least 64 (the backbone downsamples by 32)."""
    if not isinstance(resolution, int) or isinstance(resolution, bool):
        raise RftrtError(f"resolution must be an integer, got {resolution!r}")
    if resolution < _MIN_RESOLUTION or resolution % _STRIDE:
        raise RftrtError(
            f"resolution {resolution} not supported: use a multiple of {_STRIDE} that is at least "
            f"{_MIN_RESOLUTION} (published: {', '.join(map(str, PUBLISHED_RESOLUTIONS))})"
        )
    return resolution


def create(
    name: str,
    resolution: int = 224,
    weights: str | Path | None = None,
    num_classes: int = 1000,
    seed: int = 0,
) -> EfficientViTCls:
    """Build a registry model in eval mode, optionally loading a checkpoint.

    Without ``weights`` the model gets :func:`~rftrt.models.init.signal_preserving_init`'s random
    weights for ``seed``: the same for every command, and ones under which the logits depend on the image.

    ``weights`` may be an official EfficientViT ``.pt`` (raw state dict or ``{"state_dict": …}``), a
    timm-named state dict, or, for ``rf_*``, an EfficientViT checkpoint of the same size (its
    grouped-1×1 aggregation weights are then reported unused). The load report is kept on the model
    as ``model.load_report``; the input resolution as ``model.resolution``.
    """
    info = model_info(name)
    check_resolution(resolution)
    if not isinstance(num_classes, int) or num_classes < 1:
        raise RftrtError(f"num_classes must be a positive integer, got {num_classes!r}")
    model = EfficientViTCls(info.family, info.variant, num_classes=num_classes)
    model.name = name
    model.resolution = resolution
    if weights is not None:
        model.load_report = load_weights(model, weights)
    else:
        model.load_report = LoadReport.random_init(signal_preserving_init(model, resolution, seed))
    return model.eval()
