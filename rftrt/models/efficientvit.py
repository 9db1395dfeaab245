"""EfficientViT-B (Cai et al., ICCV 2023) and ReduceFormer-B (Yang, An, Park, NVIDIA 2024).

Sources: mit-han-lab/efficientvit (``efficientvit/models/efficientvit/backbone.py``, ``cls.py``,
``models/nn/ops.py``) for EfficientViT; the ReduceFormer paper (arXiv 2406.07488) for the
attention, in the reading documented in ``docs/reduceformer.md``. Written from scratch.

The two families share everything but the attention of stages 3–4: ReduceFormer-Bn is
EfficientViT-Bn with :class:`~rftrt.models.layers.LiteMLA` replaced by
:class:`~rftrt.models.layers.ReduceAttention`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .layers import (
    ConvLayer,
    DSConv,
    EfficientViTBlock,
    LinearLayer,
    LiteMLA,
    MBConv,
    OpSequential,
    ReduceAttention,
    ResidualBlock,
)

__all__ = ["ArchConfig", "ARCHS", "ATTENTIONS", "EfficientViTCls", "Backbone", "ClsHead"]


@dataclass(frozen=True)
class ArchConfig:
    """Widths/depths of the stem and four stages, the attention head dim and the head widths."""

    widths: tuple[int, int, int, int, int]
    depths: tuple[int, int, int, int, int]
    head_dim: int
    head_widths: tuple[int, int]


#: The B-series table of the official backbone/cls definitions (identical in timm).
ARCHS: dict[str, ArchConfig] = {
    "b0": ArchConfig((8, 16, 32, 64, 128), (1, 2, 2, 2, 2), 16, (1024, 1280)),
    "b1": ArchConfig((16, 32, 64, 128, 256), (1, 2, 3, 3, 4), 16, (1536, 1600)),
    "b2": ArchConfig((24, 48, 96, 192, 384), (1, 3, 4, 4, 6), 32, (2304, 2560)),
    "b3": ArchConfig((32, 64, 128, 256, 512), (1, 4, 6, 6, 9), 32, (2304, 2560)),
}

#: Attention module per model family.
ATTENTIONS = {"evit": LiteMLA, "rf": ReduceAttention}


class Backbone(nn.Module):
    """Stem (conv + DSConv blocks), two MBConv stages, two attention stages."""

    def __init__(self, arch: ArchConfig, attention: type[nn.Module], expand_ratio: float = 4) -> None:
        super().__init__()
        w, d = arch.widths, arch.depths
        stem: list[nn.Module] = [ConvLayer(3, w[0], 3, stride=2)]
        stem += [ResidualBlock(DSConv(w[0], w[0]), identity_shortcut=True) for _ in range(d[0])]
        self.input_stem = OpSequential(stem)

        stages: list[nn.Module] = []
        channels = w[0]
        for width, depth in zip(w[1:3], d[1:3]):
            blocks = []
            for i in range(depth):
                stride = 2 if i == 0 else 1
                blocks.append(
                    ResidualBlock(MBConv(channels, width, stride, expand_ratio), identity_shortcut=stride == 1)
                )
                channels = width
            stages.append(OpSequential(blocks))
        for width, depth in zip(w[3:], d[3:]):
            blocks = [ResidualBlock(MBConv(channels, width, 2, expand_ratio, fewer_norm=True), identity_shortcut=False)]
            channels = width
            blocks += [EfficientViTBlock(channels, arch.head_dim, attention, expand_ratio) for _ in range(depth)]
            stages.append(OpSequential(blocks))
        self.stages = nn.ModuleList(stages)
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_stem(x)
        for stage in self.stages:
            x = stage(x)
        return x


class ClsHead(OpSequential):
    """1×1 conv + BN + Hardswish → global average pool → Linear (no bias) + LayerNorm + Hardswish →
    Dropout + Linear classifier. ``op_list`` indices 0..3 are the official key prefixes."""

    def __init__(self, in_channels: int, widths: tuple[int, int], num_classes: int, dropout: float = 0.0) -> None:
        super().__init__(
            [
                ConvLayer(in_channels, widths[0], 1),
                nn.AdaptiveAvgPool2d(1),
                LinearLayer(widths[0], widths[1], bias=False, norm=True, act=nn.Hardswish),
                LinearLayer(widths[1], num_classes, bias=True, dropout=dropout),
            ]
        )


class EfficientViTCls(nn.Module):
    """Image classifier: ``backbone`` then ``head`` (the official top-level key prefixes)."""

    def __init__(self, family: str, variant: str, num_classes: int = 1000, dropout: float = 0.0) -> None:
        super().__init__()
        arch = ARCHS[variant]
        self.family = family
        self.variant = variant
        self.num_classes = num_classes
        self.backbone = Backbone(arch, ATTENTIONS[family])
        self.head = ClsHead(self.backbone.out_channels, arch.head_widths, num_classes, dropout)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))
