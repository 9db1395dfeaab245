"""Attention cores on their own, and inputs built to break their rewrites.

A pass is exact only if it is exact on the inputs where its approximations bite, not just on
photographs and Gaussian noise. :func:`core_model` is one LiteMLA or ReduceFormer context module
reduced to its attention core (the qkv projection, aggregation and output projection made
identities), so its input *is* the q|k|v tensor; :func:`stress_inputs` sets q, k and v directly:

- ``gaussian``: N(0, 1) everywhere;
- ``q ≤ 0 pixels``: a quarter of the pixels with every q channel non-positive (ReLU(q) = 0 there: the
  output is 0/ε);
- ``tiny q pixels``: a quarter of the pixels with every q channel non-positive but one, 6e-8 or 1e-8
  (ReLU(q) tiny but positive: the exact output is O(1), an ε floor of FP16 size destroys it);
- ``×0.01`` and ``×100``: the Gaussian input scaled.

:func:`pass_errors` runs the export passes on the exported core and reports, per pass and input, the
largest deviation from the exported graph relative to the output's scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..models.efficientvit import ATTENTIONS
from .onnx_export import export_onnx
from .onnxrt import run_onnx
from .passes import Pass, run_pass, to_graph, to_model

__all__ = ["core_model", "stress_inputs", "PassError", "pass_errors", "STRESS_CASES"]

STRESS_CASES = ("gaussian", "q ≤ 0 pixels", "tiny q pixels", "×0.01", "×100")


def _identity_aggregation(aggregation: nn.Sequential) -> None:
    """Every convolution of an aggregation branch made the identity (a centred delta per channel)."""
    for conv in aggregation:
        weight = torch.zeros_like(conv.weight)
        per_group = conv.weight.shape[1]
        for channel in range(conv.weight.shape[0]):
            weight[channel, channel % per_group, conv.weight.shape[2] // 2, conv.weight.shape[3] // 2] = 1.0
        conv.weight.data.copy_(weight)


def core_model(family: str, heads: int = 2, head_dim: int = 8) -> nn.Module:
    """A ``family`` ("rf" or "evit") context module whose input is its q|k|v tensor
    (B, 3·heads·head_dim, H, W) and whose output is its attention core's."""
    module = ATTENTIONS[family](heads * head_dim, head_dim)
    module.qkv = nn.Identity()
    for branch in module.aggreg:
        _identity_aggregation(branch)
    module.proj = nn.Identity()
    return module.eval()


def stress_inputs(heads: int = 2, head_dim: int = 8, resolution: int = 14, batch: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """The q|k|v inputs of :data:`STRESS_CASES` for :func:`core_model` (channels of head g:
    q in ``[3dg, 3dg+d)``, k, v after it)."""
    rng = np.random.default_rng(seed)
    shape = (batch, heads, 3, head_dim, resolution, resolution)
    gaussian = rng.standard_normal(shape).astype(np.float32)
    pixels = rng.random((batch, heads, 1, 1, resolution, resolution)) < 0.25
    non_positive = gaussian.copy()
    non_positive[:, :, 0] = np.where(pixels[:, :, 0], -np.abs(gaussian[:, :, 0]), gaussian[:, :, 0])
    tiny = non_positive.copy()
    chosen = pixels[:, :, 0, 0]
    tiny_values = np.where(rng.random(chosen.shape) < 0.5, 6e-8, 1e-8).astype(np.float32)
    tiny[:, :, 0, 0] = np.where(chosen, tiny_values, tiny[:, :, 0, 0])
    cases = {"gaussian": gaussian, "q ≤ 0 pixels": non_positive, "tiny q pixels": tiny, "×0.01": gaussian * 0.01, "×100": gaussian * 100}
    flat = (batch, heads * 3 * head_dim, resolution, resolution)
    return {name: np.ascontiguousarray(x.reshape(flat), dtype=np.float32) for name, x in cases.items()}


@dataclass(frozen=True)
class PassError:
    """One pass on one input: its largest deviation relative to the output's scale."""

    family: str
    name: str
    inputs: str
    max_relative: float
    #: elements off by more than 1e-5 of the output's scale
    elements_off: int
    elements: int


def pass_errors(family: str, passes: list[Pass], heads: int = 2, head_dim: int = 8, resolution: int = 14) -> list[PassError]:
    """Each pass of ``passes``, applied in order to the exported core, against the exported core."""
    inputs = stress_inputs(heads, head_dim, resolution)
    exported = export_onnx(core_model(family, heads, head_dim), resolution, channels=3 * heads * head_dim)
    reference = run_onnx(exported, inputs)
    graph = to_graph(exported)
    errors = []
    for pass_fn in passes:
        report = run_pass(graph, pass_fn)
        outputs = run_onnx(to_model(graph, exported), inputs)
        for case, ref in reference.items():
            scale = float(np.abs(ref).max()) or 1.0
            deviation = np.abs(outputs[case].astype(np.float64) - ref) / scale
            errors.append(PassError(family, report.name, case, float(deviation.max()), int((deviation > 1e-5).sum()), int(deviation.size)))
    return errors
