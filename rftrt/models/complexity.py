"""Parameter and MAC counts, per stage and in total.

Counter convention: multiply-accumulates of convolutions, linear layers and matrix products only,
as counted by ``torch.utils.flop_counter.FlopCounterMode`` (FLOPs / 2). Element-wise products,
normalisation affines, activations, pooling and reductions are not counted. This matches the
bracketed "conv+lin+mm" column of model_spec §2.2 exactly for EfficientViT; torchprofile (the
official repository's counter) adds element-wise work and reads ~1% higher. ReduceFormer's attention
core has no matrix product, so under this convention it costs nothing: its element-wise work is
reported separately as ``attention_elementwise``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .layers import ReduceAttention

__all__ = ["Complexity", "count_complexity", "STAGES"]

#: Reporting groups: (label, attribute path in the model).
STAGES = (
    ("stem", "backbone.input_stem"),
    ("stage1", "backbone.stages.0"),
    ("stage2", "backbone.stages.1"),
    ("stage3", "backbone.stages.2"),
    ("stage4", "backbone.stages.3"),
    ("head", "head"),
)


@dataclass(frozen=True)
class Complexity:
    """Counts for one model at one resolution, batch 1."""

    resolution: int
    params: int
    macs: int
    params_by_stage: dict[str, int]
    macs_by_stage: dict[str, int]
    #: multiplies and divides of ReduceFormer's attention cores (0 for EfficientViT)
    attention_elementwise: int


def count_complexity(model: nn.Module, resolution: int) -> Complexity:
    """Count parameters and MACs of ``model`` for one ``resolution``×``resolution`` image."""
    params_by_stage = {
        label: sum(p.numel() for p in model.get_submodule(path).parameters()) for label, path in STAGES
    }
    macs_by_stage: dict[str, int] = {}
    elementwise = 0
    tokens: dict[nn.Module, int] = {}

    def remember_tokens(module: nn.Module, args: tuple) -> None:
        tokens[module] = args[0].shape[-1] * args[0].shape[-2]

    hooks = [m.register_forward_pre_hook(remember_tokens) for m in model.modules() if isinstance(m, ReduceAttention)]
    try:
        param = next(model.parameters())
        image = torch.zeros(1, 3, resolution, resolution, dtype=param.dtype, device=param.device)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(image)
    finally:
        for hook in hooks:
            hook.remove()
    counts = counter.get_flop_counts()
    root = type(model).__name__
    for label, path in STAGES:
        macs_by_stage[label] = sum(counts.get(f"{root}.{path}", {}).values()) // 2
    for module, n in tokens.items():
        width = module.proj.conv.in_channels  # G·d channels through the core
        # k·v, q·ΣK, q·ΣKV products and the division: 4 per element of the (G·d, N) map
        elementwise += 4 * width * n
    return Complexity(
        resolution=resolution,
        params=sum(p.numel() for p in model.parameters()),
        macs=sum(counts.get("Global", {}).values()) // 2,
        params_by_stage=params_by_stage,
        macs_by_stage=macs_by_stage,
        attention_elementwise=elementwise,
    )
