"""PyTorch → ONNX: opset 17 for every model, names, dynamic batch, metadata, determinism."""

import numpy as np
import onnx
import pytest
import torch
from onnx_cache import images, load

from rftrt.errors import RftrtError
from rftrt.export.onnx_export import export_onnx
from rftrt.export.onnxrt import run_onnx
from rftrt.models import create, list_models


@pytest.mark.parametrize("name", list_models())
def test_every_model_exports_at_opset_17_and_matches_pytorch(name):
    model, proto = load(name)
    onnx.checker.check_model(proto)
    assert {o.domain: o.version for o in proto.opset_import}[""] == 17
    assert [i.name for i in proto.graph.input] == ["images"]
    assert [o.name for o in proto.graph.output] == ["logits"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    x = images(3)
    out = run_onnx(proto, {"x": x})["x"]
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert np.abs(out - ref).max() < 1e-4


def test_metadata_and_static_batch():
    torch.manual_seed(0)
    model = create("rf_b0", resolution=64)
    proto = export_onnx(model, 64, dynamic_batch=False, batch=4, metadata={"model": "rf_b0", "resolution": "64"})
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["model"] == "rf_b0" and props["resolution"] == "64" and "rftrt_version" in props
    assert [p.key for p in proto.metadata_props] == sorted(props)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4


def test_export_is_byte_identical():
    def once():
        torch.manual_seed(0)
        return export_onnx(create("rf_b0", resolution=64), 64).SerializeToString()

    assert once() == once()


@pytest.mark.parametrize("opset", [12, 21])
def test_opset_outside_the_exporter_range_is_refused(opset):
    with pytest.raises(RftrtError, match="opset"):
        export_onnx(create("rf_b0", resolution=64), 64, opset=opset)
