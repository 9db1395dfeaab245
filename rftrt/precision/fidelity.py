"""How faithful a reduced-precision rendering is, on ONNX Runtime: its logits against the FP32
model's on the same images (max |Δ|, cosine, top-1, the comparison of :mod:`rftrt.comparison`), and
every intermediate tensor probed for inf/NaN inside the graph, so that an overflow the logits hide
(clipped or normalised away further down) still counts.

Used by the comparisons of the precision plan with other tools (``scripts/compare_modelopt.py``) and
of the DLA rewrites (``scripts/dla_fidelity.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from ..comparison import compare
from ..export.onnx_export import INPUT_NAME
from ..export.onnxrt import ort_session, with_scalar_probes

__all__ = ["Measured", "measure", "fp32_logits", "nonfinite_probe", "tensor_types"]

_FLOATS = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)


def tensor_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every typed tensor of ``model`` (after ONNX shape inference)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    types = {t.name: t.type.tensor_type.elem_type for t in [*graph.value_info, *graph.input, *graph.output]}
    types.update({t.name: t.data_type for t in graph.initializer})
    return types


def nonfinite_probe(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """``model`` with one extra scalar output per float tensor a node produces (the model's outputs
    first): 1 where the tensor holds an inf or NaN, else 0 (Cast to FP32, IsInf | IsNaN, ReduceMax,
    computed in the graph: :func:`~rftrt.export.onnxrt.with_scalar_probes`). Returns the model and the
    probed tensors in graph order."""
    types = tensor_types(model)
    outputs = {o.name for o in model.graph.output}
    make = onnx.helper.make_node

    def flag(tensor: str, p: str) -> list[onnx.NodeProto]:
        return [
            make("Cast", [tensor], [f"{p}/f32"], to=onnx.TensorProto.FLOAT),
            make("IsInf", [f"{p}/f32"], [f"{p}/inf"]),
            make("IsNaN", [f"{p}/f32"], [f"{p}/nan"]),
            make("Or", [f"{p}/inf", f"{p}/nan"], [f"{p}/bad"]),
            make("Cast", [f"{p}/bad"], [f"{p}/badf"], to=onnx.TensorProto.FLOAT),
            make("ReduceMax", [f"{p}/badf"], [p], keepdims=0),
        ]

    return with_scalar_probes(model, lambda name: types.get(name) in _FLOATS and name not in outputs, flag, keep_outputs=True)


@dataclass
class Measured:
    """One rendering on one input set, against the FP32 ONNX on the same input."""

    max_abs: float
    min_cosine: float
    top1_agreement: float
    images: int
    #: images whose logits hold an inf or NaN
    nonfinite_images: int
    #: intermediate float tensors that hold an inf or NaN somewhere in the batch, of all probed
    nonfinite_tensors: int
    tensors: int
    first_nonfinite: str | None

    @property
    def finite(self) -> bool:
        return self.nonfinite_images == 0 and self.nonfinite_tensors == 0

    def cell(self) -> str:
        errors = "inf/NaN" if self.nonfinite_images else f"{self.max_abs:.2g}"
        text = f"{errors} / {self.min_cosine:.4f} / {self.top1_agreement:.0%}"
        if self.nonfinite_images:
            text += f", inf/NaN in {self.nonfinite_images} of {self.images} images"
        if self.nonfinite_tensors:
            text += f", {self.nonfinite_tensors} of {self.tensors} tensors non-finite"
        return text

    def as_dict(self) -> dict:
        return {**self.__dict__, "finite": self.finite}


def measure(model: onnx.ModelProto, reference: np.ndarray, images: np.ndarray, inputs: str) -> Measured:
    """Run ``model`` on ``images`` (ONNX Runtime, CPU) and compare its logits with ``reference``."""
    probed, tensors = nonfinite_probe(model)
    outputs = ort_session(probed, lean=True).run(None, {INPUT_NAME: images})
    logits, flags = outputs[0], np.asarray(outputs[1:], dtype=np.float32)
    c = compare("FP32", reference, "rendering", logits, inputs, "fp16")
    bad = [name for name, flag in zip(tensors, flags) if flag > 0]
    return Measured(
        max_abs=c.max_abs,
        min_cosine=c.min_cosine,
        top1_agreement=c.top1_agreement,
        images=c.images,
        nonfinite_images=int((~np.isfinite(logits)).any(axis=1).sum()),
        nonfinite_tensors=len(bad),
        tensors=len(tensors),
        first_nonfinite=bad[0] if bad else None,
    )



def fp32_logits(model: onnx.ModelProto, images: np.ndarray) -> np.ndarray:
    return ort_session(model, lean=True).run(None, {INPUT_NAME: images})[0]
