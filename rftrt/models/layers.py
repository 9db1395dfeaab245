"""Building blocks of EfficientViT-B and ReduceFormer-B.

The module tree and attribute names mirror the official EfficientViT code
(mit-han-lab/efficientvit, ``efficientvit/models/nn/ops.py``) so that official checkpoints load with
strict key checking: ``ConvLayer.{conv,norm}``, ``MBConv.{inverted_conv,depth_conv,point_conv}``,
``ResidualBlock.main``, ``LiteMLA.{qkv,aggreg,proj}`` and so on. Missing norms and activations are
``nn.Identity`` (parameter-free), so the ``state_dict`` keys are exactly the official ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ConvLayer",
    "LinearLayer",
    "DSConv",
    "MBConv",
    "ResidualBlock",
    "OpSequential",
    "LiteMLA",
    "ReduceAttention",
    "EfficientViTBlock",
    "EPS_FP32",
    "EPS_FP16",
]

#: ε of the attention's division when it runs in FP32: the official LiteMLA constructor default.
EPS_FP32 = 1e-15
#: ε safe wherever the division can run in FP16: 1e-15 underflows to 0 there (the smallest FP16
#: subnormal is ~6e-8) and turns an all-zero ReLU(q) or ReLU(k) into 0/0. timm uses 1e-5.
EPS_FP16 = 1e-5


class ConvLayer(nn.Module):
    """Conv2d → optional BatchNorm2d → optional activation ("same" padding for odd kernels)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        bias: bool = False,
        norm: bool = True,
        act: type[nn.Module] | None = nn.Hardswish,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=bias
        )
        self.norm = nn.BatchNorm2d(out_channels) if norm else nn.Identity()
        self.act = act() if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class LinearLayer(nn.Module):
    """Flatten → optional Dropout → Linear → optional LayerNorm → optional activation."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        norm: bool = False,
        act: type[nn.Module] | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self.norm = nn.LayerNorm(out_features) if norm else nn.Identity()
        self.act = act() if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(x, 1)
        return self.act(self.norm(self.linear(self.dropout(x))))


class DSConv(nn.Module):
    """Depthwise-separable conv of the stem: dw 3×3 + BN + Hardswish, pw 1×1 + BN."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.depth_conv = ConvLayer(in_channels, in_channels, 3, stride, groups=in_channels)
        self.point_conv = ConvLayer(in_channels, out_channels, 1, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_conv(self.depth_conv(x))


class MBConv(nn.Module):
    """Inverted bottleneck: 1×1 expand → dw 3×3 → 1×1 project.

    ``fewer_norm`` is the official variant used by the strided entry of stages 3–4 and by every
    EfficientViT block's FFN: the first two convs carry a bias and no BatchNorm.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        expand_ratio: float = 4,
        fewer_norm: bool = False,
    ) -> None:
        super().__init__()
        mid = round(in_channels * expand_ratio)
        self.inverted_conv = ConvLayer(in_channels, mid, 1, bias=fewer_norm, norm=not fewer_norm)
        self.depth_conv = ConvLayer(mid, mid, 3, stride, groups=mid, bias=fewer_norm, norm=not fewer_norm)
        self.point_conv = ConvLayer(mid, out_channels, 1, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_conv(self.depth_conv(self.inverted_conv(x)))


class ResidualBlock(nn.Module):
    """``main(x) + x`` with an identity shortcut, ``main(x)`` without one (strided blocks)."""

    def __init__(self, main: nn.Module, identity_shortcut: bool) -> None:
        super().__init__()
        self.main = main
        self.identity_shortcut = identity_shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.main(x)
        return out + x if self.identity_shortcut else out


class OpSequential(nn.Module):
    """A plain chain of modules stored as ``op_list`` (the official key prefix)."""

    def __init__(self, ops: list[nn.Module]) -> None:
        super().__init__()
        self.op_list = nn.ModuleList(ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.op_list:
            x = op(x)
        return x


class _MultiScaleAttention(nn.Module):
    """The context module shared by LiteMLA and ReduceFormer attention.

    qkv 1×1 projection (per-head interleaved channels: head g owns ``[g·3d, (g+1)·3d)`` ordered
    q|k|v), one multi-scale aggregation branch per extra kernel size, concatenation, an
    attention core over ``G = heads·(1 + len(scales))`` groups of ``d`` channels, and a 1×1
    projection with BatchNorm. Subclasses define the aggregation branch and the core.

    The core always runs in FP32 with autocast off, and its result is cast back to the activation
    dtype before ``proj``, as the official code does: its global sums grow with the token count and
    overflow FP16, and ``EPS_FP32`` underflows to zero in FP16.
    """

    def __init__(
        self, channels: int, head_dim: int, scales: tuple[int, ...] = (5,), eps: float = EPS_FP32
    ) -> None:
        super().__init__()
        heads = channels // head_dim
        total = heads * head_dim
        self.head_dim = head_dim
        self.eps = eps
        self.qkv = ConvLayer(channels, 3 * total, 1, norm=False, act=None)
        self.aggreg = nn.ModuleList([self._aggregation(3 * total, k, 3 * heads) for k in scales])
        self.proj = ConvLayer(total * (1 + len(scales)), channels, 1, act=None)

    @staticmethod
    def _aggregation(channels: int, kernel_size: int, qkv_groups: int) -> nn.Module:
        raise NotImplementedError

    def _core(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """(B, G, d, N) q, k, v in FP32 → (B, G, d, N) attention output."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = self.qkv(x)
        qkv = torch.cat([qkv] + [op(qkv) for op in self.aggreg], dim=1)
        batch, _, height, width = qkv.shape
        d = self.head_dim
        with torch.autocast(device_type=x.device.type, enabled=False):
            groups = qkv.float().reshape(batch, -1, 3 * d, height * width)
            q, k, v = groups[:, :, :d], groups[:, :, d : 2 * d], groups[:, :, 2 * d :]
            out = self._core(F.relu(q), F.relu(k), v)
        out = out.reshape(batch, -1, height, width).to(x.dtype)
        return self.proj(out)


class LiteMLA(_MultiScaleAttention):
    """EfficientViT's lightweight multi-scale ReLU linear attention.

    The aggregation is dw 5×5 followed by a grouped 1×1 (one group per head's q, k or v). The core
    is the official padded-ones formulation: ``v`` gets an extra row of ones so that one
    ``(v_pad · kᵀ) · q`` product yields the numerator (rows 0..d-1) and the denominator (row d).
    The official quadratic fallback for N ≤ d computes the same quantity and is not reproduced.
    """

    @staticmethod
    def _aggregation(channels: int, kernel_size: int, qkv_groups: int) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels, bias=False),
            nn.Conv2d(channels, channels, 1, groups=qkv_groups, bias=False),
        )

    def _core(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        v = F.pad(v, (0, 0, 0, 1), mode="constant", value=1.0)
        out = torch.matmul(torch.matmul(v, k.transpose(-1, -2)), q)
        return out[:, :, :-1] / (out[:, :, -1:] + self.eps)


class ReduceAttention(_MultiScaleAttention):
    """ReduceFormer attention, reading A of the spec: LiteMLA with ``Σ_j v_j k̂_jᵀ`` replaced by its
    diagonal, so that only summations and element-wise products remain (no MatMul, no Softmax).

    Per group g, with q̂ = ReLU(q), k̂ = ReLU(k) of shape (d, N)::

        SUM^K[c]    = Σ_j k̂[c, j]               global spatial sum
        SUM^KV[c]   = Σ_j k̂[c, j] · v[c, j]      element-wise product, global spatial sum
        SUM^QK[i]   = Σ_c q̂[c, i] · SUM^K[c]     channel sum within the head
        O[c, i]     = q̂[c, i] · SUM^KV[c] / (SUM^QK[i] + ε)

    Numerator and denominator both scale with N, so O does not depend on the token count (it is
    unchanged when every token is duplicated), and computing means instead of sums is exact up to
    ε's effective size: the FP16-safe rewriting the export passes use.

    The aggregation keeps the 5×5 depthwise conv and drops the grouped 1×1: a conv that mixes the
    channels of one head's q, k or v serves the per-head matmul, which is gone. This is the one
    simple structural change that lands on the paper's parameter counts (9.0M / 24M / 48M); see
    ``docs/reduceformer.md`` for the reasoning and the alternative readings.
    """

    @staticmethod
    def _aggregation(channels: int, kernel_size: int, qkv_groups: int) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels, bias=False),
        )

    def _core(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        sum_k = k.sum(dim=-1, keepdim=True)
        sum_kv = (k * v).sum(dim=-1, keepdim=True)
        sum_qk = (q * sum_k).sum(dim=-2, keepdim=True)
        return q * sum_kv / (sum_qk + self.eps)


class EfficientViTBlock(nn.Module):
    """``x + attention(x)`` then ``x + MBConv_fewer_norm(x)``; no pre-norm."""

    def __init__(self, channels: int, head_dim: int, attention: type[_MultiScaleAttention], expand_ratio: float = 4) -> None:
        super().__init__()
        self.context_module = ResidualBlock(attention(channels, head_dim), identity_shortcut=True)
        self.local_module = ResidualBlock(
            MBConv(channels, channels, 1, expand_ratio, fewer_norm=True), identity_shortcut=True
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.local_module(self.context_module(x))
