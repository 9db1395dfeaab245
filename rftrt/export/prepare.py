"""The passes a model gets for a precision, and a model exported and passed: the one definition that
``rf-export``, ``rf-inspect``, ``rf-bench``, ``rf-calib`` and the tests share.

The pipeline, in order (one module each under :mod:`rftrt.export.passes`):

1. ``cleanup``: no-op Casts and Identities, constant folding;
2. ``reduce-attention``: every ReduceFormer core in the canonical form;
3. ``litemla-padded-ones``: every LiteMLA core without ``Pad(v, 1)``;
4. ``fp16-safety``, only where the attention cores themselves will run in FP16 (``fp16_cores``;
   DLA, which has no FP32): sums → means, ε representable in FP16. It is an approximation
   (:mod:`rftrt.export.passes.fp16_safety` says how large), so the GPU paths, where the precision
   plan keeps every core in FP32, do not get it and their passes are exact;
5. for a DLA core (``dla``; docs/dla.md), the rewrites that make every layer one DLA runs, each exact
   in FP32: ``dla-attention`` (ReduceFormer cores on maps, legal broadcasts, per-head sums as grouped
   1×1 convolutions, FP16-safe by construction), ``dla-global-sum`` (spatial sums/means → depthwise convolutions), ``dla-pool``
   (GlobalAveragePool → depthwise convolution), ``dla-gemm`` (the head on 1×1 convolutions),
   ``dla-layernorm`` (LayerNorm → convolutions, ElementWise, Pow) and ``dla-hardswish``.
   A DLA core runs FP16 (or INT8), so ``dla`` implies ``fp16_cores``.

With a PyTorch model at hand, each attention pass is held to the model's block count
(:func:`attention_blocks`); a mismatch stops the export.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx
import torch

from ..errors import RftrtError
from ..models import LiteMLA, ReduceAttention
from . import onnxrt  # noqa: F401 - quiets ONNX Runtime's logger, which constant folding runs
from .onnx_export import DEFAULT_OPSET, export_onnx
from .passes import Pass, PassReport, run_pass, to_graph, to_model
from .passes.cleanup import cleanup
from .passes.dla_attention import reduce_attention_for_dla
from .passes.dla_gemm import head_to_convs
from .passes.dla_global_sum import global_sums_to_convs
from .passes.dla_hardswish import decompose_hardswish
from .passes.dla_layernorm import decompose_layernorm
from .passes.dla_pool import global_pool_to_conv
from .passes.fp16_safety import make_attention_fp16_safe
from .passes.litemla import rewrite_litemla_padded_ones
from .passes.reduce_attention import canonicalize_reduce_attention

__all__ = ["PRECISIONS", "AttentionBlocks", "attention_blocks", "pass_pipeline", "run_passes", "PreparedModel", "export_and_pass"]

#: The precisions a model can be exported for.
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class AttentionBlocks:
    """How many attention cores of each kind a model has: what the passes must find."""

    reduce: int
    litemla: int


def attention_blocks(model: torch.nn.Module) -> AttentionBlocks:
    modules = list(model.modules())
    return AttentionBlocks(
        reduce=sum(isinstance(m, ReduceAttention) for m in modules),
        litemla=sum(isinstance(m, LiteMLA) for m in modules),
    )


def pass_pipeline(
    precision: str, blocks: AttentionBlocks | None = None, fp16_cores: bool = False, dla: bool = False
) -> list[tuple[Pass, int | None]]:
    """The passes for ``precision``, each with the match count it is held to (None: not checked;
    no ``blocks``: none is); ``fp16_cores`` when the attention cores will run in FP16; ``dla`` when
    the network goes to a DLA core."""
    if precision not in PRECISIONS:
        raise RftrtError(f"precision {precision!r} not supported; use {', '.join(PRECISIONS)}")
    reduce = blocks.reduce if blocks else None
    litemla = blocks.litemla if blocks else None
    steps: list[tuple[Pass, int | None]] = [
        (cleanup, None),
        (canonicalize_reduce_attention, reduce),
        (rewrite_litemla_padded_ones, litemla),
    ]
    if precision != "fp32" and (fp16_cores or dla):
        steps.append((make_attention_fp16_safe, None if blocks is None else blocks.reduce + blocks.litemla))
    if dla:
        steps += [
            (reduce_attention_for_dla, reduce),
            (global_sums_to_convs, None if blocks is None else 2 * blocks.reduce),
            (global_pool_to_conv, None),
            (head_to_convs, None),
            (decompose_layernorm, None),
            (decompose_hardswish, None),
        ]
    return steps


def run_passes(
    model: onnx.ModelProto, precision: str, blocks: AttentionBlocks | None = None, fp16_cores: bool = False, dla: bool = False
) -> tuple[onnx.ModelProto, list[PassReport]]:
    """``model`` after :func:`pass_pipeline` (a new model; ``model`` is untouched), and each pass's report."""
    graph = to_graph(model)
    reports = [run_pass(graph, fn, expected) for fn, expected in pass_pipeline(precision, blocks, fp16_cores, dla)]
    return to_model(graph, model), reports


@dataclass
class PreparedModel:
    """One PyTorch model exported and passed."""

    torch_model: torch.nn.Module
    #: the ONNX as exported
    exported: onnx.ModelProto
    #: after :func:`pass_pipeline`
    passed: onnx.ModelProto
    passes: list[PassReport] = field(default_factory=list)


def export_and_pass(
    model: torch.nn.Module,
    resolution: int,
    precision: str,
    *,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    batch: int = 1,
    metadata: dict[str, str] | None = None,
    fp16_cores: bool = False,
    dla: bool = False,
) -> PreparedModel:
    """Export ``model`` (see :func:`~rftrt.export.onnx_export.export_onnx`) and run the passes for
    ``precision``, held to the model's attention-block counts."""
    exported = export_onnx(model, resolution, opset=opset, dynamic_batch=dynamic_batch, batch=batch, metadata=metadata)
    passed, reports = run_passes(exported, precision, attention_blocks(model), fp16_cores, dla)
    return PreparedModel(model, exported, passed, reports)
