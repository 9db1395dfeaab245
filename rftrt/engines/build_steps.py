"""The steps of a build that call TensorRT, and :data:`PATH_STEPS`, the steps each dialect path runs.

Every path (:mod:`rftrt.engines.build_plan` says which one a bundle takes and with what flags): an
optimisation profile from the bundle's batch (when the ONNX's batch is dynamic), the workspace pool
limit, the builder optimisation level, a timing cache read from and written back to a file, DLA
(``default_device_type``, ``DLA_core``, ``GPU_FALLBACK``; static shapes only; ``can_run_on_DLA`` per
layer set beside the bundle's predicted placement, and on strong-11 the parser's own DLA check) and an engine inspector
dump of each layer's precision, checked against the precision plan
(:func:`~rftrt.engines.build_decisions.check_layer_precisions`).

The table is the code: :data:`PATH_STEPS` lists the step functions each path runs, in order, and the
build runs exactly those. Each step declares with :func:`~rftrt.engines.tensorrt_api.uses` the
TensorRT names it touches, so :data:`API_USED` (per path) is derived from the code, not written twice.
``tests/test_trt_api_conformance.py`` checks every declared name against the Python API of the
TensorRT releases each path runs with (8.6.1; 10.3.0 and 10.16.1.11; 11.4.0.106 in
``data/trt_api/``) and parses each step's source to check its declaration is complete. On the device,
:func:`~rftrt.engines.tensorrt_api.missing_api` repeats the check against the installed ``tensorrt``
before building.

The steps share a :class:`BuildState`; ``tensorrt`` comes in as ``state.trt``, imported by the caller
on the device, so importing this module does not need it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import RftrtError
from ..files import write_file_atomic
from ..targets.dla import compare_with_tensorrt
from .build_decisions import (
    BuildPlan,
    cache_for_tensorrt,
    cache_rejected_message,
    calibration_cache_note,
    check_layer_precisions,
    check_network_io,
    match_fp32_layers,
    parse_layer_information,
    precision_counts,
    read_calibration_cache,
)
from .build_spec import BuildSpec
from .tensorrt_api import api_names, tensorrt_logger, uses

__all__ = ["BuildState", "PATH_STEPS", "API_USED"]


@dataclass
class BuildState:
    """What the steps share: the inputs, the TensorRT objects made so far, and what the sidecar records."""

    trt: Any
    spec: BuildSpec
    plan: BuildPlan
    onnx_path: Path
    timing_cache_path: Path | None
    calibration_cache_path: Path | None
    log: Callable[[str], None]
    verbose: bool = False
    logger: Any = None
    builder: Any = None
    network: Any = None
    parser: Any = None
    config: Any = None
    profile: Any = None
    serialized: bytes | None = None
    #: Python objects TensorRT calls back into; kept alive for the build
    keep: list = field(default_factory=list)
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    dynamic_batch: bool = True
    #: (name, LayerType member name) of each network layer, as parsed
    network_layers: list = field(default_factory=list)
    #: set by the calibrator when TensorRT asks it for images: why the build must fail
    calibration_rejected: str | None = None
    #: the bundle's predicted DLA placement (``dla_prediction.json``), set beside TensorRT's answer
    dla_prediction: dict | None = None
    record: dict = field(default_factory=dict)


@uses("Builder", calls=(tensorrt_logger,))
def _create_builder(state: BuildState) -> None:
    trt = state.trt
    state.logger = tensorrt_logger(trt, verbose=state.verbose, echo=state.log)
    try:
        state.builder = trt.Builder(state.logger)
    except (TypeError, RuntimeError) as exc:
        raise RftrtError(f"TensorRT could not create a builder: no usable CUDA GPU? ({str(exc).splitlines()[0]})") from None


@uses("Builder.create_network", "NetworkDefinitionCreationFlag.EXPLICIT_BATCH")
def _create_network_explicit_batch(state: BuildState) -> None:
    trt = state.trt
    state.network = state.builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))


@uses("Builder.create_network", "NetworkDefinitionCreationFlag.STRONGLY_TYPED")
def _create_network_strongly_typed(state: BuildState) -> None:
    trt = state.trt
    state.network = state.builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))


@uses("Builder.create_network")
def _create_network(state: BuildState) -> None:
    # 10.x weak: explicit batch is the only mode. 11.x: strongly typed is the only mode.
    state.network = state.builder.create_network(0)


@uses(
    "OnnxParser",
    "OnnxParser.parse_from_file",
    "OnnxParser.num_errors",
    "OnnxParser.get_error",
    "ParserError.desc",
    "ParserError.node",
)
def _parse_onnx(state: BuildState) -> None:
    trt = state.trt
    parser = trt.OnnxParser(state.network, state.logger)
    state.parser = parser
    if not parser.parse_from_file(str(state.onnx_path)):
        errors = [parser.get_error(i) for i in range(parser.num_errors)]
        detail = f"{errors[0].desc()} (ONNX node #{errors[0].node()})" if errors else "no error reported"
        more = f"; {len(errors) - 1} more errors above" if len(errors) > 1 else ""
        raise RftrtError(f"TensorRT could not parse {state.onnx_path.name}: {detail}{more}")


@uses(
    "INetworkDefinition.num_inputs",
    "INetworkDefinition.get_input",
    "INetworkDefinition.num_outputs",
    "INetworkDefinition.get_output",
    "ITensor.name",
    "ITensor.shape",
)
def _read_io(state: BuildState) -> None:
    network = state.network
    state.inputs = [(t.name, tuple(int(d) for d in t.shape)) for t in map(network.get_input, range(network.num_inputs))]
    state.outputs = [(t.name, tuple(int(d) for d in t.shape)) for t in map(network.get_output, range(network.num_outputs))]
    state.dynamic_batch = check_network_io(state.inputs, state.outputs, state.spec)


@uses("INetworkDefinition.num_layers", "INetworkDefinition.get_layer", "ILayer.name", "ILayer.type")
def _read_network_layers(state: BuildState) -> None:
    # The ONNX parser names each layer after its node: the precision check maps engine layers back by these names.
    network = state.network
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    state.network_layers = [(layer.name, str(layer.type).rsplit(".", 1)[-1]) for layer in layers]


@uses(
    "Builder.create_builder_config",
    "IBuilderConfig.set_memory_pool_limit",
    "MemoryPoolType.WORKSPACE",
    "IBuilderConfig.builder_optimization_level",
    "IBuilderConfig.profiling_verbosity",
    "ProfilingVerbosity.DETAILED",
)
def _create_config(state: BuildState) -> None:
    trt = state.trt
    config = state.builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, state.plan.workspace_bytes)
    config.builder_optimization_level = state.plan.builder_optimization_level
    # Detailed, so the engine inspector reports each layer's precision for the sidecar.
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    state.config = config


@uses("Builder.create_optimization_profile", "IOptimizationProfile.set_shape", "IBuilderConfig.add_optimization_profile")
def _add_profile(state: BuildState) -> None:
    if not state.dynamic_batch:
        state.record["profile"] = "static ONNX: no optimisation profile needed"
        return
    low, opt, high = state.plan.profile
    profile = state.builder.create_optimization_profile()
    profile.set_shape(state.spec.input_name, low, opt, high)
    if state.config.add_optimization_profile(profile) < 0:
        raise RftrtError(f"TensorRT refused the optimisation profile {low} / {opt} / {high}")
    state.profile = profile


@uses("IBuilderConfig.create_timing_cache", "IBuilderConfig.set_timing_cache")
def _load_timing_cache(state: BuildState) -> None:
    config, path = state.config, state.timing_cache_path
    data = path.read_bytes() if path is not None and path.is_file() else b""
    cache = config.create_timing_cache(data)
    if not config.set_timing_cache(cache, False):
        state.log(f"warning: timing cache {path} does not fit this TensorRT or GPU; starting an empty one")
        data = b""
        cache = config.create_timing_cache(data)
        config.set_timing_cache(cache, False)
    state.keep.append(cache)
    state.record["timing_cache"] = {"path": str(path) if path else None, "loaded_bytes": len(data)}


@uses("IBuilderConfig.set_flag", "BuilderFlag.FP16", "BuilderFlag.INT8", "BuilderFlag.OBEY_PRECISION_CONSTRAINTS")
def _set_precision_flags(state: BuildState) -> None:
    trt = state.trt
    flags = {
        "FP16": trt.BuilderFlag.FP16,
        "INT8": trt.BuilderFlag.INT8,
        "OBEY_PRECISION_CONSTRAINTS": trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS,
    }
    for name in state.plan.builder_flags:
        if name in flags:
            state.config.set_flag(flags[name])


@uses(
    "INetworkDefinition.num_layers",
    "INetworkDefinition.get_layer",
    "ILayer.name",
    "ILayer.precision",
    "ILayer.num_outputs",
    "ILayer.get_output",
    "ILayer.set_output_type",
    "ITensor.dtype",
    "DataType.FLOAT",
    "DataType.HALF",
)
def _pin_fp32_layers(state: BuildState) -> None:
    if not state.plan.fp32_layers:
        return
    trt, network = state.trt, state.network
    names = [network.get_layer(i).name for i in range(network.num_layers)]
    matches, missing = match_fp32_layers(names, state.plan.fp32_layers)
    floating = (trt.DataType.FLOAT, trt.DataType.HALF)
    pinned = 0
    for indices in matches.values():
        for index in indices:
            layer = network.get_layer(index)
            layer.precision = trt.DataType.FLOAT
            for o in range(layer.num_outputs):
                if layer.get_output(o).dtype in floating:
                    layer.set_output_type(o, trt.DataType.FLOAT)
            pinned += 1
    if missing:
        state.log(
            f"warning: {len(missing)} of the precision plan's {len(state.plan.fp32_layers)} FP32 nodes have no layer "
            f"of that name in TensorRT's network (first: {missing[0]}); they are not pinned (see the sidecar)"
        )
    state.record["fp32_pins"] = {
        "nodes": len(state.plan.fp32_layers),
        "nodes_pinned": len(matches),
        "layers_pinned": pinned,
        "missing": missing,
    }


@uses(
    "IInt8EntropyCalibrator2",
    "IInt8EntropyCalibrator2.get_batch_size",
    "IInt8EntropyCalibrator2.get_batch",
    "IInt8EntropyCalibrator2.read_calibration_cache",
    "IInt8EntropyCalibrator2.write_calibration_cache",
    "IBuilderConfig.int8_calibrator",
    "IBuilderConfig.set_calibration_profile",
)
def _use_calibration_cache(state: BuildState) -> None:
    """INT8 scales from the bundle's calibration cache: a calibrator that serves the cache, with the
    installed TensorRT's version in its header, and no data."""
    if state.calibration_cache_path is None:
        if "INT8" in state.plan.builder_flags:
            state.record["int8"] = f"explicit Q/DQ in {state.onnx_path.name}"
        return
    trt = state.trt
    cache = read_calibration_cache(state.calibration_cache_path)
    served = cache_for_tensorrt(cache, state.plan.tensorrt_version)
    rejection = cache_rejected_message(state.calibration_cache_path.name, cache, served, state.plan.tensorrt_version)

    class _CacheCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str]) -> None:
            # TensorRT asks for data only when it did not take the cache. An exception raised here
            # would not reach rf-build (the bindings print it and report "no more batches"; older ones
            # abort the process), so the calibrator says why once, ends the calibration with no data
            # (None) and _build fails with that reason.
            if state.calibration_rejected is None:
                state.calibration_rejected = rejection
                state.log(f"error: {rejection}")
            return None

        def read_calibration_cache(self) -> bytes:
            return served

        def write_calibration_cache(self, data: bytes) -> None:
            return None  # the bundle's cache is the source of truth

    calibrator = _CacheCalibrator()
    state.keep.append(calibrator)
    state.config.int8_calibrator = calibrator
    if state.profile is not None:
        state.config.set_calibration_profile(state.profile)
    state.record["int8"] = calibration_cache_note(state.calibration_cache_path, cache, served)


@uses(
    "Builder.num_DLA_cores",
    "IBuilderConfig.default_device_type",
    "DeviceType.DLA",
    "IBuilderConfig.DLA_core",
    "IBuilderConfig.set_flag",
    "BuilderFlag.GPU_FALLBACK",
    "IBuilderConfig.can_run_on_DLA",
    "INetworkDefinition.num_layers",
    "INetworkDefinition.get_layer",
)
def _use_dla(state: BuildState) -> None:
    core = state.plan.dla_core
    if core is None:
        return
    trt, config, network = state.trt, state.config, state.network
    cores = state.builder.num_DLA_cores
    if cores == 0:
        gpu = state.record.get("gpu", {}).get("name", "this GPU")
        raise RftrtError(f"DLA core {core} asked, but {gpu} has no DLA (DLA is on Orin); re-export the bundle without --dla")
    if core >= cores:
        raise RftrtError(f"DLA core {core} does not exist here: this device has {cores} DLA cores, numbered 0..{cores - 1}")
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = core
    if "GPU_FALLBACK" in state.plan.builder_flags:
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    answers = [bool(config.can_run_on_DLA(network.get_layer(i))) for i in range(network.num_layers)]
    state.record["dla"] = {
        "core": core,
        "network_layers_on_dla": sum(answers),
        "network_layers_on_gpu": len(answers) - sum(answers),
        "basis": "IBuilderConfig.can_run_on_DLA for each network layer, before the build",
    }
    if state.dla_prediction is not None:
        # the parser names each node's layers after the node, as for the FP32 pins
        nodes = [p["name"] for p in state.dla_prediction.get("placements", [])]
        node_layers, _ = match_fp32_layers([name for name, _ in state.network_layers], nodes)
        state.record["dla"]["prediction"] = compare_with_tensorrt(state.dla_prediction, node_layers, answers)


@uses(
    "Builder.create_network",
    "OnnxParser",
    "OnnxParser.set_flag",
    "OnnxParser.set_builder_config",
    "OnnxParser.parse_from_file",
    "OnnxParser.num_errors",
    "OnnxParser.get_error",
    "ParserError.desc",
    "ParserError.node",
    "OnnxParserFlag.REPORT_CAPABILITY_DLA",
)
def _probe_parser_dla(state: BuildState) -> None:
    """The parser's own DLA answer, where the release has it (REPORT_CAPABILITY_DLA: 10.16 and 11.4
    of the releases checked; not 8.6 or 10.3, so only the strong-11 path runs this): a second parse,
    into a network that is not built, which fails at the first node whose layer cannot run on DLA."""
    if state.plan.dla_core is None:
        return
    trt = state.trt
    state.log("probing the ONNX parser's DLA capability (REPORT_CAPABILITY_DLA): an error it logs is recorded, not fatal")
    network = state.builder.create_network(0)
    parser = trt.OnnxParser(network, state.logger)
    parser.set_flag(trt.OnnxParserFlag.REPORT_CAPABILITY_DLA)
    parser.set_builder_config(state.config)
    parsed = bool(parser.parse_from_file(str(state.onnx_path)))
    errors = [parser.get_error(i) for i in range(parser.num_errors)]
    state.record["dla"]["parser_capability"] = {
        "basis": "OnnxParserFlag.REPORT_CAPABILITY_DLA with the build's config: parsing fails at the first node that cannot run on DLA",
        "every_node_on_dla": parsed,
        "first_failure": {"desc": errors[0].desc(), "node": int(errors[0].node())} if errors else None,
    }
    state.keep += [network, parser]  # freed after the build, the parser first (the list frees its last item first)


@uses(
    "IProgressMonitor",
    "IProgressMonitor.phase_start",
    "IProgressMonitor.step_complete",
    "IProgressMonitor.phase_finish",
    "IBuilderConfig.progress_monitor",
)
def _use_progress_monitor(state: BuildState) -> None:
    trt, log = state.trt, state.log
    starts: dict[str, float] = {}
    depth: dict[str, int] = {}

    class _Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            depth[phase_name] = depth.get(parent_phase, -1) + 1 if parent_phase else 0
            starts[phase_name] = time.perf_counter()
            if depth[phase_name] <= 1:
                log(f"  {'  ' * depth[phase_name]}{phase_name} ({num_steps} steps)")

        def step_complete(self, phase_name: str, step: int) -> bool:
            return True  # never cancel

        def phase_finish(self, phase_name: str) -> None:
            if depth.get(phase_name, 2) <= 1:
                seconds = time.perf_counter() - starts.get(phase_name, time.perf_counter())
                log(f"  {'  ' * depth[phase_name]}{phase_name} done ({seconds:.1f} s)")

    monitor = _Monitor()
    state.keep.append(monitor)
    state.config.progress_monitor = monitor
    state.record["progress"] = "IProgressMonitor"


def _use_progress_log(state: BuildState) -> None:
    # TensorRT 8.6 has no IProgressMonitor: _build's START/FINISH lines are all there is.
    state.record["progress"] = "START/FINISH log (TensorRT 8.6 has no IProgressMonitor)"


@uses("Builder.build_serialized_network")
def _build(state: BuildState) -> None:
    state.log(f"START building {state.spec.engine} with TensorRT {state.plan.tensorrt_version} ({state.plan.path}); this takes minutes")
    start = time.perf_counter()
    plan = state.builder.build_serialized_network(state.network, state.config)
    seconds = time.perf_counter() - start
    if state.calibration_rejected is not None:
        raise RftrtError(state.calibration_rejected)
    if plan is None:
        last = state.logger.errors[-1] if state.logger.errors else "no error message; run with --verbose"
        raise RftrtError(f"TensorRT could not build the engine ({last})")
    state.serialized = bytes(plan)
    state.record["build_seconds"] = round(seconds, 1)
    state.log(f"FINISH built {state.spec.engine}: {len(state.serialized) / 2**20:.1f} MiB in {seconds:.1f} s")


@uses("IBuilderConfig.get_timing_cache", "ITimingCache.serialize")
def _save_timing_cache(state: BuildState) -> None:
    path = state.timing_cache_path
    if path is None:
        return
    cache = state.config.get_timing_cache()
    if cache is None:
        return
    data = bytes(cache.serialize())
    write_file_atomic(path, data)
    state.record["timing_cache"] = {**state.record.get("timing_cache", {}), "saved_bytes": len(data)}


@uses(
    "Runtime",
    "Runtime.DLA_core",
    "Runtime.deserialize_cuda_engine",
    "ICudaEngine.num_layers",
    "ICudaEngine.create_engine_inspector",
    "EngineInspector.get_engine_information",
    "LayerInformationFormat.JSON",
)
def _inspect(state: BuildState) -> None:
    trt = state.trt
    runtime = trt.Runtime(state.logger)
    if state.plan.dla_core is not None:
        runtime.DLA_core = state.plan.dla_core
    engine = runtime.deserialize_cuda_engine(state.serialized)
    if engine is None:
        raise RftrtError("TensorRT built an engine it cannot load back; run with --verbose for its log")
    inspector = engine.create_engine_inspector()
    layers = parse_layer_information(inspector.get_engine_information(trt.LayerInformationFormat.JSON)) if inspector else []
    state.record["engine_layers"] = engine.num_layers
    state.record["layers"] = layers
    state.record["layer_precisions"] = precision_counts(layers)
    if state.plan.dla_core is not None:
        state.record["dla"] = {
            **state.record.get("dla", {}),
            "engine_layers_on_dla": state.logger.dla_layers,
            "engine_layers_on_gpu": state.logger.gpu_layers,
            "engine_basis": "TensorRT's [DlaLayer]/[GpuLayer] build log lines (INFO)",
        }
    check = check_layer_precisions(state.spec, state.network_layers, layers)
    state.record["precision_check"] = check.as_dict()
    if check.failure:
        raise RftrtError(f"the engine does not keep the precision plan: {check.failure}; the engine was not written")
    state.log(f"precision check: {check.note}")


_WEAK = (
    _parse_onnx,
    _read_io,
    _read_network_layers,
    _create_config,
    _add_profile,
    _load_timing_cache,
    _set_precision_flags,
    _pin_fp32_layers,
    _use_calibration_cache,
    _use_dla,
)
_STRONG = (_parse_onnx, _read_io, _read_network_layers, _create_config, _add_profile, _load_timing_cache, _use_dla)
_FINISH = (_build, _save_timing_cache, _inspect)

#: The steps each dialect path runs, in order: the one table the build follows.
PATH_STEPS: dict[str, tuple[Callable[[BuildState], None], ...]] = {
    "weak-8.6": (_create_builder, _create_network_explicit_batch, *_WEAK, _use_progress_log, *_FINISH),
    "weak-10": (_create_builder, _create_network, *_WEAK, _use_progress_monitor, *_FINISH),
    "strong-10": (_create_builder, _create_network_strongly_typed, *_STRONG, _use_progress_monitor, *_FINISH),
    "strong-11": (_create_builder, _create_network, *_STRONG, _probe_parser_dla, _use_progress_monitor, *_FINISH),
}

#: Every TensorRT name each path touches, derived from the steps' declarations.
API_USED: dict[str, tuple[str, ...]] = {path: api_names(steps) for path, steps in PATH_STEPS.items()}
