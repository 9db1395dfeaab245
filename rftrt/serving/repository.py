"""A Triton model repository from an L40 bundle, written all at once or not at all.

Layout (``REPO`` defaults to ``<bundle>-triton`` beside the bundle)::

    REPO/README.md                  the TensorRT release to serve with, and the command lines
    REPO/manifest.json              sha256 of every file (as in a bundle), so --force knows it is ours
    REPO/<model>/config.pbtxt       platform "tensorrt_plan"
    REPO/<model>/1/                 where the device kit's ``build --out`` places model.plan
    REPO/<model>_onnx/config.pbtxt  platform "onnxruntime_onnx"
    REPO/<model>_onnx/1/model.onnx  the bundle's FP32 ONNX (its typed ONNX where it carries no FP32 one)

Every config is validated against Triton's schema and the bundle before anything is written.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..engines.build_spec import BuildSpec
from ..engines.bundle import MANIFEST, open_bundle, write_bundle
from ..errors import RftrtError
from ..targets.profiles import load_target
from .config import TRITON, ServingOptions, TensorIO, onnx_config, onnx_model_name, plan_config, plan_model_name
from .readme import repository_readme
from .validate import ConfigCheck, check_config, model_config_module

__all__ = ["RepositoryReport", "default_repository_dir", "onnx_variant", "onnx_io", "write_repository", "check_repository"]


@dataclass(frozen=True)
class RepositoryReport:
    """A written (or checked) repository: where, its models' checks, and how long the writing took."""

    path: Path
    bundle: Path
    checks: tuple[ConfigCheck, ...]
    seconds: float = 0.0
    files: tuple[str, ...] = field(default_factory=tuple)

    def lines(self) -> list[str]:
        return [check.line() for check in self.checks]

    def as_dict(self) -> dict:
        return {
            "repository": str(self.path),
            "bundle": str(self.bundle),
            "configs": [c.as_dict() for c in self.checks],
            "files": list(self.files),
            "seconds": self.seconds,
        }


def default_repository_dir(bundle_dir: Path) -> Path:
    """``<bundle>-triton``, beside the bundle (inside it, the bundle's manifest would not match)."""
    bundle_dir = Path(bundle_dir)
    return bundle_dir.with_name(f"{bundle_dir.name}-triton")


def onnx_variant(spec: BuildSpec, bundle_files: set[str]) -> tuple[str, str]:
    """The bundle's ONNX the ONNX Runtime variant serves, and the golden.npz reference it answers to:
    the FP32 ONNX (``logits_fp32``) where the bundle has one, else the bundle's typed ONNX (``logits``)."""
    fp32 = f"{spec.model}.onnx"
    if fp32 in bundle_files and (spec.dialect == "weak" or spec.onnx == fp32):
        return fp32, "logits_fp32"
    return spec.onnx, "logits"


def onnx_io(path: Path) -> tuple[list[TensorIO], list[TensorIO]]:
    """The graph inputs (initializers aside) and outputs of an ONNX file: names, element types, shapes."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}

    def io(values) -> list[TensorIO]:
        found = []
        for v in values:
            dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in v.type.tensor_type.shape.dim)
            found.append(TensorIO(v.name, v.type.tensor_type.elem_type, dims))
        return found

    return io(v for v in model.graph.input if v.name not in initializers), io(model.graph.output)


def _check_target(spec: BuildSpec, bundle_dir: Path) -> None:
    if spec.target not in TRITON["targets"]:
        raise RftrtError(
            f"{bundle_dir} is a bundle for {spec.target}; a Triton repository is written from bundles for {', '.join(TRITON['targets'])} "
            "(export with --target l40)"
        )


def _check_io(spec: BuildSpec, inputs: list[TensorIO], outputs: list[TensorIO], onnx_name: str) -> None:
    if [t.name for t in inputs] != [spec.input_name] or [t.name for t in outputs] != [spec.output_name]:
        raise RftrtError(
            f"{onnx_name} has inputs {[t.name for t in inputs]} and outputs {[t.name for t in outputs]}, build.json says "
            f"{spec.input_name} → {spec.output_name}; re-export the bundle"
        )
    expected = (3, spec.resolution, spec.resolution)
    if tuple(inputs[0].shape[1:]) != expected:
        raise RftrtError(f"{onnx_name} takes {spec.input_name} of shape {list(inputs[0].shape)}, build.json says (N, 3, {spec.resolution}, {spec.resolution})")


def _relative(path: Path, start: Path) -> str:
    return os.path.relpath(path.absolute(), start.absolute())


def _repository_files(bundle_dir: Path, repo: Path, spec: BuildSpec, names: set[str], options: ServingOptions) -> tuple[dict[str, bytes], list[ConfigCheck]]:
    """The repository's files by name, each config already validated."""
    plan_io = onnx_io(bundle_dir / spec.onnx)
    _check_io(spec, *plan_io, spec.onnx)
    variant_file, reference = onnx_variant(spec, names)
    variant_io = plan_io if variant_file == spec.onnx else onnx_io(bundle_dir / variant_file)
    _check_io(spec, *variant_io, variant_file)
    plan, variant = plan_model_name(spec), onnx_model_name(spec)
    configs = {
        f"{plan}/config.pbtxt": (plan_config(spec, options, *plan_io), plan_io, TRITON["platforms"]["tensorrt"]),
        f"{variant}/config.pbtxt": (onnx_config(spec, options, *variant_io), variant_io, TRITON["platforms"]["onnxruntime"]),
    }
    checks = [check_config(text, f"{repo.name}/{name}", spec, *io, platform) for name, (text, io, platform) in configs.items()]
    files = {name: text.encode() for name, (text, _, _) in configs.items()}
    files[f"{variant}/1/{TRITON['files']['onnxruntime']}"] = (bundle_dir / variant_file).read_bytes()
    parent = repo.absolute().parent
    readme = repository_readme(spec, load_target(spec.target, spec.tensorrt_version), options, _relative(bundle_dir, parent), _relative(repo, parent), variant_file, reference)
    files["README.md"] = readme.encode()
    return files, checks


def write_repository(
    bundle_dir: str | Path,
    out: str | Path | None = None,
    *,
    options: ServingOptions = ServingOptions(),
    force: bool = False,
    log: Callable[[str], None] | None = None,
) -> RepositoryReport:
    """Write the Triton model repository of an L40 bundle to ``out`` (default ``<bundle>-triton``).

    The bundle is verified against its manifest; a bundle of another target, a max or preferred
    batch size outside its profile, an existing ``out`` without ``force`` and a config Triton's schema
    or the bundle refuses are errors (one line), with nothing written."""
    started = time.perf_counter()
    bundle_dir = Path(bundle_dir)
    report, spec = open_bundle(bundle_dir)
    _check_target(spec, bundle_dir)
    model_config_module()  # the validation needs tritonclient: say so before any work
    repo = Path(out) if out is not None else default_repository_dir(bundle_dir)
    if repo.exists() and not force:
        raise RftrtError(f"{repo} exists; pass --force to replace it")
    files, checks = _repository_files(bundle_dir, repo, spec, {f.name for f in report.files}, options.resolved(spec))
    written = write_bundle(repo, files, force=force, versions=dict(report.versions), log=log)
    # the plan's version folder: empty until the device kit's build writes model.plan into it
    (repo / plan_model_name(spec) / "1").mkdir(exist_ok=True)
    return RepositoryReport(repo, bundle_dir, tuple(checks), round(time.perf_counter() - started, 3), tuple(f.name for f in written.files))


def check_repository(repo: str | Path, bundle_dir: str | Path) -> RepositoryReport:
    """Validate an existing repository's configs (edited by hand, say) against Triton's schema and
    the bundle; the first config that fails is the error."""
    repo, bundle_dir = Path(repo), Path(bundle_dir)
    report, spec = open_bundle(bundle_dir)
    _check_target(spec, bundle_dir)
    variant_file, _ = onnx_variant(spec, {f.name for f in report.files})
    plan_io = onnx_io(bundle_dir / spec.onnx)
    variant_io = plan_io if variant_file == spec.onnx else onnx_io(bundle_dir / variant_file)
    models = ((plan_model_name(spec), plan_io, "tensorrt"), (onnx_model_name(spec), variant_io, "onnxruntime"))
    checks = []
    for name, io, key in models:
        path = repo / name / "config.pbtxt"
        if not path.is_file():
            raise RftrtError(f"{repo} has no {name}/config.pbtxt; write the repository with rf-triton {bundle_dir}")
        checks.append(check_config(path.read_text(encoding="utf-8"), f"{repo.name}/{name}/config.pbtxt", spec, *io, TRITON["platforms"][key]))
    if not (repo / MANIFEST).is_file():
        raise RftrtError(f"{repo} has no {MANIFEST}; it was not written by rf-triton")
    return RepositoryReport(repo, bundle_dir, tuple(checks))
