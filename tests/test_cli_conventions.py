"""One convention across the commands: bad input is one line and exit code 2 (with or without
--verbose), warnings go to stderr, and a reader that stops reading does not abort the work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

_EXPORT = "import sys; from rftrt.cli.export import export_main; sys.exit(export_main())"


def _export(*args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _EXPORT, *args], capture_output=True, text=True, cwd=cwd, **kwargs)


def test_verbose_adds_the_traceback_and_keeps_exit_code_2(tmp_path):
    plain = _export("--model", "rf_b7", cwd=tmp_path)
    verbose = _export("--model", "rf_b7", "--verbose", cwd=tmp_path)
    assert plain.returncode == verbose.returncode == 2
    assert "Traceback" not in plain.stderr and "Traceback" in verbose.stderr
    assert verbose.stderr.rstrip().splitlines()[-1] == plain.stderr.strip() == "rf-export: error: unknown model 'rf_b7'; available: evit_b0, evit_b1, evit_b2, evit_b3, rf_b0, rf_b1, rf_b2, rf_b3"


def test_a_reader_that_stops_reading_does_not_abort_the_export(tmp_path):
    """``rf-export … | head -1``: the bundle is written, the exit code is 0, no BrokenPipeError."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _EXPORT, "--model", "rf_b0", "--resolution", "64", "--fp16", "--target", "orin", "--out", str(tmp_path / "b")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
    )  # fmt: skip
    first = proc.stdout.readline()
    proc.stdout.close()  # the reader is gone
    _, err = proc.communicate(timeout=300)
    assert first.startswith(b"[1/6] model")
    assert proc.returncode == 0, err.decode()
    assert b"BrokenPipeError" not in err and b"Traceback" not in err
    assert (tmp_path / "b" / "manifest.json").is_file()


def test_warnings_go_to_stderr_and_results_to_stdout(tmp_path):
    proc = _export("--model", "rf_b0", "--resolution", "64", "--int8", "--target", "orin", "--out", str(tmp_path / "b"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "warning:" not in proc.stdout and "[6/6] bundle" in proc.stdout
    assert "warning: no --calib-dir: calibrating on the 8 photographs bundled with rftrt" in proc.stderr
    assert "warning: random weights: the INT8 checks are reported, not enforced" in proc.stderr


def test_contradicting_or_impossible_export_options_are_refused_before_any_work(tmp_path):
    from rftrt.errors import RftrtError
    from rftrt.pipeline.options import ExportOptions, resolve

    cases = {
        "DLA needs static shapes, but --batch 1:8:32 is dynamic; give --batch N (e.g. --batch 8)": dict(target="jetson-orin", dla_core=0, batch="1:8:32"),
        "--static asks for a static batch, but --batch 1:4:16 is dynamic": dict(target="orin", static=True, batch="1:4:16"),
        "--calib-images must be a positive integer, got -5": dict(target="orin", precision="int8", calib_images=-5),
        "--calib-batch must be a positive integer, got 0": dict(target="orin", precision="int8", calib_batch=0),
    }
    for message, fields in cases.items():
        try:
            resolve(ExportOptions(model="rf_b0", out_dir=str(tmp_path / "x"), **fields))
        except RftrtError as exc:
            assert message in str(exc), (fields, str(exc))
        else:
            raise AssertionError(f"{fields} was accepted")
    assert resolve(ExportOptions(model="rf_b0", target="jetson-orin", dla_core=0, batch="4", out_dir=str(tmp_path / "x"))).target.batch.opt == 4


def test_every_command_refuses_an_output_it_could_not_write_before_any_work(tmp_path, capsys):
    """A report into a missing folder: one line, exit 2, and nothing written (rf-export used to
    leave the whole bundle behind, rf-calib and rf-bench to crash after all the work)."""
    from rftrt.cli.bench import bench_main
    from rftrt.cli.calib import calib_main
    from rftrt.cli.eval import eval_main
    from rftrt.cli.export import export_main
    from rftrt.cli.inspect import inspect_main
    from rftrt.cli.verify import verify_main

    missing = tmp_path / "no" / "such" / "folder" / "report.json"
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    commands = {
        "rf-export": (export_main, ["--model", "rf_b0", "--out", str(tmp_path / "bundle"), "--json", str(missing)]),
        "rf-calib": (calib_main, ["model.onnx", "--json", str(missing)]),
        "rf-bench": (bench_main, ["--model", "rf_b0", "--out", str(a_file / "sub")]),
        "rf-inspect": (inspect_main, ["--model", "rf_b0", "--markdown", str(missing)]),
        "rf-eval": (eval_main, ["--model", "rf_b0", "--data", str(tmp_path), "--json", str(missing)]),
        "rf-verify": (verify_main, ["e.engine", "--bundle", str(tmp_path), "--json", str(missing)]),
    }
    for prog, (main, argv) in commands.items():
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
        err = capsys.readouterr().err
        assert code == 2 and err.startswith(f"{prog}: error:") and err.count("\n") == 1, (prog, err)
        assert "cannot write the" in err and ("does not exist" in err or "is not a folder" in err), (prog, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_sigterm_during_an_export_leaves_nothing_and_exits_143(tmp_path):
    import signal

    proc = subprocess.Popen(
        [sys.executable, "-c", _EXPORT, "--model", "rf_b1", "--fp16", "--target", "orin", "--out", str(tmp_path / "b")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
    )  # fmt: skip
    assert proc.stdout.readline().startswith(b"[1/6] model")  # the work has begun
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and b"rf-export: terminated" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_replacing_a_bundle_holds_signals_back_until_the_new_one_is_in_place(tmp_path, monkeypatch):
    """A Ctrl-C that arrives in the middle of the replacement takes effect once it is complete:
    the new bundle is in place, the old one gone, and no folder is left at a hidden name."""
    import os
    import signal

    import pytest

    from rftrt.engines import bundle as bundle_module
    from rftrt.engines.bundle import verify_bundle, write_bundle

    out = tmp_path / "b"
    write_bundle(out, {"a.txt": b"old"}, versions={})
    exchange = bundle_module.exchange_paths

    def interrupted_exchange(a, b):
        os.kill(os.getpid(), signal.SIGINT)  # lands here, in the middle of the replacement
        return exchange(a, b)

    monkeypatch.setattr(bundle_module, "exchange_paths", interrupted_exchange)
    with pytest.raises(KeyboardInterrupt):
        write_bundle(out, {"a.txt": b"new"}, force=True, versions={})
    assert (out / "a.txt").read_bytes() == b"new" and verify_bundle(out).files[0].size == 3
    assert _hidden(tmp_path) == []


def test_rf_calib_never_writes_into_a_bundle_and_force_says_what_it_deletes(tmp_path, capsys):
    """rf-calib on a bundle's ONNX writes beside the bundle (inside, rf-build would refuse it as
    tampered); rf-export --force names the files of other commands it deletes."""
    from helpers import copy_bundle

    from rftrt.cli.calib import default_output_dir
    from rftrt.pipeline import ExportOptions, run_export

    bundle = copy_bundle("orin", tmp_path)
    assert default_output_dir(bundle / "rf_b0.onnx") == tmp_path / "bundle-orin.int8"
    assert default_output_dir(tmp_path / "loose" / "m.onnx") == tmp_path / "loose" / "m.int8"
    (bundle / "rf_b0.engine").write_bytes(b"built on the device")
    lines = []
    run_export(ExportOptions(model="rf_b0", target="orin", precision="fp32", resolution=64, out_dir=str(bundle), force=True), log=lines.append)
    assert any(line == f"warning: replacing {bundle} deletes 1 files other commands wrote there: rf_b0.engine" for line in lines)
    assert not (bundle / "rf_b0.engine").exists()
