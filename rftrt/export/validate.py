"""Comparing model outputs across runtimes and precisions, with precision-aware tolerances.

Tolerances, and why:

- PyTorch vs ONNX Runtime, both FP32: max |Δlogit| ≤ 1e-4 (different kernels, summation orders);
- ONNX before vs after the graph passes, both FP32 on ONNX Runtime: max |Δlogit| ≤ 1e-5 (the passes
  are exact rewritings; the only change allowed is ε's effective size in the FP16-safety pass);
- FP16 rendering vs FP32: all outputs finite, cosine similarity ≥ 0.999 for every image, and the
  top-1 class the same for at least 90% of images (a logit margin below FP16's resolution can flip
  an image legitimately). Polygraphy's default 1e-5 is meaningless for FP16.

TensorRT engines against the bundle's ONNX Runtime reference (``rf-verify``; ``fp16`` as above):

- an FP32 engine (``tf32``): all finite, cosine ≥ 0.9999, top-1 the same for ≥ 90% of images.
  TensorRT may run FP32 convolutions and matrix products in TF32 (10-bit mantissa; on by default
  from Ampere on: Orin, L40), so ONNX Runtime's 1e-4 absolute bound does not apply;
- an INT8 engine (``int8``): all finite, cosine ≥ 0.98, top-1 the same for ≥ 80% of images.
  Provisional until the calibration stage measures real INT8 error on this model family.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import onnx
import onnxruntime as ort

__all__ = ["Comparison", "compare", "ort_session", "run_onnx", "TOLERANCES"]

# ONNX Runtime's optimiser logs harmless notes (e.g. an Unsqueeze it cannot remove) at warning level.
ort.set_default_logger_severity(3)

TOLERANCES = {
    "fp32": {"max_abs": 1e-4},
    "passes": {"max_abs": 1e-5},
    "fp16": {"min_cosine": 0.999, "min_top1_agreement": 0.9},
    "tf32": {"min_cosine": 0.9999, "min_top1_agreement": 0.9},
    "int8": {"min_cosine": 0.98, "min_top1_agreement": 0.8},
}


@dataclass(frozen=True)
class Comparison:
    """One candidate's outputs against a reference's, on one set of inputs."""

    reference: str
    candidate: str
    inputs: str
    kind: str  # key of TOLERANCES
    max_abs: float
    mean_abs: float
    min_cosine: float
    top1_agreement: float
    finite: bool
    passed: bool

    def line(self) -> str:
        verdict = "ok" if self.passed else "FAILED"
        return (
            f"{self.candidate} vs {self.reference} on {self.inputs}: max|Δ| {self.max_abs:.2e}, "
            f"cos ≥ {self.min_cosine:.6f}, top-1 {self.top1_agreement:.0%}"
            + ("" if self.finite else ", NON-FINITE")
            + f" [{verdict}]"
        )

    def as_dict(self) -> dict:
        return asdict(self)


def compare(reference: str, ref: np.ndarray, candidate: str, out: np.ndarray, inputs: str, kind: str) -> Comparison:
    """Compare ``out`` with ``ref`` (both (N, classes)) under the tolerance ``kind``."""
    ref = ref.astype(np.float64)
    out = out.astype(np.float64)
    finite = bool(np.isfinite(out).all())
    safe = np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
    diff = np.abs(safe - ref)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(safe, axis=1)
    cosine = np.where(norms > 0, np.sum(ref * safe, axis=1) / np.where(norms > 0, norms, 1.0), 0.0)
    top1 = float(np.mean(ref.argmax(1) == safe.argmax(1)))
    limits = TOLERANCES[kind]
    passed = finite
    if "max_abs" in limits:
        passed &= float(diff.max()) <= limits["max_abs"]
    if "min_cosine" in limits:
        passed &= float(cosine.min()) >= limits["min_cosine"] and top1 >= limits["min_top1_agreement"]
    return Comparison(
        reference=reference,
        candidate=candidate,
        inputs=inputs,
        kind=kind,
        max_abs=float(diff.max()) if finite else float("inf"),
        mean_abs=float(diff.mean()),
        min_cosine=float(cosine.min()),
        top1_agreement=top1,
        finite=finite,
        passed=bool(passed),
    )


def ort_session(model: onnx.ModelProto, threads: int = 2) -> ort.InferenceSession:
    """An ONNX Runtime CPU session with warnings off (its optimiser reports harmless rewrites)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def run_onnx(model: onnx.ModelProto, batches: dict[str, np.ndarray], threads: int = 2) -> dict[str, np.ndarray]:
    """Run ``model`` on each named batch with one ONNX Runtime CPU session (ORT rounds every FP16
    tensor, so overflow shows)."""
    session = ort_session(model, threads)
    name = session.get_inputs()[0].name
    return {key: session.run(None, {name: images})[0] for key, images in batches.items()}
