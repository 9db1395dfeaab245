"""TensorRT's text INT8 calibration cache: writing, parsing, and checking it against an ONNX.

The format (``docs/platforms.md`` §5; NVIDIA's qdq-translator writes the same)::

    TRT-8600-EntropyCalibration2
    images: 3c010204
    /backbone/input_stem/op_list.0/act/HardSwish_output_0: 3d8f5c29

- the header is ``TRT-<version>-<algorithm>``; the version is TensorRT's number
  (:func:`~rftrt.targets.tensorrt.version_tag`: 8.6 → 8600, 10.3 → 100300). TensorRT skips a cache
  whose header does not match the version and calibrator reading it, and then recalibrates;
- one ``<tensor name>: <scale>`` line per tensor, the scale ``amax / 127`` written as the 8 hex
  digits of its IEEE-754 float32 bits, big-endian (the way TensorRT prints them: ``%08x`` of the bits);
- the keys are the network's tensor names, which the ONNX parser takes from the ONNX tensor names,
  so the cache belongs to exactly one ONNX: the FP32 ONNX shipped in the bundle.

The algorithm field names the calibrator that will *read* the cache, not how the ranges were
measured: ``trtexec --calib`` reads through an ``IInt8EntropyCalibrator2`` and DLA needs
EntropyCalibration2, so that is the default whatever the method (qdq-translator does the same).
Which method produced the ranges is recorded beside the cache (``calibration.json``).

Which tensors get a line (:func:`cache_tensors`): the graph input and every float tensor produced
outside the precision plan's FP32 islands (attention cores, LayerNorm, out-of-FP16-range nodes),
plus an island's outputs that feed a Conv/Gemm/MatMul (their INT8 input). Inside the islands TensorRT
finds no scale and keeps those layers out of INT8 ("Missing scale and zero-point … fall back to
non-int8 implementation" in its log), which is the plan, on top of the ``--layerPrecisions`` pins.
Tensors TensorRT creates itself while parsing (``(Unnamed Layer* N) …``) have no ONNX name and no line.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import onnx

from ..errors import RftrtError
from ..targets.tensorrt import version_tag

__all__ = [
    "ALGORITHMS",
    "DEFAULT_ALGORITHM",
    "CalibrationCache",
    "write_cache",
    "parse_cache",
    "scale_to_hex",
    "hex_to_scale",
    "cache_tensors",
    "check_cache_names",
    "QUANTIZABLE_OPS",
]

ALGORITHMS = ("EntropyCalibration2", "MinMaxCalibration", "EntropyCalibration", "LegacyCalibration")
DEFAULT_ALGORITHM = "EntropyCalibration2"
#: Ops whose inputs are quantized (explicit Q/DQ) and whose input scales the cache must carry.
QUANTIZABLE_OPS = ("Conv", "Gemm", "MatMul")
_HEADER = re.compile(r"^TRT-(\d+)-([A-Za-z0-9]+)$")
_HEX = re.compile(r"^[0-9a-fA-F]{8}$")
#: Names TensorRT gives tensors it creates while parsing; a device-made cache has them.
_TRT_INTERNAL = re.compile(r"^\(Unnamed Layer\* \d+\)")


def scale_to_hex(scale: float) -> str:
    """The 8 lower-case hex digits of ``scale`` as a big-endian IEEE-754 float32."""
    return struct.pack(">f", scale).hex()


def hex_to_scale(text: str) -> float:
    return struct.unpack(">f", bytes.fromhex(text))[0]


@dataclass(frozen=True)
class CalibrationCache:
    """A parsed (or to-be-written) cache: header fields and tensor name → scale, in file order."""

    version: int
    algorithm: str
    scales: dict[str, float] = field(default_factory=dict)

    @property
    def header(self) -> str:
        return f"TRT-{self.version}-{self.algorithm}"

    def amax(self, name: str) -> float:
        return self.scales[name] * 127.0

    def text(self) -> str:
        return "".join([self.header + "\n"] + [f"{name}: {scale_to_hex(scale)}\n" for name, scale in self.scales.items()])


def write_cache(amax: Mapping[str, float], trt_version: str, algorithm: str = DEFAULT_ALGORITHM, tensors: Iterable[str] | None = None) -> str:
    """The cache text for ``amax`` (tensor → symmetric range), for TensorRT ``trt_version``
    (``8.6``, ``10.3``, ``8.6.12``). ``tensors`` picks and orders the lines (default: all of ``amax``)."""
    if algorithm not in ALGORITHMS:
        raise RftrtError(f"unknown calibration algorithm {algorithm!r}; TensorRT's are {', '.join(ALGORITHMS)}")
    names = list(amax) if tensors is None else list(tensors)
    scales: dict[str, float] = {}
    for name in names:
        if "\n" in name or not name.strip():
            raise RftrtError(f"tensor name {name!r} cannot be written to a calibration cache (empty or contains a newline)")
        value = float(amax[name])
        if not math.isfinite(value) or value <= 0:
            raise RftrtError(f"tensor {name!r} has range {value!r}; a calibration scale must be positive and finite")
        scales[name] = value / 127.0
    return CalibrationCache(version_tag(trt_version), algorithm, scales).text()


def parse_cache(text: str, source: str = "calibration cache") -> CalibrationCache:
    """Read a TensorRT text cache; any malformed line is an error naming it."""
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise RftrtError(f"{source}: empty; expected a first line like TRT-8600-EntropyCalibration2")
    header = _HEADER.match(lines[0].strip())
    if not header:
        raise RftrtError(f"{source}: line 1 {lines[0][:60]!r} is not a TensorRT cache header (TRT-<version>-<algorithm>)")
    algorithm = header.group(2)
    if algorithm not in ALGORITHMS:
        raise RftrtError(f"{source}: unknown algorithm {algorithm!r} in the header; TensorRT's are {', '.join(ALGORITHMS)}")
    scales: dict[str, float] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        name, sep, value = line.rpartition(": ")
        value = value.strip()
        if not sep or not name or not _HEX.match(value):
            raise RftrtError(f"{source}: line {number} {line[:80]!r} is not '<tensor>: <8 hex digits>'")
        if name in scales:
            raise RftrtError(f"{source}: tensor {name!r} appears twice (line {number})")
        scale = hex_to_scale(value)
        if not math.isfinite(scale) or scale <= 0:
            raise RftrtError(f"{source}: tensor {name!r} has scale {scale!r} (line {number}); scales must be positive and finite")
        scales[name] = scale
    return CalibrationCache(int(header.group(1)), algorithm, scales)


def _float_types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    infos = list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input)
    return {vi.name: vi.type.tensor_type.elem_type for vi in infos}


def cache_tensors(model: onnx.ModelProto, fp32_nodes: Iterable[str] = ()) -> list[str]:
    """The tensors a cache for ``model`` lists, in graph order (see the module docstring)."""
    fp32 = set(fp32_nodes)
    types = _float_types(model)
    is_float = lambda name: types.get(name) == onnx.TensorProto.FLOAT  # noqa: E731
    quantized_inputs = {
        name
        for node in model.graph.node
        if node.op_type in QUANTIZABLE_OPS and node.name not in fp32
        for name in node.input
        if name
    }
    names = [i.name for i in model.graph.input if is_float(i.name)]
    seen = set(names)
    for node in model.graph.node:
        for name in node.output:
            if not name or name in seen or not is_float(name):
                continue
            if node.name not in fp32 or name in quantized_inputs:
                names.append(name)
                seen.add(name)
    return names


def check_cache_names(cache: CalibrationCache, model: onnx.ModelProto, source: str = "calibration cache") -> list[str]:
    """Refuse a cache naming tensors that ``model`` does not have (it was made for another export).

    TensorRT's own unnamed tensors (``(Unnamed Layer* N) …``) are allowed and returned, so the caller
    can say they were left out.
    """
    known = {i.name for i in model.graph.input} | {name for node in model.graph.node for name in node.output}
    internal = [name for name in cache.scales if _TRT_INTERNAL.match(name)]
    unknown = [name for name in cache.scales if name not in known and not _TRT_INTERNAL.match(name)]
    if unknown:
        shown = ", ".join(repr(n) for n in unknown[:3]) + (f" and {len(unknown) - 3} more" if len(unknown) > 3 else "")
        raise RftrtError(
            f"{source}: {len(unknown)} of {len(cache.scales)} tensor names are not in the ONNX ({shown}); "
            "the cache was made for another export (re-exporting renames tensors): recalibrate this ONNX"
        )
    return internal
