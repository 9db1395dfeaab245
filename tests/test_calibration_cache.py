"""TensorRT text calibration cache: format, round trip, header per TensorRT version, tensor names."""

import struct

import numpy as np
import onnx
import pytest
from onnx_cache import digits_fp32_onnx

from rftrt.errors import RftrtError
from rftrt.export.passes import to_graph
from rftrt.export.passes.attention import find_attention_cores
from rftrt.models.digits import load_checkpoint
from rftrt.precision.cache import CalibrationCache, cache_tensors, check_cache_names, hex_to_scale, parse_cache, scale_to_hex, write_cache
from rftrt.precision.int8 import ranges_from_cache


@pytest.fixture(scope="module")
def digits_onnx() -> onnx.ModelProto:
    return digits_fp32_onnx(load_checkpoint())


def test_scale_is_big_endian_float32_hex():
    assert scale_to_hex(1 / 128) == "3c000000"
    assert scale_to_hex(1.0) == "3f800000"
    # TensorRT writes the float's bits as one big-endian 32-bit number: %08x, zero padded
    assert scale_to_hex(1e-40) == struct.pack(">f", 1e-40).hex() and len(scale_to_hex(1e-40)) == 8
    assert hex_to_scale("3d8f5c29") == pytest.approx(0.07, rel=1e-6)


@pytest.mark.parametrize(
    "version, header",
    [
        ("8.6", "TRT-8600-EntropyCalibration2"),
        ("8.6.12", "TRT-8612-EntropyCalibration2"),
        ("10.3", "TRT-100300-EntropyCalibration2"),
        ("10.10.10", "TRT-101010-EntropyCalibration2"),
        ("11.4", "TRT-110400-EntropyCalibration2"),
    ],
)
def test_header_carries_the_tensorrt_version(version, header):
    text = write_cache({"images": 2.0}, version)
    assert text.splitlines()[0] == header


def test_round_trip_keeps_names_order_and_scales():
    rng = np.random.default_rng(0)
    names = ["images", "/backbone/input_stem/op_list.0/act/HardSwish_output_0", "weird:name: with colons", "logits"]
    amax = {name: float(v) for name, v in zip(names, rng.uniform(1e-3, 300, len(names)))}
    text = write_cache(amax, "10.3", "MinMaxCalibration")
    cache = parse_cache(text)
    assert (cache.version, cache.algorithm) == (100300, "MinMaxCalibration")
    assert list(cache.scales) == names
    for name in names:
        assert cache.amax(name) == pytest.approx(amax[name], rel=1e-6)  # float32 rounding only
        assert cache.scales[name] == pytest.approx(amax[name] / 127, rel=1e-6)
    assert cache.text() == text  # parse → write is byte-identical
    for line in text.splitlines()[1:]:
        assert len(line.rpartition(": ")[2]) == 8


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("TRT-8600\nimages: 3c000000\n", "not a TensorRT cache header"),
        ("TRT-8600-MagicCalibration\n", "unknown algorithm"),
        ("TRT-8600-EntropyCalibration2\nimages 3c000000\n", "line 2"),
        ("TRT-8600-EntropyCalibration2\nimages: 3c00000\n", "line 2"),
        ("TRT-8600-EntropyCalibration2\nimages: 3c000000\nimages: 3c000000\n", "appears twice"),
        ("TRT-8600-EntropyCalibration2\nimages: bf800000\n", "positive and finite"),
        ("TRT-8600-EntropyCalibration2\nimages: 7fc00000\n", "positive and finite"),
    ],
)
def test_malformed_caches_are_refused_with_the_line(text, message):
    with pytest.raises(RftrtError, match=message):
        parse_cache(text)


@pytest.mark.parametrize("amax", [0.0, -1.0, float("nan"), float("inf")])
def test_writer_refuses_bad_ranges(amax):
    with pytest.raises(RftrtError, match="positive and finite"):
        write_cache({"x": amax}, "8.6")


def test_writer_refuses_unknown_algorithm():
    with pytest.raises(RftrtError, match="EntropyCalibration2"):
        write_cache({"x": 1.0}, "8.6", "Percentile")


def test_cache_tensors_follow_the_precision_plan(digits_onnx):
    graph = to_graph(digits_onnx)
    cores = find_attention_cores(graph)
    assert len(cores) == 2
    islands = {n.name for core in cores for n in core.nodes} | {n.name for n in graph.nodes if n.op == "LayerNormalization"}
    names = cache_tensors(digits_onnx, islands)
    produced_by = {t.name: node for node in graph.nodes for t in node.outputs}
    assert names[0] == "images"
    for core in cores:
        internal = [t.name for n in core.nodes for t in n.outputs if t.name != core.out.name]
        assert not set(internal) & set(names), "no scale inside an FP32 island"
        assert core.out.name in names, "the core output feeds proj's Conv: it needs its INT8 scale"
        assert core.x.name in names
    layernorm = next(n for n in graph.nodes if n.op == "LayerNormalization")
    assert layernorm.outputs[0].name not in names
    # everything else that is float and produced outside the islands is there
    for name, node in produced_by.items():
        if node.name not in islands and node.outputs[0].dtype == np.float32:
            assert name in names
    # without a plan every float tensor gets a line
    assert len(cache_tensors(digits_onnx)) > len(names)


def test_cache_names_must_exist_in_the_onnx(digits_onnx):
    good = CalibrationCache(8600, "EntropyCalibration2", {"images": 0.02, "(Unnamed Layer* 12) [Activation]_output": 0.1})
    assert check_cache_names(good, digits_onnx) == ["(Unnamed Layer* 12) [Activation]_output"]
    stale = CalibrationCache(8600, "EntropyCalibration2", {"images": 0.02, "/old/export/Conv_output_0": 0.1, "/old/Relu_output_0": 0.2})
    with pytest.raises(RftrtError, match=r"2 of 3 tensor names are not in the ONNX \('/old/export/Conv_output_0', '/old/Relu_output_0'\).*recalibrate"):
        check_cache_names(stale, digits_onnx)
    with pytest.raises(RftrtError, match="not in the ONNX"):
        ranges_from_cache(stale.text(), digits_onnx, "stale.cache")
    amax, internal = ranges_from_cache(good.text(), digits_onnx)
    assert amax == {"images": pytest.approx(0.02 * 127, rel=1e-6)} and len(internal) == 1


def test_the_header_carries_the_version_the_target_was_resolved_with(digits_onnx):
    from rftrt.precision.int8 import calibrate
    from rftrt.targets.profiles import load_target

    images = np.random.default_rng(0).standard_normal((4, 3, 64, 64)).astype(np.float32)
    for version, header in (("8.6.12", "TRT-8612-EntropyCalibration2"), (None, "TRT-8600-EntropyCalibration2")):
        result = calibrate(digits_onnx, images, target=load_target("orin", version), method="minmax", formats=("cache",),
                           progress=False, log=lambda _: None)  # fmt: skip
        assert result.cache_text.splitlines()[0] == header
        assert result.trt_version == (version or "8.6")
