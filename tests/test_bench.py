"""rf-bench: statistics, the interleaved schedule, a real (tiny) ONNX Runtime run, reports, bad input.

Timings are never asserted: only that they exist, are positive and are put together correctly.
"""

import json
import platform
import subprocess
import sys

import numpy as np
import pytest
from helpers import cli_error
from PIL import Image

from rftrt.cli.bench import bench_main
from rftrt.engines.engine_info import EngineInfo
from rftrt.errors import RftrtError
from rftrt.timing import LatencyStats, interleave, percentile, throughput
from rftrt.tools.bench.backends.registry import BACKENDS, backend, backend_status
from rftrt.tools.bench.paper import find_engines, paper_pairs
from rftrt.tools.bench.progress import Progress
from rftrt.tools.bench.report import bench_markdown, format_bench, throughput_figure, write_outputs
from rftrt.tools.bench.results import BenchSettings, Measurement, PairResult
from rftrt.tools.bench.run import run_benchmark
from rftrt.tools.tables import render_table

RES = 64


# --- statistics on known data ---------------------------------------------------------------------


def test_percentiles_match_numpy_linear_interpolation():
    data = [float(x) for x in np.random.default_rng(0).permutation(np.arange(1, 101))]
    for q in (0, 10, 50, 90, 99, 100):
        assert percentile(data, q) == pytest.approx(np.percentile(data, q))
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 99) == 5.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_latency_stats_and_throughput_on_known_samples():
    stats = LatencyStats.from_samples([10.0, 1.0, 2.0, 3.0, 4.0])
    assert (stats.n, stats.median_ms, stats.min_ms, stats.max_ms, stats.mean_ms) == (5, 3.0, 1.0, 10.0, 4.0)
    assert stats.p90_ms == pytest.approx(7.6)  # 4 + 0.6·(10 − 4)
    assert throughput(8, 4.0) == 2000.0


def test_pair_ratio_is_throughput_ratio_with_round_range():
    a = Measurement.from_rounds("rf_b1", 224, 8, "ort", "fp32", [[2.0, 2.0], [4.0, 4.0]])
    b = Measurement.from_rounds("evit_b1", 224, 8, "ort", "fp32", [[3.0, 3.0], [4.0, 4.0]])
    pair = PairResult.from_measurements(a, b)
    assert pair.ratio == pytest.approx(b.stats.median_ms / a.stats.median_ms)
    assert pair.ratio == pytest.approx(a.throughput_img_s / b.throughput_img_s)
    assert pair.ratio_range == (1.0, 1.5)
    assert pair.latency_reduction == pytest.approx(1 - a.stats.median_ms / b.stats.median_ms)


def test_interleave_warms_up_then_alternates_the_order():
    calls = []

    def timer(key):
        def run(n):
            calls.append((key, n))
            return [1.0] * n

        return run

    samples = interleave({"a": timer("a"), "b": timer("b")}, warmup=3, rounds=3, iterations=2)
    assert calls == [("a", 3), ("b", 3), ("a", 2), ("b", 2), ("b", 2), ("a", 2), ("a", 2), ("b", 2)]
    assert samples == {"a": [[1.0, 1.0]] * 3, "b": [[1.0, 1.0]] * 3}


def test_settings_are_validated():
    with pytest.raises(RftrtError, match="rounds"):
        BenchSettings(rounds=0)
    with pytest.raises(RftrtError, match="copies"):
        BenchSettings(copies="sometimes")


def test_progress_without_a_terminal_prints_one_line_per_step():
    class Stream:
        def __init__(self):
            self.text = ""

        def write(self, s):
            self.text += s

        def flush(self):
            pass

    stream = Stream()
    progress = Progress(True, stream)
    for i in (1, 2, 3):
        progress.update(f"[ort] a vs b batch 1 round {i}/3")
    progress.update("[ort] a vs b batch 8 round 1/3")
    assert stream.text.count("\n") == 2


# --- a real ONNX Runtime run on the CPU -------------------------------------------------------------


@pytest.fixture(scope="module")
def ort_report():
    return run_benchmark(
        "rf_b0", "evit_b0", ["ort"], RES, [1, 2], settings=BenchSettings(warmup=1, rounds=2, iterations=2, rotate=2)
    )


def test_ort_cpu_run_measures_both_models_interleaved(ort_report):
    r = ort_report
    assert r.models == ["rf_b0", "evit_b0"] and r.batches == [1, 2] and r.resolution == RES
    assert len(r.measurements) == 4 and len(r.pairs) == 2
    for m in r.measurements:
        assert m.backend == "ort" and m.precision == "fp32"
        assert m.stats.n == 4 and len(m.round_medians_ms) == 2
        assert 0 < m.stats.min_ms <= m.stats.median_ms <= m.stats.p90_ms <= m.stats.p99_ms <= m.stats.max_ms
        assert m.throughput_img_s == pytest.approx(m.batch * 1000 / m.stats.median_ms)
    for p in r.pairs:
        a, b = r.measurement(p.model, p.batch, "ort"), r.measurement(p.vs, p.batch, "ort")
        assert p.ratio == pytest.approx(b.stats.median_ms / a.stats.median_ms)
    info = r.backends[0]
    assert info.copies.startswith("n/a") and "wall clock" in info.timing
    assert info.details["intra_op_threads"] == 1
    assert info.details["torch_imported_in_timing_process"] is False
    assert info.details["providers"]["rf_b0"] == ["CPUExecutionProvider"]
    env = r.environment
    assert env.cpu and env.logical_cpus >= 1 and "onnxruntime" in env.versions and env.threads["onnxruntime_intra_op"] == 1


def test_reports_table_markdown_json_and_png(ort_report, tmp_path):
    table = format_bench(ort_report)
    assert "rf_b0 median ms" in table and "evit_b0 median ms" in table and "ratio" in table
    assert "host↔device copies: n/a" in table
    paths = write_outputs(ort_report, tmp_path / "b.json", tmp_path / "b.md", tmp_path / "b.png")
    assert [p.name for p in paths] == ["b.png", "b.json", "b.md"]
    data = json.loads((tmp_path / "b.json").read_text())
    assert len(data["measurements"]) == 4 and data["pairs"][0]["model"] == "rf_b0"
    assert data["environment"]["cpu"] and data["settings"]["rounds"] == 2
    markdown = (tmp_path / "b.md").read_text()
    assert markdown.startswith("# rf-bench: rf_b0 vs evit_b0") and "![throughput against batch size](b.png)" in markdown
    assert "## Method" in markdown and "## Environment" in markdown
    with Image.open(tmp_path / "b.png") as image:
        assert image.format == "PNG" and image.size[0] > 300 and image.size[1] > 200
    assert bench_markdown(ort_report).count("| rf-bench") == 0  # the table is fenced, not mistaken for a title


def test_plot_starts_at_zero_and_keeps_equal_points_of_two_models_apart(ort_report):
    """Two models with the same figures at every batch size (as a paper-table run can have): each
    point stays visible beside the other, and the throughput axis starts at zero."""
    import dataclasses

    import matplotlib.pyplot as plt

    twin = [dataclasses.replace(m, model=m.model + "_twin") for m in ort_report.measurements if m.model == "rf_b0"]
    report = dataclasses.replace(ort_report, measurements=[*ort_report.measurements, *twin])
    fig = throughput_figure(report)
    ax = fig.axes[0]
    assert ax.get_ylim()[0] == 0
    points = [tuple(xy) for line in ax.get_lines() for xy in line.get_xydata()]
    assert len(points) == len(report.measurements) == 6
    assert len(set(points)) == len(points)  # no point drawn exactly over another
    assert sorted({round(float(x)) for x, _ in points}) == [1, 2]  # still at their batch sizes
    plt.close(fig)


def test_render_table_aligns_columns():
    text = render_table(["a", "bb"], [["x", 1], ["long", 22]])
    lines = text.splitlines()
    assert len({len(line) for line in lines}) == 1
    assert lines[1] == "|------|---:|"


# --- the paper's table ----------------------------------------------------------------------------


def test_paper_pairs_come_from_the_zoo():
    pairs = {p.model: p for p in paper_pairs()}
    assert sorted(pairs) == ["rf_b1", "rf_b2", "rf_b3"]
    b1 = pairs["rf_b1"]
    assert (b1.vs, b1.resolution, b1.orin_fp16_ms) == ("evit_b1", 224, (0.68, 0.90))
    assert sorted(b1.l40_fp16_img_s) == [1, 8, 16, 32]
    assert b1.l40_ratio(1) == pytest.approx(4149 / 3067)
    assert pairs["rf_b2"].resolution == 256 and sorted(pairs["rf_b2"].l40_fp16_img_s) == [1, 8, 16, 32]  # Tables 1 and 2
    assert pairs["rf_b3"].orin_ratio == pytest.approx(2.93 / 2.22)


# --- bad input: one line on stderr, exit code 2 -----------------------------------------------------


def _error(capsys, argv):
    return cli_error(capsys, bench_main, argv, "rf-bench")


def test_unknown_backend_lists_backends_and_available_ones(capsys):
    err = _error(capsys, ["--model", "rf_b1", "--backend", "tpu"])
    assert "unknown backend 'tpu'" in err and ", ".join(BACKENDS) in err and "available here: " in err and "ort" in err


def test_unavailable_backend_says_why_and_which_are_available(capsys):
    unavailable = [(name, reason) for name, ok, reason in backend_status() if not ok and name != "trt"]
    if not unavailable:
        pytest.skip("every non-TensorRT backend is available on this machine")
    name, reason = unavailable[0]
    err = _error(capsys, ["--model", "rf_b1", "--backend", name])
    assert f"backend {name} is not available here: {reason}" in err and "available here: ort" in err


def test_vs_with_another_resolution_is_refused(capsys):
    err = _error(capsys, ["--model", "rf_b1", "--vs", "evit_b1", "--resolution", "224", "--vs-resolution", "256"])
    assert "256×256" in err and "224×224" in err


def test_other_bad_arguments(capsys):
    assert "unknown model 'rf_b9'" in _error(capsys, ["--model", "rf_b9"])
    assert "--vs rf_b1 is the model itself" in _error(capsys, ["--model", "rf_b1", "--vs", "rf_b1"])
    assert "no host↔device copies" in _error(capsys, ["--model", "rf_b1", "--copies", "include"])
    assert "runs fp32 only" in _error(capsys, ["--model", "rf_b1", "--precision", "fp16"])
    assert "positive integers" in _error(capsys, ["--model", "rf_b1", "--batch", "1,0"])
    assert "--model is required" in _error(capsys, [])


def _engine(tmp_path, **sidecar):
    engine = tmp_path / "rf_b1.engine"
    engine.write_bytes(b"ftrt" + bytes(60))
    (tmp_path / "rf_b1.engine.json").write_text(json.dumps({"model": "rf_b1", "resolution": 224, **sidecar}))
    return engine


def test_batch_outside_the_engine_profile_is_refused(capsys, tmp_path):
    engine = _engine(tmp_path, batch={"min": 1, "opt": 8, "max": 32})
    err = _error(capsys, ["--model", "rf_b1", "--backend", "trt", "--engine", str(engine), "--batch", "8,64"])
    assert "batch 64 is outside engine rf_b1.engine's profile 1:8:32" in err


@pytest.mark.skipif(platform.machine() == "aarch64", reason="the foreign engine here is an Orin (aarch64) one")
def test_engine_built_for_another_gpu_is_refused(capsys, tmp_path):
    engine = _engine(tmp_path, target="orin", gpu={"name": "Orin", "compute_capability": "8.7"}, batch={"min": 1, "opt": 1, "max": 1})
    err = _error(capsys, ["--model", "rf_b1", "--backend", "trt", "--engine", str(engine), "--batch", "1"])
    assert "was built for NVIDIA DRIVE AGX Orin (aarch64, SM 8.7)" in err and f"this machine is {platform.machine()}" in err


def test_engine_checks_on_given_machines(tmp_path):
    info = EngineInfo.from_file(_engine(tmp_path, target="l40", gpu={"name": "NVIDIA L40", "compute_capability": "8.9"}))
    assert (info.model, info.resolution, info.target, info.built_on_cc) == ("rf_b1", 224, "l40", "8.9")
    info.check_machine("x86_64", "8.9")
    with pytest.raises(RftrtError, match=r"built on NVIDIA L40 \(SM 8.9\); this GPU is SM 9.0"):
        info.check_machine("x86_64", "9.0")
    with pytest.raises(RftrtError, match="this machine is aarch64"):
        info.check_machine("aarch64", None)
    with pytest.raises(RftrtError, match="does not exist"):
        EngineInfo.from_file(tmp_path / "missing.engine")


def test_engine_for_another_model_and_engine_without_trt_are_refused(capsys, tmp_path):
    engine = _engine(tmp_path)
    assert "built for rf_b1, not rf_b2" in _error(capsys, ["--model", "rf_b2", "--backend", "trt", "--engine", str(engine)])
    assert "for --backend trt" in _error(capsys, ["--model", "rf_b1", "--engine", str(engine)])


def test_engines_are_found_by_their_sidecars(tmp_path):
    (tmp_path / "a").mkdir()
    engine = _engine(tmp_path / "a")
    other = tmp_path / "evit_b1.engine"
    other.write_bytes(b"ftrt" + bytes(60))
    assert find_engines(tmp_path, [("rf_b1", 224), ("evit_b1", 224)]) == {"rf_b1": str(engine), "evit_b1": str(other)}
    with pytest.raises(RftrtError, match="no engine for rf_b3"):
        find_engines(tmp_path, [("rf_b3", 224)])


def test_paper_table_on_trt_needs_the_engine_folder(capsys):
    assert "needs --engine-dir" in _error(capsys, ["--paper-table", "--backend", "trt"])
    assert "leave out --model" in _error(capsys, ["--paper-table", "--model", "rf_b1"])


def test_one_load_warning_over_merged_runs(ort_report):
    import copy

    report = copy.deepcopy(ort_report)
    report.load_samples = [0.1]
    report.note_load()
    assert not any("loaded" in w for w in report.warnings)
    other = copy.deepcopy(report)
    other.load_samples = [5.0, 7.5]
    report.merge(other)
    loaded = [w for w in report.warnings if "loaded" in w]
    assert len(loaded) == 1 and "0.10–7.50" in loaded[0]
    assert len(report.measurements) == 2 * len(ort_report.measurements)


def test_trt_backend_without_tensorrt_says_why(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # TensorRT absent, whatever this machine has
    ok, reason = backend("trt", {"rf_b1": "x"}).available()
    assert not ok
    assert reason == "tensorrt is not installed (it installs only with NVIDIA's runtime, on the device)"


def test_list_backends(capsys):
    assert bench_main(["--list-backends"]) == 0
    out = capsys.readouterr().out
    assert "| ort " in out and all(name in out for name in BACKENDS)


def test_the_worker_refuses_to_run_without_its_flag():
    proc = subprocess.run([sys.executable, "-m", "rftrt.tools.bench"], capture_output=True, text=True)
    assert proc.returncode != 0 and "--ort-worker" in proc.stderr


def test_the_worker_imports_no_torch():
    blocked = "import sys; sys.modules['torch'] = None; import rftrt.tools.bench.__main__"
    proc = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_an_engine_built_with_allow_other_gpu_runs_where_it_was_built(tmp_path):
    """rf-build --allow-other-gpu on an L40 host builds an Orin bundle's engine for the L40: its sidecar
    records the machine and GPU it was built on, and those decide, not the bundle's target."""
    engine = _engine(tmp_path, target="orin", gpu={"name": "NVIDIA L40", "compute_capability": "8.9"}, machine="x86_64")
    info = EngineInfo.from_file(engine)
    info.check_machine("x86_64", "8.9")  # where it was built: accepted
    with pytest.raises(RftrtError, match="built on NVIDIA L40 in a x86_64 machine; this machine is aarch64"):
        info.check_machine("aarch64", "8.7")  # the bundle's own target: refused
