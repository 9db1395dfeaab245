"""The sidecar ``<engine>.json``: everything about an engine that is not the plain plan.

rf-build writes it beside the engine (:func:`sidecar_record`, :func:`sidecar_path`): how, where and
from what the engine was built, and what it contains. rf-verify reads it back (:func:`read_sidecar`)
and refuses an engine built by another TensorRT release or from another ONNX (:func:`check_sidecar`).
"""

from __future__ import annotations

import platform
import shlex
from pathlib import Path

from .. import __version__
from ..errors import RftrtError
from ..files import read_json_record, sha256_bytes
from ..targets.tensorrt import release_of
from .build_decisions import BuildPlan
from .build_spec import BuildSpec
from .trtexec import trtexec_build_command

__all__ = ["sidecar_path", "sidecar_record", "read_sidecar", "check_sidecar"]

_SIDECAR_SCHEMA = 1


def sidecar_path(engine: Path) -> Path:
    """``model.engine`` → ``model.engine.json``."""
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


def sidecar_record(
    spec: BuildSpec,
    plan: BuildPlan,
    *,
    tensorrt_version: str,
    gpu: dict,
    onnx_sha256: str,
    engine: bytes,
    engine_name: str,
    record: dict,
) -> dict:
    """What ``<engine>.json`` holds: how, where and from what the engine was built, and what it contains."""
    low, _, high = plan.profile
    return {
        "schema": _SIDECAR_SCHEMA,
        "rftrt_version": __version__,
        "engine": engine_name,
        "engine_sha256": sha256_bytes(engine),
        "engine_bytes": len(engine),
        "onnx": spec.onnx,
        "onnx_sha256": onnx_sha256,
        "model": spec.model,
        "resolution": spec.resolution,
        "target": spec.target,
        "precision": spec.precision,
        "dialect": spec.dialect,
        "bundle_tensorrt_version": spec.tensorrt_version,
        "tensorrt": {"version": tensorrt_version, "path": plan.path},
        "gpu": gpu,
        #: the build host's architecture: with rf-build --allow-other-gpu not the target's
        "machine": platform.machine(),
        "input": spec.input_name,
        "output": spec.output_name,
        "batch": {"min": low[0], "opt": plan.profile[1][0], "max": high[0]},
        "build": {
            "network_flags": list(plan.network_flags),
            "builder_flags": list(plan.builder_flags),
            "workspace_bytes": plan.workspace_bytes,
            "builder_optimization_level": plan.builder_optimization_level,
            "calibration_cache": plan.calibration_cache,
            "trtexec_equivalent": shlex.join(trtexec_build_command(spec)),
            **{k: record[k] for k in ("profile", "timing_cache", "fp32_pins", "int8", "progress", "build_seconds") if k in record},
        },
        "dla": record.get("dla", {"core": None}),
        "engine_layers": record.get("engine_layers"),
        "layer_precisions": record.get("layer_precisions", {}),
        #: the engine's layer precisions against the plan, or why they could not be checked
        "precision_check": record.get("precision_check", {"checked": False, "note": "not run"}),
        "layers": record.get("layers", []),
    }


def read_sidecar(engine: Path) -> dict | None:
    """The engine's ``<engine>.json`` written by rf-build, or None if there is none."""
    return read_json_record(
        sidecar_path(engine), lambda d: isinstance(d.get("tensorrt"), dict), "an rf-build sidecar", "rebuild the engine with rf-build"
    )


def check_sidecar(sidecar: dict, *, installed: str | None, onnx_sha256: str | None, bundle: str = "BUNDLE") -> None:
    """Refuse an engine built by another TensorRT release, or from another ONNX than the bundle's."""
    built = str(sidecar.get("tensorrt", {}).get("version", ""))
    if installed is not None and built and release_of(built) != release_of(installed):
        raise RftrtError(
            f"engine built with TensorRT {release_of(built)}, this is TensorRT {release_of(installed)}: "
            f"engines do not carry over between TensorRT versions; rebuild it here with rf-build {bundle}"
        )
    recorded = sidecar.get("onnx_sha256")
    if onnx_sha256 is not None and recorded and recorded != onnx_sha256:
        raise RftrtError(
            f"the engine was built from another ONNX (sha256 {str(recorded)[:12]}…) than {bundle}'s "
            f"(sha256 {onnx_sha256[:12]}…); verify it against the bundle it was built from"
        )
