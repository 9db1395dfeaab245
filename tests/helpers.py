"""Helpers the tests share: the one-line-error assertions, the build spec rf-export writes, and real
rf-export bundles made once per session."""

from __future__ import annotations

import atexit
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import pytest

from rftrt.engines.build_spec import BuildSpec
from rftrt.errors import RftrtError
from rftrt.targets.profiles import Target

_TMP = tempfile.TemporaryDirectory(prefix="rftrt-tests-")
atexit.register(_TMP.cleanup)


def one_line_error(fn: Callable, *args, **kwargs) -> str:
    """The message of the :class:`RftrtError` that ``fn(*args, **kwargs)`` raises; it must be one line."""
    with pytest.raises(RftrtError) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message, "user errors are one line"
    return message


def cli_error(capsys, main: Callable[[Sequence[str]], int], argv: Sequence[str], prog: str) -> str:
    """stderr of a command-line entry point that must refuse ``argv``: exit code 2, one line, no traceback."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors exit from inside parse_args
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith(f"{prog}: error:"), err
    return err


def run_cli(module: str, main: str, *argv: str) -> subprocess.CompletedProcess:
    """A command run as its own process, as a user runs it."""
    code = f"import sys; from {module} import {main}; sys.exit({main}())"
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)


def process_error(proc: subprocess.CompletedProcess, prog: str) -> str:
    """stderr of a process that must refuse its input: exit code 2, one line, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stderr.startswith(f"{prog}: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stderr


def spec_for(target: Target, precision: str = "fp16", **overrides) -> BuildSpec:
    """The BuildSpec rf-export writes for rf_b1 on a resolved target (two FP32 layers when weakly typed)."""
    weak = target.release.dialect == "weak"
    fields = dict(
        model="rf_b1",
        resolution=224,
        target=target.name,
        tensorrt_version=target.release.version,
        dialect=target.release.dialect,
        onnx="rf_b1.onnx" if weak else "rf_b1.fp16.onnx",
        input_name="images",
        output_name="logits",
        batch=target.batch,
        precision=precision,
        fp32_layers=("/s2/core/sum_k", "/s2/core/div") if weak and precision != "fp32" else (),
        dla_core=target.dla_core,
        workspace_mib=target.workspace_mib,
        builder_optimization_level=target.builder_optimization_level,
        engine="rf_b1.engine",
        notes=target.notes,
    )
    fields.update(overrides)
    return BuildSpec(**fields)


@lru_cache(maxsize=None)
def exported_bundle(target: str) -> Path:
    """A real rf-export bundle (rf_b0, r64, FP16) for ``target``, made once per test session and kept read-only."""
    from rftrt.pipeline import ExportOptions, run_export

    out = Path(_TMP.name) / f"rf_b0-{target}"
    run_export(ExportOptions(model="rf_b0", target=target, precision="fp16", resolution=64, out_dir=str(out)), log=lambda _: None)
    return out


def copy_bundle(target: str, dest: Path) -> Path:
    return Path(shutil.copytree(exported_bundle(target), dest / f"bundle-{target}"))


def tensorrt_importable() -> bool:
    try:
        import tensorrt  # noqa: F401
    except Exception:  # noqa: BLE001 - absent or broken: either way not usable here
        return False
    return True
