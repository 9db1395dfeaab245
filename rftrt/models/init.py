"""Default weights when no checkpoint is given: random, seeded, and signal-preserving.

PyTorch's default initialisation shrinks the signal through the stages (stage-1 output std ~7e-4 on
rf_b1), so the logits of an untrained model barely depend on the image: every photograph gets the
same top-1 class, and a validation on such a model cannot tell a working backbone from a broken
one. :func:`signal_preserving_init` instead

1. draws every convolution and linear weight from N(0, 2 / fan_in) (He), biases zero, from a
   generator seeded with ``seed`` (independent of torch's global random state);
2. gives the last BatchNorm of every residual branch with an identity shortcut the scale
   :data:`RESIDUAL_SCALE` (1/4; the softened form of the zero-initialised last BatchNorm of ResNet
   training recipes): each block then adds 1/16 of the stream's variance instead of doubling it,
   and the random network stays out of the chaotic regime where every block amplifies a
   perturbation (with scale 1, FP16 rounding grows ~15 % per block and rf_b3's FP16 plan misses
   cosine 0.999 on the photographs; with 1/4 it stays at ~0.99998);
3. sets every BatchNorm's statistics from one forward pass over the bundled photographs at the
   model's resolution (train mode, cumulative statistics: each BatchNorm sees its input as the
   layers before it, already normalised, produce it), so that each normalised activation has zero
   mean and unit variance on those photographs.

The weights are still random (the bundles and reports say so), but every stage carries the image
through: on the eight bundled photographs at r224 the logits' spread across images is about 0.8 of
their spread across classes, and the photographs get distinct top-1 classes
(``scripts/signal_check.py``). Every command that builds a model without ``--weights`` uses this,
so rf-export, rf-eval, rf-bench and rf-inspect get the same weights for the same name, resolution
and seed.
"""

from __future__ import annotations

import torch
from torch import nn

from ..data.images import bundled_photographs
from .layers import ResidualBlock

__all__ = ["signal_preserving_init", "stress_weights", "DESCRIPTION", "RESIDUAL_SCALE"]

#: Initial scale of the last BatchNorm of each residual branch (see the module docstring).
RESIDUAL_SCALE = 0.25

DESCRIPTION = "random: He-normal (seed {seed}), residual branches ×1/4, BatchNorm statistics from the {n} bundled photographs"


def _he_normal(model: nn.Module, generator: torch.Generator) -> None:
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            fan_in = module.weight[0].numel()
            module.weight.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=generator)
            if module.bias is not None:
                module.bias.zero_()


def _scale_residual_branches(model: nn.Module) -> None:
    for block in model.modules():
        if isinstance(block, ResidualBlock) and block.identity_shortcut:
            norms = [m for m in block.main.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
            if norms:
                norms[-1].weight.fill_(RESIDUAL_SCALE)


def _batchnorm_from(model: nn.Module, images: torch.Tensor) -> None:
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average: after one batch, exactly that batch's statistics
    model.train()
    model(images)
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    model.eval()


@torch.no_grad()
def signal_preserving_init(model: nn.Module, resolution: int, seed: int = 0) -> str:
    """Initialise ``model`` in place (see the module docstring); returns a one-line description."""
    photos = torch.from_numpy(bundled_photographs(resolution))
    _he_normal(model, torch.Generator().manual_seed(seed))
    for norm in model.modules():
        if isinstance(norm, nn.modules.batchnorm._BatchNorm):
            norm.reset_parameters()
    _scale_residual_branches(model)
    _batchnorm_from(model, photos)
    return DESCRIPTION.format(seed=seed, n=len(photos))


@torch.no_grad()
def stress_weights(model: nn.Module, seed: int = 0) -> nn.Module:
    """The stress checkpoint: every convolution Kaiming-normal (fan-in, gain √2, from a generator seeded
    with ``seed``), biases zero, every BatchNorm the identity (scale 1, shift 0, mean 0, variance 1).
    Without BatchNorm statistics to normalise them, activations grow through the stages as a trained
    model's may: what an FP16 plan measured on a few images must survive."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, generator=generator)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_parameters()
    return model.eval()
