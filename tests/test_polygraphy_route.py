"""The bundle's second route, with no rftrt: its golden data in Polygraphy's JSON format, checked with
the real ``polygraphy run`` command line, and the per-element tolerances it is given."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from helpers import copy_bundle, exported_bundle
from onnx import numpy_helper
from polygraphy.comparator import RunResults
from polygraphy.json import load_json

from rftrt.cli.device import _parser
from rftrt.comparison import TOLERANCES, compare, elementwise_tolerances
from rftrt.engines.bundle import load_bundle_spec, verify_bundle
from rftrt.engines.trtexec import polygraphy_command
from rftrt.pipeline.polygraphy_files import INPUTS, OUTPUTS, polygraphy_check, polygraphy_files

POLYGRAPHY = Path(sys.executable).with_name("polygraphy")
TARGETS = ["orin", "l40"]  # weakly typed FP32 ONNX, strongly typed FP16 ONNX


def _golden(bundle: Path) -> dict[str, np.ndarray]:
    with np.load(bundle / "golden.npz") as data:
        return {key: data[key] for key in data.files}


def _verify_argv(bundle: Path) -> list[str]:
    """The ``polygraphy run`` argv build.sh --verify runs (read back from its echo line)."""
    lines = [line for line in (bundle / "build.sh").read_text().splitlines() if line.strip().startswith("echo '+ polygraphy run ")]
    assert len(lines) == 1, lines
    return shlex.split(shlex.split(lines[0])[1].removeprefix("+ "))


def _on_onnx(bundle: Path) -> list[str]:
    """build.sh's Polygraphy check with the bundle's ONNX on ONNX Runtime in place of the engine on TensorRT."""
    argv, spec = _verify_argv(bundle), load_bundle_spec(bundle)
    assert argv[2:4] == [spec.engine, "--trt"]
    return [str(POLYGRAPHY), *argv[1:2], spec.onnx, "--onnxrt", *argv[4:]]


def _polygraphy(bundle: Path, argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=bundle, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("target", TARGETS)
def test_the_files_are_the_golden_arrays_in_polygraphys_format(target):
    bundle = exported_bundle(target)
    spec, golden = load_bundle_spec(bundle), _golden(bundle)
    verify_bundle(bundle)  # listed and hashed in the manifest like every file
    inputs = load_json(str(bundle / INPUTS))
    assert isinstance(inputs, list) and len(inputs) == 1 and list(inputs[0]) == [spec.input_name]
    assert np.array_equal(inputs[0][spec.input_name], golden["images"]) and inputs[0][spec.input_name].dtype == golden["images"].dtype
    results = RunResults.load(str(bundle / OUTPUTS))
    (runner, iterations), = results.items()
    assert len(iterations) == 1 and list(iterations[0].keys()) == [spec.output_name]
    assert np.array_equal(iterations[0][spec.output_name], golden["logits"])
    # deterministic: the golden arrays give the bundle's bytes again
    again = polygraphy_files(spec, golden)
    assert again == {INPUTS: (bundle / INPUTS).read_bytes(), OUTPUTS: (bundle / OUTPUTS).read_bytes()}


@pytest.mark.parametrize("target", TARGETS)
def test_build_sh_verify_carries_the_tolerances_of_the_bundles_precision(target):
    bundle = exported_bundle(target)
    spec, golden = load_bundle_spec(bundle), _golden(bundle)
    check = polygraphy_check(spec, golden["logits"])
    assert check.tolerance == "fp16" and _verify_argv(bundle) == polygraphy_command(spec.engine, "--trt", check)
    assert (check.atol, check.rtol) == elementwise_tolerances("fp16", golden["logits"]) and 0 < check.atol and 0 < check.rtol < 0.05
    readme = (bundle / "README.md").read_text()
    assert shlex.join(polygraphy_command(spec.onnx, "--onnxrt", check)) in readme and "python3 rftrt-device.pyz verify" in readme


@pytest.mark.skipif(not POLYGRAPHY.exists(), reason="the polygraphy command is not installed beside this Python")
@pytest.mark.parametrize("target", TARGETS)
def test_polygraphy_passes_the_bundles_own_onnx(target):
    bundle = exported_bundle(target)
    result = _polygraphy(bundle, _on_onnx(bundle))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "[I] PASSED | Runtime: " in result.stdout + result.stderr


@pytest.mark.skipif(not POLYGRAPHY.exists(), reason="the polygraphy command is not installed beside this Python")
@pytest.mark.parametrize("target", TARGETS)
def test_polygraphy_fails_a_tampered_onnx(tmp_path, target):
    # One classifier bias element moved by four times atol: one logit per image, small next to the
    # logits' scale, which an element-wise check must catch.
    bundle = copy_bundle(target, tmp_path)
    spec = load_bundle_spec(bundle)
    check, argv = polygraphy_check(spec, _golden(bundle)["logits"]), _on_onnx(bundle)
    model = onnx.load(bundle / spec.onnx)
    head = [n for n in model.graph.node if n.op_type == "Gemm"][-1]
    bias = next(i for i in model.graph.initializer if i.name == head.input[2])
    values = numpy_helper.to_array(bias).copy()
    values[0] += np.asarray(4 * check.atol, dtype=values.dtype)
    bias.CopyFrom(numpy_helper.from_array(values, bias.name))
    onnx.save(model, bundle / spec.onnx)
    result = _polygraphy(bundle, argv)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "FAILED | Output: 'logits' | Difference exceeds tolerance" in result.stdout + result.stderr


# --- the tolerances ----------------------------------------------------------------------------


def _polygraphy_passes(out: np.ndarray, ref: np.ndarray, atol: float, rtol: float) -> bool:
    """Polygraphy's element-wise rule (``SimpleCompareFunc``, check_error_stat "elemwise")."""
    absdiff = np.abs(out.astype(np.float64) - ref)
    reldiff = absdiff / np.abs(np.where(ref == 0, np.finfo(float).eps, ref))
    return not np.any(((absdiff > atol) | np.isnan(absdiff)) & ((reldiff > rtol) | np.isnan(reldiff)))


@pytest.mark.parametrize("kind", [k for k, limits in TOLERANCES.items() if "min_cosine" in limits])
def test_every_element_at_polygraphys_limit_still_passes_rftrts_comparison(kind):
    ref = _golden(exported_bundle("orin"))["logits"].astype(np.float64)
    atol, rtol = elementwise_tolerances(kind, ref)
    limit = np.maximum(atol, rtol * np.abs(ref)) * (1 - 1e-9)  # at the limit, short of float rounding
    for seed in range(5):  # errors of random sign, each at its element's limit
        out = ref + np.random.default_rng(seed).choice([-1.0, 1.0], ref.shape) * limit
        assert _polygraphy_passes(out, ref, atol, rtol)
        assert compare("reference", ref, "candidate", out, "golden", kind).passed, kind
    # The bound holds for the worst error of that norm too: per image, ‖Δ‖ = the limits' norm r, in the
    # direction that lowers the cosine most (cosine √(1 − r²/‖b‖²)); twice that norm breaks it.
    r2 = np.sum(limit**2, axis=1, keepdims=True) / np.sum(ref**2, axis=1, keepdims=True)  # r²/‖b‖²
    across = np.random.default_rng(9).standard_normal(ref.shape)
    across -= ref * (np.sum(across * ref, axis=1, keepdims=True) / np.sum(ref * ref, axis=1, keepdims=True))
    across *= np.linalg.norm(ref, axis=1, keepdims=True) / np.linalg.norm(across, axis=1, keepdims=True)  # ⟂ b, norm ‖b‖
    for factor, holds in ((1.0, True), (2.0, False)):
        k2 = factor**2 * r2
        worst = ref * (1 - k2) + across * np.sqrt(k2 * (1 - k2))
        assert (compare("reference", ref, "candidate", worst, "golden", kind).min_cosine >= TOLERANCES[kind]["min_cosine"]) == holds, factor
    # NaN fails both
    broken = ref.copy()
    broken[0, 0] = np.nan
    assert not _polygraphy_passes(broken, ref, atol, rtol) and not compare("r", ref, "c", broken, "g", kind).passed


@pytest.mark.parametrize("kind", [k for k, limits in TOLERANCES.items() if "max_rel" in limits])
def test_max_rel_kinds_map_to_an_absolute_tolerance(kind):
    ref = _golden(exported_bundle("orin"))["logits"].astype(np.float64)
    atol, rtol = elementwise_tolerances(kind, ref)
    bound = TOLERANCES[kind]["max_rel"] * np.abs(ref).max()
    assert rtol == 0 and 0.99 * bound <= atol <= bound  # cut to three digits
    out = ref + atol * (1 - 1e-9)
    assert _polygraphy_passes(out, ref, atol, rtol) and compare("r", ref, "c", out, "g", kind).passed
    assert not _polygraphy_passes(ref + 1.01 * bound, ref, atol, rtol)


# --- the bundle README's device steps ------------------------------------------------------------


def test_the_readme_names_the_kits_real_commands_and_options():
    readme = (exported_bundle("orin") / "README.md").read_text()
    kit_part = readme.split("## On the device", 1)[1].split("### Without the kit", 1)[0]
    commands = _parser(".", "python3 rftrt-device.pyz")._subparsers._group_actions[0].choices
    assert set(re.findall(r"python3 rftrt-device\.pyz (\w+)", kit_part)) == set(commands)
    options = {o for sub in commands.values() for action in sub._actions for o in action.option_strings}
    named = set(re.findall(r"(--[a-z][a-z-]*)", kit_part))
    assert named and named <= options, named - options
    script_part = readme.split("### Without the kit", 1)[1].split("## Files", 1)[0]
    assert {"bash build.sh", "bash build.sh --verify", "bash build.sh --bench"} <= {line.split("#")[0].strip() for line in script_part.splitlines()}
