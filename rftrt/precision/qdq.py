"""Explicit quantization: QuantizeLinear/DequantizeLinear nodes for TensorRT 10/11.

Placement follows TensorRT's explicit-quantization rules (TensorRT developer guide, "Explicit
Quantization": Q/DQ placement recommendations), restricted by the precision plan:

- every Conv, Gemm and MatMul outside the plan's FP32 islands gets Q/DQ on its inputs, nowhere else.
  TensorRT fuses a DQ into the op that consumes it, so nothing sits between a Conv and its
  activation (HardSwish, ReLU), and the activation after the Conv runs fused, in the Conv's output
  precision;
- activations: per-tensor symmetric INT8, scale ``amax / 127`` from the calibration, zero point 0;
  one Q/DQ pair per tensor, shared by all its quantized consumers; other consumers (a residual Add,
  a Concat) keep reading the unquantized tensor;
- weights: per-output-channel symmetric INT8 (``max |w|`` per channel / 127), stored as INT8
  initializers with a DequantizeLinear only (no Q on constants: TensorRT 10 reads pre-quantized
  weights, and the file is 4× smaller); axis 0 for Conv and ``Gemm(transB=1)``, the last axis for
  ``Gemm(transB=0)`` and MatMul; biases stay FP32;
- the attention cores (sums, products, the division and LiteMLA's MatMuls) and LayerNorm are in the
  plan's FP32 islands: no Q/DQ inside or around them. An island's output that feeds a Conv (the
  core → ``proj`` edge) is quantized as that Conv's input, after the island.

:func:`render_typed` gives the strongly typed rendering (TensorRT 11, or 10.x ``--stronglyTyped``):
the Q/DQ model through :func:`~rftrt.precision.render.render_fp16`, so everything left out of INT8 is
FP16 except the FP32 islands, which keep Cast guards. FP16 Q/DQ scales need opset 19, so a lower
opset is converted first (``onnx.version_converter``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from ..errors import RftrtError
from ..export.passes import to_graph, to_model
from .cache import QUANTIZABLE_OPS
from .plan import FP16_MIN_NORMAL
from .render import render_fp16

__all__ = ["QdqReport", "qdq_tensors", "insert_qdq", "render_typed", "quantize_weight"]

_INT8_MAX = 127
#: Scales below FP16's smallest normal lose precision (and tiny ones vanish) in the typed rendering.
_QDQ_OPSET = 19


@dataclass
class QdqReport:
    """What :func:`insert_qdq` did."""

    quantized: dict[str, int] = field(default_factory=dict)  # op → nodes quantized
    activations: int = 0  # Q/DQ pairs on activations
    weights: int = 0  # DequantizeLinear on INT8 weights
    kept_fp32: list[str] = field(default_factory=list)  # Conv/Gemm/MatMul left unquantized (FP32 islands)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        ops = ", ".join(f"{n} {op}" for op, n in sorted(self.quantized.items()))
        kept = f"; {len(self.kept_fp32)} left in the FP32 islands" if self.kept_fp32 else ""
        return f"INT8 {ops}: {self.activations} activation Q/DQ pairs, {self.weights} per-channel weights{kept}"

    def as_dict(self) -> dict:
        return {
            "quantized": dict(self.quantized),
            "activation_qdq": self.activations,
            "weight_dq": self.weights,
            "kept_fp32": list(self.kept_fp32),
            "warnings": list(self.warnings),
        }


def _quantized_nodes(graph: gs.Graph, fp32_nodes: set[str]) -> tuple[list[gs.Node], list[gs.Node]]:
    chosen, kept = [], []
    for node in graph.nodes:
        if node.op in QUANTIZABLE_OPS:
            (kept if node.name in fp32_nodes else chosen).append(node)
    return chosen, kept


def _activation_inputs(node: gs.Node) -> list[int]:
    """Input positions of ``node`` that carry activations to quantize (not weights, not bias)."""
    data = [0] if node.op == "Conv" else [0, 1]  # Conv: x (W, B are weights); Gemm/MatMul: A and B
    return [i for i in data if i < len(node.inputs) and isinstance(node.inputs[i], gs.Variable)]


def _weight_axis(node: gs.Node, weight: np.ndarray) -> int | None:
    """The output-channel axis of ``node``'s constant input 1, or None if it has none."""
    if node.op == "Conv":
        return 0
    if node.op == "Gemm":
        return 0 if node.attrs.get("transB", 0) else 1
    if node.op == "MatMul" and weight.ndim >= 2:
        return weight.ndim - 1
    return None


def quantize_weight(weight: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel symmetric INT8 along ``axis``: (int8 weights, float32 scales). A channel that is
    all zeros gets scale 1/127 (any positive scale represents it exactly)."""
    reduce = tuple(i for i in range(weight.ndim) if i != axis)
    amax = np.max(np.abs(weight), axis=reduce).astype(np.float64)
    scale = (np.where(amax > 0, amax, 1.0) / _INT8_MAX).astype(np.float32)
    shape = [1] * weight.ndim
    shape[axis] = -1
    quantized = np.clip(np.rint(weight / scale.reshape(shape)), -_INT8_MAX, _INT8_MAX).astype(np.int8)
    return quantized, scale


def qdq_tensors(model: onnx.ModelProto, fp32_nodes: Iterable[str] = ()) -> list[str]:
    """The activation tensors :func:`insert_qdq` quantizes, in graph order."""
    graph = to_graph(model)
    chosen, _ = _quantized_nodes(graph, set(fp32_nodes))
    names: list[str] = []
    for node in chosen:
        for i in _activation_inputs(node):
            if node.inputs[i].name not in names:
                names.append(node.inputs[i].name)
    return names


def insert_qdq(model: onnx.ModelProto, amax: Mapping[str, float], fp32_nodes: Iterable[str] = ()) -> tuple[onnx.ModelProto, QdqReport]:
    """The FP32 ``model`` with Q/DQ on the inputs of its Conv/Gemm/MatMul outside ``fp32_nodes``.

    ``amax`` maps activation tensor names to their calibrated symmetric range; every quantized
    activation must be in it.
    """
    graph = to_graph(model)
    fp32 = set(fp32_nodes)
    chosen, kept = _quantized_nodes(graph, fp32)
    report = QdqReport(kept_fp32=[n.name for n in kept])
    pairs: dict[str, gs.Variable] = {}
    new_nodes: list[gs.Node] = []

    def dequantized(tensor: gs.Variable) -> gs.Variable:
        if tensor.name in pairs:
            return pairs[tensor.name]
        if tensor.name not in amax:
            raise RftrtError(f"no calibrated range for tensor {tensor.name!r}, an input of a quantized node")
        scale = gs.Constant(f"{tensor.name}/scale", np.array(float(amax[tensor.name]) / _INT8_MAX, dtype=np.float32))
        zero = gs.Constant(f"{tensor.name}/zero_point", np.array(0, dtype=np.int8))
        q = gs.Variable(f"{tensor.name}/quantized", dtype=np.int8, shape=tensor.shape)
        dq = gs.Variable(f"{tensor.name}/dequantized", dtype=np.float32, shape=tensor.shape)
        new_nodes.append(gs.Node("QuantizeLinear", f"{tensor.name}/QuantizeLinear", {}, [tensor, scale, zero], [q]))
        new_nodes.append(gs.Node("DequantizeLinear", f"{tensor.name}/DequantizeLinear", {}, [q, scale, zero], [dq]))
        pairs[tensor.name] = dq
        report.activations += 1
        return dq

    counts: Counter = Counter()
    for node in chosen:
        for i in _activation_inputs(node):
            node.inputs[i] = dequantized(node.inputs[i])
        if len(node.inputs) > 1 and isinstance(node.inputs[1], gs.Constant):
            weight = np.asarray(node.inputs[1].values)
            axis = _weight_axis(node, weight)
            if axis is not None and weight.dtype == np.float32:
                values, scales = quantize_weight(weight, axis)
                base = f"{node.name}/weight"
                q = gs.Constant(f"{base}_quantized", values)
                scale = gs.Constant(f"{base}_scale", scales)
                zero = gs.Constant(f"{base}_zero_point", np.zeros(scales.shape, dtype=np.int8))
                dq = gs.Variable(f"{base}_dequantized", dtype=np.float32, shape=list(weight.shape))
                new_nodes.append(gs.Node("DequantizeLinear", f"{base}_DequantizeLinear", {"axis": axis}, [q, scale, zero], [dq]))
                node.inputs[1] = dq
                report.weights += 1
        counts[node.op] += 1
    report.quantized = dict(counts)
    graph.nodes.extend(new_nodes)
    graph.cleanup(remove_unused_graph_inputs=False).toposort()
    return to_model(graph, model), report


def _upgrade_opset(model: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    current = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if current >= opset:
        return model
    from onnx import version_converter

    try:
        upgraded = version_converter.convert_version(model, opset)
    except Exception as exc:  # noqa: BLE001 - the converter raises several types; say what failed
        raise RftrtError(f"cannot convert the ONNX from opset {current} to {opset} for FP16 Q/DQ: {exc}") from None
    upgraded.ir_version = max(upgraded.ir_version, 9)  # opset 19 needs IR 9
    return upgraded


def _raise_small_scales(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Scales below FP16's smallest normal raised to it (weights re-quantized with the new scale):
    such a scale would become a subnormal with a few bits of precision, or zero. Only near-zero
    channels or tensors (max |x| < 127 · 6.1e-5 ≈ 0.0078) are affected, and they lose resolution,
    not range. Returns the model and how many scale values changed."""
    graph = to_graph(model)
    changed = 0
    done: set[int] = set()
    for node in graph.nodes:
        if node.op not in ("QuantizeLinear", "DequantizeLinear") or not isinstance(node.inputs[1], gs.Constant):
            continue
        scale_const = node.inputs[1]
        if id(scale_const) in done:
            continue
        scale = np.asarray(scale_const.values, dtype=np.float32)
        low = scale < FP16_MIN_NORMAL
        if not low.any():
            continue
        done.add(id(scale_const))
        raised = np.where(low, np.float32(FP16_MIN_NORMAL), scale).astype(np.float32)
        changed += int(low.sum())
        weights = node.inputs[0]
        if node.op == "DequantizeLinear" and isinstance(weights, gs.Constant) and scale.ndim == 1:
            axis = int(node.attrs.get("axis", 1))
            values = np.asarray(weights.values).astype(np.float32)
            shape = [1] * values.ndim
            shape[axis] = -1
            real = values * scale.reshape(shape)
            weights.values = np.clip(np.rint(real / raised.reshape(shape)), -_INT8_MAX, _INT8_MAX).astype(np.int8)
        scale_const.values = raised
    return (to_model(graph, model) if changed else model), changed


def render_typed(qdq_model: onnx.ModelProto, fp32_nodes: Iterable[str] = ()) -> tuple[onnx.ModelProto, list[str]]:
    """The strongly typed INT8 rendering: FP16 everywhere outside the FP32 islands and the INT8
    Q/DQ, with FP16 scales (opset ≥ 19). Returns the model and warnings.

    Scales below FP16's smallest normal (6.1e-5) are raised to it first (:func:`_raise_small_scales`);
    a warning counts them.
    """
    model = _upgrade_opset(qdq_model, _QDQ_OPSET)
    model, changed = _raise_small_scales(model)
    warnings = []
    if changed:
        warnings.append(
            f"{changed} Q/DQ scale values were below FP16's smallest normal ({FP16_MIN_NORMAL:.2g}) and were raised to it "
            "(near-zero weight channels or tensors: coarser steps, same range)"
        )
    return render_fp16(model, set(fp32_nodes)), warnings
