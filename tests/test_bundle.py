"""Bundles: atomic writing, a reproducible manifest, verification that names what changed."""

import hashlib
import json
import os
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from helpers import one_line_error

from rftrt.engines.bundle import BundleFile, verify_bundle, write_bundle
from rftrt.files import write_file_atomic

VERSIONS = {"rftrt": "0.1.0", "torch": "2.13.0", "onnx": "1.17.0"}


def _files() -> dict[str, bytes]:
    return {
        "model.onnx": b"\x08\x07onnx-bytes" * 100,
        "build.json": b'{"schema": 1}\n',
        "build.sh": b"#!/usr/bin/env bash\nset -euo pipefail\necho build\n",
        "golden.npz": bytes(range(256)),
        "README.md": b"# bundle\n",
    }


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir())


class Exploding(Mapping):
    """A files mapping whose value access raises part-way through, as a Ctrl-C during export would."""

    def __init__(self, files: dict[str, bytes], bad: str, exc: BaseException):
        self._files, self._bad, self._exc = files, bad, exc

    def __getitem__(self, name: str) -> bytes:
        if name == self._bad:
            raise self._exc
        return self._files[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)


# --- round trip ---------------------------------------------------------------------------------


def test_write_then_verify(tmp_path):
    files = _files()
    report = write_bundle(tmp_path / "b", files, versions=VERSIONS)
    assert report.path == tmp_path / "b"
    assert [f.name for f in report.files] == sorted(files)
    assert verify_bundle(tmp_path / "b") == report
    for name, data in files.items():
        assert (tmp_path / "b" / name).read_bytes() == data
    assert _leftovers(tmp_path) == ["b"], "no temporary directory left beside the bundle"


def test_manifest_content(tmp_path):
    write_bundle(tmp_path / "b", _files(), versions=VERSIONS)
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["schema"] == 1
    assert manifest["versions"] == VERSIONS
    assert list(manifest["files"]) == sorted(_files())
    assert manifest["files"]["golden.npz"] == {"sha256": hashlib.sha256(bytes(range(256))).hexdigest(), "size": 256}


def test_same_inputs_give_a_byte_identical_manifest(tmp_path):
    files = _files()
    write_bundle(tmp_path / "one", files, versions=VERSIONS)
    reordered = dict(reversed(list(files.items())))
    write_bundle(tmp_path / "two", reordered, versions=dict(reversed(list(VERSIONS.items()))))
    assert (tmp_path / "one" / "manifest.json").read_bytes() == (tmp_path / "two" / "manifest.json").read_bytes()


def test_build_sh_is_executable_and_the_rest_is_not(tmp_path):
    write_bundle(tmp_path / "b", _files(), versions={})
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "b").iterdir()}
    assert modes["build.sh"] == 0o755
    assert all(mode == 0o644 for name, mode in modes.items() if name != "build.sh")
    assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o755


def test_files_in_subfolders(tmp_path):
    write_bundle(tmp_path / "b", {"golden/inputs.npz": b"in", "golden/outputs.npz": b"out"}, versions={})
    report = verify_bundle(tmp_path / "b")
    assert [f.name for f in report.files] == ["golden/inputs.npz", "golden/outputs.npz"]


def test_missing_parent_folders_are_created(tmp_path):
    write_bundle(tmp_path / "bundles" / "orin" / "rf_b1", {"a": b"1"}, versions={})
    assert verify_bundle(tmp_path / "bundles" / "orin" / "rf_b1").files == (
        BundleFile("a", 1, "6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b"),
    )


# --- verification names what is wrong -----------------------------------------------------------


def test_a_changed_byte_is_named(tmp_path):
    write_bundle(tmp_path / "b", _files(), versions={})
    onnx = tmp_path / "b" / "model.onnx"
    data = bytearray(onnx.read_bytes())
    data[100] ^= 0x01
    onnx.write_bytes(bytes(data))
    message = one_line_error(verify_bundle, tmp_path / "b")
    assert "model.onnx has changed" in message
    assert "golden.npz" not in message


def test_a_missing_file_is_named(tmp_path):
    write_bundle(tmp_path / "b", _files(), versions={})
    (tmp_path / "b" / "golden.npz").unlink()
    assert "golden.npz is missing" in one_line_error(verify_bundle, tmp_path / "b")


def test_an_unlisted_file_is_named_unless_ignored(tmp_path):
    write_bundle(tmp_path / "b", _files(), versions={})
    (tmp_path / "b" / "model.engine").write_bytes(b"engine")
    (tmp_path / "b" / "build.log").write_text("log")
    message = one_line_error(verify_bundle, tmp_path / "b")
    assert "model.engine is not in the manifest" in message and "build.log is not in the manifest" in message
    verify_bundle(tmp_path / "b", ignore=("model.engine", "*.log"))


def test_every_problem_is_listed_at_once(tmp_path):
    write_bundle(tmp_path / "b", _files(), versions={})
    (tmp_path / "b" / "README.md").write_text("edited")
    (tmp_path / "b" / "build.json").unlink()
    message = one_line_error(verify_bundle, tmp_path / "b")
    assert "README.md has changed" in message and "build.json is missing" in message


def test_not_a_bundle(tmp_path):
    (tmp_path / "plain").mkdir()
    assert "no manifest.json" in one_line_error(verify_bundle, tmp_path / "plain")
    assert "not a directory" in one_line_error(verify_bundle, tmp_path / "nowhere")
    (tmp_path / "plain" / "manifest.json").write_text("{not json")
    assert "not valid JSON" in one_line_error(verify_bundle, tmp_path / "plain")
    (tmp_path / "plain" / "manifest.json").write_text('{"schema": 99, "files": {}}')
    assert "schema-1" in one_line_error(verify_bundle, tmp_path / "plain")


def test_a_manifest_cannot_point_outside_the_bundle(tmp_path):
    write_bundle(tmp_path / "b", {"a": b"1"}, versions={})
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    manifest["files"]["../secret"] = {"sha256": "0" * 64, "size": 1}
    (tmp_path / "b" / "manifest.json").write_text(json.dumps(manifest))
    assert "'../secret'" in one_line_error(verify_bundle, tmp_path / "b")


# --- atomicity ----------------------------------------------------------------------------------


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), ValueError("export failed")], ids=["ctrl-c", "error"])
def test_an_exception_midway_leaves_nothing_behind(tmp_path, exc):
    # "golden.npz" sorts after "build.*", so some files are already written when it raises.
    files = Exploding(_files(), bad="golden.npz", exc=exc)
    with pytest.raises(type(exc)):
        write_bundle(tmp_path / "b", files, versions=VERSIONS)
    assert _leftovers(tmp_path) == []


def test_an_exception_midway_keeps_the_old_bundle_under_force(tmp_path):
    write_bundle(tmp_path / "b", {"old.txt": b"old"}, versions={})
    with pytest.raises(KeyboardInterrupt):
        write_bundle(tmp_path / "b", Exploding(_files(), "model.onnx", KeyboardInterrupt()), force=True, versions={})
    assert _leftovers(tmp_path) == ["b"]
    assert [f.name for f in verify_bundle(tmp_path / "b").files] == ["old.txt"]


def test_an_exception_midway_removes_parent_folders_it_created(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        write_bundle(tmp_path / "new" / "deeper" / "b", Exploding(_files(), "golden.npz", KeyboardInterrupt()), versions={})
    assert _leftovers(tmp_path) == []


def test_non_bytes_content_is_a_bug_and_leaves_nothing(tmp_path):
    with pytest.raises(TypeError):
        write_bundle(tmp_path / "b", {"a": b"1", "n": 5}, versions={})
    assert _leftovers(tmp_path) == []


# --- existing output and bad paths --------------------------------------------------------------


def test_an_existing_directory_is_refused_without_force(tmp_path):
    write_bundle(tmp_path / "b", {"old.txt": b"old"}, versions={})
    assert one_line_error(write_bundle, tmp_path / "b", _files(), versions={}) == f"{tmp_path / 'b'} exists; pass --force to replace it"
    assert (tmp_path / "b" / "old.txt").read_bytes() == b"old"


def test_force_replaces_an_existing_bundle(tmp_path):
    write_bundle(tmp_path / "b", {"old.txt": b"old"}, versions={})
    write_bundle(tmp_path / "b", _files(), force=True, versions=VERSIONS)
    assert not (tmp_path / "b" / "old.txt").exists()
    assert [f.name for f in verify_bundle(tmp_path / "b").files] == sorted(_files())
    assert _leftovers(tmp_path) == ["b"], "the old bundle renamed aside is deleted"


def test_force_replaces_an_empty_directory_but_not_an_arbitrary_one(tmp_path):
    (tmp_path / "empty").mkdir()
    write_bundle(tmp_path / "empty", {"a": b"1"}, force=True, versions={})
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "thesis.tex").write_text("precious")
    assert "not a bundle" in one_line_error(write_bundle, tmp_path / "home", {"a": b"1"}, force=True, versions={})
    assert (tmp_path / "home" / "thesis.tex").read_text() == "precious"
    (tmp_path / "file").write_text("x")
    assert "not a directory" in one_line_error(write_bundle, tmp_path / "file", {"a": b"1"}, force=True, versions={})


def test_an_unwritable_parent_is_named(tmp_path):
    # A parent that is a regular file cannot hold a folder, whoever runs the test (root included).
    (tmp_path / "afile").write_text("x")
    message = one_line_error(write_bundle, tmp_path / "afile" / "b", _files(), versions={})
    assert str(tmp_path / "afile") in message
    assert _leftovers(tmp_path) == ["afile"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_parent_is_named(tmp_path):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        assert str(parent) in one_line_error(write_bundle, parent / "b", _files(), versions={})
    finally:
        parent.chmod(0o755)


@pytest.mark.parametrize("name", ["../escape", "/abs/path", "a/../b", "manifest.json", "", "win\\path", "./a"])
def test_bad_file_names_are_refused_before_anything_is_written(tmp_path, name):
    one_line_error(write_bundle, tmp_path / "b", {name: b"x"}, versions={})
    assert _leftovers(tmp_path) == []


# --- single files -------------------------------------------------------------------------------


def test_write_file_atomic_writes_and_replaces(tmp_path):
    target = tmp_path / "report.json"
    write_file_atomic(target, b'{"a": 1}\n')
    write_file_atomic(target, b'{"a": 2}\n')
    assert target.read_bytes() == b'{"a": 2}\n'
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert _leftovers(tmp_path) == ["report.json"]


def test_write_file_atomic_failures_leave_no_temp_file(tmp_path):
    (tmp_path / "adir").mkdir()
    assert str(tmp_path / "adir") in one_line_error(write_file_atomic, tmp_path / "adir", b"x")
    assert "cannot write to" in one_line_error(write_file_atomic, tmp_path / "missing" / "r.json", b"x")
    with pytest.raises(TypeError):
        write_file_atomic(tmp_path / "r.json", "text, not bytes")
    assert _leftovers(tmp_path) == ["adir"]
