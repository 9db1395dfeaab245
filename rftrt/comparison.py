"""Comparing model outputs across runtimes and precisions, with precision-aware tolerances.

A leaf module (NumPy only): the export's validation, the INT8 checks and the engine verification on
the device all compare through it.

Tolerances, and why:

- PyTorch vs ONNX Runtime, both FP32 (``fp32``): max |Δlogit| ≤ 1e-4 of the reference's largest
  |logit| (different kernels, summation orders);
- ONNX before vs after the graph passes, both FP32 on ONNX Runtime (``passes``): max |Δlogit| ≤ 1e-5
  of the reference's largest |logit| (the passes are exact rewritings; what is left is summation
  order). Relative to the output's scale because a model whose logits carry the image (rftrt's
  default weights, any trained checkpoint) has logits of order 1–10, where FP32 rounding alone is
  ~1e-6·|logit|;
- FP16 rendering vs FP32 (``fp16``): all outputs finite, cosine similarity ≥ 0.999 for every image,
  and the same top-1 class for at least 90% of the *decisive* images. Polygraphy's default 1e-5 is
  meaningless for FP16.

An image is decisive when the reference's top-1 margin (best minus second logit) is more than twice
the candidate's largest logit error on that image: a flip between two classes closer than the
rendering's own error says nothing about the rendering (untrained models have many such near-ties).
Every comparison reports the top-1 agreement over all images too.

TensorRT engines against the bundle's ONNX Runtime reference (``rf-verify``; ``fp16`` as above):

- an FP32 engine (``tf32``): all finite, cosine ≥ 0.9999, top-1 the same for ≥ 90% of the decisive
  images. TensorRT may run FP32 convolutions and matrix products in TF32 (10-bit mantissa; on by
  default from Ampere on: Orin, L40), so ONNX Runtime's 1e-4 bound does not apply;
- an INT8 engine (``int8``): all finite, cosine ≥ 0.98, top-1 the same for ≥ 80% of the decisive
  images. Provisional until the calibration stage measures real INT8 error on this model family.

A Q/DQ rendering against its FP32 ONNX (``int8-qdq``): all outputs finite, per-image logit cosine
similarity ≥ 0.99, and the same top-1 class for ≥ 90 % of the decisive images. Eight bits lose far
more than FP16's eleven, so FP16's 0.999 would reject good INT8 models; the trained digits model
keeps INT8 within a fraction of a point of FP32 (docs/int8.md).

Polygraphy's per-element check (``polygraphy run … --atol A --rtol R``, what ``build.sh --verify``
runs) is derived from the same tolerances by :func:`elementwise_tolerances`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from decimal import ROUND_FLOOR, Decimal

import numpy as np

__all__ = ["Comparison", "compare", "TOLERANCES", "elementwise_tolerances"]

TOLERANCES = {
    "fp32": {"max_rel": 1e-4},
    "passes": {"max_rel": 1e-5},
    "fp16": {"min_cosine": 0.999, "min_top1_agreement": 0.9},
    "tf32": {"min_cosine": 0.9999, "min_top1_agreement": 0.9},
    "int8": {"min_cosine": 0.98, "min_top1_agreement": 0.8},
    "int8-qdq": {"min_cosine": 0.99, "min_top1_agreement": 0.9},
}


@dataclass(frozen=True)
class Comparison:
    """One candidate's outputs against a reference's, on one set of inputs."""

    reference: str
    candidate: str
    inputs: str
    kind: str  # key of TOLERANCES
    max_abs: float
    #: max_abs over the reference's largest |value| (its scale)
    max_rel: float
    mean_abs: float
    min_cosine: float
    top1_agreement: float
    images: int
    #: images whose reference top-1 margin exceeds twice the candidate's largest error on them
    decisive_images: int
    decisive_agreement: float
    finite: bool
    passed: bool

    def line(self) -> str:
        if self.decisive_images == 0:
            decisive = " (none decisive: top-2 margins within the error)"
        elif self.decisive_images < self.images:
            decisive = f" ({self.decisive_agreement:.0%} of the {self.decisive_images} decisive)"
        else:
            decisive = ""
        return (
            f"{self.candidate} vs {self.reference} on {self.inputs}: max|Δ| {self.max_abs:.2e}, "
            f"cos ≥ {self.min_cosine:.6f}, top-1 {self.top1_agreement:.0%}{decisive}"
            + ("" if self.finite else ", NON-FINITE")
            + f" [{'ok' if self.passed else 'FAILED'}]"
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
    same = ref.argmax(1) == safe.argmax(1)
    top2 = np.sort(ref, axis=1)[:, -2:] if ref.shape[1] > 1 else np.concatenate([ref, ref], axis=1)
    decisive = (top2[:, 1] - top2[:, 0]) > 2 * diff.max(axis=1)
    decisive_agreement = float(np.mean(same[decisive])) if decisive.any() else 1.0
    scale = float(np.abs(ref).max()) or 1.0
    limits = TOLERANCES[kind]
    passed = finite
    if "max_rel" in limits:
        passed &= float(diff.max()) <= limits["max_rel"] * scale
    if "min_cosine" in limits:
        passed &= float(cosine.min()) >= limits["min_cosine"] and decisive_agreement >= limits["min_top1_agreement"]
    return Comparison(
        reference=reference,
        candidate=candidate,
        inputs=inputs,
        kind=kind,
        max_abs=float(diff.max()) if finite else float("inf"),
        max_rel=float(diff.max()) / scale if finite else float("inf"),
        mean_abs=float(diff.mean()),
        min_cosine=float(cosine.min()),
        top1_agreement=float(np.mean(same)),
        images=len(ref),
        decisive_images=int(decisive.sum()),
        decisive_agreement=decisive_agreement,
        finite=finite,
        passed=bool(passed),
    )


def _floor_3_digits(x: float) -> float:
    """``x`` cut (never rounded up) to three significant digits: a printable bound that is no looser."""
    if x <= 0:
        return 0.0
    d = Decimal(x)
    return float(d.quantize(Decimal(1).scaleb(d.adjusted() - 2), rounding=ROUND_FLOOR))


def elementwise_tolerances(kind: str, reference: np.ndarray) -> tuple[float, float]:
    """Polygraphy's ``(atol, rtol)`` for outputs compared with ``reference`` (N, classes) under the
    tolerance ``kind``, such that passing Polygraphy's check implies passing :func:`compare`.

    Polygraphy's default check (``--check-error-stat elemwise``, ``SimpleCompareFunc`` in
    ``polygraphy/comparator/compare.py``) fails an element when ``|a - b| > atol`` *and*
    ``|a - b| / |b| > rtol``, ``b`` being the loaded reference (``--load-outputs``); NaN fails. So an
    element passes when ``|Δ| ≤ max(atol, rtol·|b|)`` (not NumPy's ``atol + rtol·|b|``). The mapping:

    - ``max_rel`` kinds (max |Δ| ≤ max_rel · max|b|): ``atol = max_rel · max|b|``, ``rtol = 0``;
    - cosine kinds (cosine ≥ c per image): an image whose error has norm ‖Δ‖ ≤ ε‖b‖ keeps
      cosine ≥ √(1 − ε²), so ε = √(1 − c²). With ``atol = ρ · RMS(b)`` over the image with the smallest
      RMS and ``rtol = ρ``, every element within ``max(atol, rtol·|b_i|)`` gives
      ‖Δ‖² ≤ Σ atol² + Σ rtol²·b_i² ≤ 2ρ²‖b‖², hence ρ = ε/√2. The top-1 rule holds too: a decisive
      image (top-2 margin above twice its largest |Δ|) cannot change class.

    Polygraphy's check is therefore the stricter one: one element far off fails it where the cosine
    may still pass. Both values are cut to three significant digits, downwards.
    """
    limits = TOLERANCES[kind]
    ref = np.asarray(reference, dtype=np.float64)
    if "max_rel" in limits:
        return _floor_3_digits(limits["max_rel"] * (float(np.abs(ref).max()) or 1.0)), 0.0
    rho = math.sqrt((1.0 - limits["min_cosine"] ** 2) / 2.0)
    rms = float(np.sqrt(np.mean(ref.reshape(len(ref), -1) ** 2, axis=1)).min())
    return _floor_3_digits(rho * rms), _floor_3_digits(rho)
