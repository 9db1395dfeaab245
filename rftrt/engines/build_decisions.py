"""What a build decides, with no TensorRT in sight: the plan it follows (:class:`BuildPlan`, made by
:func:`rftrt.engines.build_plan.plan_build`) and the decisions its steps take from what TensorRT reports.

Those are: the network's inputs and outputs against ``build.json`` (:func:`check_network_io`), the
network layers to pin for each FP32 node of the precision plan (:func:`match_fp32_layers`), each
engine layer's precision from the engine inspector's JSON (:func:`parse_layer_information`,
:func:`precision_counts`) and whether the engine kept the plan's precisions
(:func:`check_layer_precisions`), and the bundle's calibration cache as the calibrator serves it to
the installed TensorRT (:func:`read_calibration_cache`, :func:`cache_for_tensorrt`,
:func:`cache_rejected_message`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import RftrtError
from ..targets.batch import format_batch
from ..targets.tensorrt import version_tag
from .build_spec import BuildSpec

__all__ = [
    "BuildPlan",
    "match_fp32_layers",
    "check_network_io",
    "parse_layer_information",
    "precision_counts",
    "PrecisionCheck",
    "check_layer_precisions",
    "read_calibration_cache",
    "installed_version_tag",
    "cache_for_tensorrt",
    "cache_rejected_message",
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
    ("bfloat16", "bf16"),
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
    """Each engine layer's name, type and output precision, and the ``"Format/Datatype"`` of each of
    its inputs and outputs, from the engine inspector's JSON.

    With detailed profiling verbosity each layer is an object whose inputs and outputs carry a
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
            result.append({"name": layer, "type": "unknown", "precision": "unknown", "inputs": [], "outputs": []})
            continue
        inputs, outputs = (
            [str(t.get("Format/Datatype", "")) for t in layer.get(key, []) if isinstance(t, dict)] for key in ("Inputs", "Outputs")
        )
        precisions = sorted({_precision_of(o) for o in outputs}) or ["unknown"]
        result.append(
            {
                "name": str(layer.get("Name", "")),
                "type": str(layer.get("LayerType", "unknown")),
                "precision": precisions[0] if len(precisions) == 1 else "+".join(precisions),
                "inputs": inputs,
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


#: Network layer types (``trt.LayerType`` member names) that compute on float data. The others move,
#: reshape, cast or (de)quantize it, and TensorRT gives them whatever format suits their neighbours.
_COMPUTE_LAYER_TYPES = frozenset(
    {
        "ACTIVATION", "CONVOLUTION", "DECONVOLUTION", "EINSUM", "ELEMENTWISE", "FULLY_CONNECTED", "LRN",
        "MATRIX_MULTIPLY", "NORMALIZATION", "PARAMETRIC_RELU", "POOLING", "REDUCE", "SCALE", "SOFTMAX", "UNARY",
    }
)  # fmt: skip
_FLOAT_PRECISIONS = frozenset({"fp32", "fp16", "bf16", "fp8", "int8"})
_HALF = frozenset({"fp16", "bf16"})
#: How the engine inspector joins the nodes of a fused layer: "a + b", horizontal "a || b", and
#: pointwise fusions "PWN(a, PWN(b, c))".
_FUSION_SEPARATORS = re.compile(r" \+ | \|\| |, |PWN\(|\)")
_SHOWN = 5


def _engine_layer_parts(name: str, network_types: dict[str, str]) -> list[str] | None:
    """The network layers an engine layer was made from, or None when any part has no network layer
    of that name: reformats ("Reformatting CopyNode for …"), Myelin and DLA regions
    ("{ForeignNode[first...last]}", which name only their ends), clones TensorRT makes of Q/DQ nodes,
    layers it names itself ("(Unnamed Layer* 12) [Shuffle]")."""
    if name in network_types:
        return [name]
    if "ForeignNode[" in name:
        return None
    parts = [part.strip() for part in _FUSION_SEPARATORS.split(name) if part.strip()]
    return parts if parts and all(part in network_types for part in parts) else None


def _float_precisions(formats: Iterable[str]) -> set[str]:
    return {_precision_of(f) for f in formats} & _FLOAT_PRECISIONS


def _named(layers: Sequence[str]) -> str:
    more = f" and {len(layers) - _SHOWN} more" if len(layers) > _SHOWN else ""
    return ", ".join(layers[:_SHOWN]) + more


@dataclass(frozen=True)
class PrecisionCheck:
    """Whether the engine kept the plan's precisions (:func:`check_layer_precisions`), as data."""

    checked: bool
    #: what was judged, or why nothing was
    note: str
    #: engine layers judged (mapped to network layers of one kind: all pinned, or all meant for FP16)
    judged: int = 0
    #: engine layers that could not be mapped back to network layers by name
    unmapped: int = 0
    #: layers meant for FP16 (INT8 too in INT8 builds) that run in FP32
    fp16_as_fp32: tuple[str, ...] = ()
    #: layers meant for FP16 that run in FP16 or INT8
    reduced: int = 0
    #: layers pinned to FP32 that run in FP16
    pinned_as_fp16: tuple[str, ...] = ()
    #: the build's failure, naming the layers (None: the engine is as planned)
    failure: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def _not_checked(spec: BuildSpec, network_layers: Sequence, engine_layers: Sequence[dict]) -> str | None:
    """Why the precisions cannot be checked, or None when they can."""
    if spec.precision == "fp32":
        return "FP32 build: every layer may run in FP32"
    if spec.dialect == "strong" and spec.fp32_islands is None:
        return "build.json does not list the typed ONNX's FP32 islands (it predates them): re-export to have the precisions checked"
    if not network_layers:
        return "no network layers were read"
    if not engine_layers:
        return "the engine inspector gave no layer information"
    if not any(_float_precisions(layer.get("inputs", []) + layer.get("outputs", [])) for layer in engine_layers):
        return "the engine inspector gave no per-layer datatypes (older TensorRT, or profiling verbosity below DETAILED)"
    return None


def check_layer_precisions(spec: BuildSpec, network_layers: Sequence[tuple[str, str]], engine_layers: Sequence[dict]) -> PrecisionCheck:
    """Did the engine keep the precision plan? ``network_layers`` are the parsed network's (name,
    ``LayerType`` name) pairs, ``engine_layers`` what :func:`parse_layer_information` made of the
    engine inspector's JSON.

    Mapping engine layers back to ONNX nodes: TensorRT's ONNX parser names each network layer after
    its ONNX node (extra layers for the same node ``<node>_N``, see :func:`match_fp32_layers`), and
    the inspector names a fused engine layer after the network layers in it ("a + b", "a || b",
    "PWN(a, PWN(b, c))"). An engine layer is judged only when every one of those parts is a network
    layer of that exact name; reformats, Myelin/DLA regions ("{ForeignNode[…]}"), Q/DQ clones and
    TensorRT's own unnamed layers are not. Of its parts only compute layers count
    (:data:`_COMPUTE_LAYER_TYPES`: convolutions, matrix multiplies, element-wise, activations,
    reductions, normalisations…); shuffles, casts, constants and Q/DQ take their neighbours' format.
    A layer whose compute parts are all pinned (``fp32_layers`` of a weakly typed build, the typed
    ONNX's ``fp32_islands``) must not output FP16; one whose compute parts are all meant for FP16 is
    FP32 when every float datatype on its inputs and outputs is FP32 (INT8 counts as reduced in INT8
    builds). A layer fusing pinned and unpinned nodes is not judged.

    Failures: a pinned layer in FP16; on strongly typed builds, any layer meant for FP16 in FP32 (the
    types are the ONNX's, so TensorRT has no choice); on weakly typed builds only when every judged
    layer meant for FP16 is FP32 (the FP16 flag permits FP16, and TensorRT keeps FP32 for a layer
    where that is faster or no FP16 kernel exists, so single layers are its choice, not an error).
    """
    why_not = _not_checked(spec, network_layers, engine_layers)
    if why_not:
        return PrecisionCheck(checked=False, note=why_not)
    network_types = dict(network_layers)
    names = [name for name, _ in network_layers]
    pin_nodes = spec.fp32_layers if spec.dialect == "weak" else (spec.fp32_islands or ())
    matches, _ = match_fp32_layers(names, pin_nodes)
    pinned = {names[i] for indices in matches.values() for i in indices}
    judged = unmapped = reduced = 0
    as_fp32: list[str] = []
    as_fp16: list[str] = []
    for layer in engine_layers:
        parts = _engine_layer_parts(layer["name"], network_types)
        if parts is None:
            unmapped += 1
            continue
        compute = [part for part in parts if network_types[part] in _COMPUTE_LAYER_TYPES]
        kinds = {part in pinned for part in compute}
        if len(kinds) != 1:  # no compute layer in it, or pinned and unpinned nodes fused together
            continue
        judged += 1
        if kinds == {True}:
            if _float_precisions(layer.get("outputs", [])) & _HALF:
                as_fp16.append(layer["name"])
            continue
        floats = _float_precisions(layer.get("inputs", []) + layer.get("outputs", []))
        if floats == {"fp32"}:
            as_fp32.append(layer["name"])
        elif floats & _HALF or (spec.precision == "int8" and "int8" in floats):
            reduced += 1
    failures = []
    if as_fp16:
        failures.append(f"{len(as_fp16)} layers pinned to FP32 run in FP16: {_named(as_fp16)}")
    if as_fp32 and (spec.dialect == "strong" or not reduced):
        meant = "the typed ONNX has in FP16" if spec.dialect == "strong" else "the precision plan wants in FP16 (every one of them)"
        failures.append(f"{len(as_fp32)} layers {meant} run in FP32: {_named(as_fp32)}")
    note = (
        f"{judged} engine layers judged against the plan by name ({unmapped} could not be mapped to network layers)"
        + (f"; TensorRT kept {len(as_fp32)} layers the FP16 flag allows in FP32 (its choice: faster or no FP16 kernel)" if as_fp32 and not failures else "")
    )
    return PrecisionCheck(
        checked=True, note=note, judged=judged, unmapped=unmapped, fp16_as_fp32=tuple(as_fp32), reduced=reduced,
        pinned_as_fp16=tuple(as_fp16), failure="; ".join(failures) or None,
    )  # fmt: skip


# --- the calibration cache ------------------------------------------------------------------------

_CACHE_HEADER = re.compile(rb"^TRT-(\d+)-([A-Za-z0-9]+)$")


def _header(cache: bytes) -> str:
    return cache.split(b"\n", 1)[0].decode(errors="replace").strip()


def read_calibration_cache(path: Path) -> bytes:
    """A TensorRT calibration cache's bytes (text: ``TRT-<version>-<algorithm>`` then ``tensor: hex``)."""
    path = Path(path)
    if not path.is_file():
        raise RftrtError(f"calibration cache {path} is missing; re-export the bundle")
    cache = path.read_bytes()
    if not _CACHE_HEADER.match(cache.split(b"\n", 1)[0].strip()):
        raise RftrtError(f"{path.name} is not a TensorRT calibration cache (it must start with 'TRT-<version>-<algorithm>')")
    return cache


def installed_version_tag(tensorrt_version: str) -> int:
    """The version number a TensorRT writes in its cache headers, from its ``__version__``: that has
    four parts (8.6.12.1, 10.3.0.30), and the fourth, a build number, is not in the number."""
    return version_tag(".".join(str(tensorrt_version).split(".")[:3]))


def cache_for_tensorrt(cache: bytes, tensorrt_version: str) -> bytes:
    """The cache as the calibrator serves it to TensorRT ``tensorrt_version``: the header's version
    replaced by that TensorRT's number, the scales untouched.

    TensorRT skips a cache whose header carries another version and recalibrates; the bundle's
    header holds the version rf-export was given (8.6 → 8600), while DRIVE OS 6 ships 8.6.10 to
    8.6.13. The scales are the same for every patch release, so the header is made to fit here and
    the bundle's file stays as it is.
    """
    first, sep, rest = cache.partition(b"\n")
    match = _CACHE_HEADER.match(first.strip())
    if not match:
        raise RftrtError(f"not a TensorRT calibration cache: its first line is {_header(cache)[:60]!r}, not TRT-<version>-<algorithm>")
    return b"TRT-%d-%s" % (installed_version_tag(tensorrt_version), match.group(2)) + sep + rest


def cache_rejected_message(name: str, cache: bytes, served: bytes, tensorrt_version: str) -> str:
    """rf-build's error when TensorRT asks the cache-serving calibrator for images: it did not take the cache."""
    return (
        f"TensorRT asked the calibrator for images: it rejected {name} (header {_header(cache)}, served as "
        f"{_header(served)}; this TensorRT {tensorrt_version} and its IInt8EntropyCalibrator2 want "
        f"TRT-{installed_version_tag(tensorrt_version)}-EntropyCalibration2); "
        "the calibrator has no images, so the INT8 scales cannot come from this cache: recalibrate with rf-calib "
        f"--trt-version {'.'.join(str(tensorrt_version).split('.')[:3])} and rebuild"
    )


def calibration_cache_note(path: Path, cache: bytes, served: bytes) -> str:
    """What the sidecar says about the INT8 scales: the cache's file name, its header and the header served."""
    note = f"calibration cache {Path(path).name} ({_header(cache)}"
    return note + (f", served as {_header(served)})" if served != cache else ")")
