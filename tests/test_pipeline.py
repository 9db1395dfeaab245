"""rf-export end to end: bundles for every target and dialect, their contents, determinism,
atomic output, and every bad input (one line, exit code 2)."""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from rftrt.cli.export import export_main
from rftrt.engines.build_spec import BuildSpec, Int8Source
from rftrt.engines.bundle import verify_bundle
from rftrt.errors import RftrtError
from rftrt.export.onnxrt import run_onnx
from rftrt.models import create, list_models
from rftrt.pipeline import ExportOptions, run_export
from rftrt.targets.tensorrt import version_tag

RES = 64


def _export(tmp_path: Path, name: str = "bundle", **kwargs):
    options = ExportOptions(out_dir=str(tmp_path / name), resolution=RES, **{"model": "rf_b0", "target": "orin", **kwargs})
    lines: list[str] = []
    return run_export(options, log=lines.append), lines


@pytest.mark.parametrize(
    "target, trt, dialect",
    [("orin", None, "weak"), ("orin", "10.10", "weak"), ("jetson-orin", None, "weak"), ("jetson-orin", "11.4", "strong"), ("l40", None, "strong"), ("l40", "10.13", "weak")],
)
def test_fp16_bundle_for_each_target_and_dialect(tmp_path, target, trt, dialect):
    result, lines = _export(tmp_path, model="rf_b0", target=target, trt_version=trt, precision="fp16")
    out = result.out_dir
    assert result.passed and result.target.release.dialect == dialect
    assert [line.split()[1] for line in lines if line.startswith("[")] == ["model", "export", "passes", "precision", "validate", "bundle"]
    assert "RANDOM WEIGHTS" in lines[0]
    assert lines[-1].startswith("TensorRT not found: wrote bundle") and "build.sh" in lines[-1]

    names = sorted(p.name for p in out.iterdir())
    onnx_name = "rf_b0.fp16.onnx" if dialect == "strong" else "rf_b0.onnx"
    assert names == sorted([onnx_name, "build.json", "build.sh", "golden.npz", "polygraphy_inputs.json", "polygraphy_outputs.json", "README.md", "precision_plan.json", "rftrt-device.pyz", "manifest.json"])
    verify_bundle(out)
    assert os.access(out / "build.sh", os.X_OK)

    spec = BuildSpec.from_json((out / "build.json").read_text())
    assert spec.dialect == dialect and spec.onnx == onnx_name and spec.precision == "fp16"
    model = onnx.load(out / onnx_name)
    opset = {o.domain: o.version for o in model.opset_import}[""]
    assert opset <= result.target.release.opset_max
    weights = [i for i in model.graph.initializer if i.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)]
    half = sum(i.data_type == onnx.TensorProto.FLOAT16 for i in weights)
    if dialect == "strong":
        assert half > len(weights) / 2 and spec.fp32_layers == ()
    else:
        assert half == 0 and len(spec.fp32_layers) > 0
        # every plan node is pinned, data movement included: left unpinned, TensorRT may run a Reshape
        # of an FP32 tensor in FP16, which is the overflow the plan exists to prevent
        plan = json.loads((out / "precision_plan.json").read_text())
        ops = {n.name: n.op_type for n in model.graph.node}
        assert spec.fp32_layers == tuple(plan["fp32_nodes"])
        assert {"Reshape", "Transpose", "Concat", "Split"} & {ops[name] for name in spec.fp32_layers}

    script = (out / "build.sh").read_text()
    assert subprocess.run(["bash", "-n", str(out / "build.sh")]).returncode == 0
    if dialect == "weak":
        assert "--fp16" in script and "--precisionConstraints=obey" in script and "--layerPrecisions=" in script
        for layer in spec.fp32_layers:
            assert f"{layer}:fp32" in script
    else:
        for removed in ("--fp16", "--int8", "--calib", "--best", "--layerPrecisions", "--precisionConstraints"):
            assert removed not in script

    golden = np.load(out / "golden.npz")
    assert golden["images"].shape == (8, 3, RES, RES)
    again = run_onnx(model, {"g": golden["images"]})["g"]
    assert np.array_equal(again, golden["logits"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["versions"]["rftrt"] and manifest["versions"]["onnxruntime"]


@pytest.mark.parametrize("name", list_models())
def test_every_model_gives_a_validated_orin_bundle(tmp_path, name):
    result, _ = _export(tmp_path, model=name, precision="fp16")
    assert result.passed
    fp32_checks = [c for c in result.comparisons if c.kind != "fp16"]
    assert all(c.max_abs <= 1e-4 for c in fp32_checks)
    assert all(c.top1_agreement == 1.0 for c in result.comparisons if c.inputs == "photographs")


def test_same_inputs_give_byte_identical_bundles(tmp_path):
    first, _ = _export(tmp_path, "a", precision="fp16")
    second, _ = _export(tmp_path, "b", precision="fp16")
    for name in ("manifest.json", "rf_b0.onnx", "golden.npz", "polygraphy_inputs.json", "polygraphy_outputs.json", "build.json", "build.sh"):
        assert (first.out_dir / name).read_bytes() == (second.out_dir / name).read_bytes(), name


def test_dla_bundle_is_static_and_says_so(tmp_path):
    result, _ = _export(tmp_path, precision="fp16", dla_core=1)
    spec = BuildSpec.from_json((result.out_dir / "build.json").read_text())
    assert spec.batch.static and spec.batch.opt == 8 and spec.dla_core == 1
    assert any("static" in note for note in spec.notes)
    model = onnx.load(result.out_dir / "rf_b0.onnx")
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 8
    assert "--useDLACore=1" in (result.out_dir / "build.sh").read_text()


def test_dla_bundle_drops_gpu_fallback_only_where_the_prediction_places_everything_on_dla(tmp_path):
    """ReduceFormer after the DLA rewrites is predicted entirely on DLA: the bundle builds without GPU
    fallback, so a network TensorRT would split fails its build instead of running partly on the GPU.
    EfficientViT keeps its MatMuls on the GPU: its bundle keeps the fallback and says why."""
    for model, expected in (("rf_b0", False), ("evit_b0", True)):
        result, lines = _export(tmp_path, name=model, model=model, precision="fp16", dla_core=0)
        spec = BuildSpec.from_json((result.out_dir / "build.json").read_text())
        prediction = json.loads((result.out_dir / "dla_prediction.json").read_text())
        assert spec.gpu_fallback is expected and prediction["without_fallback"] is (not expected)
        assert ("--allowGPUFallback" in (result.out_dir / "build.sh").read_text()) is expected
        note = next(n for n in spec.notes if n.startswith("DLA core 0 with"))
        assert note.startswith("DLA core 0 with GPU fallback" if expected else "DLA core 0 without GPU fallback")
        assert any(note in line for line in lines)


def test_fp32_bundle_and_json_report(tmp_path, capsys):
    report = tmp_path / "report.json"
    args = ["--model", "evit_b0", "--target", "l40", "--resolution", str(RES), "--out", str(tmp_path / "b"), "--json", str(report)]
    assert export_main(args) == 0
    data = json.loads(report.read_text())
    assert data["precision"] == "fp32" and data["validation_passed"] and data["precision_plan"] is None
    assert [p["name"] for p in data["passes"]] == ["cleanup", "reduce-attention", "litemla-padded-ones"]
    assert data["passes"][2]["matched"] == 4 and data["target"]["dialect"] == "strong"
    assert "next:" in capsys.readouterr().out


def test_existing_output_is_refused_then_replaced_with_force(tmp_path):
    _export(tmp_path)
    with pytest.raises(RftrtError, match="exists; pass --force"):
        _export(tmp_path)
    result, _ = _export(tmp_path, force=True)
    verify_bundle(result.out_dir)


def test_failed_run_leaves_no_output(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(create("evit_b1").state_dict(), path)
    with pytest.raises(RftrtError):
        _export(tmp_path, weights=str(path))
    assert list(tmp_path.iterdir()) == [path]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    code = "import sys; from rftrt.cli.export import export_main; sys.exit(export_main())"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd)


def _corrupt(tmp_path: Path) -> str:
    path = tmp_path / "corrupt.pt"
    path.write_bytes(b"\x00not a checkpoint")
    return str(path)


def _wrong_variant(tmp_path: Path) -> str:
    path = tmp_path / "b1.pt"
    torch.save(create("rf_b1").state_dict(), path)
    return str(path)


BAD_INPUTS = {
    "unknown model": ("--model rf_b7 --fp16", "unknown model 'rf_b7'"),
    "unknown target": ("--model rf_b0 --target xavier", "unknown target 'xavier'"),
    "bad resolution": ("--model rf_b0 --resolution 100", "resolution 100 not supported"),
    "fp16 with int8": ("--model rf_b0 --fp16 --int8", "not allowed with argument"),
    "dla without dla": ("--model rf_b0 --target l40 --dla 0", "l40 has no DLA"),
    "opset above ceiling": ("--model rf_b0 --target orin --opset 18", "opset 18 is above what TensorRT 8.6"),
    "unknown trt": ("--model rf_b0 --target orin --trt-version 9.9", "orin offers TensorRT"),
    "missing weights": ("--model rf_b0 --weights nope.pt", "weights file not found"),
    "corrupt weights": ("--model rf_b0 --weights {corrupt}", "is not a PyTorch checkpoint"),
    "wrong variant": ("--model rf_b0 --weights {wrong}", "does not match rf_b0"),
    "unwritable output": ("--model rf_b0 --out {file}/bundle", ""),
    "bad batch": ("--model rf_b0 --batch 8:1:32", "batch"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, case):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    args, expected = BAD_INPUTS[case]
    args = args.format(corrupt=_corrupt(tmp_path) if "corrupt" in args else "", wrong=_wrong_variant(tmp_path) if "wrong" in args else "", file=a_file)
    small = [] if "--resolution" in args else ["--resolution", str(RES)]
    proc = _cli(*shlex.split(args), *small, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("rf-export: error: "), proc.stderr
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "rftrt_out").exists()


def test_verbose_shows_the_traceback(tmp_path):
    proc = _cli("--model", "rf_b7", "--verbose", cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" in proc.stderr


@pytest.mark.parametrize("target, dialect", [("orin", "weak"), ("l40", "strong")])
def test_int8_bundle_in_each_dialect(tmp_path, target, dialect):
    calib = tmp_path / "calib"
    calib.mkdir()
    for photo in sorted((Path(__file__).parents[1] / "rftrt" / "data" / "images").glob("*.jpg"))[:6]:
        (calib / photo.name).write_bytes(photo.read_bytes())
    result, lines = _export(tmp_path, target=target, precision="int8", calib_dir=str(calib), calib_images=6)
    assert result.passed and any(c.kind == "int8-qdq" for c in result.comparisons)
    # random weights: INT8 accuracy is reported, not enforced, and said so; FP32 and pass checks still are
    assert result.not_enforced == ("int8-qdq",) and any("not enforced" in w for w in result.warnings)
    # what INT8 leaves runs in FP16: the FP16 plan is checked in INT8 bundles too
    assert {c.kind for c in result.enforced} == {"fp32", "passes", "fp16"} and all(c.passed for c in result.enforced)
    out = result.out_dir
    verify_bundle(out)
    spec = BuildSpec.from_json((out / "build.json").read_text())
    assert spec.precision == "int8" and (out / "calibration.json").exists()
    script = (out / "build.sh").read_text()
    if dialect == "weak":
        assert spec.calibration_cache == "calibration.cache"
        header = (out / "calibration.cache").read_text().splitlines()[0]
        assert header == "TRT-8600-EntropyCalibration2"
        assert "--int8" in script and "--calib=calibration.cache" in script
        qdq = onnx.load(out / "rf_b0.qdq.onnx")
        assert any(n.op_type == "QuantizeLinear" for n in qdq.graph.node)
    else:
        assert spec.calibration_cache is None and not (out / "calibration.cache").exists()
        typed = onnx.load(out / spec.onnx)
        assert any(n.op_type == "QuantizeLinear" for n in typed.graph.node)
        assert "--int8" not in script and "--calib" not in script


def test_calib_dir_needs_int8_and_images(tmp_path):
    with pytest.raises(RftrtError, match="add --int8"):
        _export(tmp_path, precision="fp16", calib_dir=str(tmp_path))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RftrtError, match="no image files"):
        _export(tmp_path, precision="int8", calib_dir=str(empty))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


@pytest.mark.parametrize(
    "trt, dla, route",
    [("10.10", None, "qdq"), ("8.6.12", None, "cache"), ("10.10", 0, "cache")],
    ids=["10.x-gpu-qdq", "8.6.12-gpu-cache", "10.x-dla-cache"],
)
def test_int8_bundle_per_route(tmp_path, trt, dla, route):
    calib = tmp_path / "calib"
    calib.mkdir()
    for photo in sorted((Path(__file__).parents[1] / "rftrt" / "data" / "images").glob("*.jpg"))[:6]:
        (calib / photo.name).write_bytes(photo.read_bytes())
    result, _ = _export(tmp_path, target="orin", trt_version=trt, dla_core=dla, precision="int8", calib_dir=str(calib), calib_images=6)
    out = result.out_dir
    verify_bundle(out)
    spec = BuildSpec.from_json((out / "build.json").read_text())
    assert spec.tensorrt_version == trt  # the version as given, patch included
    script, readme = (out / "build.sh").read_text(), (out / "README.md").read_text()
    fp32 = onnx.load(out / "rf_b0.onnx")
    assert not any(n.op_type == "QuantizeLinear" for n in fp32.graph.node)  # the FP32 ONNX the cache's names come from
    header = (out / "calibration.cache").read_text().splitlines()[0]
    assert header == f"TRT-{version_tag(trt)}-EntropyCalibration2"
    if route == "qdq":
        assert spec.onnx == "rf_b0.qdq.onnx" and spec.calibration_cache is None
        assert spec.int8 == Int8Source("qdq", "rf_b0.qdq.onnx")
        assert any(n.op_type == "QuantizeLinear" for n in onnx.load(out / spec.onnx).graph.node)
        assert "--onnx=rf_b0.qdq.onnx" in script and "--int8 --fp16 --precisionConstraints=obey" in script and "--calib" not in script
        assert "| `calibration.cache` | TensorRT INT8 calibration cache: not used by this build" in readme
        assert "The Q/DQ ONNX (`rf_b0.qdq.onnx`, explicit quantization, no calibration cache) is built with `--int8 --fp16`" in readme
    else:
        assert spec.onnx == "rf_b0.onnx" and spec.calibration_cache == "calibration.cache"
        assert spec.int8 == Int8Source("cache", "calibration.cache")
        assert "--onnx=rf_b0.onnx" in script and "--calib=calibration.cache" in script
        assert "| `calibration.cache` | TensorRT INT8 calibration cache: this build's INT8 scales" in readme
        assert "| `rf_b0.qdq.onnx` | the same network with explicit Q/DQ nodes: not used by this build" in readme
        assert "TensorRT 10.x explicit quantization" not in readme
        assert f"header `{header.rsplit('-', 1)[0]}`" in readme
