"""The engine runtime: the plan-header check (no TensorRT, no GPU), the batch check, the engine
runner's refusals before TensorRT, and the cuda-python buffers/streams/graphs on a CUDA GPU.

What runs where:
- here (CPU, no TensorRT): the header and batch checks, the runner's refusals, cuda-python's
  "no GPU" answer (cuda-python installed as the rftrt[device] extra);
- on a CUDA GPU with cuda-python (tests marked ``gpu``): device and pinned buffers, copies on a stream,
  graph capture and replay; TensorRT is not needed for those;
- with TensorRT and a GPU: building and running an engine (test_builder.py, marked ``tensorrt``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import exported_bundle, one_line_error, tensorrt_importable

from rftrt.engines.plan_file import PLAN_MAGIC, check_plan_file, read_plan_header
from rftrt.engines.runner import EngineRunner, check_batch
from rftrt.engines.tensorrt_api import api_names, uses
from rftrt.errors import RftrtError


def plan_like(major: int = 10, minor: int = 3, patch: int = 0, size: int = 256) -> bytes:
    """The bytes a plan starts with: the magic tag and, at 24..26, the TensorRT version. Not a plan."""
    head = bytearray(size)
    head[:4] = PLAN_MAGIC
    head[24:27] = bytes([major, minor, patch])
    return bytes(head)


# --- the plan header ------------------------------------------------------------------------


def test_the_magic_tag_is_tensorrt_s_kplan_magic_tag():
    # TensorRT 10.9 prints the expected tag as the integer 1953657958 (ultralytics/ultralytics#20053).
    assert int.from_bytes(PLAN_MAGIC, "little") == 1953657958 == 0x74727466


def test_a_plan_header_is_accepted_and_its_version_read():
    header = read_plan_header(plan_like(10, 3, 0))
    assert header.version == (10, 3, 0) and header.version_text == "10.3.0" and header.size == 256
    assert read_plan_header(plan_like(8, 6, 1)).version_text == "8.6.1"


def test_an_implausible_version_is_not_reported():
    assert read_plan_header(plan_like(0, 0, 0)).version is None
    assert read_plan_header(plan_like(200, 3, 0)).version is None


def test_ultralytics_style_metadata_in_front_is_named_with_the_bytes_to_cut():
    meta = json.dumps({"author": "Ultralytics", "imgsz": [224, 224]}).encode()
    data = len(meta).to_bytes(4, "little") + meta + plan_like()
    message = one_line_error(read_plan_header, data, "best.engine")
    assert message.startswith(f"best.engine has {4 + len(meta)} bytes in front of the TensorRT plan")
    assert "JSON metadata" in message and f"cut the first {4 + len(meta)} bytes off" in message


def test_other_bytes_in_front_are_named_with_the_offset():
    message = one_line_error(read_plan_header, b"MYHEADER" + plan_like(), "x.engine")
    assert "8 bytes in front of the TensorRT plan" in message and "at byte 8" in message


def test_a_json_file_is_named():
    assert "is JSON, not a TensorRT plan" in one_line_error(read_plan_header, b'{"engine": "x"}', "x.engine.json")


def test_a_real_onnx_file_is_named(tmp_path):
    onnx_path = exported_bundle("orin") / "rf_b0.onnx"
    message = one_line_error(check_plan_file, onnx_path)
    assert "looks like an ONNX model, not a TensorRT plan" in message


def test_an_empty_or_truncated_file(tmp_path):
    empty = tmp_path / "empty.engine"
    empty.write_bytes(b"")
    assert "the file is empty" in one_line_error(check_plan_file, empty)
    short = tmp_path / "short.engine"
    short.write_bytes(PLAN_MAGIC + b"\0" * 10)
    assert "truncated" in one_line_error(check_plan_file, short)
    assert "does not exist" in one_line_error(check_plan_file, tmp_path / "missing.engine")


def test_a_foreign_file_shows_its_first_bytes():
    assert "(first bytes: 89 50 4e 47" in one_line_error(read_plan_header, b"\x89PNG\r\n\x1a\n" + bytes(40), "x.engine")


def test_the_header_of_a_large_file_is_read_without_reading_it_all(tmp_path):
    path = tmp_path / "big.engine"
    path.write_bytes(plan_like(size=1 << 17) + bytes(1 << 20))
    assert check_plan_file(path).size == (1 << 17) + (1 << 20)


# --- the batch check ------------------------------------------------------------------------


def test_a_batch_outside_the_profile_names_the_profile():
    check_batch(1, (1, 32))
    check_batch(32, (1, 32))
    assert one_line_error(check_batch, 64, (1, 32)) == "batch 64 outside the engine's profile 1..32"
    assert one_line_error(check_batch, 4, (8, 8)) == "batch 4 outside the engine's profile 8 (static)"
    assert "positive integer" in one_line_error(check_batch, 0, (1, 32))


# --- declarations -----------------------------------------------------------------------------


def test_uses_and_api_names_follow_calls():
    @uses("A.x")
    def inner():
        pass

    @uses("B.y", "A.x", calls=(inner,))
    def outer():
        pass

    @uses("C", calls=(outer,))
    def top():
        pass

    assert api_names([top]) == ("A.x", "B.y", "C")
    assert api_names([lambda: None]) == ()


# --- the engine runner, before TensorRT -----------------------------------------------------


def test_the_runner_refuses_a_cuda_graph_on_dla():
    assert "CUDA graphs cannot capture DLA engines" in one_line_error(EngineRunner, "x.engine", dla_core=0, cuda_graph=True)


def test_the_runner_checks_the_plan_before_loading_tensorrt(tmp_path):
    onnx_path = exported_bundle("orin") / "rf_b0.onnx"
    assert "looks like an ONNX model" in one_line_error(EngineRunner(onnx_path).activate)


def test_the_runner_infer_needs_activation(tmp_path):
    assert "not active" in one_line_error(EngineRunner(tmp_path / "x.engine").infer, np.zeros((1, 3, 8, 8), np.float32))


@pytest.mark.skipif(tensorrt_importable(), reason="TensorRT is installed here; this checks the message where it is not")
def test_the_runner_without_tensorrt_says_where_it_runs(tmp_path):
    path = tmp_path / "m.engine"
    path.write_bytes(plan_like())
    runner = EngineRunner(path)
    assert one_line_error(runner.activate).startswith("TensorRT is not installed here: running an engine runs on the device")
    assert not runner.is_active


# --- cuda-python ----------------------------------------------------------------------------


def _cuda_devices() -> int:
    try:
        from rftrt.engines.cuda import cuda_device_count

        return cuda_device_count()[0]
    except RftrtError:  # cuda-python not installed
        return 0


requires_gpu = pytest.mark.skipif(
    _cuda_devices() == 0, reason="needs a CUDA GPU and cuda-python (rftrt[device]); this machine has no GPU"
)


def test_cuda_python_answers_without_a_gpu_too():
    pytest.importorskip("cuda.bindings.runtime", reason="cuda-python is an optional extra (rftrt[device]) and is not installed here")
    from rftrt.engines.cuda import DeviceBuffer, Stream, cuda_device_count, gpu_info

    count, why = cuda_device_count()
    assert count >= 0
    if count == 0:  # here: cudaErrorInsufficientDriver (no driver); a driver without a GPU says cudaErrorNoDevice
        assert why.startswith("cudaError")
        assert one_line_error(Stream).startswith(f"CUDA error in cudaStreamCreateWithFlags: {why}")
        assert one_line_error(DeviceBuffer, 16).startswith(f"CUDA error in cudaMalloc(16): {why}")
        assert one_line_error(gpu_info) == f"no CUDA GPU is visible here ({why}); engines are built and run on the target's GPU"


@pytest.mark.gpu
@requires_gpu
def test_gpu_info():
    from rftrt.engines.cuda import gpu_info

    info = gpu_info()
    assert info["name"] and "." in info["compute_capability"] and info["driver_cuda_version"] != "unknown"


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("nbytes", [4, 1000, 3 << 20])
def test_host_to_device_and_back_through_pinned_buffers(nbytes):
    from rftrt.engines.cuda import DeviceBuffer, PinnedBuffer, Stream

    data = np.random.default_rng(nbytes).integers(0, 255, nbytes, dtype=np.uint8)
    with Stream() as stream, DeviceBuffer(nbytes) as device, PinnedBuffer(nbytes) as src, PinnedBuffer(nbytes) as dst:
        src.view((nbytes,), np.uint8)[:] = data
        device.copy_from_host(src, stream)
        device.copy_to_host(dst, stream)
        stream.synchronize()
        assert np.array_equal(dst.view((nbytes,), np.uint8), data)


@pytest.mark.gpu
@requires_gpu
def test_partial_copies_and_pageable_numpy_arrays():
    from rftrt.engines.cuda import DeviceBuffer, Stream

    x = np.arange(64, dtype=np.float32).reshape(4, 16)
    out = np.zeros_like(x)
    with Stream() as stream, DeviceBuffer(x.nbytes) as device:
        device.copy_from_host(x, stream, nbytes=2 * 16 * 4)  # the first two rows only
        device.copy_to_host(out, stream, nbytes=2 * 16 * 4)
        stream.synchronize()
    assert np.array_equal(out[:2], x[:2]) and not out[2:].any()
    with Stream() as stream, DeviceBuffer(16) as device:
        with pytest.raises(RftrtError, match="does not fit"):
            device.copy_from_host(x, stream)


@pytest.mark.gpu
@requires_gpu
def test_a_cuda_graph_replays_the_captured_copies():
    from rftrt.engines.cuda import CudaGraph, DeviceBuffer, PinnedBuffer, Stream

    n = 1 << 12
    with Stream() as stream, DeviceBuffer(n * 4) as device, PinnedBuffer(n * 4) as src, PinnedBuffer(n * 4) as dst:
        graph = CudaGraph()
        with graph.capture(stream):
            device.copy_from_host(src, stream)
            device.copy_to_host(dst, stream)
        try:
            for value in (1.5, -7.0):
                src.view((n,), np.float32)[:] = value
                graph.launch(stream)
                stream.synchronize()
                assert (dst.view((n,), np.float32) == value).all()
        finally:
            graph.close()


@pytest.mark.gpu
@requires_gpu
def test_freed_buffers_refuse_use():
    from rftrt.engines.cuda import DeviceBuffer, PinnedBuffer

    device, pinned = DeviceBuffer(16), PinnedBuffer(16)
    device.free()
    pinned.free()
    device.free()  # twice is fine
    with pytest.raises(RftrtError, match="freed"):
        _ = device.ptr
    with pytest.raises(RftrtError, match="freed"):
        pinned.view((4,), np.float32)
