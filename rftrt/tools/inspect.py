"""``rf-inspect``'s library: what a model costs and where it would run, before any device is involved.

Four views of one model at one resolution:

- **Complexity**: parameters and MACs per stage and in total (:func:`rftrt.models.count_complexity`),
  beside the published figures (``zoo.toml``; the official per-stage counts of model_spec §2.1 for
  EfficientViT), and the MACs counted again on the ONNX graph as a cross-check.
- **Op histogram** of the exported ONNX before and after the graph passes (the passes ``rf-export``
  runs, in the same order).
- **Memory traffic** per image, estimated on the ONNX after the passes (what TensorRT is given), and
  the resulting **time floor** on a named GPU (``hardware.toml``). Two rules, both stated in
  :data:`TRAFFIC_RULES`:

  * *unfused*: weights are read once per batch, the input is read once, every activation is written
    once and read once, the output is written once. Reshape, Flatten, Squeeze, Unsqueeze and Identity
    are views and move nothing.
  * *fused*: as unfused, except that a tensor is not materialised when (a) its only consumer is an
    element-wise node (the element-wise op runs in its producer's epilogue or in a fused point-wise
    chain), (b) it is produced by an element-wise node and its only consumer is a reduction (the
    element-wise op is the reduction's prologue), (c) one of its consumers is a Concat (the producer
    writes straight into the Concat's output: concatenation elision) or (d) it is a Split/Slice output
    (consumers read the slice where it lies).

  Element sizes follow the precision: FP16 is 2 bytes except the precision plan's FP32 islands (the
  attention cores and LayerNorm: 4 bytes); the graph input and output stay FP32 in every rendering.
  The reads of a tensor with several consumers are counted once (as the rules say), so both
  estimates are floors for their execution model.
- **DLA placement** for a target with DLA cores (``--target orin``): each node on DLA or GPU with the
  documented reason (docs/platforms.md §4), the DLA↔GPU transitions and the DLA loadables.
  It is a *prediction* from the documented rules until a device confirms it (``trtexec --verbose``
  prints the real placement).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from ..errors import RftrtError
from ..targets.hardware import Hardware, hardware

__all__ = [
    "ComplexityReport",
    "DlaPrediction",
    "ExportedModel",
    "InspectReport",
    "NodePlacement",
    "OFFICIAL_STAGE_PARAMS",
    "OpHistogram",
    "StageCount",
    "TRAFFIC_RULES",
    "TimeFloor",
    "TrafficEstimate",
    "complexity_report",
    "dla_rule",
    "export_and_pass",
    "format_inspect",
    "graph_macs",
    "inspect_model",
    "memory_traffic",
    "op_histogram",
    "predict_dla",
    "stage_of",
    "time_floor",
]

#: Parameters per stage of the official EfficientViT modules (model_spec §2.1, measured; timm agrees).
OFFICIAL_STAGE_PARAMS: dict[str, dict[str, int]] = {
    "evit_b0": {"stem": 400, "stage1": 4_128, "stage2": 13_888, "stage3": 142_208, "stage4": 521_984, "head": 2_727_400},
    "evit_b1": {"stem": 928, "stage1": 13_888, "stage2": 86_528, "stage3": 756_864, "stage4": 3_785_728, "head": 4_458_088},
    "evit_b2": {"stem": 1_584, "stage1": 50_304, "stage2": 267_072, "stage3": 2_200_320, "stage4": 12_457_728, "head": 9_353_704},
    "evit_b3": {"stem": 2_368, "stage1": 122_752, "stage2": 742_656, "stage3": 5_650_944, "stage4": 32_478_720, "head": 9_648_616},
}

TRAFFIC_RULES = {
    "unfused": "weights read once per batch; input read once; every activation written once and read once; "
    "output written once; Reshape/Flatten/Squeeze/Unsqueeze/Identity are views",
    "fused": "as unfused, but a tensor is not materialised when its only consumer is element-wise (epilogue / "
    "point-wise chain), when an element-wise result feeds only a reduction (prologue), when a Concat consumes it "
    "(concatenation elision) or when it is a Split/Slice output (read in place)",
}

_VIEW_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"})
_SLICE_OPS = frozenset({"Split", "Slice"})
_ELEMENTWISE_OPS = frozenset(
    {
        "Abs", "Add", "BatchNormalization", "Cast", "Clip", "Div", "Elu", "Erf", "Exp", "HardSigmoid",
        "HardSwish", "LeakyRelu", "Log", "Max", "Min", "Mul", "Neg", "Pow", "PRelu", "Reciprocal", "Relu",
        "Selu", "Sigmoid", "Sqrt", "Sub", "Tanh", "Where",
    }
)  # fmt: skip
_REDUCTION_OPS = frozenset(
    {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "GlobalAveragePool", "GlobalMaxPool"}
)
_STAGE_LABELS = ("stem", "stage1", "stage2", "stage3", "stage4", "head")


def stage_of(node_name: str) -> str:
    """The reporting stage of an exported node, from the module path in its name."""
    if "/input_stem" in node_name:
        return "stem"
    match = re.search(r"/stages\.(\d+)", node_name)
    if match:
        return f"stage{int(match.group(1)) + 1}"
    if node_name.startswith("/head") or "/head/" in node_name:
        return "head"
    return "other"


# --- export ------------------------------------------------------------------------------------


@dataclass
class ExportedModel:
    """One model exported and passed, as ``rf-export`` does it (without the bundle)."""

    name: str | None
    resolution: int
    precision: str
    #: the ONNX as exported (or as given with ``--onnx``)
    before: onnx.ModelProto
    #: after cleanup, the attention passes and (FP16) the FP16-safety pass
    after: onnx.ModelProto
    passes: list = field(default_factory=list)  # list[PassReport]
    torch_model: Any = None


def _onnx_resolution(model: onnx.ModelProto) -> int | None:
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if len(dims) == 4 and dims[2].HasField("dim_value") and dims[2].dim_value == dims[3].dim_value:
        return int(dims[2].dim_value)
    return None


def export_and_pass(
    name: str | None,
    resolution: int,
    precision: str = "fp32",
    onnx_model: onnx.ModelProto | None = None,
    seed: int = 0,
) -> ExportedModel:
    """Export registry model ``name`` (random weights, seeded) or take ``onnx_model``, then run the
    passes of ``rf-export`` on it. With a model name the passes are held to its attention-block count."""
    import torch

    from ..export.onnx_export import export_onnx
    from ..export.prepare import attention_blocks, run_passes
    from ..models import check_resolution, create

    if precision not in ("fp32", "fp16"):
        raise RftrtError(f"precision {precision!r} not supported here; use fp32 or fp16")
    check_resolution(resolution)
    torch_model = None
    blocks = None
    if name is not None:
        torch.manual_seed(seed)
        torch_model = create(name, resolution)
        blocks = attention_blocks(torch_model)
    if onnx_model is None:
        if torch_model is None:
            raise RftrtError("give a model name (--model) or an ONNX file (--onnx)")
        before = export_onnx(torch_model, resolution)
    else:
        found = _onnx_resolution(onnx_model)
        if found is not None and found != resolution:
            raise RftrtError(f"the ONNX takes {found}×{found} images but --resolution is {resolution}; pass --resolution {found}")
        before = onnx_model
    after, reports = run_passes(before, precision, blocks)
    return ExportedModel(name, resolution, precision, before, after, reports, torch_model)


def _shaped_graph(model: onnx.ModelProto) -> gs.Graph:
    return gs.import_onnx(onnx.shape_inference.infer_shapes(model, data_prop=True))


def _graph_batch(graph: gs.Graph) -> int:
    """The static batch of the graph input, or 1 for a dynamic (symbolic) batch."""
    dim = graph.inputs[0].shape[0] if graph.inputs and graph.inputs[0].shape else 1
    return dim if isinstance(dim, int) and dim > 0 else 1


def _numel(shape: Any) -> int | None:
    """Element count with symbolic dimensions taken as 1 (per image); None when unknown."""
    if shape is None:
        return None
    count = 1
    for dim in shape:
        if isinstance(dim, (int, np.integer)):
            if dim < 0:
                return None
            count *= int(dim)
        elif dim is None:
            return None
        # a string is a symbolic (batch) dimension: 1 per image
    return count


def _fp32_island_nodes(graph: gs.Graph) -> set[str]:
    """The structural FP32 islands of the precision plan: attention cores and LayerNorm."""
    from ..export.passes.attention import find_attention_cores

    names = {n.name for core in find_attention_cores(graph) for n in core.nodes}
    names |= {n.name for n in graph.nodes if n.op == "LayerNormalization"}
    return names


# --- complexity ----------------------------------------------------------------------------------


def graph_macs(model: onnx.ModelProto) -> int:
    """MACs per image of Conv, Gemm and MatMul nodes, from the ONNX graph's inferred shapes (the
    counting convention of :func:`rftrt.models.count_complexity`)."""
    graph = _shaped_graph(model)
    batch = _graph_batch(graph)
    total = 0
    for node in graph.nodes:
        if node.op == "Conv":
            out, weight = node.outputs[0].shape, node.inputs[1].shape
            if out is None or weight is None:
                raise RftrtError(f"shape of {node.name} unknown; cannot count its MACs")
            total += (_numel(out) or 0) * int(np.prod(weight[1:]))
        elif node.op in ("Gemm", "MatMul"):
            out, a = node.outputs[0].shape, node.inputs[0].shape
            if out is None or a is None:
                raise RftrtError(f"shape of {node.name} unknown; cannot count its MACs")
            k = a[0] if node.op == "Gemm" and node.attrs.get("transA", 0) else a[-1]
            if not isinstance(k, (int, np.integer)):
                raise RftrtError(f"inner dimension of {node.name} is symbolic ({k}); count MACs after the passes")
            total += (_numel(out) or 0) * int(k)
    return total // batch


@dataclass(frozen=True)
class StageCount:
    stage: str
    params: int
    macs: int
    #: the official module's count (model_spec §2.1), EfficientViT only
    official_params: int | None = None


@dataclass(frozen=True)
class ComplexityReport:
    model: str
    display: str
    resolution: int
    stages: tuple[StageCount, ...]
    params: int
    macs: int
    #: ReduceFormer's attention-core multiplies and divides (not in ``macs``; 0 for EfficientViT)
    attention_elementwise: int
    #: MACs counted on the ONNX graph after the passes, per image
    graph_macs: int | None
    published_params_m: float | None
    #: the model's own release at this resolution
    published_macs_g: float | None
    published_source: str
    #: the ReduceFormer paper's row: its resolution, params and MACs
    paper_resolution: int | None
    paper_params_m: float | None
    paper_macs_g: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def complexity_report(name: str, resolution: int, torch_model: Any = None, onnx_model: onnx.ModelProto | None = None) -> ComplexityReport:
    """Parameters and MACs of registry model ``name`` per stage, beside the published figures."""
    from ..models import count_complexity, create, model_info
    from ..models.complexity import STAGES

    info = model_info(name)
    model = torch_model if torch_model is not None else create(name, resolution)
    counts = count_complexity(model, resolution)
    official = OFFICIAL_STAGE_PARAMS.get(name, {})
    stages = tuple(
        StageCount(label, counts.params_by_stage[label], counts.macs_by_stage[label], official.get(label)) for label, _ in STAGES
    )
    published = info.by_resolution.get(resolution, {})
    return ComplexityReport(
        model=name,
        display=info.display,
        resolution=resolution,
        stages=stages,
        params=counts.params,
        macs=counts.macs,
        attention_elementwise=counts.attention_elementwise,
        graph_macs=graph_macs(onnx_model) if onnx_model is not None else None,
        published_params_m=info.params_m,
        published_macs_g=published.get("macs_g"),
        published_source=info.source,
        paper_resolution=info.paper.get("resolution"),
        paper_params_m=info.paper.get("params_m"),
        paper_macs_g=info.paper.get("macs_g"),
    )


# --- op histogram --------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpHistogram:
    before: dict[str, int]
    after: dict[str, int]
    passes: tuple[str, ...]

    @property
    def nodes_before(self) -> int:
        return sum(self.before.values())

    @property
    def nodes_after(self) -> int:
        return sum(self.after.values())

    def rows(self) -> list[tuple[str, int, int]]:
        """(op, before, after), most frequent after the passes first."""
        ops = set(self.before) | set(self.after)
        return sorted(((op, self.before.get(op, 0), self.after.get(op, 0)) for op in ops), key=lambda r: (-r[2], -r[1], r[0]))

    def as_dict(self) -> dict:
        return {"before": dict(self.before), "after": dict(self.after), "passes": list(self.passes)}


def op_histogram(exported: ExportedModel) -> OpHistogram:
    def count(model: onnx.ModelProto) -> dict[str, int]:
        return dict(sorted(Counter(n.op_type for n in model.graph.node).items()))

    return OpHistogram(count(exported.before), count(exported.after), tuple(p.summary() for p in exported.passes))


# --- memory traffic and time floors -----------------------------------------------------------------


@dataclass(frozen=True)
class TrafficEstimate:
    """Bytes moved for one image (activations) and one batch (weights), under both rules."""

    precision: str
    weights_bytes: int
    input_bytes: int
    output_bytes: int
    #: activations written + read, per image
    activations_unfused_bytes: int
    activations_fused_bytes: int
    tensors_unfused: int
    tensors_fused: int
    #: stage → (unfused, fused) activation bytes per image
    by_stage: dict[str, tuple[int, int]]
    #: the attention cores' share, (unfused, fused)
    attention_cores: tuple[int, int]
    #: tensors counted at 4 bytes in an FP16 estimate (the FP32 islands)
    fp32_tensors: int

    def per_image(self, fused: bool = True, batch: int = 1) -> float:
        """Bytes per image at ``batch``: the weights are read once per batch."""
        activations = self.activations_fused_bytes if fused else self.activations_unfused_bytes
        return self.weights_bytes / batch + self.input_bytes + self.output_bytes + activations

    def as_dict(self) -> dict:
        data = asdict(self)
        data["by_stage"] = {k: list(v) for k, v in self.by_stage.items()}
        data["attention_cores"] = list(self.attention_cores)
        data["per_image_unfused_batch1"] = self.per_image(False, 1)
        data["per_image_fused_batch1"] = self.per_image(True, 1)
        data["rules"] = dict(TRAFFIC_RULES)
        return data


def memory_traffic(model: onnx.ModelProto, precision: str = "fp16", fp32_nodes: set[str] | None = None) -> TrafficEstimate:
    """Estimate the memory traffic of ``model`` (the ONNX after the passes) under both rules of
    :data:`TRAFFIC_RULES`. ``fp32_nodes`` (FP16 only) are the precision plan's FP32 nodes; by default
    its structural islands (attention cores, LayerNorm)."""
    if precision not in ("fp16", "fp32"):
        raise RftrtError(f"precision {precision!r} not supported for the traffic estimate; use fp16 or fp32")
    from ..export.passes.attention import find_attention_cores

    graph = _shaped_graph(model)
    batch = _graph_batch(graph)
    islands = (_fp32_island_nodes(graph) if fp32_nodes is None else set(fp32_nodes)) if precision == "fp16" else set()
    core_nodes = {n.name for core in find_attention_cores(graph) for n in core.nodes}
    low = 2 if precision == "fp16" else 4

    def is_float(tensor: gs.Tensor) -> bool:
        return tensor.dtype is not None and np.issubdtype(np.dtype(tensor.dtype), np.floating)

    weights: dict[str, int] = {}
    for node in graph.nodes:
        for tensor in node.inputs:
            if isinstance(tensor, gs.Constant) and is_float(tensor) and node.op not in _VIEW_OPS:
                size = 4 if node.name in islands else low
                weights[tensor.name] = max(weights.get(tensor.name, 0), int(tensor.values.size) * size)

    input_bytes = sum((_numel(t.shape) or 0) * 4 for t in graph.inputs)
    outputs = {t.name for t in graph.outputs}
    output_bytes = sum((_numel(t.shape) or 0) * 4 for t in graph.outputs)

    unfused = fused = n_unfused = n_fused = fp32_tensors = 0
    by_stage: dict[str, list[int]] = {label: [0, 0] for label in (*_STAGE_LABELS, "other")}
    cores = [0, 0]
    for node in graph.nodes:
        if node.op in _VIEW_OPS:
            continue
        for tensor in node.outputs:
            if tensor.name in outputs or not is_float(tensor):
                continue
            numel = _numel(tensor.shape)
            if numel is None:
                raise RftrtError(f"shape of {tensor.name!r} unknown; cannot estimate memory traffic")
            size = 4 if node.name in islands else low
            fp32_tensors += size == 4 and precision == "fp16"
            traffic = 2 * numel * size // batch
            stage = by_stage[stage_of(node.name)]
            unfused += traffic
            n_unfused += 1
            stage[0] += traffic
            if node.name in core_nodes:
                cores[0] += traffic
            if _fused_away(node, tensor):
                continue
            fused += traffic
            n_fused += 1
            stage[1] += traffic
            if node.name in core_nodes:
                cores[1] += traffic
    return TrafficEstimate(
        precision=precision,
        weights_bytes=sum(weights.values()),
        input_bytes=input_bytes // batch,
        output_bytes=output_bytes // batch,
        activations_unfused_bytes=unfused,
        activations_fused_bytes=fused,
        tensors_unfused=n_unfused,
        tensors_fused=n_fused,
        by_stage={k: (v[0], v[1]) for k, v in by_stage.items() if v[0] or k != "other"},
        attention_cores=(cores[0], cores[1]),
        fp32_tensors=int(fp32_tensors),
    )


def _consumers(tensor: gs.Tensor) -> list[gs.Node]:
    """The nodes reading ``tensor``, looking through views (a view's consumers read the original)."""
    found: list[gs.Node] = []
    for consumer in tensor.outputs:
        if consumer.op in _VIEW_OPS:
            found.extend(c for out in consumer.outputs for c in _consumers(out))
        else:
            found.append(consumer)
    return found


def _fused_away(producer: gs.Node, tensor: gs.Tensor) -> bool:
    """Whether ``tensor`` stays out of memory under the fused rule (see :data:`TRAFFIC_RULES`)."""
    if producer.op in _SLICE_OPS:
        return True
    consumers = _consumers(tensor)
    if any(c.op == "Concat" for c in consumers):
        return True
    if len(consumers) != 1:
        return False
    consumer = consumers[0]
    if consumer.op in _ELEMENTWISE_OPS:
        return True
    return consumer.op in _REDUCTION_OPS and producer.op in _ELEMENTWISE_OPS


@dataclass(frozen=True)
class TimeFloor:
    """The roofline floor per image: max(bytes / bandwidth, 2·MACs / FP16 rate)."""

    gpu: str
    batch: int
    fused: bool
    bytes_per_image: float
    macs_per_image: int
    memory_us: float
    compute_us: float

    @property
    def floor_us(self) -> float:
        return max(self.memory_us, self.compute_us)

    @property
    def bound(self) -> str:
        return "memory" if self.memory_us >= self.compute_us else "compute"

    @property
    def img_s(self) -> float:
        return 1e6 / self.floor_us if self.floor_us > 0 else math.inf

    def as_dict(self) -> dict:
        return {**asdict(self), "floor_us": self.floor_us, "bound": self.bound, "img_s_ceiling": self.img_s}


def time_floor(traffic: TrafficEstimate, macs: int, gpu: Hardware, batch: int = 1, fused: bool = True) -> TimeFloor:
    """The time floor per image of a model whose traffic and MACs are given, on ``gpu``."""
    if batch < 1:
        raise RftrtError(f"batch must be at least 1, got {batch}")
    per_image = traffic.per_image(fused, batch)
    return TimeFloor(
        gpu=gpu.key,
        batch=batch,
        fused=fused,
        bytes_per_image=per_image,
        macs_per_image=macs,
        memory_us=per_image / (gpu.memory_gb_s * 1e9) * 1e6,
        compute_us=2 * macs / (gpu.fp16_dense_tflops * 1e12) * 1e6,
    )


# --- DLA placement -------------------------------------------------------------------------------

_RULES = "platforms.md §4"
_DLA_ACTIVATIONS = {"Relu": "ReLU", "Sigmoid": "Sigmoid", "Tanh": "TanH", "LeakyRelu": "Leaky ReLU"}
_DLA_ELEMENTWISE = {"Add": "Sum", "Sub": "Sub", "Mul": "Prod", "Max": "Max", "Min": "Min", "Div": "Div", "Pow": "Pow"}
_DLA_LAYERS = {
    "BatchNormalization": "Scale",
    "ConvTranspose": "Deconvolution",
    "MaxPool": "Pooling",
    "AveragePool": "Pooling",
    "GlobalAveragePool": "Pooling",
    "GlobalMaxPool": "Pooling",
    "LRN": "LRN",
    "Resize": "Resize",
    "Slice": "Slice",
    "Split": "Slice",
    "Softmax": "SoftMax",
    "Reshape": "Shuffle",
    "Flatten": "Shuffle",
    "Squeeze": "Shuffle",
    "Unsqueeze": "Shuffle",
    "Transpose": "Shuffle",
    "Identity": "Shuffle",
    "Abs": "Unary Abs",
    "Sin": "Unary Sin",
    "Cos": "Unary Cos",
    "Atan": "Unary Atan",
    "ReduceMax": "Reduce MAX",
}
_GPU_REASONS = {
    "HardSwish": "HardSwish is not a DLA activation (DLA: ReLU, Sigmoid, TanH, Clipped ReLU, Leaky ReLU)",
    "HardSigmoid": "HardSigmoid is not a DLA activation (DLA: ReLU, Sigmoid, TanH, Clipped ReLU, Leaky ReLU)",
    "MatMul": "MatrixMultiply is not in the DLA layer list",
    "Gemm": "imported as MatrixMultiply, not in the DLA layer list (the parser's Gemm import; not confirmed on a device)",
    "LayerNormalization": "LayerNorm is not in the DLA layer list",
    "Equal": "Comparison runs on DLA in INT8 only",
    "Greater": "Comparison runs on DLA in INT8 only",
    "Less": "Comparison runs on DLA in INT8 only",
}


@dataclass(frozen=True)
class NodePlacement:
    name: str
    op: str
    device: str  # "DLA" or "GPU"
    reason: str


def _constant_scalar(tensor: Any) -> float | None:
    if isinstance(tensor, gs.Constant) and tensor.values.size == 1:
        return float(tensor.values.reshape(-1)[0])
    return None


def dla_rule(node: gs.Node, precision: str = "fp16", fp32_nodes: dict[str, str] | set[str] | None = None) -> tuple[str, str]:
    """(``"DLA"`` or ``"GPU"``, reason) for one node under the documented DLA rules."""
    if precision == "fp32":
        return "GPU", "FP32 build: DLA runs FP16 and INT8 only"
    fp32_nodes = fp32_nodes or set()
    if node.name in fp32_nodes:
        why = fp32_nodes[node.name] if isinstance(fp32_nodes, dict) else "FP32 island"
        return "GPU", f"kept FP32 by the precision plan ({why}); DLA runs FP16 and INT8 only"
    op = node.op
    if op == "Conv":
        weight = node.inputs[1].shape if len(node.inputs) > 1 else None
        kernel = list(node.attrs.get("kernel_shape") or (weight[2:] if weight else []))
        strides = list(node.attrs.get("strides") or [1] * len(kernel))
        if len(kernel) != 2:
            return "GPU", f"{len(kernel)}-D convolution; DLA convolution is 2-D"
        if not all(isinstance(k, int) and 1 <= k <= 32 for k in kernel):
            return "GPU", f"kernel {kernel[0]}×{kernel[1]} outside DLA's 1–32"
        if not all(1 <= s <= 8 for s in strides):
            return "GPU", f"stride {strides} outside DLA's 1–8"
        return "DLA", f"Convolution {kernel[0]}×{kernel[1]}, stride {strides[0]}×{strides[1]}: within DLA limits (kernel 1–32, stride 1–8)"
    if op in _DLA_ACTIVATIONS:
        return "DLA", f"Activation {_DLA_ACTIVATIONS[op]} is supported"
    if op == "Clip":
        low = _constant_scalar(node.inputs[1]) if len(node.inputs) > 1 else node.attrs.get("min")
        if low == 0.0:
            return "DLA", "Clip with min 0 is a Clipped ReLU activation"
        return "GPU", "Clip with min ≠ 0 is not a Clipped ReLU"
    if op in _DLA_ELEMENTWISE:
        return "DLA", f"ElementWise {_DLA_ELEMENTWISE[op]} is supported"
    if op == "Concat":
        rank = len(node.outputs[0].shape) if node.outputs[0].shape is not None else 4
        axis = node.attrs.get("axis", 1)
        if axis % rank == 1:
            return "DLA", "Concatenation along the channel axis is supported"
        return "GPU", f"Concatenation along axis {axis}; DLA concatenates along the channel axis only"
    if op in ("ReduceSum", "ReduceMean", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSumExp", "ReduceSumSquare"):
        return "GPU", f"{op}: DLA's Reduce supports MAX only"
    if op in _DLA_LAYERS:
        return "DLA", f"{_DLA_LAYERS[op]} is supported"
    if op in _GPU_REASONS:
        return "GPU", _GPU_REASONS[op]
    return "GPU", f"{op} is not in the DLA supported-layer list"


@dataclass
class DlaPrediction:
    """Where each node would run on a DLA core with GPU fallback, from the documented rules."""

    target: str
    precision: str
    placements: list[NodePlacement]
    #: tensors crossing DLA→GPU and GPU→DLA (each crossing tensor once per direction)
    dla_to_gpu: int
    gpu_to_dla: int
    #: connected groups of DLA nodes: each becomes one DLA loadable
    loadables: int
    #: the network input read by a DLA node / the output produced by one (I/O reformats)
    io_reformats: int
    notes: list[str] = field(default_factory=list)
    label: str = f"PREDICTION from the documented DLA rules ({_RULES}); not confirmed on a device"

    @property
    def transitions(self) -> int:
        return self.dla_to_gpu + self.gpu_to_dla

    def count(self, device: str) -> int:
        return sum(p.device == device for p in self.placements)

    def by_op(self) -> list[tuple[str, int, int, str]]:
        """(op, on DLA, on GPU, a reason) per op type."""
        rows: dict[str, list] = {}
        for p in self.placements:
            reason = re.sub(r"\(attention core: [^)]*\)", "(attention core)", p.reason)
            row = rows.setdefault(p.op, [0, 0, reason])
            row[0 if p.device == "DLA" else 1] += 1
        return sorted(((op, d, g, r) for op, (d, g, r) in rows.items()), key=lambda r: (-(r[1] + r[2]), r[0]))

    def as_dict(self) -> dict:
        return {
            "label": self.label,
            "target": self.target,
            "precision": self.precision,
            "dla_nodes": self.count("DLA"),
            "gpu_nodes": self.count("GPU"),
            "dla_to_gpu": self.dla_to_gpu,
            "gpu_to_dla": self.gpu_to_dla,
            "transitions": self.transitions,
            "loadables": self.loadables,
            "io_reformats": self.io_reformats,
            "notes": list(self.notes),
            "placements": [asdict(p) for p in self.placements],
        }


def predict_dla(
    graph: gs.Graph,
    precision: str = "fp16",
    fp32_nodes: dict[str, str] | set[str] | None = None,
    target: str = "orin",
    max_loadables: int = 16,
) -> DlaPrediction:
    """Place every node of ``graph`` on DLA or GPU (:func:`dla_rule`) and count what that costs."""
    placements = [NodePlacement(n.name, n.op, *dla_rule(n, precision, fp32_nodes)) for n in graph.nodes]
    device = {id(n): p.device for n, p in zip(graph.nodes, placements)}
    producer = {id(t): n for n in graph.nodes for t in n.outputs}

    dla_to_gpu = gpu_to_dla = 0
    for tensor in {id(t): t for n in graph.nodes for t in n.outputs}.values():
        source = producer[id(tensor)]
        targets = {device[id(c)] for c in tensor.outputs}
        for side in targets - {device[id(source)]}:
            dla_to_gpu += side == "GPU"
            gpu_to_dla += side == "DLA"

    parent = {id(n): id(n) for n in graph.nodes if device[id(n)] == "DLA"}

    def find(key: int) -> int:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for node in graph.nodes:
        if device[id(node)] != "DLA":
            continue
        for tensor in node.inputs:
            source = producer.get(id(tensor))
            if source is not None and device[id(source)] == "DLA":
                parent[find(id(node))] = find(id(source))
    loadables = len({find(k) for k in parent})

    io = sum(device[id(c)] == "DLA" for t in graph.inputs for c in t.outputs)
    io += sum(device[id(producer[id(t)])] == "DLA" for t in graph.outputs if id(t) in producer)
    notes = []
    batch = graph.inputs[0].shape[0] if graph.inputs and graph.inputs[0].shape else None
    if not isinstance(batch, int):
        notes.append("the ONNX has a dynamic batch; DLA takes static shapes only (rf-export --dla N makes the batch static)")
    if loadables > max_loadables:
        notes.append(
            f"{loadables} DLA loadables exceed the {max_loadables} per DLA core: TensorRT keeps the excess on the GPU"
        )
    if any(p.device == "GPU" for p in placements) and any(p.device == "DLA" for p in placements):
        notes.append("needs GPU fallback (trtexec --allowGPUFallback); every transition adds reformat kernels")
    if any(p.op == "HardSwish" and p.device == "GPU" for p in placements):
        notes.append("HardSwish = x·clip(x+3, 0, 6)/6 uses only DLA layers: rewriting it would keep those nodes on DLA")
    return DlaPrediction(target, precision, placements, int(dla_to_gpu), int(gpu_to_dla), loadables, int(io), notes)


# --- the whole inspection -------------------------------------------------------------------------


@dataclass
class InspectReport:
    model: str | None
    resolution: int
    precision: str
    complexity: ComplexityReport | None
    histogram: OpHistogram
    traffic: TrafficEstimate
    macs_per_image: int
    floors: list[TimeFloor]
    hardware: list[Hardware]
    dla: DlaPrediction | None
    target: str | None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "model": self.model,
            "resolution": self.resolution,
            "precision": self.precision,
            "complexity": self.complexity.as_dict() if self.complexity else None,
            "op_histogram": self.histogram.as_dict(),
            "memory_traffic": self.traffic.as_dict(),
            "macs_per_image": self.macs_per_image,
            "time_floors": [f.as_dict() for f in self.floors],
            "hardware": [h.as_dict() for h in self.hardware],
            "target": self.target,
            "dla_placement": self.dla.as_dict() if self.dla else None,
            "notes": list(self.notes),
        }


def inspect_model(
    name: str | None,
    resolution: int = 224,
    onnx_model: onnx.ModelProto | None = None,
    target: str | None = None,
    gpus: tuple[str, ...] = ("orin", "l40", "h100", "h200"),
    precision: str = "fp16",
    batches: tuple[int, ...] = (1, 8, 32),
) -> InspectReport:
    """Everything ``rf-inspect`` prints, as data."""
    from ..precision.plan import plan_on_photographs

    hw = [hardware(g) for g in gpus]
    tgt = None
    if target is not None:
        from ..targets.profiles import load_target

        tgt = load_target(target)
    if onnx_model is not None and name is None:
        props = {p.key: p.value for p in onnx_model.metadata_props}
        name = props.get("model")
    if name is not None:
        from ..models import model_info

        model_info(name)  # an unknown name fails here, listing the known ones
    exported = export_and_pass(name, resolution, precision, onnx_model)
    notes: list[str] = []
    complexity = None
    if name is not None:
        complexity = complexity_report(name, resolution, exported.torch_model, exported.after)
        macs = complexity.macs
    else:
        macs = graph_macs(exported.after)
        notes.append("no model name (not given, not in the ONNX metadata): parameters per stage not counted; MACs from the graph")
    plan = plan_on_photographs(exported.after, resolution) if precision == "fp16" else None
    reasons: dict[str, str] = dict(plan.reasons) if plan else {}
    traffic = memory_traffic(exported.after, precision, set(reasons) if plan else None)
    floors = [time_floor(traffic, macs, g, b, fused) for g in hw for b in batches for fused in (False, True)]
    dla = None
    if tgt is not None:
        if tgt.dla_cores > 0:
            graph = _shaped_graph(exported.after)
            if plan is not None and not tgt.strongly_typed:
                # weakly typed builds pin compute layers only; data movement follows its neighbours' types
                pinned = set(plan.weakly_typed_layers(exported.after))
                reasons = {k: v for k, v in reasons.items() if k in pinned}
            dla = predict_dla(graph, precision, reasons, tgt.name)
            dla.notes.insert(0, f"TensorRT {tgt.release.version} ({tgt.release.dialect}ly typed) on {tgt.display}")
        else:
            notes.append(f"{tgt.display} has no DLA: every node runs on the GPU")
    return InspectReport(
        model=name,
        resolution=resolution,
        precision=precision,
        complexity=complexity,
        histogram=op_histogram(exported),
        traffic=traffic,
        macs_per_image=macs,
        floors=floors,
        hardware=hw,
        dla=dla,
        target=tgt.name if tgt else None,
        notes=notes,
    )


# --- rendering -----------------------------------------------------------------------------------


def _mb(n: float) -> str:
    return f"{n / 1e6:.2f}"


def _opt(value: Any, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def format_inspect(report: InspectReport, nodes: bool = True) -> str:
    """The terminal (and Markdown) rendering of an :class:`InspectReport`."""
    from .tables import render_table

    r = report
    out = [f"rf-inspect: {r.model or '(unnamed ONNX)'} at {r.resolution}×{r.resolution}, {r.precision}"]
    c = r.complexity
    if c is not None:
        out += ["", f"## Parameters and MACs ({c.display}; MACs = conv + linear + matmul multiply-accumulates, one image)", ""]
        rows = [
            [s.stage, f"{s.params:,}", _opt(s.official_params, ","), f"{s.macs / 1e6:.2f}", f"{s.params / c.params:.1%}", f"{s.macs / c.macs:.1%}"]
            for s in c.stages
        ]
        official_total = sum(s.official_params for s in c.stages) if all(s.official_params is not None for s in c.stages) else None
        rows.append(["total", f"{c.params:,}", _opt(official_total, ","), f"{c.macs / 1e6:.2f}", "100%", "100%"])
        out.append(render_table(["stage", "params", "official (spec §2.1)", "MACs (M)", "params %", "MACs %"], rows))
        published = f"published: {_opt(c.published_params_m, '.1f')}M params, {_opt(c.published_macs_g, '.2f')} GMACs at r{c.resolution} ({c.published_source})"
        if c.paper_resolution is not None:
            published += f"; ReduceFormer paper's table: {_opt(c.paper_params_m, '.1f')}M, {_opt(c.paper_macs_g, '.2f')} GMACs at r{c.paper_resolution}"
        out.append(published)
        out.append(f"ours: {c.params / 1e6:.2f}M params, {c.macs / 1e9:.3f} GMACs")
        if c.graph_macs is not None:
            same = "same" if c.graph_macs == c.macs else f"{(c.graph_macs - c.macs) / 1e6:+.2f} M: the LiteMLA rewrite computes the ones-row sums without a matrix product"
            out.append(f"MACs counted on the ONNX after the passes: {c.graph_macs / 1e6:.2f} M ({same})")
        if c.attention_elementwise:
            out.append(f"ReduceFormer attention cores: {c.attention_elementwise / 1e6:.2f} M element-wise multiplies/divides (not MACs)")
    h = r.histogram
    out += ["", f"## Op histogram: exported ({h.nodes_before} nodes) → after the passes ({h.nodes_after} nodes)", ""]
    out.append(render_table(["op", "exported", "after passes", "change"], [[op, b, a, f"{a - b:+d}" if a != b else ""] for op, b, a in h.rows()]))
    out += [f"- {p}" for p in h.passes]
    t = r.traffic
    out += ["", f"## Memory traffic per image ({t.precision}" + (f"; {t.fp32_tensors} FP32-island tensors at 4 bytes" if t.fp32_tensors else "") + ")", ""]
    rows = [
        ["weights (read once per batch; batch 1)", _mb(t.weights_bytes), _mb(t.weights_bytes)],
        ["input (read) + logits (written), FP32", _mb(t.input_bytes + t.output_bytes), _mb(t.input_bytes + t.output_bytes)],
        ["activations (written + read)", _mb(t.activations_unfused_bytes), _mb(t.activations_fused_bytes)],
        ["  of which attention cores", _mb(t.attention_cores[0]), _mb(t.attention_cores[1])],
        ["  tensors materialised", t.tensors_unfused, t.tensors_fused],
        ["total MB per image, batch 1", _mb(t.per_image(False)), _mb(t.per_image(True))],
    ]
    rows += [[f"  activations in {stage}", _mb(a), _mb(b)] for stage, (a, b) in t.by_stage.items()]
    out.append(render_table(["", "unfused MB", "fused MB"], rows))
    out.append(f"unfused: {TRAFFIC_RULES['unfused']}.")
    out.append(f"fused: {TRAFFIC_RULES['fused']}.")
    out += ["", f"## Time floor per image = max(bytes / bandwidth, 2·MACs / dense FP16 rate); MACs {r.macs_per_image / 1e6:.1f} M", ""]
    hw = {g.key: g for g in r.hardware}
    rows = []
    for f in r.floors:
        if not f.fused:
            continue
        unfused = next(u for u in r.floors if not u.fused and u.gpu == f.gpu and u.batch == f.batch)
        g = hw[f.gpu]
        rows.append(
            [f.gpu, f"{g.memory_gb_s:,.0f}", f"{g.fp16_dense_tflops:,.1f}", f.batch, f"{unfused.floor_us:.1f}", f"{f.floor_us:.1f}",
             f"{f.compute_us:.1f}", f.bound, f"{f.img_s:,.0f}"]
        )  # fmt: skip
    out.append(
        render_table(["GPU", "GB/s", "FP16 TFLOPS", "batch", "floor µs unfused", "floor µs fused", "compute µs", "bound", "img/s ceiling (fused)"], rows)
    )
    out += [f"- {g.key}: {g.name}" + (f". {g.notes}" if g.notes else "") for g in r.hardware]
    out.append("Figures and their sources: rftrt/targets/hardware.toml. A measured time divided into the floor gives the fraction of the limit reached.")
    if r.dla is not None:
        d = r.dla
        out += ["", f"## DLA placement on {d.target}: {d.label}", ""]
        out.append(
            f"{d.count('DLA')} nodes on DLA, {d.count('GPU')} on the GPU; {d.transitions} transitions "
            f"({d.dla_to_gpu} DLA→GPU, {d.gpu_to_dla} GPU→DLA); {d.loadables} DLA loadables; {d.io_reformats} network I/O reformats"
        )
        out += [f"- {n}" for n in d.notes]
        out += ["", render_table(["op", "DLA", "GPU", "reason (first node of the op)"], [list(row) for row in d.by_op()], "lrrl")]
        if nodes:
            out += ["", render_table(["#", "node", "op", "device", "reason"], [[i, p.name, p.op, p.device, p.reason] for i, p in enumerate(d.placements)], "rllll")]
    out += [f"note: {n}" for n in r.notes]
    return "\n".join(out)
