"""``rf-build``'s work on the device: from a bundle to a plain TensorRT plan and its sidecar.

:func:`build_bundle` verifies the bundle, checks the installed TensorRT (release and API) and the GPU,
plans the build (:mod:`rftrt.engines.build_plan`), runs its path's steps
(:mod:`rftrt.engines.build_steps`) and writes the engine and ``<engine>.json``
(:mod:`rftrt.engines.sidecar`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RftrtError
from ..files import read_json_record, sha256_file, write_file_atomic
from ..targets.dla import PREDICTION_FILE
from ..targets.profiles import load_target
from .build_decisions import BuildPlan
from .build_plan import DIALECT_WORDS, check_tensorrt_version, plan_build
from .build_spec import BuildSpec
from .build_steps import API_USED, PATH_STEPS, BuildState
from .bundle import load_bundle_spec
from .cuda import cuda_device_count, gpu_info
from .plan_file import read_plan_header
from .sidecar import sidecar_path, sidecar_record
from .tensorrt_api import import_tensorrt, installed_tensorrt_version, missing_api

__all__ = ["BuildResult", "build_bundle", "read_dla_prediction"]


@dataclass(frozen=True)
class BuildResult:
    """A built engine: the plan file, its sidecar, and the sidecar's record."""

    engine: Path
    sidecar: Path
    record: dict

    def summary(self) -> str:
        r = self.record
        precisions = ", ".join(f"{n} {p}" for p, n in r["layer_precisions"].items()) or "unknown"
        dla = ""
        if r["dla"].get("core") is not None:
            dla = f"; DLA core {r['dla']['core']}: {r['dla'].get('network_layers_on_dla')} network layers on DLA"
            check = r["dla"].get("prediction")
            if check:
                dla += f" (the prediction agrees on {check['agree']} of {check['nodes_compared']} nodes)"
        return (
            f"{self.engine} ({r['engine_bytes'] / 2**20:.1f} MiB, TensorRT {r['tensorrt']['version']}, {r['tensorrt']['path']}, "
            f"{r['gpu'].get('name', 'GPU unknown')}); layers: {precisions}{dla}; sidecar {self.sidecar.name}"
        )


def _tensorrt_and_plan(spec: BuildSpec) -> tuple[Any, str, BuildPlan]:
    """The installed ``tensorrt``, its version and the plan for it, once the release and the API check out."""
    where = f"{spec.target} with TensorRT {spec.tensorrt_version}, {DIALECT_WORDS[spec.dialect]}"
    trt = import_tensorrt("rf-build", where)
    installed = installed_tensorrt_version(trt)
    check_tensorrt_version(spec, installed)
    plan = plan_build(spec, installed)
    missing = missing_api(trt, API_USED[plan.path])
    if missing:
        raise RftrtError(
            f"TensorRT {installed} lacks {', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}, which the {plan.path} "
            "build path uses; this rftrt was checked against TensorRT 8.6.1, 10.3, 10.16 and 11.4"
        )
    return trt, installed, plan


def _gpu_for(spec: BuildSpec, allow_other_gpu: bool, log: Callable[[str], None]) -> dict:
    """The GPU to build on, checked against the target's architecture."""
    try:
        count, why = cuda_device_count()
    except RftrtError as exc:  # cuda-python missing: TensorRT itself will say if there is no GPU
        log(f"warning: cannot read the GPU's name and compute capability ({exc}); not checked")
        return {"name": "unknown (cuda-python not installed)"}
    if count == 0:
        raise RftrtError(f"no CUDA GPU is visible here ({why}); rf-build runs on the target's GPU")
    gpu = gpu_info(0)
    target = load_target(spec.target)
    if gpu["compute_capability"] != target.compute_capability:
        message = (
            f"this GPU is {gpu['name']} (SM {gpu['compute_capability']}), the bundle's target {spec.target} is "
            f"SM {target.compute_capability}: an engine only runs on the GPU architecture it was built on"
        )
        if not allow_other_gpu:
            raise RftrtError(f"{message}; build on the target, or pass --allow-other-gpu to build for this GPU anyway")
        log(f"warning: {message}; building for this GPU as asked")
    return gpu


def read_dla_prediction(bundle_dir: Path) -> dict | None:
    """The bundle's predicted DLA placement (rf-export writes it for a DLA core), or None without one."""
    return read_json_record(
        bundle_dir / PREDICTION_FILE, lambda d: isinstance(d.get("placements"), list), "a DLA placement prediction (no placements)", "re-export the bundle"
    )


def build_bundle(
    bundle_dir: str | Path,
    *,
    out: str | Path | None = None,
    timing_cache: str | Path | None = None,
    allow_other_gpu: bool = False,
    verbose: bool = False,
    log: Callable[[str], None] = print,
) -> BuildResult:
    """Build a bundle's engine here: verify it, check TensorRT and the GPU, run the path's steps,
    write the plan (``out``, default ``<bundle>/<spec.engine>``) and its sidecar.

    ``timing_cache`` defaults to the bundle's ``timing.cache``; it is read if present and written back.
    """
    bundle_dir = Path(bundle_dir)
    spec = load_bundle_spec(bundle_dir)
    trt, installed, plan = _tensorrt_and_plan(spec)
    gpu = _gpu_for(spec, allow_other_gpu, log)
    engine_path = Path(out) if out else bundle_dir / spec.engine
    cache_path = Path(timing_cache) if timing_cache else bundle_dir / spec.timing_cache
    calib = bundle_dir / plan.calibration_cache if plan.calibration_cache else None
    onnx_path = bundle_dir / spec.onnx
    state = BuildState(
        trt=trt,
        spec=spec,
        plan=plan,
        onnx_path=onnx_path,
        timing_cache_path=cache_path,
        calibration_cache_path=calib,
        log=log,
        verbose=verbose,
    )
    state.record["gpu"] = gpu
    state.dla_prediction = read_dla_prediction(bundle_dir) if spec.dla_core is not None else None
    for step in PATH_STEPS[plan.path]:
        step(state)
    assert state.serialized is not None
    read_plan_header(state.serialized, f"the engine TensorRT {installed} serialized")
    record = sidecar_record(
        spec,
        plan,
        tensorrt_version=installed,
        gpu=gpu,
        onnx_sha256=sha256_file(onnx_path),
        engine=state.serialized,
        engine_name=engine_path.name,
        record=state.record,
    )
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    write_file_atomic(engine_path, state.serialized)
    side = sidecar_path(engine_path)
    write_file_atomic(side, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    return BuildResult(engine=engine_path, sidecar=side, record=record)
