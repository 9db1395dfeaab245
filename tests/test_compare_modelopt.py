"""scripts/compare_modelopt.py: the rftrt side of the ModelOpt comparison (stress weights, the
non-finite probe, the FP32-node and Cast counts, the islands) on real models and the bundled
photographs; ModelOpt itself only where its environment (``--setup``) exists."""

from __future__ import annotations

import importlib.util
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from helpers import cli_error

from rftrt.data.images import bundled_photographs
from rftrt.export.passes import to_graph
from rftrt.export.passes.attention import find_attention_cores
from rftrt.models import create
from rftrt.models.init import stress_weights
from rftrt.precision.fidelity import fp32_logits, measure
from rftrt.precision.plan import plan_on_photographs
from rftrt.precision.render import render_fp16

RESOLUTION = 64
_SCRIPT = Path(__file__).parents[1] / "scripts" / "compare_modelopt.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("compare_modelopt", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


cm = _load_script()


@lru_cache(maxsize=None)
def _passed(checkpoint: str) -> bytes:
    return cm.passed_onnx("rf_b1", RESOLUTION, checkpoint).SerializeToString()


def passed(checkpoint: str = "default") -> onnx.ModelProto:
    return onnx.load_from_string(_passed(checkpoint))


def test_stress_weights_are_kaiming_normal_with_identity_batchnorm_and_seeded():
    a, b, c = (stress_weights(create("rf_b1", resolution=RESOLUTION), seed) for seed in (0, 0, 1))
    convs = [m for m in a.modules() if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in a.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert convs and norms
    widest = max(convs, key=lambda m: m.weight.numel())
    fan_in = widest.weight[0].numel()
    assert widest.weight.std().item() == pytest.approx((2.0 / fan_in) ** 0.5, rel=0.1)
    for norm in norms:
        assert torch.all(norm.weight == 1) and torch.all(norm.bias == 0)
        assert torch.all(norm.running_mean == 0) and torch.all(norm.running_var == 1)
    state_a, state_b, state_c = a.state_dict(), b.state_dict(), c.state_dict()
    key = next(k for k in state_a if k.endswith("conv.weight"))
    assert torch.equal(state_a[key], state_b[key]) and not torch.equal(state_a[key], state_c[key])


def test_probe_finds_the_first_tensor_that_overflows_fp16_and_nothing_in_fp32():
    model = passed()
    photos = bundled_photographs(RESOLUTION)
    reference = fp32_logits(model, photos)
    same = measure(model, reference, photos, "photographs")
    # the probes change ONNX Runtime's fusions, not the values: FP32 summation order only
    assert same.finite and same.max_abs < 1e-4 and same.top1_agreement == 1.0 and same.tensors > 100
    # photographs ×1e5 are beyond FP16 (|x| up to 2.6e5 > 65504): the input's Cast to FP16 is inf
    huge = np.ascontiguousarray(photos * np.float32(1e5))
    naive = measure(render_fp16(model), fp32_logits(model, huge), huge, "×1e5")
    assert not naive.finite and naive.nonfinite_tensors > 0
    assert naive.first_nonfinite == f"{model.graph.input[0].name}/to_fp16"
    assert "inf/NaN" in naive.cell()


def test_structure_counts_the_plans_fp32_nodes_and_its_casts():
    model = passed()
    plan = plan_on_photographs(model, RESOLUTION)
    assert plan.fp32_nodes
    rendered = cm.structure(render_fp16(model, set(plan.fp32_nodes)))
    assert rendered["fp32_nodes"] == len(plan.fp32_nodes)
    assert rendered["casts"] > 2  # input, output, and a pair around each island
    naive = cm.structure(render_fp16(model))
    assert naive["fp32_nodes"] == 0 and naive["casts"] == 2
    fp32 = cm.structure(model)
    assert fp32["casts"] == 0 and fp32["fp32_nodes"] > len(plan.fp32_nodes)


def test_islands_cover_the_plan_once_with_one_island_per_attention_core():
    model = passed()
    plan = plan_on_photographs(model, RESOLUTION)
    found = cm.islands(model, plan)
    assert sum(island["nodes"] for island in found) == len(plan.fp32_nodes)
    cores = find_attention_cores(to_graph(model))
    attention = [i for i in found if any(r.startswith("attention core") for r in i["reasons"])]
    assert len(attention) == len(cores)
    assert "layernorm" in cm.island_summary(found)


def test_rftrt_only_run_reports_every_input_scale(tmp_path):
    args = cm.parse(["--rftrt-only", "--models", "rf_b1", "--resolution", str(RESOLUTION), "--scales", "1,8", "--sections", "fp16"])
    report = cm.run(args, lambda _: None)
    runs = {r["checkpoint"]: r for r in report["fp16"]}
    assert set(runs["stress"]["renderings"]) == {cm.RFTRT, cm.RFTRT_WEAK}
    assert set(runs["stress"]["renderings"][cm.RFTRT]["inputs"]) == {"×1", "×8"}
    assert set(runs["default"]["renderings"][cm.RFTRT]["inputs"]) == {"photographs"}
    for run in runs.values():  # the plan keeps every attention core FP32
        assert run["renderings"][cm.RFTRT]["fp32_core_nodes"] == run["attention_core_nodes"] > 0
    assert runs["stress"]["targets"] == []  # nothing to hold rftrt to without ModelOpt
    assert "rftrt" in report["tables"][0] and "ModelOpt" not in report["tables"][0]


def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path):
    assert "unknown section 'fp8'" in cli_error(capsys, cm.main, ["--sections", "fp8"], "compare_modelopt")
    assert "--setup" in cli_error(capsys, cm.main, ["--env", str(tmp_path / "absent"), "--sections", "int8"], "compare_modelopt")


@pytest.mark.skipif(not cm.env_python(cm.DEFAULT_ENV).exists(), reason="no ModelOpt environment: run scripts/compare_modelopt.py --setup")
def test_modelopt_autocast_keeps_fp32_io_and_runs(tmp_path):
    model = passed("stress")
    photos = bundled_photographs(RESOLUTION)
    renderings = cm.modelopt_renderings(cm.DEFAULT_ENV, model, photos, tmp_path)
    assert set(renderings) == {cm.MO_DEFAULT, cm.MO_PHOTOS}
    reference = fp32_logits(model, photos)
    for rendering in renderings.values():
        graph = rendering.model.graph
        assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        assert cm.structure(rendering.model)["casts"] >= 2
        assert measure(rendering.model, reference, photos, "photographs").top1_agreement > 0
