"""What ``rf-export`` is asked to do (:class:`ExportOptions`), checked and resolved against the
target before any work, and what a run produced (:class:`ExportResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..comparison import Comparison
from ..errors import RftrtError
from ..export.onnx_export import DEFAULT_OPSET, EXPORTER_MAX_OPSET
from ..export.passes import PassReport
from ..export.prepare import PRECISIONS
from ..files import check_output_dir
from ..precision.plan import PrecisionPlan
from ..targets.batch import parse_batch
from ..targets.profiles import Target, load_target

__all__ = ["ExportOptions", "ExportResult", "Resolved", "resolve", "default_output_dir"]


@dataclass(frozen=True)
class ExportOptions:
    model: str
    target: str
    precision: str = "fp32"  # "fp32", "fp16" or "int8" (FP16 for what stays out of INT8)
    resolution: int = 224
    weights: str | None = None
    num_classes: int = 1000
    trt_version: str | None = None
    dla_core: int | None = None
    batch: str | None = None  # "min:opt:max" or "N"
    static: bool = False
    opset: int | None = None
    out_dir: str | None = None
    force: bool = False
    calib_dir: str | None = None  # None: the bundled photographs (a smoke test, said so)
    calib_images: int = 512
    calib_batch: int = 8
    calib_method: str | None = None  # None: the calibration module's default
    triton: bool = False  # also write the bundle's Triton model repository beside it


@dataclass
class ExportResult:
    """What a run produced and measured, as data (``--json`` writes :meth:`as_dict`)."""

    options: ExportOptions
    target: Target
    out_dir: Path | None = None
    stages: list[dict] = field(default_factory=list)
    passes: list[PassReport] = field(default_factory=list)
    plan: PrecisionPlan | None = None
    comparisons: list[Comparison] = field(default_factory=list)
    files: list[dict] = field(default_factory=list)
    build: str = ""
    next_commands: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: comparison kinds reported but not held to their tolerance (INT8 on random weights)
    not_enforced: tuple[str, ...] = ()

    @property
    def enforced(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.kind not in self.not_enforced]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.enforced)

    def validation_lines(self) -> list[str]:
        """One line per comparison, the ones not enforced marked."""
        enforced = self.enforced
        return [c.line() + ("" if c in enforced else "  (not enforced: random weights)") for c in self.comparisons]

    def as_dict(self) -> dict:
        t = self.target
        return {
            "rftrt_version": __version__,
            "model": self.options.model,
            "resolution": self.options.resolution,
            "precision": self.options.precision,
            "target": {
                "name": t.name,
                "tensorrt": t.release.version,
                "dialect": t.release.dialect,
                "opset_max": t.release.opset_max,
                "batch": [t.batch.min, t.batch.opt, t.batch.max],
                "dla_core": t.dla_core,
                "notes": list(t.notes),
            },
            "output": str(self.out_dir) if self.out_dir else None,
            "stages": self.stages,
            "passes": [p.as_dict() for p in self.passes],
            "precision_plan": self.plan.as_dict() if self.plan else None,
            "validation": [c.as_dict() for c in self.comparisons],
            "validation_passed": self.passed,
            "validation_not_enforced": list(self.not_enforced),
            "files": self.files,
            "build": self.build,
            "next": self.next_commands,
            "warnings": self.warnings,
        }


@dataclass(frozen=True)
class Resolved:
    """The options checked against the target: everything the stages need to know up front."""

    target: Target
    opset: int
    out_dir: Path


def default_output_dir(options: ExportOptions, target: Target) -> Path:
    return Path("rftrt_out") / f"{options.model}-r{options.resolution}-{target.name}-trt{target.release.version}-{options.precision}"


def resolve(options: ExportOptions) -> Resolved:
    """Check ``options`` and resolve the target, the opset and the output directory; every refusal
    here comes before any work."""
    if options.precision not in PRECISIONS:
        raise RftrtError(f"precision {options.precision!r} not supported; use fp32, fp16 or int8")
    if options.calib_dir is not None and options.precision != "int8":
        raise RftrtError("--calib-dir calibrates INT8; add --int8")
    for flag, value in (("--calib-images", options.calib_images), ("--calib-batch", options.calib_batch)):
        if not isinstance(value, int) or value < 1:
            raise RftrtError(f"{flag} must be a positive integer, got {value!r}")
    batch = parse_batch(options.batch) if options.batch else None
    if batch is not None and not batch.static and (options.dla_core is not None or options.static):
        why = "DLA needs static shapes" if options.dla_core is not None else "--static asks for a static batch"
        raise RftrtError(f"{why}, but --batch {options.batch} is dynamic; give --batch N (e.g. --batch {batch.opt})")
    target = load_target(options.target, options.trt_version, options.dla_core, batch)
    if options.static and not target.batch.static:
        target = load_target(options.target, options.trt_version, options.dla_core, parse_batch(str(target.batch.opt)))
    opset = options.opset if options.opset is not None else min(DEFAULT_OPSET, target.release.opset_max)
    if opset > target.release.opset_max:
        raise RftrtError(
            f"opset {opset} is above what TensorRT {target.release.version} on {target.name} parses "
            f"({target.release.opset_max}); use --opset {target.release.opset_max} or lower"
        )
    if opset > EXPORTER_MAX_OPSET:
        raise RftrtError(f"opset {opset} is above the exporter's {EXPORTER_MAX_OPSET}; use --opset {EXPORTER_MAX_OPSET} or lower")
    out_dir = Path(options.out_dir) if options.out_dir else default_output_dir(options, target)
    if out_dir.exists() and not options.force:
        raise RftrtError(f"{out_dir} exists; pass --force to replace it")
    check_output_dir(out_dir.absolute().parent, "bundle's folder")
    if options.triton:
        _check_triton(target, out_dir, options.force)
    return Resolved(target, opset, out_dir)


def _check_triton(target: Target, out_dir: Path, force: bool) -> None:
    """``--triton``: refused before any work for a target Triton's repository is not written for, an
    existing repository without --force, or a missing ModelConfig schema."""
    from ..serving.config import TRITON
    from ..serving.repository import default_repository_dir
    from ..serving.validate import model_config_module

    if target.name not in TRITON["targets"]:
        raise RftrtError(f"--triton writes a Triton repository for {', '.join(TRITON['targets'])} bundles, not {target.name}; use --target l40")
    repository = default_repository_dir(out_dir)
    if repository.exists() and not force:
        raise RftrtError(f"{repository} exists; pass --force to replace it")
    model_config_module()
