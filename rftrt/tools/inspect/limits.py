"""Limits on the time one batch takes on a named GPU (``rftrt/targets/hardware.toml``), of two kinds,
and the ReduceFormer paper's measurements to read them against (:mod:`rftrt.tools.paper_tables`).

- **Lower bound**: a time no implementation can beat. max(compulsory bytes / peak DRAM bandwidth,
  2·MACs / dense FP16 tensor rate). Compulsory: every weight of the convolutions and weight products
  read once per batch, the input read once and the logits written once, at the precision's element
  size (FP16: 2 bytes each, since an engine may take FP16 input). MACs: those of the convolutions and
  of the products with a weight matrix; products of two activations (EfficientViT's attention) are
  left out, because a rewrite can do them with fewer. It assumes each batch reads its weights from
  DRAM (nothing survives on chip from one inference to the next) and nothing more.
- **Model estimate**: what the fused rule of :mod:`.traffic` materialises, at the precision plan's
  element sizes, minus what stays in the GPU's L2: a tensor is read from L2 when the bytes touched
  between its write and its last read (weights streamed, other tensors written and read) leave room
  for it, and the part that does not fit goes to DRAM and back. Compute is counted as for the lower
  bound, at peak, so the estimate is optimistic wherever the kernels are compute-bound.

``ceiling_img_s = batch · 1e6 / lower_bound_us``: no measured throughput may exceed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate
from typing import TYPE_CHECKING, Any

import onnx
import onnx_graphsurgeon as gs

from ...errors import RftrtError
from ...export.passes import to_graph
from ...targets.hardware import Hardware
from .graph import graph_batch, numel
from .traffic import Step, TrafficEstimate

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "LIMIT_KINDS",
    "Compulsory",
    "Limit",
    "compulsory_from_graph",
    "compulsory_from_model",
    "compute_limits",
    "lower_bound_us",
    "on_chip_activation_bytes",
]

LIMIT_KINDS = {
    "lower bound": "a time no implementation can beat: max(compulsory bytes / peak DRAM bandwidth, 2·MACs / dense FP16 rate); "
    "compulsory = weights once per batch, input and logits once, at the precision's element size; MACs of convolutions "
    "and weight products",
    "model estimate": "TensorRT's documented fusions (the fused rule) at the precision plan's element sizes, with the "
    "activations that fit in the GPU's L2 kept on chip; compute at peak as in the lower bound",
}


@dataclass(frozen=True)
class Compulsory:
    """What any implementation of the network must move and compute: elements of its weights (for the
    whole batch) and of one image's input and output, and one image's MACs."""

    weight_elements: int
    input_elements: int
    output_elements: int
    macs: int


def _constant(tensor: Any) -> bool:
    return isinstance(tensor, gs.Constant) and tensor.values.dtype.kind == "f"


def compulsory_from_graph(model: onnx.ModelProto) -> Compulsory:
    """The compulsory counts of an ONNX (after the passes): the float weights read by Conv, Gemm and
    MatMul, and the MACs of those nodes where one operand is a weight."""
    graph = to_graph(model)
    batch = graph_batch(graph)
    weights: dict[str, int] = {}
    macs = 0
    for node in graph.nodes:
        if node.op not in ("Conv", "Gemm", "MatMul"):
            continue
        weight = next((t for t in node.inputs[:2] if _constant(t)), None)
        if weight is None:
            continue  # a product of two activations
        weights[weight.name] = int(weight.values.size)
        shape = weight.values.shape
        if node.op == "Conv":
            inner = int(weight.values.size // shape[0])
        elif node.op == "Gemm":
            inner = int(shape[1] if node.attrs.get("transB", 0) else shape[0])
        else:
            inner = int(shape[-2] if weight is node.inputs[1] else shape[-1])
        out = numel(node.outputs[0].shape)
        if out is None:
            raise RftrtError(f"shape of {node.name} unknown; cannot count its MACs")
        macs += out * inner
    return Compulsory(
        weight_elements=sum(weights.values()),
        input_elements=sum(numel(t.shape) or 0 for t in graph.inputs) // batch,
        output_elements=sum(numel(t.shape) or 0 for t in graph.outputs) // batch,
        macs=macs // batch,
    )


def compulsory_from_model(model: nn.Module, resolution: int) -> Compulsory:
    """The same counts on the PyTorch model (its Conv2d and Linear layers, one image through it):
    no export needed, so every size of the paper's tables is quick to bound."""
    import torch
    from torch import nn

    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    macs: list[int] = []

    def count(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        macs.append(output.numel() * (module.weight.numel() // module.weight.shape[0]))

    hooks = [m.register_forward_hook(count) for m in layers]
    try:
        param = next(model.parameters())
        image = torch.zeros(1, 3, resolution, resolution, dtype=param.dtype, device=param.device)
        with torch.no_grad():
            logits = model(image)
    finally:
        for hook in hooks:
            hook.remove()
    return Compulsory(
        weight_elements=sum(m.weight.numel() for m in layers),
        input_elements=image.numel(),
        output_elements=logits.numel(),
        macs=sum(macs),
    )


def _compute_us(macs: int, gpu: Hardware, batch: int) -> float:
    return batch * 2 * macs / (gpu.fp16_dense_tflops * 1e12) * 1e6


def _memory_us(nbytes: float, gpu: Hardware) -> float:
    return nbytes / (gpu.memory_gb_s * 1e9) * 1e6


def _compulsory_bytes(c: Compulsory, batch: int, element_bytes: int) -> int:
    return element_bytes * (c.weight_elements + batch * (c.input_elements + c.output_elements))


def lower_bound_us(c: Compulsory, gpu: Hardware, batch: int, element_bytes: int = 2) -> float:
    """The lower bound on the time of one batch, µs (see the module docstring)."""
    if batch < 1:
        raise RftrtError(f"batch must be at least 1, got {batch}")
    return max(_memory_us(_compulsory_bytes(c, batch, element_bytes), gpu), _compute_us(c.macs, gpu, batch))


def on_chip_activation_bytes(steps: list[Step], batch: int, l2_bytes: int) -> int:
    """DRAM bytes (written + read) of the materialised activations of one batch when those that fit
    in ``l2_bytes`` stay there. A tensor of S bytes with D bytes touched between its write and its last
    read keeps min(1, max(0, (L2 − D) / S)) of itself on chip; the rest goes to DRAM and back."""
    size = {name: per_image * batch for step in steps for name, per_image in step.writes}
    touched = [step.weights_bytes + sum(size[t] for t in step.reads) + sum(size[t] for t, _ in step.writes) for step in steps]
    before = [0, *accumulate(touched)]  # before[i]: bytes touched by the steps ahead of step i
    written = {name: i for i, step in enumerate(steps) for name, _ in step.writes}
    last_read = {name: i for i, step in enumerate(steps) for name in step.reads}
    dram = 0.0
    for name, at in written.items():
        if size[name] == 0:
            continue
        between = before[last_read.get(name, at + 1)] - before[at + 1]
        resident = min(1.0, max(0.0, (l2_bytes - between) / size[name]))
        dram += 2 * size[name] * (1.0 - resident)
    return int(round(dram))


@dataclass(frozen=True)
class Limit:
    """The two limits of one batch on one GPU, µs for the whole batch."""

    gpu: str
    batch: int
    lower_bound_us: float
    estimate_us: float
    #: compulsory DRAM bytes of the batch (the lower bound's memory term)
    compulsory_bytes: int
    #: DRAM bytes of the batch under the model estimate
    estimate_bytes: int
    compute_us: float

    @property
    def ceiling_img_s(self) -> float:
        return self.batch * 1e6 / self.lower_bound_us

    @property
    def lower_bound_by(self) -> str:
        return "compute" if self.compute_us >= self.lower_bound_us else "memory"

    @property
    def estimate_by(self) -> str:
        return "compute" if self.compute_us >= self.estimate_us else "memory"

    def as_dict(self) -> dict:
        return {
            "gpu": self.gpu,
            "batch": self.batch,
            "lower_bound_us": self.lower_bound_us,
            "estimate_us": self.estimate_us,
            "ceiling_img_s": self.ceiling_img_s,
            "lower_bound_by": self.lower_bound_by,
            "estimate_by": self.estimate_by,
            "compulsory_bytes": self.compulsory_bytes,
            "estimate_bytes": self.estimate_bytes,
            "compute_us": self.compute_us,
        }


def compute_limits(
    compulsory: Compulsory, traffic: TrafficEstimate, steps: list[Step], gpus: list[Hardware], batches: tuple[int, ...]
) -> list[Limit]:
    """Both limits for every GPU and batch: the lower bound from ``compulsory``, the estimate from the
    fused schedule ``steps`` and the ``traffic`` estimate of the same ONNX (weights, input and logits
    at the plan's element sizes)."""
    element = 2 if traffic.precision == "fp16" else 4
    found = []
    for gpu in gpus:
        for batch in batches:
            lower = lower_bound_us(compulsory, gpu, batch, element)
            compute = _compute_us(compulsory.macs, gpu, batch)
            dram = traffic.weights_bytes + batch * (traffic.input_bytes + traffic.output_bytes) + on_chip_activation_bytes(steps, batch, gpu.l2_bytes)
            found.append(
                Limit(gpu.key, batch, lower, max(_memory_us(dram, gpu), compute), _compulsory_bytes(compulsory, batch, element), dram, compute)
            )
    return found

