"""The limits of rf-inspect: the lower bound holds every throughput the ReduceFormer paper measured
(Orin: the Jetson AGX Orin figures stand in for the paper's DRIVE Orin), the compulsory counts agree
between the PyTorch model and its graph, and the on-chip model of the estimate on hand-built graphs."""

from functools import lru_cache

import numpy as np
import onnx_graphsurgeon as gs
import pytest

from rftrt.errors import RftrtError
from rftrt.models import EfficientViTCls, create, model_info
from rftrt.targets.hardware import hardware
from rftrt.tools.inspect.exported import export_and_pass
from rftrt.tools.inspect.limits import (
    Compulsory,
    compulsory_from_graph,
    compulsory_from_model,
    compute_limits,
    lower_bound_us,
    on_chip_activation_bytes,
)
from rftrt.tools.inspect.traffic import fused_schedule, memory_traffic
from rftrt.tools.paper_tables import paper_row, paper_rows


@lru_cache(maxsize=None)
def _architecture(name: str) -> EfficientViTCls:
    """The registry model without create()'s weight initialisation (the counts do not depend on the
    weights, and initialising B3 takes many seconds)."""
    info = model_info(name)
    return EfficientViTCls(info.family, info.variant).eval()


def test_every_paper_throughput_is_within_our_ceiling():
    checked = 0
    for row in paper_rows():
        compulsory = compulsory_from_model(_architecture(row.model), row.resolution)
        for (gpu, batch), measured in row.measured_img_s().items():
            ceiling = batch * 1e6 / lower_bound_us(compulsory, hardware(gpu), batch)
            assert measured <= ceiling, f"{row.model} r{row.resolution} on {gpu} at batch {batch}: paper {measured:,.0f} img/s > ceiling {ceiling:,.0f}"
            checked += 1
    # Table 1: 16 rows × (Orin, L40 batch 1); Table 2: 18 rows × batch 8/16/32
    assert checked == 16 * 2 + 18 * 3


def test_the_ceiling_that_was_beaten_now_holds():
    """rf_b1 r224 on L40 at batch 32: the old fused-traffic ceiling (26,062 img/s) was below the
    paper's 32,128; the lower bound's must be above it."""
    row = paper_row("rf_b1", 224)
    compulsory = compulsory_from_model(_architecture("rf_b1"), 224)
    assert compulsory == compulsory_from_model(create("rf_b1", 224), 224)
    lower = lower_bound_us(compulsory, hardware("l40"), 32)
    assert 32 * 1e6 / lower > row.l40_img_s[32] == 32128


def test_the_paper_rows_are_the_registry_models_at_the_papers_resolutions():
    """Every model the registry says the paper measured has its row, at the paper's resolution."""
    for row in paper_rows():
        model_info(row.model)  # a registry model
    on_paper = [(name, model_info(name).paper["resolution"]) for name in ("rf_b1", "rf_b2", "rf_b3", "evit_b1", "evit_b2", "evit_b3")]
    assert all(paper_row(name, res) is not None and paper_row(name, res).orin_fp16_ms for name, res in on_paper)
    assert paper_row("rf_b1", 224).orin_mb_per_image == 26.02 and paper_row("rf_b0", 224) is None


@pytest.fixture(scope="module")
def exported():
    return {name: export_and_pass(name, 64, "fp16") for name in ("rf_b0", "evit_b0")}


@pytest.mark.parametrize("name", ["rf_b0", "evit_b0"])
def test_compulsory_counts_agree_between_model_and_graph(name, exported):
    exported = exported[name]
    from_graph = compulsory_from_graph(exported.after)
    assert from_graph == compulsory_from_model(exported.torch_model, 64)
    assert (from_graph.input_elements, from_graph.output_elements) == (3 * 64 * 64, 1000)
    params = sum(p.numel() for p in exported.torch_model.parameters())
    assert 0.95 * params < from_graph.weight_elements < params  # biases and norms are not compulsory
    from rftrt.tools.inspect.complexity import graph_macs

    if name.startswith("evit"):
        assert from_graph.macs < graph_macs(exported.after)  # attention's activation products left out
    else:
        assert from_graph.macs == graph_macs(exported.after)


def test_lower_bound_is_the_larger_of_memory_and_compute():
    l40 = hardware("l40")
    c = Compulsory(weight_elements=10_000_000, input_elements=150_528, output_elements=1000, macs=500_000_000)
    memory = 2 * (10_000_000 + 151_528) / 864e9 * 1e6
    assert lower_bound_us(c, l40, 1) == pytest.approx(max(memory, 2 * 500e6 / 181.05e12 * 1e6)) == pytest.approx(memory)
    assert lower_bound_us(c, l40, 64) == pytest.approx(64 * 2 * 500e6 / 181.05e12 * 1e6)  # compute-bound
    assert lower_bound_us(c, l40, 1, element_bytes=4) == pytest.approx(2 * memory)
    with pytest.raises(RftrtError, match="batch must be at least 1"):
        lower_bound_us(c, l40, 0)


def _residual():
    """x → Conv0 → a; a → Relu → b → Conv1 → c; y = Add(c, a). Under the fused rule a (two
    consumers) and b (read by a convolution) are materialised, c lives in Conv1's epilogue."""
    x = gs.Variable("x", np.float32, (1, 4, 16, 16))
    a, b, c = (gs.Variable(n, np.float32, (1, 8, 16, 16)) for n in "abc")
    y = gs.Variable("y", np.float32, (1, 8, 16, 16))
    nodes = [
        gs.Node("Conv", "conv0", {"kernel_shape": [1, 1]}, [x, gs.Constant("w0", np.ones((8, 4, 1, 1), np.float32))], [a]),
        gs.Node("Relu", "relu", {}, [a], [b]),
        gs.Node("Conv", "conv1", {"kernel_shape": [1, 1]}, [b, gs.Constant("w1", np.ones((8, 8, 1, 1), np.float32))], [c]),
        gs.Node("Add", "add", {}, [c, a], [y]),
    ]
    return gs.export_onnx(gs.Graph(nodes=nodes, inputs=[x], outputs=[y], opset=17))


def test_on_chip_model_keeps_what_fits_in_l2():
    model = _residual()
    traffic = memory_traffic(model, "fp16", fp32_nodes=set())
    steps = fused_schedule(model, "fp16", fp32_nodes=set())
    assert [(s.node, s.reads, [t for t, _ in s.writes]) for s in steps] == [
        ("conv0", (), ["a"]), ("relu", ("a",), ["b"]), ("conv1", ("b",), []), ("add", ("a",), [])
    ]  # fmt: skip
    assert sum(s.weights_bytes for s in steps) == traffic.weights_bytes == (32 + 64) * 2
    # without L2 every materialised tensor goes to DRAM and back: the fused rule's total
    for batch in (1, 4):
        assert on_chip_activation_bytes(steps, batch, 0) == batch * traffic.activations_fused_bytes > 0
    assert on_chip_activation_bytes(steps, 4, 2**30) == 0
    sa, sb = (dict(w for s in steps for w in s.writes)[n] for n in "ab")
    # b is read right after its write: an L2 of its size keeps it; a waits for relu and conv1
    assert on_chip_activation_bytes(steps, 1, sb) == 2 * sa
    between = (sa + sb) + (steps[2].weights_bytes + sb)  # what relu and conv1 touch
    assert on_chip_activation_bytes(steps, 1, between + sa // 2) == sa  # half of a on chip
    assert on_chip_activation_bytes(steps, 1, between + sa) == 0


def test_estimate_is_never_below_the_lower_bound_and_uses_the_l2(exported):
    exported = exported["rf_b0"]
    traffic = memory_traffic(exported.after, "fp16")
    steps = fused_schedule(exported.after, "fp16")
    gpus = [hardware(g) for g in ("orin", "l40", "h100")]
    limits = compute_limits(compulsory_from_graph(exported.after), traffic, steps, gpus, (1, 8, 32))
    assert [(x.gpu, x.batch) for x in limits] == [(g.key, b) for g in gpus for b in (1, 8, 32)]
    for limit in limits:
        assert limit.estimate_us >= limit.lower_bound_us > 0 and limit.estimate_bytes >= limit.compulsory_bytes
        assert limit.ceiling_img_s == pytest.approx(limit.batch * 1e6 / limit.lower_bound_us)
        no_l2 = traffic.weights_bytes + limit.batch * (traffic.per_image(True) - traffic.weights_bytes)
        assert limit.estimate_bytes <= no_l2
    by = {(x.gpu, x.batch): x for x in limits}
    # per image, Orin's 4 MiB L2 keeps less of a batch of 32 on chip than L40's 96 MiB
    assert by[("orin", 32)].estimate_bytes > by[("l40", 32)].estimate_bytes
