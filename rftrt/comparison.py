"""Comparing model outputs across runtimes and precisions, with precision-aware tolerances.

A leaf module (NumPy only): the export's validation, the INT8 checks and the engine verification on
the device all compare through it.

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

The INT8 tolerance (:data:`INT8_TOLERANCE`) for a Q/DQ rendering against its FP32 ONNX: all outputs
finite, per-image logit cosine similarity ≥ 0.99, and the same top-1 class for ≥ 90 % of the
*decisive* images: those whose FP32 top-1 margin (best minus second logit) is more than twice the
INT8 rendering's largest logit error on that image. A flip on an image whose two best classes are
closer than the quantization error says nothing about the rendering; random-weight models have
almost only such images. Eight bits lose far more than FP16's eleven, so FP16's 0.999 would reject
good INT8 models; the trained digits model keeps INT8 within a fraction of a point of FP32 (docs/int8.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Comparison", "Int8Comparison", "compare", "compare_int8", "TOLERANCES", "INT8_TOLERANCE"]

TOLERANCES = {
    "fp32": {"max_abs": 1e-4},
    "passes": {"max_abs": 1e-5},
    "fp16": {"min_cosine": 0.999, "min_top1_agreement": 0.9},
    "tf32": {"min_cosine": 0.9999, "min_top1_agreement": 0.9},
    "int8": {"min_cosine": 0.98, "min_top1_agreement": 0.8},
}
INT8_TOLERANCE = {"min_cosine": 0.99, "min_top1_agreement": 0.9}


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
        return self._head() + ("" if self.finite else ", NON-FINITE") + f" [{'ok' if self.passed else 'FAILED'}]"

    def _head(self) -> str:
        return (
            f"{self.candidate} vs {self.reference} on {self.inputs}: max|Δ| {self.max_abs:.2e}, "
            f"cos ≥ {self.min_cosine:.6f}, top-1 {self.top1_agreement:.0%}"
        )

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Int8Comparison(Comparison):
    """A :class:`Comparison` that also counts the decisive images and their top-1 agreement."""

    decisive_images: int = 0
    decisive_agreement: float = 1.0

    def line(self) -> str:
        decisive = (
            f"({self.decisive_agreement:.0%} of the {self.decisive_images} decisive)"
            if self.decisive_images
            else "(none decisive: FP32 top-2 margins within the INT8 error)"
        )
        return self._head() + f" {decisive}" + ("" if self.finite else ", NON-FINITE") + f" [{'ok' if self.passed else 'FAILED'}]"


@dataclass(frozen=True)
class _Metrics:
    ref: np.ndarray
    diff: np.ndarray
    cosine: np.ndarray
    same_top1: np.ndarray
    finite: bool

    def fields(self) -> dict:
        return {
            "max_abs": float(self.diff.max()) if self.finite else float("inf"),
            "mean_abs": float(self.diff.mean()),
            "min_cosine": float(self.cosine.min()),
            "top1_agreement": float(np.mean(self.same_top1)),
            "finite": self.finite,
        }


def _metrics(ref: np.ndarray, out: np.ndarray) -> _Metrics:
    """Per-image errors of ``out`` against ``ref`` (both (N, classes)), in float64, non-finite
    values of ``out`` counted as 0 after noting them."""
    ref = ref.astype(np.float64)
    out = out.astype(np.float64)
    finite = bool(np.isfinite(out).all())
    safe = np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(safe, axis=1)
    cosine = np.where(norms > 0, np.sum(ref * safe, axis=1) / np.where(norms > 0, norms, 1.0), 0.0)
    return _Metrics(ref, np.abs(safe - ref), cosine, ref.argmax(1) == safe.argmax(1), finite)


def compare(reference: str, ref: np.ndarray, candidate: str, out: np.ndarray, inputs: str, kind: str) -> Comparison:
    """Compare ``out`` with ``ref`` (both (N, classes)) under the tolerance ``kind``."""
    m = _metrics(ref, out)
    limits = TOLERANCES[kind]
    passed = m.finite
    if "max_abs" in limits:
        passed &= float(m.diff.max()) <= limits["max_abs"]
    if "min_cosine" in limits:
        passed &= float(m.cosine.min()) >= limits["min_cosine"] and float(np.mean(m.same_top1)) >= limits["min_top1_agreement"]
    return Comparison(reference=reference, candidate=candidate, inputs=inputs, kind=kind, passed=bool(passed), **m.fields())


def compare_int8(reference: str, ref: np.ndarray, candidate: str, out: np.ndarray, inputs: str) -> Int8Comparison:
    """Like :func:`compare`, with :data:`INT8_TOLERANCE` over the decisive images (``kind="int8"``)."""
    m = _metrics(ref, out)
    top2 = np.sort(m.ref, axis=1)[:, -2:] if m.ref.shape[1] > 1 else np.concatenate([m.ref, m.ref], axis=1)
    decisive = (top2[:, 1] - top2[:, 0]) > 2 * m.diff.max(axis=1)
    decisive_agreement = float(np.mean(m.same_top1[decisive])) if decisive.any() else 1.0
    passed = (
        m.finite
        and float(m.cosine.min()) >= INT8_TOLERANCE["min_cosine"]
        and decisive_agreement >= INT8_TOLERANCE["min_top1_agreement"]
    )
    return Int8Comparison(
        reference=reference,
        candidate=candidate,
        inputs=inputs,
        kind="int8",
        passed=bool(passed),
        **m.fields(),
        decisive_images=int(decisive.sum()),
        decisive_agreement=decisive_agreement,
    )
