"""rf-verify's judgement on real golden data (rf-export bundles at r64), its pre-TensorRT checks, and
its command line. Running an engine needs TensorRT and a GPU: that part is tested in test_builder.py
where TensorRT imports and skipped elsewhere."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import copy_bundle, exported_bundle, process_error, run_cli, tensorrt_importable

from rftrt.comparison import TOLERANCES
from rftrt.engines.build_spec import BuildSpec
from rftrt.engines.bundle import load_bundle_spec
from rftrt.engines.sidecar import check_sidecar, read_sidecar
from rftrt.engines.verify import ENGINE_TOLERANCE, Golden, compare_with_golden
from rftrt.errors import RftrtError

# --- golden data ----------------------------------------------------------------------------


def test_golden_data_of_a_weakly_typed_bundle():
    golden = Golden.load(exported_bundle("orin"))
    assert golden.images.shape == (8, 3, 64, 64) and golden.images.dtype == np.float32
    assert golden.logits.shape == (8, 1000)
    # Weakly typed: the bundle's ONNX is the FP32 one, so both references are the same run.
    assert np.array_equal(golden.logits, golden.logits_fp32)


def test_golden_data_of_a_strongly_typed_bundle():
    golden = Golden.load(exported_bundle("l40"))
    assert golden.logits.shape == golden.logits_fp32.shape == (8, 1000)
    assert not np.array_equal(golden.logits, golden.logits_fp32)  # typed FP16 ONNX vs FP32 ONNX


def test_at_batch_cycles_the_golden_images():
    golden = Golden.load(exported_bundle("orin"))
    big = golden.at_batch(19)
    assert big.images.shape[0] == big.logits.shape[0] == 19
    assert np.array_equal(big.images[8], golden.images[0]) and np.array_equal(big.logits[18], golden.logits[2])
    assert np.array_equal(golden.at_batch(3).images, golden.images[:3])


def test_a_missing_or_incomplete_golden_file_is_named(tmp_path):
    with pytest.raises(RftrtError, match="has no golden.npz"):
        Golden.load(tmp_path)
    np.savez(tmp_path / "golden.npz", images=np.zeros((1, 3, 8, 8), np.float32))
    with pytest.raises(RftrtError, match="lacks logits, logits_fp32"):
        Golden.load(tmp_path)


# --- the judgement --------------------------------------------------------------------------


def _judge(outputs: np.ndarray, target: str = "orin", **spec_changes):
    bundle = exported_bundle(target)
    spec = load_bundle_spec(bundle)
    if spec_changes:
        spec = BuildSpec(**{**spec.__dict__, **spec_changes})
    golden = Golden.load(bundle)
    return compare_with_golden(outputs, golden, spec, engine="rf_b0.engine", bundle=str(bundle), tensorrt="test")


def test_tolerances_are_chosen_by_precision_and_documented():
    assert ENGINE_TOLERANCE == {"fp32": "tf32", "fp16": "fp16", "int8": "int8"}
    assert TOLERANCES["fp16"] == {"min_cosine": 0.999, "min_top1_agreement": 0.9}
    assert TOLERANCES["tf32"]["min_cosine"] > TOLERANCES["fp16"]["min_cosine"] > TOLERANCES["int8"]["min_cosine"]


def test_the_reference_itself_passes():
    golden = Golden.load(exported_bundle("orin"))
    result = _judge(golden.logits.copy())
    assert result.passed and bool(result) and result.finite
    assert result.tolerance == "fp16" and result.batch == 8
    assert result.reference.top1_agreement == 1.0 and result.reference.min_cosine > 0.999999
    assert result.fp32 is None  # weakly typed: one reference


def test_fp16_rounding_passes_the_fp16_tolerance():
    golden = Golden.load(exported_bundle("orin"))
    result = _judge(golden.logits.astype(np.float16).astype(np.float32))
    assert result.passed, result.lines()


def test_a_nan_fails_and_says_non_finite():
    golden = Golden.load(exported_bundle("orin"))
    out = golden.logits.copy()
    out[3, 17] = np.nan
    result = _judge(out)
    assert not result.passed and not result.finite
    assert "NON-FINITE" in result.lines()[0]
    out[3, 17] = np.inf
    assert not _judge(out).passed


def test_default_weights_make_golden_data_that_tells_images_apart():
    """The bundle's default (random, signal-preserving) weights carry the image: swapping the golden
    images fails the check, and nothing warns that it could not tell."""
    golden = Golden.load(exported_bundle("orin"))
    assert golden.logits.std(axis=0).mean() >= 0.1 * golden.logits.std(axis=1).mean()
    assert len(set(golden.logits.argmax(axis=1))) >= 4
    swapped = _judge(golden.logits[::-1].copy())
    assert not swapped.passed and not swapped.warnings


def test_logits_that_ignore_the_image_are_flagged_as_weak_evidence():
    """A reference whose logits barely change from image to image (what PyTorch's default init gives)
    cannot tell a swapped input from the right one; the result says so."""
    bundle = exported_bundle("orin")
    spec = load_bundle_spec(bundle)
    real = Golden.load(bundle)
    flat = np.repeat(real.logits[:1], len(real.logits), axis=0)
    flat = flat + np.random.default_rng(0).standard_normal(flat.shape).astype(np.float32) * 1e-6
    golden = Golden(real.images, flat, flat)
    swapped = compare_with_golden(flat[::-1].copy(), golden, spec, engine="e", bundle="b", tensorrt="t")
    assert swapped.passed  # the evidence really is this weak...
    assert swapped.warnings and "cannot tell images apart" in swapped.warnings[0]  # ...and it says so
    assert any(line.startswith("warning: the reference logits hardly depend on the image") for line in swapped.lines())
    assert swapped.as_dict()["warnings"] == list(swapped.warnings)


def test_with_image_dependent_logits_swapped_images_fail_and_no_warning():
    bundle = exported_bundle("orin")
    spec = load_bundle_spec(bundle)
    real = Golden.load(bundle)
    logits = np.random.default_rng(1).standard_normal((8, 1000)).astype(np.float32) * 3
    golden = Golden(real.images, logits, logits)
    ok = compare_with_golden(logits.copy(), golden, spec, engine="e", bundle="b", tensorrt="t")
    assert ok.passed and ok.warnings == ()
    swapped = compare_with_golden(logits[::-1].copy(), golden, spec, engine="e", bundle="b", tensorrt="t")
    assert not swapped.passed and swapped.reference.top1_agreement < 0.9


def test_permuted_classes_fail():
    golden = Golden.load(exported_bundle("orin"))
    permuted = golden.logits[:, np.random.default_rng(0).permutation(1000)]
    result = _judge(permuted)
    assert not result.passed and result.reference.min_cosine < 0.999 and result.reference.top1_agreement == 0.0


def test_noise_the_fp16_tolerance_refuses_and_the_int8_one_accepts():
    golden = Golden.load(exported_bundle("orin"))
    rng = np.random.default_rng(0)
    scale = np.abs(golden.logits).mean()
    noisy = golden.logits + rng.standard_normal(golden.logits.shape).astype(np.float32) * scale * 0.1
    assert not _judge(noisy).passed
    int8 = _judge(noisy, precision="int8")
    assert int8.tolerance == "int8"
    assert int8.reference.min_cosine > TOLERANCES["int8"]["min_cosine"]


def test_a_strongly_typed_bundle_also_reports_the_fp32_reference():
    golden = Golden.load(exported_bundle("l40"))
    result = _judge(golden.logits.copy(), target="l40")
    assert result.passed and result.fp32 is not None
    assert result.fp32.reference == "ONNX Runtime FP32" and result.fp32.max_abs > 0
    assert any("information" in line for line in result.lines())


def test_the_result_is_json_data():
    golden = Golden.load(exported_bundle("l40"))
    data = json.loads(json.dumps(_judge(golden.logits.copy(), target="l40").as_dict()))
    assert data["passed"] is True and data["tolerance"]["kind"] == "fp16" and data["tolerance"]["min_cosine"] == 0.999
    assert data["reference"]["top1_agreement"] == 1.0 and data["fp32"]["reference"] == "ONNX Runtime FP32"
    assert data["model"] == "rf_b0" and data["resolution"] == 64 and data["dialect"] == "strong"


def test_an_output_of_the_wrong_shape_is_refused():
    golden = Golden.load(exported_bundle("orin"))
    with pytest.raises(RftrtError, match="has shape"):
        _judge(golden.logits[:4])


# --- the sidecar checks ---------------------------------------------------------------------


def test_an_engine_from_another_tensorrt_release_is_refused():
    sidecar = {"tensorrt": {"version": "10.3.0.30"}, "onnx_sha256": "ab" * 32}
    with pytest.raises(RftrtError) as info:
        check_sidecar(sidecar, installed="8.6.2", onnx_sha256=None, bundle="b")
    assert str(info.value).startswith("engine built with TensorRT 10.3, this is TensorRT 8.6: ")
    assert "rf-build b" in str(info.value)
    check_sidecar(sidecar, installed="10.3.0.26", onnx_sha256=None)  # same release, other build: fine


def test_an_engine_from_another_onnx_is_refused():
    sidecar = {"tensorrt": {"version": "10.3.0"}, "onnx_sha256": "ab" * 32}
    with pytest.raises(RftrtError, match="built from another ONNX"):
        check_sidecar(sidecar, installed=None, onnx_sha256="cd" * 32)
    check_sidecar(sidecar, installed=None, onnx_sha256="ab" * 32)


def test_a_broken_sidecar_is_named(tmp_path):
    engine = tmp_path / "m.engine"
    assert read_sidecar(engine) is None
    (tmp_path / "m.engine.json").write_text("{not json")
    with pytest.raises(RftrtError, match="m.engine.json is not valid JSON"):
        read_sidecar(engine)
    (tmp_path / "m.engine.json").write_text("[]")
    with pytest.raises(RftrtError, match="not an rf-build sidecar"):
        read_sidecar(engine)


# --- the command line -----------------------------------------------------------------------

PLAN_LIKE = b"ftrt" + bytes(20) + bytes([10, 3, 0]) + bytes(229)  # a plan's magic tag and version bytes, nothing more


def test_cli_an_onnx_passed_as_engine_is_refused():
    bundle = exported_bundle("orin")
    err = process_error(run_cli("rftrt.cli.verify", "verify_main", str(bundle / "rf_b0.onnx"), "--bundle", str(bundle)), "rf-verify")
    assert "looks like an ONNX model, not a TensorRT plan" in err


def test_cli_an_engine_with_metadata_in_front_is_refused(tmp_path):
    meta = json.dumps({"description": "Ultralytics-style metadata"}).encode()
    engine = tmp_path / "m.engine"
    engine.write_bytes(len(meta).to_bytes(4, "little") + meta + PLAN_LIKE)
    err = process_error(run_cli("rftrt.cli.verify", "verify_main", str(engine), "--bundle", str(exported_bundle("orin"))), "rf-verify")
    assert f"has {4 + len(meta)} bytes in front of the TensorRT plan" in err and "JSON metadata" in err


def test_cli_a_missing_engine_is_named(tmp_path):
    err = process_error(run_cli("rftrt.cli.verify", "verify_main", str(tmp_path / "nope.engine"), "--bundle", str(exported_bundle("orin"))), "rf-verify")
    assert "nope.engine does not exist" in err


def test_cli_a_tampered_bundle_is_named(tmp_path):
    bundle = copy_bundle("orin", tmp_path)
    with open(bundle / "golden.npz", "ab") as f:
        f.write(b"x")
    engine = tmp_path / "m.engine"
    engine.write_bytes(PLAN_LIKE)
    err = process_error(run_cli("rftrt.cli.verify", "verify_main", str(engine), "--bundle", str(bundle)), "rf-verify")
    assert "golden.npz has changed" in err


def test_cli_a_batch_outside_the_profile_is_refused_before_tensorrt(tmp_path):
    """The sidecar records the profile, so this is caught here, before TensorRT loads anything.
    (The engine file is only a plan-shaped header: nothing here runs it.)"""
    bundle = exported_bundle("orin")
    engine = tmp_path / "m.engine"
    engine.write_bytes(PLAN_LIKE)
    (tmp_path / "m.engine.json").write_text(json.dumps({"tensorrt": {"version": "8.6.1"}, "batch": {"min": 1, "opt": 8, "max": 32}}))
    err = process_error(run_cli("rftrt.cli.verify", "verify_main", str(engine), "--bundle", str(bundle), "--batch", "64"), "rf-verify")
    assert err.strip().endswith("batch 64 outside the engine's profile 1..32")


@pytest.mark.skipif(tensorrt_importable(), reason="TensorRT is installed here; this checks the message where it is not")
def test_cli_without_tensorrt_says_where_it_runs(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(PLAN_LIKE)
    err = process_error(run_cli("rftrt.cli.verify", "verify_main", str(engine), "--bundle", str(exported_bundle("l40"))), "rf-verify")
    assert "TensorRT is not installed here: rf-verify runs on the device (l40 with TensorRT 11.4" in err


def test_cli_help_and_exit_codes_are_documented():
    proc = run_cli("rftrt.cli.verify", "verify_main", "--help")
    assert proc.returncode == 0
    assert "Exit code 0: within tolerance; 1: mismatch; 2: bad input" in " ".join(proc.stdout.split())
