"""What a build decides, with no TensorRT in sight: the plan it follows (:class:`BuildPlan`, made by
:func:`rftrt.engines.build_plan.plan_build`) and the decisions its steps take from what TensorRT reports.

Those are: the network's inputs and outputs against ``build.json`` (:func:`check_network_io`), the
network layers to pin for each FP32 node of the precision plan (:func:`match_fp32_layers`), each
engine layer's precision from the engine inspector's JSON (:func:`parse_layer_information`,
:func:`precision_counts`), and the bundle's calibration cache (:func:`read_calibration_cache`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import RftrtError
from ..targets.batch import format_batch
from .build_spec import BuildSpec

__all__ = [
    "BuildPlan",
    "match_fp32_layers",
    "check_network_io",
    "parse_layer_information",
    "precision_counts",
    "read_calibration_cache",
    "calibration_cache_note",
]


@dataclass(frozen=True)
class BuildPlan:
    """The decisions for one build, as data: made from the spec alone, before TensorRT is touched."""

    path: str
    tensorrt_version: str
    #: NetworkDefinitionCreationFlag members set
    network_flags: tuple[str, ...]
    #: BuilderFlag members set
    builder_flags: tuple[str, ...]
    #: (min, opt, max) input shapes for the optimisation profile (used when the ONNX's batch is dynamic)
    profile: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]
    workspace_bytes: int
    builder_optimization_level: int
    #: ONNX node names to pin to FP32 (weakly typed with reduced precision only)
    fp32_layers: tuple[str, ...]
    calibration_cache: str | None
    dla_core: int | None
    #: "monitor" (IProgressMonitor) or "log" (START/FINISH lines)
    progress: str
    #: the step functions the path runs, by name
    steps: tuple[str, ...]

    def as_dict(self) -> dict:
        data = asdict(self)
        data["profile"] = {k: list(v) for k, v in zip(("min", "opt", "max"), self.profile)}
        return data


def match_fp32_layers(layer_names: Sequence[str], nodes: Sequence[str]) -> tuple[dict[str, list[int]], list[str]]:
    """Which network layers to pin for each ONNX node of the precision plan.

    TensorRT's ONNX parser names a node's layer after the node, and the extra layers it needs for the
    same node after the node plus ``_N`` (onnx-tensorrt ``ImporterContext::registerLayer`` and its
    unique-name counter). Returns ({node: [layer indices]}, [nodes without a layer]).
    """
    exact: dict[str, list[int]] = {}
    for index, name in enumerate(layer_names):
        exact.setdefault(name, []).append(index)
    wanted = set(nodes)
    suffixed: dict[str, list[int]] = {}
    pattern = re.compile(r"^(.*)_\d+$")
    for index, name in enumerate(layer_names):
        m = pattern.match(name)
        if m and m.group(1) in wanted and name not in wanted:
            suffixed.setdefault(m.group(1), []).append(index)
    matches: dict[str, list[int]] = {}
    missing: list[str] = []
    for node in nodes:
        found = sorted(set(exact.get(node, []) + suffixed.get(node, [])))
        if found:
            matches[node] = found
        else:
            missing.append(node)
    return matches, missing


def check_network_io(
    inputs: Sequence[tuple[str, tuple[int, ...]]], outputs: Sequence[tuple[str, tuple[int, ...]]], spec: BuildSpec
) -> bool:
    """Check the parsed network's I/O against build.json; return whether the batch is dynamic."""
    if len(inputs) != 1:
        raise RftrtError(f"the ONNX has {len(inputs)} inputs; rftrt models have one ({spec.input_name})")
    name, shape = inputs[0]
    if name != spec.input_name:
        raise RftrtError(f"the ONNX's input is {name!r}, build.json says {spec.input_name!r}; re-export the bundle")
    if spec.output_name not in [n for n, _ in outputs]:
        raise RftrtError(f"the ONNX has no output {spec.output_name!r} (it has {', '.join(n for n, _ in outputs)}); re-export the bundle")
    expected = (3, spec.resolution, spec.resolution)
    if len(shape) != 4 or tuple(shape[1:]) != expected:
        raise RftrtError(f"the ONNX's input shape is {tuple(shape)}; build.json says N×{'×'.join(map(str, expected))}")
    dynamic = shape[0] == -1
    if not dynamic and not (spec.batch.static and shape[0] == spec.batch.opt):
        raise RftrtError(
            f"the ONNX has a static batch of {shape[0]} but build.json asks for batch {format_batch(spec.batch)}; re-export the bundle"
        )
    return dynamic


_PRECISION_WORDS = (
    ("int8", "int8"),
    ("bf16", "bf16"),
    ("fp16", "fp16"),
    ("half", "fp16"),
    ("fp32", "fp32"),
    ("float", "fp32"),
    ("int32", "int32"),
    ("int64", "int64"),
    ("bool", "bool"),
    ("fp8", "fp8"),
)


def _precision_of(format_text: str) -> str:
    text = format_text.lower()
    for word, precision in _PRECISION_WORDS:
        if word in text:
            return precision
    return "unknown"


def parse_layer_information(text: str) -> list[dict]:
    """Each engine layer's name, type and output precision, from the engine inspector's JSON.

    With detailed profiling verbosity each layer is an object whose outputs carry a
    ``"Format/Datatype"`` such as ``"Row major linear FP16 format"`` (or just ``"Half"``); with less
    detail layers are bare names and the precision is ``"unknown"``.
    """
    try:
        data = json.loads(text)
    except ValueError:
        return []
    layers = data.get("Layers", []) if isinstance(data, dict) else []
    result = []
    for layer in layers:
        if isinstance(layer, str):
            result.append({"name": layer, "type": "unknown", "precision": "unknown", "outputs": []})
            continue
        outputs = [str(o.get("Format/Datatype", "")) for o in layer.get("Outputs", []) if isinstance(o, dict)]
        precisions = sorted({_precision_of(o) for o in outputs}) or ["unknown"]
        result.append(
            {
                "name": str(layer.get("Name", "")),
                "type": str(layer.get("LayerType", "unknown")),
                "precision": precisions[0] if len(precisions) == 1 else "+".join(precisions),
                "outputs": outputs,
            }
        )
    return result


def precision_counts(layers: Iterable[dict]) -> dict[str, int]:
    """How many layers run in each precision, sorted by precision name."""
    counts: dict[str, int] = {}
    for layer in layers:
        counts[layer["precision"]] = counts.get(layer["precision"], 0) + 1
    return dict(sorted(counts.items()))


def read_calibration_cache(path: Path) -> bytes:
    """A TensorRT calibration cache's bytes (text: ``TRT-<version>-<algorithm>`` then ``tensor: hex``)."""
    path = Path(path)
    if not path.is_file():
        raise RftrtError(f"calibration cache {path} is missing; re-export the bundle")
    cache = path.read_bytes()
    if not cache.startswith(b"TRT-"):
        raise RftrtError(f"{path.name} is not a TensorRT calibration cache (it must start with 'TRT-<version>-<algorithm>')")
    return cache


def calibration_cache_note(path: Path, cache: bytes) -> str:
    """What the sidecar says about the INT8 scales: the cache's file name and its header line."""
    header = cache.split(b"\n", 1)[0].decode(errors="replace").strip()
    return f"calibration cache {Path(path).name} ({header})"
