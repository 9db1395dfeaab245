"""The device kit, run as a device runs it: ``python3 -I rftrt-device.pyz …`` in an environment that
has NumPy and nothing else (no rftrt, torch, ONNX, ONNX Runtime, TensorRT or cuda-python)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy
import pytest
from helpers import copy_bundle, exported_bundle

from rftrt.device.kit import HOST_ONLY, KIT_NAME, build_kit, kit_modules, module_imports
from rftrt.device.numpy_only import numpy_only_venv


@pytest.fixture(scope="session")
def numpy_only(shared_tmp) -> Path:
    """A virtual environment whose only package is this NumPy (linked in, nothing downloaded)."""
    return numpy_only_venv(shared_tmp.mktemp("numpy-only"))


def _kit(python: Path, folder: Path, *args: str, code: str | None = None) -> subprocess.CompletedProcess:
    """``python -I folder/rftrt-device.pyz args`` (or ``code`` run with the kit's path as argv[0])."""
    kit = str(folder / KIT_NAME)
    command = [str(python), "-I", kit, *args] if code is None else [str(python), "-I", "-c", code, kit, *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=folder.parent)


def _refused(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stderr.startswith("rftrt-device: error: ") and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr


def test_every_bundle_carries_the_same_kit_listed_in_its_manifest():
    bundle = exported_bundle("orin")
    kit = (bundle / KIT_NAME).read_bytes()
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert KIT_NAME in manifest["files"] and manifest["files"][KIT_NAME]["size"] == len(kit)
    assert kit == build_kit() == exported_bundle("l40").joinpath(KIT_NAME).read_bytes()  # deterministic, one kit
    names = zipfile.ZipFile(bundle / KIT_NAME).namelist()
    assert "__main__.py" in names and "rftrt/cli/device.py" in names and "rftrt/targets/profiles/orin.json" in names
    assert not any(n.startswith(("rftrt/export/", "rftrt/precision/", "rftrt/models/", "rftrt/pipeline/", "rftrt/tools/")) for n in names)


def test_the_kit_is_the_closure_of_its_entry_point_and_imports_nothing_of_the_host():
    modules = kit_modules()
    assert {"rftrt.cli.device", "rftrt.cli.build", "rftrt.cli.verify", "rftrt.engines.build", "rftrt.engines.verify", "rftrt.device.info"} <= set(modules)
    outside = {name.split(".")[0] for m in modules for name in module_imports(m)} - {"rftrt"}
    assert not outside & set(HOST_ONLY)
    device_packages = {"numpy", "tensorrt", "cuda", "tomli"}  # tomli: used where present, not needed
    assert outside <= set(sys.stdlib_module_names) | device_packages, outside - set(sys.stdlib_module_names)


def test_every_device_module_imports_with_the_host_packages_blocked():
    blocked = "; ".join(f"sys.modules[{name!r}] = None" for name in HOST_ONLY)
    code = f"import importlib, sys; {blocked}; [importlib.import_module(m) for m in {kit_modules()!r}]"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_the_device_code_is_python_38_compatible():
    vermin = shutil.which("vermin", path=sysconfig.get_path("scripts"))
    assert vermin, "vermin is a test dependency (setup.cfg [test])"
    from rftrt.device.kit import _source

    proc = subprocess.run([vermin, "-t=3.8-", "--no-tips", "--violations", *map(str, map(_source, kit_modules()))], capture_output=True, text=True)
    assert proc.returncode == 0 and "Minimum required versions: 3.8" in proc.stdout, proc.stdout + proc.stderr


def test_info_with_only_numpy_says_what_the_bundle_is_and_what_is_missing(numpy_only, tmp_path):
    bundle = copy_bundle("orin", tmp_path)
    proc = _kit(numpy_only, bundle, "info", "--json", str(tmp_path / "info.json"))
    assert proc.returncode == 0, proc.stderr
    assert "model     rf_b0 r64, fp16, batch 1:8:32" in proc.stdout and "target    orin, TensorRT 8.6 (weakly typed)" in proc.stdout
    assert "missing   TensorRT: the bundle needs TensorRT 8.6.x" in proc.stdout and "not ready to build here" in proc.stdout
    report = json.loads((tmp_path / "info.json").read_text())
    assert report["ready"] is False and report["device"]["numpy"] == numpy.__version__ and report["device"]["tensorrt"] is None


def test_without_a_toml_parser_or_resources_files_the_kit_reads_its_json_copies(numpy_only, tmp_path):
    """What a Python 3.8 device has: no tomllib or tomli, no importlib.resources.files."""
    bundle = copy_bundle("orin", tmp_path)
    code = (
        "import sys, runpy, importlib.resources; sys.modules['tomllib'] = sys.modules['tomli'] = None; "
        "del importlib.resources.files; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    proc = _kit(numpy_only, bundle, "info", code=code)
    assert proc.returncode == 0, proc.stderr
    assert "NVIDIA DRIVE AGX Orin (aarch64, SM 8.7)" in proc.stdout  # the target profile, from orin.json


@pytest.mark.parametrize("command", [["build"], ["verify"], ["bench"], ["build", "--allow-other-gpu"]])
def test_each_command_that_needs_the_device_refuses_in_one_line(numpy_only, tmp_path, command):
    bundle = copy_bundle("orin", tmp_path)
    err = _refused(_kit(numpy_only, bundle, *command))
    assert "TensorRT is not installed here" in err or "rf_b0.engine does not exist" in err
    assert sorted(p.name for p in bundle.iterdir()) == sorted([*json.loads((bundle / "manifest.json").read_text())["files"], "manifest.json"])


def test_a_kit_outside_a_bundle_and_an_edited_bundle_are_refused(numpy_only, tmp_path):
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(exported_bundle("orin") / KIT_NAME, alone)
    assert "has no manifest.json" in _refused(_kit(numpy_only, alone, "info"))
    bundle = copy_bundle("orin", tmp_path)
    (bundle / "build.json").write_text((bundle / "build.json").read_text().replace('"opt": 8', '"opt": 9'))
    assert "build.json has changed" in _refused(_kit(numpy_only, bundle, "info"))


def test_bench_refuses_a_batch_outside_the_profile_before_anything_else(numpy_only, tmp_path):
    bundle = copy_bundle("orin", tmp_path)
    assert "batch 64 is outside the bundle's profile 1..32" in _refused(_kit(numpy_only, bundle, "bench", "--batch", "8,64"))


def test_the_device_extra_picks_cuda_python_of_each_device_stacks_cuda_major():
    """platforms.md §8: JetPack 6 = Python 3.10 with CUDA 12, JetPack 7 = Python 3.12 with CUDA 13."""
    import configparser

    from packaging.requirements import Requirement
    from packaging.version import Version

    config = configparser.ConfigParser()
    config.read(Path(__file__).parents[1] / "setup.cfg")
    requirements = [Requirement(line) for line in config["options.extras_require"]["device"].splitlines() if line.strip() and not line.strip().startswith("#")]
    for python, cuda_major in (("3.10", 12), ("3.12", 13)):
        chosen = [r for r in requirements if r.name == "cuda-python" and (r.marker is None or r.marker.evaluate({"python_version": python}))]
        assert len(chosen) == 1, (python, chosen)
        assert chosen[0].specifier.contains(Version(f"{cuda_major}.0")) and not chosen[0].specifier.contains(Version(f"{cuda_major + 1}.0") if cuda_major == 12 else Version("12.9"))


def test_the_kit_commands_in_process(tmp_path, capsys):
    """The same commands through ``rftrt.cli.device.main`` (what the ``rftrt-device`` console script runs)."""
    from rftrt.cli.device import main

    bundle = copy_bundle("l40", tmp_path)
    assert main(["info", "--bundle", str(bundle), "--json", str(tmp_path / "i.json")]) == 0
    out = capsys.readouterr().out
    assert "target    l40, TensorRT 11.4 (strongly typed)" in out and "missing   GPU: the target is NVIDIA L40" in out
    assert json.loads((tmp_path / "i.json").read_text())["spec"]["dialect"] == "strong"
    for argv, message in (
        (["build", str(bundle)], "TensorRT is not installed here"),
        (["bench", "--bundle", str(bundle), "--batch", "0"], "batch sizes must be positive integers"),
        (["bench", "--bundle", str(bundle), "--batch", "33"], "batch 33 is outside the bundle's profile 1..32"),
        (["verify", "--bundle", str(bundle)], "rf_b0.engine does not exist"),
    ):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's own errors
            code = exc.code
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, (argv, err)
