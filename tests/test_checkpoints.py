"""Checkpoints in the official and timm namings, cross-family initialisation, and load errors."""

import re

import numpy as np
import pytest
import torch

from rftrt.errors import RftrtError
from rftrt.models import create, official_to_timm, timm_to_official


@pytest.fixture()
def image():
    return torch.randn(2, 3, 64, 64)


def _trained_like(name: str, **kwargs):
    """A model whose weights and BN statistics all differ from a fresh one, so a load that skips
    any tensor shows in the outputs."""
    model = create(name, resolution=64, **kwargs)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.mul_(1 + 0.2 * (torch.rand_like(tensor) - 0.5))
    return model


def _outputs(model, image):
    model.eval()
    with torch.no_grad():
        out = model(image)
    assert torch.isfinite(out).all()
    return out


@pytest.mark.parametrize("wrap", [False, True], ids=["raw", "state_dict-wrapper"])
def test_official_checkpoint_round_trip(tmp_path, image, wrap):
    source = _trained_like("evit_b1")
    state = source.state_dict()
    path = tmp_path / "efficientvit_b1_r224.pt"
    torch.save({"state_dict": state} if wrap else state, path)
    loaded = create("evit_b1", resolution=64, weights=path)
    assert loaded.load_report.source == "official"
    assert loaded.load_report.unused_keys == ()
    assert len(loaded.load_report.sha256) == 64
    assert torch.equal(_outputs(source, image), _outputs(loaded, image))


def test_official_keys_follow_the_official_tree():
    keys = list(create("evit_b1").state_dict())
    assert len(keys) == 272  # model_spec §4.1
    assert "backbone.input_stem.op_list.0.conv.weight" in keys
    assert "backbone.stages.2.op_list.1.context_module.main.aggreg.0.1.weight" in keys
    assert "head.op_list.2.norm.weight" in keys and "head.op_list.3.linear.bias" in keys


def test_timm_checkpoint_round_trip(tmp_path, image):
    source = _trained_like("rf_b1")
    timm_state = official_to_timm(source.state_dict())
    assert "stem.in_conv.conv.weight" in timm_state and "head.classifier.4.weight" in timm_state
    assert "stages.3.blocks.2.context_module.main.qkv.conv.weight" in timm_state
    assert "stem.res0.main.depth_conv.conv.weight" in timm_state
    assert timm_to_official(timm_state).keys() == source.state_dict().keys()
    path = tmp_path / "timm.pth"
    torch.save(timm_state, path)
    loaded = create("rf_b1", resolution=64, weights=path)
    assert loaded.load_report.source == "timm"
    assert torch.equal(_outputs(source, image), _outputs(loaded, image))


def test_reduceformer_from_efficientvit_reports_exactly_the_unused_keys(tmp_path):
    evit = _trained_like("evit_b1")
    path = tmp_path / "efficientvit_b1_r224.pt"
    torch.save(evit.state_dict(), path)
    rf = create("rf_b1", resolution=64, weights=path)
    unused = rf.load_report.unused_keys
    assert len(unused) == 3 + 4  # one grouped 1×1 per attention block of B1
    assert all(re.search(r"context_module\.main\.aggreg\.0\.1\.weight$", k) for k in unused)
    rf_state = rf.state_dict()
    for key, tensor in evit.state_dict().items():
        if key not in unused:
            assert torch.equal(rf_state[key], tensor), key


def test_efficientvit_refuses_a_reduceformer_checkpoint(tmp_path):
    path = tmp_path / "rf.pt"
    torch.save(create("rf_b1").state_dict(), path)
    with pytest.raises(RftrtError, match=r"aggreg\.0\.1\.weight missing from checkpoint"):
        create("evit_b1", weights=path)


def test_checkpoint_of_another_variant_names_mismatched_keys_and_shapes(tmp_path):
    path = tmp_path / "b0.pt"
    torch.save(create("evit_b0").state_dict(), path)
    with pytest.raises(RftrtError) as err:
        create("evit_b1", weights=path)
    message = str(err.value)
    assert "another variant" in message and "\n" not in message
    assert re.search(r"checkpoint \(\d+(, \d+)*\) vs model \(\d+(, \d+)*\)", message)


def test_class_count_mismatch_says_what_to_pass(tmp_path):
    path = tmp_path / "ten.pt"
    torch.save(create("rf_b0", num_classes=10).state_dict(), path)
    with pytest.raises(RftrtError, match=r"has 10 classes but the model was built with 1000.*num_classes=10"):
        create("rf_b0", weights=path)
    assert create("rf_b0", weights=path, num_classes=10).num_classes == 10


def test_missing_weights_file(tmp_path):
    with pytest.raises(RftrtError, match="weights file not found"):
        create("rf_b1", weights=tmp_path / "nope.pt")


@pytest.mark.parametrize(
    "content",
    [b"this is a text file\n", bytes(range(256)) * 4, b""],
    ids=["text", "binary", "empty"],
)
def test_file_that_is_not_a_checkpoint(tmp_path, content):
    path = tmp_path / "weights.pt"
    path.write_bytes(content)
    with pytest.raises(RftrtError, match="is not a PyTorch checkpoint") as err:
        create("rf_b1", weights=path)
    assert "\n" not in str(err.value)


def test_checkpoint_of_something_else(tmp_path):
    path = tmp_path / "resnet.pt"
    torch.save({"conv1.weight": torch.zeros(1), "fc.bias": torch.zeros(1)}, path)
    with pytest.raises(RftrtError, match="not an EfficientViT/ReduceFormer checkpoint"):
        create("rf_b1", weights=path)
    torch.save({"epoch": 3}, path)
    with pytest.raises(RftrtError, match="no state dict of tensors"):
        create("rf_b1", weights=path)


def test_an_unreadable_checkpoint_says_why_in_a_whole_sentence(tmp_path):
    """Random bytes and a cut-off download each get their own reason, not a fragment of torch's."""
    good = tmp_path / "good.pt"
    torch.save({"head.op_list.0.conv.weight": torch.zeros(4, 4)}, good)
    cases = {
        "random.pt": (bytes(np.random.default_rng(0).integers(0, 256, 1000, dtype=np.uint8)), "neither a zip archive (torch.save) nor a pickle"),
        "cut.pt": (good.read_bytes()[: good.stat().st_size // 2], "truncated or damaged, download it again"),
        "empty.pt": (b"", "the file is empty"),
    }
    for name, (content, reason) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(RftrtError) as err:
            create("rf_b1", weights=tmp_path / name)
        message = str(err.value)
        assert reason in message and message.endswith("expected a state dict saved with torch.save"), message
