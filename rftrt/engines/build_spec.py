"""The build specification: everything the device needs to turn a bundle's ONNX into an engine.

It is written to a bundle as ``build.json`` and read back by ``rf-build`` on the device, so it holds
plain data only and round-trips through JSON exactly.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import RftrtError
from ..targets.batch import BatchProfile

__all__ = ["BuildSpec", "Int8Source", "INT8_ROUTES", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1

#: How an INT8 build gets its scales: "cache" (implicit quantization: the FP32 ONNX and a calibration
#: cache served through a calibrator) or "qdq" (explicit quantization: Q/DQ nodes in the ONNX).
INT8_ROUTES = ("cache", "qdq")


@dataclass(frozen=True)
class Int8Source:
    """Where an INT8 build's scales come from: the route and the bundle file that carries them."""

    #: one of :data:`INT8_ROUTES`
    route: str
    #: the calibration cache ("cache") or the ONNX with Q/DQ nodes ("qdq")
    file: str


@dataclass(frozen=True)
class BuildSpec:
    """One engine build: target, TensorRT release and dialect, shapes, precision, DLA, builder knobs."""

    model: str
    resolution: int
    target: str
    tensorrt_version: str
    #: "weak" (TensorRT 8.x/10.x: FP32 ONNX + builder flags) or "strong" (typed ONNX, no flags)
    dialect: str
    onnx: str
    input_name: str
    output_name: str
    batch: BatchProfile
    #: "fp32", "fp16" or "int8"
    precision: str
    #: ONNX node names to pin to FP32 (weakly typed dialect only; the typed ONNX carries them)
    fp32_layers: tuple[str, ...] = ()
    dla_core: int | None = None
    #: DLA only: whether layers DLA cannot run may fall back to the GPU. rf-export turns it off where
    #: the bundle's placement prediction has the whole network on DLA in loadables one core holds, so
    #: that a build which would split the network fails instead of silently running partly on the GPU.
    gpu_fallback: bool = True
    workspace_mib: int = 4096
    builder_optimization_level: int = 3
    engine: str = "model.engine"
    timing_cache: str = "timing.cache"
    calibration_cache: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: INT8 only: which route and which file (None in build.json files written before it was recorded)
    int8: Int8Source | None = None
    #: strongly typed only: the compute nodes the typed ONNX keeps in FP32, which the engine's layer
    #: precisions are checked against (None: not recorded, so not checked)
    fp32_islands: tuple[str, ...] | None = None

    def to_json(self) -> str:
        data: dict[str, Any] = {"schema": SCHEMA_VERSION, **asdict(self)}
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "BuildSpec":
        data = json.loads(text)
        schema = data.pop("schema", None)
        if schema != SCHEMA_VERSION:
            raise RftrtError(f"build.json schema {schema!r} is not {SCHEMA_VERSION}; re-export the bundle with this rftrt")
        data["batch"] = BatchProfile(**data["batch"])
        data["fp32_layers"] = tuple(data["fp32_layers"])
        data["notes"] = tuple(data["notes"])
        if data.get("int8") is not None:
            data["int8"] = Int8Source(**data["int8"])
        if data.get("fp32_islands") is not None:
            data["fp32_islands"] = tuple(data["fp32_islands"])
        return cls(**data)
