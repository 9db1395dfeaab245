"""Architecture facts of the zoo: parameter counts, MACs, shapes, precision of the attention core."""

import pytest
import torch

from rftrt.errors import RftrtError
from rftrt.models import EPS_FP16, PUBLISHED_RESOLUTIONS, LiteMLA, ReduceAttention, count_complexity, create, list_models, model_info
from rftrt.tools.paper_tables import paper_row

# model_spec §2.1 (EfficientViT, official and timm agree to the parameter) and the targets
# for ReduceFormer (grouped 1×1 of the aggregation removed).
EXPECTED_PARAMS = {
    "evit_b0": 3_410_008,
    "evit_b1": 9_102_024,
    "evit_b2": 24_330_712,
    "evit_b3": 48_646_056,
    "rf_b1": 9_034_440,
    "rf_b2": 24_035_800,
    "rf_b3": 48_056_232,
}
# model_spec §2.1: per-stage parameters of EfficientViT-B1.
EVIT_B1_STAGES = {"stem": 928, "stage1": 13_888, "stage2": 86_528, "stage3": 756_864, "stage4": 3_785_728, "head": 4_458_088}
# model_spec §2.2: EfficientViT conv+linear+matmul MACs (G) measured on the official modules;
# ReduceFormer: the spec's torchprofile predictions (which add element-wise work, ~1% more).
REFERENCE_GMACS = {
    "evit_b0": {224: 0.100},
    "evit_b1": {224: 0.5192, 256: 0.6769, 288: 0.8556},
    "evit_b2": {224: 1.585, 256: 2.068, 288: 2.615},
    "evit_b3": {224: 3.954, 256: 5.162, 288: 6.530},
    "rf_b1": {224: 0.510, 256: 0.665, 288: 0.840},
    "rf_b2": {224: 1.535, 256: 2.003, 288: 2.532},
    "rf_b3": {224: 3.853, 256: 5.031, 288: 6.365},
}


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", list(EXPECTED_PARAMS))
def test_parameter_count_is_exact(name):
    assert _params(create(name)) == EXPECTED_PARAMS[name]


def test_rf_b0_is_derived_like_the_others():
    # B0 has 2+2 attention blocks with 3·T·d grouped-1×1 weights each: T=64,d=16 and T=128,d=16.
    removed = 2 * (3 * 64 * 16) + 2 * (3 * 128 * 16)
    assert _params(create("rf_b0")) == 3_410_008 - removed


def test_per_stage_parameters_match_the_official_model():
    assert count_complexity(create("evit_b1"), 224).params_by_stage == EVIT_B1_STAGES


@pytest.mark.parametrize("name", list(REFERENCE_GMACS))
def test_macs_within_two_percent_of_reference(name):
    model = create(name)
    for resolution, reference in REFERENCE_GMACS[name].items():
        macs = count_complexity(model, resolution).macs / 1e9
        assert macs == pytest.approx(reference, rel=0.02), (name, resolution, macs)


def test_stage_macs_add_up_to_the_total():
    counts = count_complexity(create("rf_b1"), 224)
    assert sum(counts.macs_by_stage.values()) == counts.macs
    assert counts.attention_elementwise > 0
    assert count_complexity(create("evit_b1"), 224).attention_elementwise == 0


@pytest.mark.parametrize("name", ["evit_b0", "rf_b0", "evit_b1", "rf_b1"])
@pytest.mark.parametrize("resolution", [64, 160, 224])
def test_forward_shapes(name, resolution):
    model = create(name, resolution=resolution, num_classes=10)
    with torch.no_grad():
        out = model(torch.randn(2, 3, resolution, resolution))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["evit_b2", "rf_b2", "evit_b3", "rf_b3"])
def test_forward_large_models(name):
    model = create(name, resolution=64)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


@pytest.mark.parametrize("resolution", [32, 100, 230, 0, -64])
def test_bad_resolution_is_refused(resolution):
    with pytest.raises(RftrtError, match="multiple of 32"):
        create("rf_b1", resolution=resolution)


def test_unknown_model_lists_the_valid_ones():
    with pytest.raises(RftrtError) as err:
        create("rf_b9")
    for name in list_models():
        assert name in str(err.value)


def test_registry_lists_all_eight_with_published_figures():
    names = list_models()
    assert names == [f"{f}_b{i}" for f in ("evit", "rf") for i in range(4)]
    assert model_info("rf_b1").paper["resolution"] == 224 and paper_row("rf_b1", 224).orin_fp16_ms == pytest.approx(0.68)
    assert model_info("evit_b2").by_resolution[256]["top1"] == pytest.approx(82.698)


def _attention_blocks(model, kind):
    return [m for m in model.modules() if isinstance(m, kind)]


def test_reduceformer_core_has_no_matmul_and_evit_has():
    def ops_of(name):
        model = create(name, resolution=64)
        seen = set()

        class Recorder(torch.overrides.TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                seen.add(getattr(func, "__name__", str(func)))
                return func(*args, **(kwargs or {}))

        with Recorder(), torch.no_grad():
            model(torch.randn(1, 3, 64, 64))
        return seen

    rf_ops, evit_ops = ops_of("rf_b1"), ops_of("evit_b1")
    assert "matmul" in evit_ops
    assert not {"matmul", "bmm", "softmax", "einsum"} & rf_ops
    assert "sum" in rf_ops


def _qkv(b=2, g=3, d=4, n=10):
    q, k, v = (torch.randn(b, g, d, n, dtype=torch.float64) for _ in range(3))
    return q.relu(), k.relu(), v


def test_reduce_attention_is_litemla_with_the_diagonal_kv_matrix():
    q, k, v = _qkv()
    att = ReduceAttention(16, 4)
    got = att._core(q, k, v)
    # LiteMLA's d×d matrix Σ_j v_j k_jᵀ and denominator (Σ_j k_j)·q_i, with only the diagonal kept
    kv = torch.einsum("bgcn,bgen->bgce", v, k)
    diag = torch.diagonal(kv, dim1=-2, dim2=-1).unsqueeze(-1)
    denominator = torch.einsum("bgcn,bgc->bgn", q, k.sum(-1)).unsqueeze(-2)
    assert torch.allclose(got, q * diag / (denominator + att.eps))


def test_litemla_core_matches_explicit_linear_attention():
    q, k, v = _qkv()
    att = LiteMLA(16, 4)
    got = att._core(q, k, v)
    kv = torch.einsum("bgcn,bgen->bgce", v, k)
    numerator = torch.einsum("bgce,bgen->bgcn", kv, q)
    denominator = torch.einsum("bgcn,bgc->bgn", q, k.sum(-1)).unsqueeze(-2)
    assert torch.allclose(got, numerator / (denominator + att.eps))


@pytest.mark.parametrize("copies", [4, 16])
def test_reduce_attention_is_invariant_to_duplicating_every_token(copies):
    q, k, v = _qkv()
    att = ReduceAttention(16, 4)
    once = att._core(q, k, v)
    repeated = att._core(*(t.repeat_interleave(copies, dim=-1) for t in (q, k, v)))
    assert torch.allclose(repeated[..., ::copies], once, rtol=1e-12, atol=0)


def test_fp16_forward_of_rf_b1_is_finite_and_close_to_fp32():
    model = create("rf_b1", resolution=128)
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        ref = model(x)
        half = model.half()(x.half()).float()
    assert torch.isfinite(half).all()
    cosine = torch.nn.functional.cosine_similarity(ref, half).min()
    assert cosine > 0.999, cosine
    assert (ref.argmax(1) == half.argmax(1)).all()


@pytest.mark.parametrize("mode", ["half", "autocast-bf16"])
def test_attention_core_runs_in_fp32(monkeypatch, mode):
    seen = []
    original = ReduceAttention._core

    def recording_core(self, q, k, v):
        seen.append((q.dtype, torch.is_autocast_enabled("cpu")))
        return original(self, q, k, v)

    monkeypatch.setattr(ReduceAttention, "_core", recording_core)
    model = create("rf_b0", resolution=64)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        if mode == "half":
            out = model.half()(x.half())
            assert out.dtype == torch.float16
        else:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                model(x)
    assert seen and all(dtype == torch.float32 and not autocast for dtype, autocast in seen)


def test_fp16_eps_is_representable_and_fp32_eps_is_not():
    assert torch.tensor(EPS_FP16, dtype=torch.float16).item() > 0
    assert torch.tensor(ReduceAttention(16, 4).eps, dtype=torch.float16).item() == 0


def test_the_recorded_counts_are_the_models_counts():
    """rf-export --list-models reads rftrt/models/counts.toml; every figure in it is recounted here."""
    from rftrt.models.counts import count_model, recorded_counts

    recorded = recorded_counts()
    assert sorted(recorded) == list_models()
    for name in list_models():
        assert count_model(name, PUBLISHED_RESOLUTIONS) == recorded[name], name
