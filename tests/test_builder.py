"""The TensorRT builder: every decision it makes before TensorRT is touched (as data), the version and
bundle checks of rf-build, the sidecar, and - where TensorRT and a GPU are present - a real build,
run and verification of an rf-export bundle."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import copy_bundle, exported_bundle, one_line_error, process_error, run_cli, spec_for, tensorrt_importable

from rftrt.engines.build_decisions import (
    cache_for_tensorrt,
    check_layer_precisions,
    check_network_io,
    installed_version_tag,
    match_fp32_layers,
    parse_layer_information,
    read_calibration_cache,
)
from rftrt.engines.build_plan import check_tensorrt_version, dialect_path, int8_route, plan_build, rf_export_command
from rftrt.engines.build_spec import BuildSpec, Int8Source
from rftrt.engines.build_steps import API_USED, PATH_STEPS, BuildState, _build, _inspect, _use_calibration_cache
from rftrt.engines.bundle import BUILD_OUTPUTS, load_bundle_spec
from rftrt.engines.sidecar import sidecar_path, sidecar_record
from rftrt.engines.tensorrt_api import missing_api
from rftrt.errors import RftrtError
from rftrt.targets.batch import BatchProfile
from rftrt.targets.profiles import load_target

# --- dialect paths --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "version,dialect,path",
    [
        ("8.6", "weak", "weak-8.6"),
        ("8.6.12", "weak", "weak-8.6"),
        ("10.3", "weak", "weak-10"),
        ("10.16.1.11", "strong", "strong-10"),
        ("11.4", "strong", "strong-11"),
        ("11.4.0.106", "strong", "strong-11"),
    ],
)
def test_dialect_path(version, dialect, path):
    assert dialect_path(version, dialect) == path


def test_dialect_paths_that_do_not_exist_are_refused():
    assert "TensorRT 11 builds strongly typed networks only" in one_line_error(dialect_path, "11.4", "weak")
    assert "8.6 has no strongly typed networks" in one_line_error(dialect_path, "8.6", "strong")
    assert "TensorRT 8.5 is not one this builder knows" in one_line_error(dialect_path, "8.5.2", "weak")
    assert "TensorRT 12.0 is not one this builder knows" in one_line_error(dialect_path, "12.0", "strong")
    assert "not one of weak, strong" in one_line_error(dialect_path, "10.3", "typed")


# --- the plan: every decision as data -------------------------------------------------------


def test_plan_for_the_real_orin_bundle():
    spec = load_bundle_spec(exported_bundle("orin"))
    plan = plan_build(spec)
    assert plan.path == "weak-8.6"
    assert plan.network_flags == ("EXPLICIT_BATCH",)
    assert plan.builder_flags == ("FP16", "OBEY_PRECISION_CONSTRAINTS")
    planned = json.loads((exported_bundle("orin") / "precision_plan.json").read_text())["fp32_nodes"]
    assert plan.fp32_layers == spec.fp32_layers == tuple(planned)  # every plan node pinned, data movement too
    assert plan.profile == ((1, 3, 64, 64), (8, 3, 64, 64), (32, 3, 64, 64))
    assert plan.workspace_bytes == 4096 << 20 and plan.builder_optimization_level == 3
    assert plan.progress == "log" and plan.calibration_cache is None and plan.dla_core is None
    assert plan.steps[:2] == ("_create_builder", "_create_network_explicit_batch")
    assert plan.steps[-3:] == ("_build", "_save_timing_cache", "_inspect")
    assert "_use_progress_log" in plan.steps and "_use_progress_monitor" not in plan.steps


def test_plan_for_the_real_l40_bundle_is_strongly_typed_11():
    plan = plan_build(load_bundle_spec(exported_bundle("l40")))
    assert plan.path == "strong-11"
    assert plan.network_flags == () and plan.builder_flags == () and plan.fp32_layers == ()
    assert plan.workspace_bytes == 8192 << 20 and plan.progress == "monitor"
    assert "_set_precision_flags" not in plan.steps and "_pin_fp32_layers" not in plan.steps


def test_plan_weak_10_has_no_explicit_batch_and_a_progress_monitor():
    plan = plan_build(spec_for(load_target("jetson-orin")))
    assert plan.path == "weak-10" and plan.network_flags == () and plan.progress == "monitor"
    assert plan.builder_flags == ("FP16", "OBEY_PRECISION_CONSTRAINTS")


def test_plan_strong_10_sets_strongly_typed_and_nothing_else():
    spec = spec_for(load_target("l40", "10.13"), dialect="strong", fp32_layers=())
    plan = plan_build(spec)
    assert plan.path == "strong-10" and plan.network_flags == ("STRONGLY_TYPED",) and plan.builder_flags == ()


def test_plan_fp32_sets_no_precision_flag_and_pins_nothing():
    plan = plan_build(spec_for(load_target("orin"), precision="fp32"))
    assert plan.builder_flags == () and plan.fp32_layers == ()


def test_plan_int8_from_a_calibration_cache_or_from_qdq():
    cached = plan_build(spec_for(load_target("orin"), precision="int8", calibration_cache="calib.cache"))
    assert cached.builder_flags == ("INT8", "FP16", "OBEY_PRECISION_CONSTRAINTS") and cached.calibration_cache == "calib.cache"
    qdq = plan_build(spec_for(load_target("jetson-orin"), precision="int8"))
    assert qdq.builder_flags[:2] == ("INT8", "FP16") and qdq.calibration_cache is None


def test_plan_dla_is_static_with_gpu_fallback():
    target = load_target("orin", dla_core=1)
    plan = plan_build(spec_for(target))
    assert plan.dla_core == 1 and "GPU_FALLBACK" in plan.builder_flags
    assert plan.profile == ((8, 3, 224, 224),) * 3


def test_plan_dla_without_gpu_fallback_where_the_network_is_predicted_on_dla():
    plan = plan_build(spec_for(load_target("orin", dla_core=0), gpu_fallback=False))
    assert plan.dla_core == 0 and "GPU_FALLBACK" not in plan.builder_flags


def test_plan_dla_with_a_dynamic_batch_is_refused_clearly():
    spec = spec_for(load_target("orin"), dla_core=0)  # a hand-edited build.json: DLA but 1:8:32
    message = one_line_error(plan_build, spec)
    assert message.startswith("DLA needs static shapes, but build.json's batch is dynamic (1:8:32)")
    assert "--dla 0" in message


def test_plan_refuses_what_trtexec_would():
    target = load_target("orin", dla_core=0)
    assert "DLA runs FP16 or INT8 only" in one_line_error(plan_build, spec_for(target, precision="fp32"))
    assert "strongly typed builds take no calibration cache" in one_line_error(
        plan_build, spec_for(load_target("l40"), precision="int8", calibration_cache="c.cache")
    )


def test_a_plan_round_trips_as_json_data():
    data = json.loads(json.dumps(plan_build(spec_for(load_target("jetson-orin"))).as_dict()))
    assert data["path"] == "weak-10" and data["profile"] == {"min": [1, 3, 224, 224], "opt": [8, 3, 224, 224], "max": [32, 3, 224, 224]}


def test_every_path_starts_with_a_builder_and_a_network_and_ends_with_build_save_inspect():
    for path, steps in PATH_STEPS.items():
        names = [s.__name__ for s in steps]
        assert names[0] == "_create_builder" and names[1].startswith("_create_network"), path
        assert names[-3:] == ["_build", "_save_timing_cache", "_inspect"], path
        assert len(API_USED[path]) > 40


# --- which TensorRT: the version check and the rf-export to run instead ----------------------


def test_a_bundle_for_another_release_names_the_rf_export_to_run():
    spec = spec_for(load_target("orin"))  # rf_b1, DRIVE Orin, TensorRT 8.6
    message = one_line_error(check_tensorrt_version, spec, "10.3.0.30")
    assert message == (
        "bundle is for TensorRT 8.6 (weakly typed); this is TensorRT 10.3: "
        "run rf-export --model rf_b1 --fp16 --target jetson-orin --trt-version 10.3"
    )


def test_the_same_release_passes_whatever_the_patch():
    check_tensorrt_version(spec_for(load_target("orin")), "8.6.12.1")
    check_tensorrt_version(spec_for(load_target("jetson-orin")), "10.3.0.30")


def test_the_suggestion_keeps_resolution_dla_and_batch():
    spec = spec_for(load_target("orin", dla_core=1), resolution=64)
    assert rf_export_command(spec, "10.10.0") == (
        "rf-export --model rf_b1 --fp16 --target orin --trt-version 10.10 --resolution 64 --dla 1"
    )
    custom = spec_for(load_target("jetson-orin", batch=BatchProfile(1, 4, 16)))
    assert rf_export_command(custom, "11.4.1") == "rf-export --model rf_b1 --fp16 --target jetson-orin --trt-version 11.4 --batch 1:4:16"


def test_a_release_no_target_offers_is_refused_with_what_is_offered():
    message = one_line_error(check_tensorrt_version, spec_for(load_target("l40")), "10.16.1.11")
    assert message.startswith("bundle is for TensorRT 11.4 (strongly typed); this is TensorRT 10.16, which no target profile")
    assert "l40 offers TensorRT 11.4, 10.13" in message


def test_the_real_bundle_suggests_its_resolution():
    spec = load_bundle_spec(exported_bundle("orin"))
    assert one_line_error(check_tensorrt_version, spec, "11.4.0.106").endswith(
        "run rf-export --model rf_b0 --fp16 --target jetson-orin --trt-version 11.4 --resolution 64"
    )


# --- pure helpers the steps use ---------------------------------------------------------------


def test_fp32_pins_match_layers_named_after_onnx_nodes():
    layers = ["/s2/core/sum_k", "/s2/core/sum_k_1", "/s2/core/div", "/s2/core/div_out", "/head/LayerNorm_3", "Unnamed Layer* 12"]
    matches, missing = match_fp32_layers(layers, ["/s2/core/sum_k", "/s2/core/div", "/head/LayerNorm", "/gone"])
    assert matches == {"/s2/core/sum_k": [0, 1], "/s2/core/div": [2], "/head/LayerNorm": [4]}
    assert missing == ["/gone"]


def test_a_suffixed_name_that_is_itself_a_node_is_not_taken_twice():
    matches, _ = match_fp32_layers(["a", "a_1"], ["a", "a_1"])
    assert matches == {"a": [0], "a_1": [1]}


def test_network_io_is_checked_against_build_json():
    spec = load_bundle_spec(exported_bundle("orin"))
    out = [("logits", (-1, 1000))]
    assert check_network_io([("images", (-1, 3, 64, 64))], out, spec) is True
    assert "input is 'x'" in one_line_error(check_network_io, [("x", (-1, 3, 64, 64))], out, spec)
    assert "no output 'logits'" in one_line_error(check_network_io, [("images", (-1, 3, 64, 64))], [("y", (-1, 10))], spec)
    assert "input shape is (-1, 3, 32, 32)" in one_line_error(check_network_io, [("images", (-1, 3, 32, 32))], out, spec)
    assert "static batch of 8" in one_line_error(check_network_io, [("images", (8, 3, 64, 64))], out, spec)
    assert "2 inputs" in one_line_error(check_network_io, [("images", (-1, 3, 64, 64))] * 2, out, spec)
    static = BuildSpec(**{**spec.__dict__, "batch": BatchProfile(8, 8, 8)})
    assert check_network_io([("images", (8, 3, 64, 64))], out, static) is False


# The engine inspector's JSON with detailed verbosity, in the layout TensorRT writes it
# ("Format/Datatype" strings as TensorRT 10 prints them with and without an execution context).
INSPECTOR_JSON = json.dumps(
    {
        "Layers": [
            {"Name": "/stem/conv/Conv + /stem/act/HardSwish", "LayerType": "CaskConvolution",
             "Inputs": [{"Name": "images", "Format/Datatype": "Row major linear FP32"}],
             "Outputs": [{"Name": "t1", "Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}]},
            {"Name": "/s2/core/sum_k", "LayerType": "Reduce",
             "Outputs": [{"Name": "t2", "Format/Datatype": "Float"}]},
            {"Name": "/head/fc/Gemm", "LayerType": "MatrixMultiply",
             "Outputs": [{"Name": "logits", "Format/Datatype": "Half"}]},
            {"Name": "/q", "LayerType": "Scale", "Outputs": [{"Name": "q", "Format/Datatype": "Int8 NC/32HW32"}]},
        ],
        "Bindings": ["images", "logits"],
    }
)


def test_layer_precision_from_the_engine_inspector():
    layers = parse_layer_information(INSPECTOR_JSON)
    assert [(layer["type"], layer["precision"]) for layer in layers] == [
        ("CaskConvolution", "fp16"), ("Reduce", "fp32"), ("MatrixMultiply", "fp16"), ("Scale", "int8")
    ]
    names_only = parse_layer_information(json.dumps({"Layers": ["a", "b"], "Bindings": []}))
    assert [layer["precision"] for layer in names_only] == ["unknown", "unknown"]
    assert parse_layer_information("not json") == []


def test_missing_api_walks_dotted_names():
    assert missing_api(json, ["JSONDecoder.decode", "JSONDecodeError", "JSONDecoder.nope", "Nope.x"]) == ["JSONDecoder.nope", "Nope.x"]


def test_calibration_cache_must_be_tensorrt_s_text_format(tmp_path):
    good = tmp_path / "calib.cache"
    good.write_bytes(b"TRT-8600-EntropyCalibration2\ninput: 3c010204\n")
    assert read_calibration_cache(good).startswith(b"TRT-8600")
    bad = tmp_path / "ort.cache"
    bad.write_bytes(b'{"input": [0.0, 1.0]}')
    assert "is not a TensorRT calibration cache" in one_line_error(read_calibration_cache, bad)
    assert "is missing" in one_line_error(read_calibration_cache, tmp_path / "none.cache")


def test_sidecar_record_is_data_and_names_everything():
    spec = load_bundle_spec(exported_bundle("orin"))
    plan = plan_build(spec)
    engine = b"ftrt" + bytes(60)
    record = sidecar_record(
        spec, plan, tensorrt_version="8.6.2.3", gpu={"name": "Orin", "compute_capability": "8.7"}, onnx_sha256="ab" * 32,
        engine=engine, engine_name="rf_b0.engine",
        record={"fp32_pins": {"nodes": 41, "nodes_pinned": 41, "layers_pinned": 45, "missing": []},
                "layers": parse_layer_information(INSPECTOR_JSON), "layer_precisions": {"fp16": 2, "fp32": 1, "int8": 1},
                "progress": "START/FINISH log", "build_seconds": 93.4},
    )
    data = json.loads(json.dumps(record))
    assert data["tensorrt"] == {"version": "8.6.2.3", "path": "weak-8.6"}
    assert data["engine_sha256"] == hashlib.sha256(engine).hexdigest() and data["engine_bytes"] == 64
    assert data["onnx"] == "rf_b0.onnx" and data["onnx_sha256"] == "ab" * 32
    assert data["batch"] == {"min": 1, "opt": 8, "max": 32}
    assert data["build"]["builder_flags"] == ["FP16", "OBEY_PRECISION_CONSTRAINTS"]
    assert data["build"]["network_flags"] == ["EXPLICIT_BATCH"]
    assert data["build"]["trtexec_equivalent"].startswith("trtexec --onnx=rf_b0.onnx --saveEngine=rf_b0.engine")
    assert data["build"]["fp32_pins"]["layers_pinned"] == 45 and data["dla"] == {"core": None}
    assert data["layers"][1]["precision"] == "fp32"
    assert sidecar_path(Path("out/rf_b0.engine")).as_posix() == "out/rf_b0.engine.json"


# --- INT8: which route, and the cache as the calibrator serves it -----------------------------


@pytest.mark.parametrize(
    "version,dialect,dla,route",
    [
        ("8.6", "weak", None, "cache"),
        ("8.6.12", "weak", 0, "cache"),
        ("10.10", "weak", None, "qdq"),  # the calibrator is deprecated since 10.1: GPU INT8 takes Q/DQ
        ("10.3.0.30", "weak", 1, "cache"),  # DLA still needs the calibrator
        ("10.13", "strong", None, "qdq"),
        ("11.4", "strong", 0, "qdq"),
    ],
)
def test_int8_route_per_release_and_device(version, dialect, dla, route):
    assert int8_route(version, dialect, dla) == route


def test_a_qdq_route_spec_builds_int8_without_a_calibrator():
    spec = spec_for(load_target("jetson-orin"), "int8", onnx="rf_b1.qdq.onnx", int8=Int8Source("qdq", "rf_b1.qdq.onnx"))
    plan = plan_build(spec)
    assert plan.builder_flags[:2] == ("INT8", "FP16") and plan.calibration_cache is None
    cached = spec_for(load_target("orin"), "int8", calibration_cache="calibration.cache", int8=Int8Source("cache", "calibration.cache"))
    assert plan_build(cached).calibration_cache == "calibration.cache"


def test_build_json_keeps_the_int8_source_and_the_typed_islands_and_reads_old_files():
    spec = spec_for(load_target("l40"), "int8", onnx="rf_b1.int8.onnx", int8=Int8Source("qdq", "rf_b1.int8.onnx"), fp32_islands=("/a/Div",))
    again = BuildSpec.from_json(spec.to_json())
    assert again == spec and again.int8 == Int8Source("qdq", "rf_b1.int8.onnx") and again.fp32_islands == ("/a/Div",)
    old = json.loads(spec_for(load_target("orin")).to_json())
    del old["int8"], old["fp32_islands"]
    read = BuildSpec.from_json(json.dumps(old))
    assert read.int8 is None and read.fp32_islands is None


CACHE = b"TRT-8600-EntropyCalibration2\nimages: 3c010204\n/stem/Conv_output_0: 3d8f5c29\n"


@pytest.mark.parametrize(
    "installed,header",
    [("8.6.12.1", b"TRT-8612-EntropyCalibration2"), ("8.6.1.6", b"TRT-8601-EntropyCalibration2"), ("10.3.0.30", b"TRT-100300-EntropyCalibration2")],
)
def test_the_calibrator_serves_the_cache_with_the_installed_version(installed, header):
    served = cache_for_tensorrt(CACHE, installed)
    assert served.split(b"\n", 1) == [header, CACHE.split(b"\n", 1)[1]]  # the scales are untouched
    assert installed_version_tag(installed) == int(header.split(b"-")[1])


class _FakeCalibratorBase:
    """Stands in for tensorrt.IInt8EntropyCalibrator2: the steps subclass it and call its __init__."""

    def __init__(self) -> None:
        pass


def _cache_state(tmp_path: Path, installed: str, lines: list[str]) -> BuildState:
    (tmp_path / "calibration.cache").write_bytes(CACHE)
    spec = spec_for(load_target("orin"), "int8", calibration_cache="calibration.cache", int8=Int8Source("cache", "calibration.cache"))
    state = BuildState(
        trt=SimpleNamespace(IInt8EntropyCalibrator2=_FakeCalibratorBase), spec=spec, plan=plan_build(spec, installed),
        onnx_path=tmp_path / "rf_b1.onnx", timing_cache_path=None, calibration_cache_path=tmp_path / "calibration.cache",
        log=lines.append,
    )  # fmt: skip
    state.config = SimpleNamespace(int8_calibrator=None)
    return state


def test_the_cache_calibrator_serves_the_installed_header_and_leaves_the_file(tmp_path):
    lines: list[str] = []
    state = _cache_state(tmp_path, "8.6.12.1", lines)
    _use_calibration_cache(state)
    calibrator = state.config.int8_calibrator
    assert calibrator.get_batch_size() == 1
    assert calibrator.read_calibration_cache().startswith(b"TRT-8612-EntropyCalibration2\nimages: 3c010204\n")
    assert (tmp_path / "calibration.cache").read_bytes() == CACHE
    assert state.record["int8"] == "calibration cache calibration.cache (TRT-8600-EntropyCalibration2, served as TRT-8612-EntropyCalibration2)"
    assert lines == [] and state.calibration_rejected is None


def test_tensorrt_asking_the_cache_calibrator_for_images_fails_the_build(tmp_path):
    lines: list[str] = []
    state = _cache_state(tmp_path, "8.6.12.1", lines)
    _use_calibration_cache(state)
    calibrator = state.config.int8_calibrator
    assert calibrator.get_batch(["images"]) is None and calibrator.get_batch(["images"]) is None
    assert len(lines) == 1 and lines[0].startswith("error: TensorRT asked the calibrator for images")
    state.builder = SimpleNamespace(build_serialized_network=lambda network, config: None)
    state.logger = SimpleNamespace(errors=["[calibrator.cpp] Calibration failure occurred with no scaling factors detected"])
    message = one_line_error(_build, state)
    assert message.startswith("TensorRT asked the calibrator for images: it rejected calibration.cache (header TRT-8600-EntropyCalibration2")
    assert "served as TRT-8612-EntropyCalibration2" in message and "want TRT-8612-EntropyCalibration2" in message
    assert "rf-calib --trt-version 8.6.12" in message


# --- did the engine keep the precision plan? ----------------------------------------------------

NETWORK_LAYERS = [
    ("/stem/conv/Conv", "CONVOLUTION"),
    ("/stem/act/HardSwish", "ACTIVATION"),
    ("/stem/act/HardSwish_1", "ELEMENTWISE"),
    ("/s2/core/sum_k", "REDUCE"),
    ("/s2/core/div", "ELEMENTWISE"),
    ("/s2/core/Reshape", "SHUFFLE"),
    ("/head/fc/Gemm", "MATRIX_MULTIPLY"),
]
PINS = ("/s2/core/sum_k", "/s2/core/div")
FP32, FP16, INT8 = "Row major linear FP32", "Channel major FP16 format where channel % 8 == 0", "Int8 NC/32HW32"


def _engine_layers(conv: str = FP16, div: str = FP32, gemm: str = FP32, extra: tuple = ()) -> list[dict]:
    def layer(name: str, kind: str, inputs: str, outputs: str) -> dict:
        return {"Name": name, "LayerType": kind, "Inputs": [{"Format/Datatype": inputs}], "Outputs": [{"Format/Datatype": outputs}]}

    layers = [
        layer("/stem/conv/Conv + PWN(/stem/act/HardSwish, /stem/act/HardSwish_1)", "CaskConvolution", FP32, conv),
        layer("Reformatting CopyNode for Input Tensor 0 to /s2/core/sum_k", "Reformat", FP16, FP32),
        layer("/s2/core/sum_k", "Reduce", FP32, FP32),
        layer("/s2/core/div", "PointWiseV2", FP32, div),
        layer("/s2/core/Reshape", "Shuffle", FP32, FP32),
        layer("{ForeignNode[/s3/MatMul.../s3/Add]}", "Myelin", FP16, FP32),
        layer("/head/fc/Gemm", "CaskGemmMatrixMultiply", gemm, gemm),
        *extra,
    ]
    return parse_layer_information(json.dumps({"Layers": layers}))


def _weak(precision: str = "fp16") -> BuildSpec:
    return spec_for(load_target("jetson-orin"), precision, fp32_layers=PINS)


def _strong(precision: str = "fp16", islands: tuple[str, ...] | None = PINS) -> BuildSpec:
    return spec_for(load_target("l40"), precision, fp32_islands=islands)


def test_an_engine_that_keeps_the_plan_passes_and_says_what_was_judged():
    check = check_layer_precisions(_weak(), NETWORK_LAYERS, _engine_layers(gemm=FP16))
    assert check.checked and check.failure is None
    # the fused Conv, both pins and the Gemm; not the reformat or the Myelin region (no names), not the Shuffle
    assert (check.judged, check.unmapped, check.reduced) == (4, 2, 2)
    assert json.loads(json.dumps(check.as_dict()))["note"].startswith("4 engine layers judged")


def test_a_pinned_layer_in_fp16_fails_and_is_named():
    for spec in (_weak(), _strong()):
        check = check_layer_precisions(spec, NETWORK_LAYERS, _engine_layers(div="Half"))
        assert check.pinned_as_fp16 == ("/s2/core/div",)
        assert check.failure.startswith("1 layers pinned to FP32 run in FP16: /s2/core/div")


def test_strongly_typed_fp16_layers_in_fp32_fail():
    check = check_layer_precisions(_strong(), NETWORK_LAYERS, _engine_layers())
    assert check.fp16_as_fp32 == ("/head/fc/Gemm",)
    assert check.failure == "1 layers the typed ONNX has in FP16 run in FP32: /head/fc/Gemm"


def test_the_silent_fp32_engine_fails_in_both_dialects():
    """An engine that ran everything in FP32 (a typed ONNX that is FP32, an FP16 flag without effect)."""
    for spec in (_weak(), _strong()):
        check = check_layer_precisions(spec, NETWORK_LAYERS, _engine_layers(conv=FP32))
        assert check.fp16_as_fp32 == ("/stem/conv/Conv + PWN(/stem/act/HardSwish, /stem/act/HardSwish_1)", "/head/fc/Gemm")
        assert "2 layers" in check.failure and "run in FP32: /stem/conv/Conv + PWN(" in check.failure


def test_weakly_typed_single_fp32_layers_are_tensorrt_s_choice():
    # The FP16 flag permits FP16; TensorRT keeps FP32 where that is faster or no FP16 kernel exists.
    check = check_layer_precisions(_weak(), NETWORK_LAYERS, _engine_layers())
    assert check.failure is None and check.fp16_as_fp32 == ("/head/fc/Gemm",) and check.reduced == 1
    assert "TensorRT kept 1 layers the FP16 flag allows in FP32" in check.note


def test_int8_layers_are_fine_in_int8_builds():
    layers = _engine_layers(conv=INT8, gemm=INT8)
    for spec in (_weak("int8"), _strong("int8")):
        check = check_layer_precisions(spec, NETWORK_LAYERS, layers)
        assert check.failure is None and check.reduced == 2


def test_fused_pinned_and_unpinned_nodes_are_not_judged():
    fused = {"Name": "/s2/core/div + /head/fc/Gemm", "LayerType": "PointWiseV2", "Inputs": [{"Format/Datatype": FP32}],
             "Outputs": [{"Format/Datatype": FP32}]}  # fmt: skip
    check = check_layer_precisions(_strong(), NETWORK_LAYERS, _engine_layers(gemm=FP16, extra=(fused,)))
    assert check.failure is None and check.judged == 4


@pytest.mark.parametrize(
    "spec,layers,why",
    [
        (_weak("fp32"), _engine_layers(), "FP32 build"),
        (_strong(islands=None), _engine_layers(), "does not list the typed ONNX's FP32 islands"),
        (_weak(), parse_layer_information(json.dumps({"Layers": ["/stem/conv/Conv", "/head/fc/Gemm"]})), "no per-layer datatypes"),
        (_weak(), [], "gave no layer information"),
    ],
)
def test_without_layer_information_the_check_says_so_instead_of_failing(spec, layers, why):
    check = check_layer_precisions(spec, NETWORK_LAYERS, layers)
    assert not check.checked and check.failure is None and why in check.note


def _inspected_state(spec: BuildSpec, engine_json: str) -> BuildState:
    inspector = SimpleNamespace(get_engine_information=lambda fmt: engine_json)
    engine = SimpleNamespace(num_layers=7, create_engine_inspector=lambda: inspector)
    trt = SimpleNamespace(Runtime=lambda logger: SimpleNamespace(deserialize_cuda_engine=lambda data: engine),
                          LayerInformationFormat=SimpleNamespace(JSON="JSON"))  # fmt: skip
    state = BuildState(trt=trt, spec=spec, plan=plan_build(spec), onnx_path=Path("m.onnx"), timing_cache_path=None,
                       calibration_cache_path=None, log=lambda _: None)  # fmt: skip
    state.serialized, state.network_layers = b"ftrt", list(NETWORK_LAYERS)
    return state


def _inspector_json(conv: str = FP16, gemm: str = FP32) -> str:
    return json.dumps({"Layers": [
        {"Name": "/stem/conv/Conv", "LayerType": "CaskConvolution", "Inputs": [{"Format/Datatype": FP32}], "Outputs": [{"Format/Datatype": conv}]},
        {"Name": "/head/fc/Gemm", "LayerType": "CaskGemmMatrixMultiply", "Inputs": [{"Format/Datatype": gemm}], "Outputs": [{"Format/Datatype": gemm}]},
    ]})  # fmt: skip


def test_the_build_checks_the_engine_it_inspected():
    state = _inspected_state(_strong(), _inspector_json())
    message = one_line_error(_inspect, state)
    assert message.startswith("the engine does not keep the precision plan: 1 layers the typed ONNX has in FP16 run in FP32: /head/fc/Gemm")
    assert state.record["precision_check"]["fp16_as_fp32"] == ("/head/fc/Gemm",)
    fine = _inspected_state(_strong(), _inspector_json(gemm=FP16))
    _inspect(fine)
    assert fine.record["precision_check"]["checked"] and fine.record["precision_check"]["failure"] is None


def test_the_sidecar_records_the_precision_check_or_that_it_did_not_run():
    spec = load_bundle_spec(exported_bundle("orin"))
    common = dict(tensorrt_version="8.6.2.3", gpu={}, onnx_sha256="ab" * 32, engine=b"ftrt", engine_name="rf_b0.engine")
    check = check_layer_precisions(_weak(), NETWORK_LAYERS, [])
    record = sidecar_record(spec, plan_build(spec), record={"precision_check": check.as_dict()}, **common)
    assert record["precision_check"]["checked"] is False and "no layer information" in record["precision_check"]["note"]
    assert sidecar_record(spec, plan_build(spec), record={}, **common)["precision_check"] == {"checked": False, "note": "not run"}


# --- the bundle check -----------------------------------------------------------------------


def test_a_bundle_with_build_outputs_still_verifies(tmp_path):
    bundle = copy_bundle("orin", tmp_path)
    for name in ("rf_b0.engine", "rf_b0.engine.json", "timing.cache", "build.log", "bench.log", "verify.json"):
        (bundle / name).write_bytes(b"x")
    assert load_bundle_spec(bundle).model == "rf_b0"
    assert "timing.cache" in BUILD_OUTPUTS


def test_a_tampered_or_incomplete_bundle_is_named(tmp_path):
    bundle = copy_bundle("orin", tmp_path)
    data = bytearray((bundle / "rf_b0.onnx").read_bytes())
    data[-1] ^= 1
    (bundle / "rf_b0.onnx").write_bytes(bytes(data))
    (bundle / "precision_plan.json").unlink()
    (bundle / "extra.onnx").write_bytes(b"x")
    message = one_line_error(load_bundle_spec, bundle)
    assert "rf_b0.onnx has changed" in message and "precision_plan.json is missing" in message
    assert "extra.onnx is not in the manifest" in message


# --- rf-build's command line ----------------------------------------------------------------


@pytest.mark.skipif(tensorrt_importable(), reason="TensorRT is installed here; this checks the message where it is not")
def test_cli_without_tensorrt_is_one_line_saying_where_it_runs():
    err = process_error(run_cli("rftrt.cli.build", "build_main", str(exported_bundle("orin"))), "rf-build")
    assert "TensorRT is not installed here: rf-build runs on the device (orin with TensorRT 8.6, weakly typed" in err


def test_cli_a_tampered_bundle_names_the_file(tmp_path):
    bundle = copy_bundle("orin", tmp_path)
    (bundle / "build.json").write_text((bundle / "build.json").read_text().replace('"opt": 8', '"opt": 16'))
    err = process_error(run_cli("rftrt.cli.build", "build_main", str(bundle)), "rf-build")
    assert "build.json has changed" in err


def test_cli_not_a_bundle(tmp_path):
    assert "is not a directory" in process_error(run_cli("rftrt.cli.build", "build_main", str(tmp_path / "nope")), "rf-build")
    assert "has no manifest.json" in process_error(run_cli("rftrt.cli.build", "build_main", str(tmp_path)), "rf-build")


def test_cli_help():
    proc = run_cli("rftrt.cli.build", "build_main", "--help")
    assert proc.returncode == 0 and "--timing-cache FILE" in proc.stdout and "--allow-other-gpu" in proc.stdout


# --- on a device with TensorRT and a GPU ----------------------------------------------------


def _device_target(trt_version: str, compute_capability: str) -> tuple[str, bool]:
    """A target offering the installed release, preferring one for this GPU; (name, other GPU?)."""
    from rftrt.targets.profiles import list_targets

    mm = ".".join(trt_version.split(".")[:2])
    offering = [n for n in list_targets() if any(r.version == mm for r in load_target(n).releases)]
    if not offering:
        pytest.skip(f"no target profile offers the installed TensorRT {trt_version}")
    same = [n for n in offering if load_target(n).compute_capability == compute_capability]
    return (same or offering)[0], not same


@pytest.mark.tensorrt
def test_build_run_and_verify_a_bundle_on_the_device(tmp_path):
    trt = pytest.importorskip("tensorrt", reason="TensorRT cannot be installed here (docs/engines.md); this runs on the device")
    from rftrt.engines.build import build_bundle
    from rftrt.engines.cuda import cuda_device_count, gpu_info
    from rftrt.engines.runner import EngineRunner
    from rftrt.engines.verify import verify_engine
    from rftrt.pipeline import ExportOptions, run_export

    if cuda_device_count()[0] == 0:
        pytest.skip("TensorRT imports but no CUDA GPU is visible")
    gpu = gpu_info()
    target, other_gpu = _device_target(trt.__version__, gpu["compute_capability"])
    bundle = tmp_path / "bundle"
    mm = ".".join(trt.__version__.split(".")[:2])
    options = ExportOptions(model="rf_b0", target=target, precision="fp16", resolution=64, trt_version=mm, out_dir=str(bundle))
    run_export(options, log=lambda _: None)

    result = build_bundle(bundle, allow_other_gpu=other_gpu, log=lambda _: None)
    plan = result.engine.read_bytes()
    assert plan[:4] == b"ftrt"  # nothing prepended
    side = json.loads(result.sidecar.read_text())
    assert side["tensorrt"]["version"] == trt.__version__ and side["gpu"]["name"] == gpu["name"]
    assert side["engine_sha256"] == hashlib.sha256(plan).hexdigest()
    assert side["layers"] and side["layer_precisions"]
    assert side["build"]["timing_cache"]["saved_bytes"] > 0

    again = build_bundle(bundle, out=tmp_path / "again.engine", allow_other_gpu=other_gpu, log=lambda _: None)
    assert again.record["build"]["timing_cache"]["loaded_bytes"] > 0  # the timing cache is reused

    verdict = verify_engine(result.engine, bundle, log=lambda _: None)
    assert verdict.passed, verdict.lines()
    with EngineRunner(result.engine) as runner:
        low, high = runner.batch_range
        assert (low, high) == (1, 32)
        for batch in (1, 3, high):
            x = np.random.default_rng(batch).standard_normal((batch, 3, 64, 64)).astype(np.float32)
            assert runner.infer(x)["logits"].shape == (batch, 1000)
        with pytest.raises(RftrtError, match="batch 64 outside the engine's profile 1..32"):
            runner.infer(np.zeros((64, 3, 64, 64), np.float32))
    with EngineRunner(result.engine, cuda_graph=True) as runner:
        x = np.load(bundle / "golden.npz")["images"]
        first, second = runner.infer(x)["logits"], runner.infer(x)["logits"]
        assert np.array_equal(first, second)
    shutil.rmtree(bundle)
