"""Reuse and staleness of a stored calibration: same ONNX, data and method → reused; anything changed
→ refused with the reason, until --force."""

import json
import os

import numpy as np
import pytest
from onnx_cache import digits_fp32_onnx

from rftrt.data.digits import load_digits_data, write_image_folder
from rftrt.data.images import Preprocess
from rftrt.data.sources import ImageSource
from rftrt.errors import RftrtError
from rftrt.models.digits import load_checkpoint
from rftrt.precision.int8 import calibrate
from rftrt.precision.store import RECORD, CalibrationStore, model_sha256
from rftrt.targets.profiles import load_target


@pytest.fixture(scope="module")
def digits_onnx():
    return digits_fp32_onnx(load_checkpoint())


@pytest.fixture()
def folder(tmp_path):
    data = load_digits_data()
    return write_image_folder(data.train_pixels, data.train_labels, tmp_path / "calib", limit=40)


def _run(model, folder, store, method="minmax", force=False, count=32):
    source = ImageSource.from_folder(folder, Preprocess.for_resolution(64), count)
    return calibrate(model, source, target=load_target("orin"), method=method, store=store, force=force, progress=False, log=lambda _: None)


def test_same_model_data_and_method_is_reused(digits_onnx, folder, tmp_path):
    store = CalibrationStore(tmp_path / "out")
    first = _run(digits_onnx, folder, store)
    assert not first.reused and (tmp_path / "out" / RECORD).is_file()
    record = json.loads((tmp_path / "out" / RECORD).read_text())
    assert record["key"]["onnx_sha256"] == model_sha256(digits_onnx)
    assert record["key"]["method"] == "minmax" and record["data"]["used"] == 32
    second = _run(digits_onnx, folder, store)
    assert second.reused
    assert second.ranges.amax == first.ranges.amax
    assert second.cache_text == first.cache_text
    assert second.passed


def test_changed_model_is_refused(digits_onnx, folder, tmp_path):
    store = CalibrationStore(tmp_path / "out")
    _run(digits_onnx, folder, store)
    other = digits_fp32_onnx(load_checkpoint())
    conv = next(t for t in other.graph.initializer if len(t.dims) == 4)
    values = np.frombuffer(conv.raw_data, dtype=np.float32).copy()
    values[0] += 0.5
    conv.raw_data = values.tobytes()
    with pytest.raises(RftrtError, match="calibration of another model.*the model changed"):
        _run(other, folder, store)
    assert not _run(other, folder, store, force=True).reused  # --force recalibrates and replaces it
    assert _run(other, folder, store).reused


def test_changed_data_is_refused(digits_onnx, folder, tmp_path):
    store = CalibrationStore(tmp_path / "out")
    _run(digits_onnx, folder, store)
    victim = sorted(folder.rglob("*.png"))[3]
    victim.write_bytes(victim.read_bytes() + b"\0")  # same name, different size
    with pytest.raises(RftrtError, match="calibrated on other data.*the images changed"):
        _run(digits_onnx, folder, store)
    os.utime(victim, ns=(0, 0))
    with pytest.raises(RftrtError, match="other data"):
        _run(digits_onnx, folder, store)


def test_changed_method_or_count_is_refused(digits_onnx, folder, tmp_path):
    store = CalibrationStore(tmp_path / "out")
    _run(digits_onnx, folder, store)
    with pytest.raises(RftrtError, match="calibrated with minmax, not percentile"):
        _run(digits_onnx, folder, store, method="percentile")
    with pytest.raises(RftrtError, match="other data"):
        _run(digits_onnx, folder, store, count=16)  # another sample of the folder


def test_unreadable_record_is_refused(digits_onnx, folder, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / RECORD).write_text("{not json")
    with pytest.raises(RftrtError, match="unreadable calibration record"):
        _run(digits_onnx, folder, CalibrationStore(tmp_path / "out"))
