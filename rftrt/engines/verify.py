"""``rf-verify``: a built engine against the ONNX Runtime reference in its bundle's ``golden.npz``.

The engine runs on the bundle's golden images (bundled photographs, preprocessed); its logits are
compared with ``logits``, what ONNX Runtime computed on the CPU from the very ONNX the engine was
built from, under a tolerance chosen by the bundle's precision
(:data:`rftrt.comparison.TOLERANCES`, where the reasons are written down):

=========  =========  ==================================================================
precision  tolerance  passes when
=========  =========  ==================================================================
fp32       ``tf32``   all finite, cosine ≥ 0.9999 per image, top-1 agrees on ≥ 90%
fp16       ``fp16``   all finite, cosine ≥ 0.999 per image, top-1 agrees on ≥ 90%
int8       ``int8``   all finite, cosine ≥ 0.98 per image, top-1 agrees on ≥ 80% (provisional)
=========  =========  ==================================================================

For a strongly typed bundle ``logits`` come from the typed FP16 ONNX; the comparison with the FP32
ONNX's ``logits_fp32`` is reported as well, for information. NaN or Inf anywhere fails.

A reference whose logits hardly depend on the image (a model initialised the way PyTorch does by
default: spread across images ~1e-5 of the logits, every image the same class) cannot tell one image
from another, so an engine that ignored its input would pass; the result then carries a warning
saying so (:func:`input_sensitivity_warning`). rf-export's default weights are made so that this does
not happen (:mod:`rftrt.models.init`).

Everything before running the engine is checked first and is a one-line error (exit code 2): the
file is a plain TensorRT plan, the bundle matches its manifest, the sidecar's TensorRT release is the
installed one ("engine built with TensorRT 10.3, this is TensorRT 8.6"), the engine was built from
this bundle's ONNX, the batch is inside the engine's profile.
"""

from __future__ import annotations

import platform
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..comparison import TOLERANCES, Comparison, compare
from ..errors import RftrtError
from ..files import sha256_file
from .build_spec import BuildSpec
from .bundle import load_bundle_spec
from .cuda import gpu_info
from .engine_info import EngineInfo
from .plan_file import check_plan_file
from .runner import EngineRunner, check_batch
from .sidecar import check_sidecar, read_sidecar, sidecar_path
from .tensorrt_api import import_tensorrt, installed_tensorrt_version

__all__ = [
    "ENGINE_TOLERANCE",
    "Golden",
    "VerifyResult",
    "EngineCheck",
    "check_engine",
    "compare_with_golden",
    "input_sensitivity_warning",
    "verify_engine",
]

#: The tolerance kind (a key of rftrt.comparison.TOLERANCES) for an engine of each precision.
ENGINE_TOLERANCE = {"fp32": "tf32", "fp16": "fp16", "int8": "int8"}
_GOLDEN = "golden.npz"
_GOLDEN_KEYS = ("images", "logits", "logits_fp32")


@dataclass(frozen=True)
class Golden:
    """A bundle's golden data: input images and ONNX Runtime's logits for them."""

    images: np.ndarray
    #: ONNX Runtime on the bundle's ONNX (the typed FP16 one for strongly typed bundles)
    logits: np.ndarray
    #: ONNX Runtime on the FP32 ONNX after the graph passes
    logits_fp32: np.ndarray

    @classmethod
    def load(cls, bundle_dir: Path) -> "Golden":
        path = Path(bundle_dir) / _GOLDEN
        if not path.is_file():
            raise RftrtError(f"{Path(bundle_dir)} has no {_GOLDEN}; re-export the bundle")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in _GOLDEN_KEYS if key in data.files}
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise RftrtError(f"{path} is not a readable .npz ({exc}); re-export the bundle") from None
        missing = [key for key in _GOLDEN_KEYS if key not in arrays]
        if missing:
            raise RftrtError(f"{path} lacks {', '.join(missing)}; re-export the bundle with this rftrt")
        golden = cls(**arrays)
        n = len(golden.images)
        if golden.images.ndim != 4 or n == 0 or golden.logits.shape[0] != n or golden.logits_fp32.shape != golden.logits.shape:
            raise RftrtError(
                f"{path} is inconsistent: images {golden.images.shape}, logits {golden.logits.shape}, "
                f"logits_fp32 {golden.logits_fp32.shape}; re-export the bundle"
            )
        return golden

    def at_batch(self, batch: int) -> "Golden":
        """``batch`` images (the golden ones, cycled) with their reference logits."""
        index = np.arange(batch) % len(self.images)
        return Golden(self.images[index], self.logits[index], self.logits_fp32[index])


@dataclass(frozen=True)
class VerifyResult:
    """One engine checked against its bundle's reference; truthy when it passed."""

    engine: str
    bundle: str
    model: str
    resolution: int
    target: str
    precision: str
    dialect: str
    tensorrt: str
    batch: int
    tolerance: str
    #: engine vs ``logits`` (decides the verdict)
    reference: Comparison
    #: engine vs ``logits_fp32`` (information; only where it is a different reference)
    fp32: Comparison | None = None
    #: what limits the evidence (e.g. a reference that does not depend on the image)
    warnings: tuple[str, ...] = ()

    @property
    def finite(self) -> bool:
        return self.reference.finite

    @property
    def passed(self) -> bool:
        return self.reference.passed

    def __bool__(self) -> bool:
        return self.passed

    def lines(self) -> list[str]:
        limits = ", ".join(f"{k} {v}" for k, v in TOLERANCES[self.tolerance].items())
        lines = [f"{self.reference.line()}  (tolerance {self.tolerance}: {limits})"]
        if self.fp32 is not None:
            lines.append(f"{self.fp32.line().rsplit(' [', 1)[0]}  (information)")
        lines += [f"warning: {w}" for w in self.warnings]
        verdict = "PASSED" if self.passed else "FAILED"
        lines.append(
            f"{verdict}: {self.engine} ({self.model} r{self.resolution}, {self.precision}, TensorRT {self.tensorrt}) "
            f"on {self.batch} golden images"
        )
        return lines

    def as_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "bundle": self.bundle,
            "model": self.model,
            "resolution": self.resolution,
            "target": self.target,
            "precision": self.precision,
            "dialect": self.dialect,
            "tensorrt": self.tensorrt,
            "batch": self.batch,
            "tolerance": {"kind": self.tolerance, **TOLERANCES[self.tolerance]},
            "finite": self.finite,
            "passed": self.passed,
            "reference": self.reference.as_dict(),
            "fp32": self.fp32.as_dict() if self.fp32 is not None else None,
            "warnings": list(self.warnings),
        }


def input_sensitivity_warning(reference: np.ndarray, resolution_floor: float = 1e-3) -> str | None:
    """A warning when the reference logits barely change from image to image (random weights).

    The spread (standard deviation across images, averaged over classes) is compared with the logits'
    magnitude; below ``resolution_floor`` of it, FP16 rounding alone is larger than what separates the
    images, and the comparison says nothing about whether the engine read its input.
    """
    reference = np.asarray(reference, dtype=np.float64)
    if len(reference) < 2:
        return None
    spread = float(reference.std(axis=0).mean())
    magnitude = float(np.abs(reference).mean()) or 1.0
    if spread >= resolution_floor * magnitude:
        return None
    classes = np.unique(reference.argmax(axis=1))
    same = f"; every image is class {classes[0]}" if len(classes) == 1 else ""
    return (
        f"the reference logits hardly depend on the image (spread {spread:.1e} against logits of {magnitude:.2g}{same}): "
        "the bundle's model ignores its input (degenerate weights), so this check cannot tell images apart; "
        "export with --weights for a meaningful verification"
    )


def compare_with_golden(
    outputs: np.ndarray,
    golden: Golden,
    spec: BuildSpec,
    *,
    engine: str,
    bundle: str,
    tensorrt: str,
) -> VerifyResult:
    """Judge an engine's ``outputs`` (N, classes) against ``golden`` (already at batch N)."""
    outputs = np.asarray(outputs)
    if outputs.shape != golden.logits.shape:
        raise RftrtError(f"the engine's {spec.output_name} has shape {outputs.shape}; the golden logits have {golden.logits.shape}")
    kind = ENGINE_TOLERANCE[spec.precision]
    candidate = f"TensorRT {spec.precision} engine"
    inputs = f"{len(outputs)} golden images r{spec.resolution}"
    reference = compare("ONNX Runtime (bundle)", golden.logits, candidate, outputs, inputs, kind)
    fp32 = None
    if not np.array_equal(golden.logits, golden.logits_fp32):
        fp32 = compare("ONNX Runtime FP32", golden.logits_fp32, candidate, outputs, inputs, kind)
    return VerifyResult(
        engine=engine,
        bundle=bundle,
        model=spec.model,
        resolution=spec.resolution,
        target=spec.target,
        precision=spec.precision,
        dialect=spec.dialect,
        tensorrt=tensorrt,
        batch=len(outputs),
        tolerance=kind,
        reference=reference,
        fp32=fp32,
        warnings=tuple(w for w in [input_sensitivity_warning(golden.logits)] if w),
    )


@dataclass(frozen=True)
class EngineCheck:
    """An engine checked against its bundle and this device before anything runs it."""

    engine: Path
    bundle: Path
    spec: BuildSpec
    sidecar: dict | None
    tensorrt: str
    dla_core: int | None


def check_engine(engine: str | Path, bundle_dir: str | Path, batches: Sequence[int], purpose: str, log: Callable[[str], None] = print) -> EngineCheck:
    """Everything checked before running ``engine`` for ``purpose`` (a command name): a plain plan,
    a bundle that matches its manifest, batches inside the engine's profile, built from this bundle's
    ONNX with the installed TensorRT, on a GPU like this one. Each refusal is one line."""
    engine, bundle_dir = Path(engine), Path(bundle_dir)
    check_plan_file(engine)
    spec = load_bundle_spec(bundle_dir)
    sidecar = read_sidecar(engine)
    if sidecar is not None:
        b = sidecar.get("batch", {})
        if isinstance(b.get("min"), int) and isinstance(b.get("max"), int):
            for batch in batches:
                check_batch(batch, (b["min"], b["max"]))
        check_sidecar(sidecar, installed=None, onnx_sha256=sha256_file(bundle_dir / spec.onnx), bundle=str(bundle_dir))
    trt = import_tensorrt(purpose, f"{spec.target} with TensorRT {spec.tensorrt_version}")
    installed = installed_tensorrt_version(trt)
    if sidecar is None:  # said once the engine will run: a refusal stays one line
        log(f"warning: {sidecar_path(engine).name} not found: cannot check which TensorRT, ONNX and GPU built {engine.name}")
    else:
        check_sidecar(sidecar, installed=installed, onnx_sha256=None, bundle=str(bundle_dir))
        EngineInfo.from_file(engine).check_machine(platform.machine(), gpu_info(0)["compute_capability"])
    dla_core = (sidecar or {}).get("dla", {}).get("core", spec.dla_core)
    return EngineCheck(engine, bundle_dir, spec, sidecar, installed, dla_core)


def verify_engine(
    engine: str | Path,
    bundle_dir: str | Path,
    *,
    batch: int | None = None,
    cuda_graph: bool = False,
    verbose: bool = False,
    log: Callable[[str], None] = print,
) -> VerifyResult:
    """Run ``engine`` on ``bundle_dir``'s golden images (cycled to ``batch``) and judge it."""
    golden = Golden.load(Path(bundle_dir))
    batch = len(golden.images) if batch is None else batch
    checked = check_engine(engine, bundle_dir, [batch], "rf-verify", log)
    spec = checked.spec
    golden = golden.at_batch(batch)
    with EngineRunner(checked.engine, dla_core=checked.dla_core, cuda_graph=cuda_graph, verbose=verbose, log=log) as runner:
        outputs = runner.infer({spec.input_name: golden.images})
    if spec.output_name not in outputs:
        raise RftrtError(f"the engine has no output {spec.output_name!r} (it has {', '.join(outputs)})")
    return compare_with_golden(outputs[spec.output_name], golden, spec, engine=str(checked.engine), bundle=str(checked.bundle), tensorrt=checked.tensorrt)
