"""The TensorRT builder: every decision it makes before TensorRT is touched (as data), the version and
bundle checks of rf-build, the sidecar, and - where TensorRT and a GPU are present - a real build,
run and verification of an rf-export bundle."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import copy_bundle, exported_bundle, one_line_error, process_error, run_cli, spec_for, tensorrt_importable

from rftrt.engines.build_decisions import check_network_io, match_fp32_layers, parse_layer_information, read_calibration_cache
from rftrt.engines.build_plan import check_tensorrt_version, dialect_path, plan_build, rf_export_command
from rftrt.engines.build_spec import BuildSpec
from rftrt.engines.build_steps import API_USED, PATH_STEPS
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
    assert plan.fp32_layers == spec.fp32_layers and len(plan.fp32_layers) == 41
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
