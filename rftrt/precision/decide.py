"""The precision stage of ``rf-export``: from the passed FP32 ONNX to what the target's dialect
deploys, with the plan and (INT8) the calibration that decided it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx

from ..data.sources import ImageSource
from ..targets.profiles import Target
from .int8 import CalibrationResult, calibrate
from .plan import PrecisionPlan, plan_precision
from .render import render_fp16

__all__ = ["PrecisionResult", "decide_precision"]


@dataclass
class PrecisionResult:
    """What the stage decided and rendered."""

    precision: str
    #: what the target deploys: the passed FP32 ONNX (weakly typed targets, FP32) or the typed rendering
    deployed: onnx.ModelProto
    plan: PrecisionPlan | None = None
    calibration: CalibrationResult | None = None
    #: the plan's FP16 rendering (FP16 and INT8 builds: what INT8 leaves runs in FP16)
    fp16: onnx.ModelProto | None = None


def decide_precision(
    passed: onnx.ModelProto,
    precision: str,
    photos: np.ndarray,
    target: Target,
    *,
    calibration_source: ImageSource | None = None,
    calibration_options: dict | None = None,
    log: Callable[[str], None] = print,
) -> PrecisionResult:
    """Plan ``passed`` on ``photos`` (FP16 and INT8), render the plan, calibrate INT8 on
    ``calibration_source`` (keyword options of :func:`~rftrt.precision.int8.calibrate` in
    ``calibration_options``) and pick what ``target``'s dialect deploys."""
    if precision == "fp32":
        return PrecisionResult(precision, deployed=passed)
    plan = plan_precision(passed, photos, f"{len(photos)} bundled photographs")
    fp16 = render_fp16(passed, set(plan.fp32_nodes))
    typed, calibration = fp16, None
    if precision == "int8":
        calibration = calibrate(passed, calibration_source, target=target, plan=plan, log=log, **(calibration_options or {}))
        plan = calibration.plan  # calibration may pin more nodes
        typed = calibration.typed_model or calibration.qdq_model or fp16
    deployed = typed if target.strongly_typed else passed
    return PrecisionResult(precision, deployed, plan, calibration, fp16)
