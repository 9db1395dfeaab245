"""Rendering benchmark results: a terminal table (also valid Markdown), a Markdown report, a PNG
plot of throughput against batch size per model (matplotlib, Agg backend: no display needed), the
backends table of ``--list-backends``, and the files ``--json``, ``--markdown``, ``--plot`` and
``--out`` ask for."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..tables import render_table

if TYPE_CHECKING:  # pragma: no cover
    from .results import BenchReport, Measurement

__all__ = ["bench_markdown", "format_backend_status", "format_bench", "format_paper_table", "plot_throughput", "throughput_figure", "write_outputs", "write_report_files"]


def _ms(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.2f}" if value < 100 else f"{value:.1f}"


def _img_s(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _ratio(value: float | None) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.2f}×"


def _header_lines(report: BenchReport) -> list[str]:
    lines = []
    for b in report.backends:
        lines.append(f"backend {b.name} ({b.precision}) on {b.device}")
        lines.append(f"  timing: {b.timing}")
        lines.append(f"  host↔device copies: {b.copies}")
    s = report.settings
    lines.append(
        f"method: {s.warmup} warm-up, then {s.rounds} interleaved rounds × {s.iterations} timed iterations per model "
        f"({s.rounds * s.iterations} samples), {s.rotate} rotated inputs; ratio = median latency(vs) / median latency(model)"
    )
    return lines


def _measure_rows(report: BenchReport, backend: str) -> list[list[object]]:
    rows = []
    for batch in report.batches:
        found: list[Measurement] = [m for m in report.measurements if m.backend == backend and m.batch == batch]
        if not found:
            continue
        row: list[object] = [batch]
        for m in found:
            row += [_ms(m.stats.median_ms), _ms(m.stats.p90_ms), _ms(m.stats.p99_ms), _img_s(m.throughput_img_s)]
        pair = next((p for p in report.pairs if p.backend == backend and p.batch == batch), None)
        if pair is not None:
            row += [_ratio(pair.ratio), f"{_ratio(pair.ratio_range[0])}–{_ratio(pair.ratio_range[1])}"]
        rows.append(row)
    return rows


def format_bench(report: BenchReport) -> str:
    """The terminal table of a run: one block per backend, the models side by side with the ratio."""
    if report.paper:
        return format_paper_table(report)
    out = [f"rf-bench: {' vs '.join(report.models)} at {report.resolution}×{report.resolution}"]
    out += _header_lines(report)
    for b in report.backends:
        headers = ["batch"]
        for model in report.models:
            headers += [f"{model} median ms", "p90", "p99", "img/s"]
        if len(report.models) == 2:
            headers += ["ratio", "range over rounds"]
        out += ["", f"[{b.name}, {b.precision}]", render_table(headers, _measure_rows(report, b.name))]
    out += _trailer(report)
    return "\n".join(out)


def _trailer(report: BenchReport) -> list[str]:
    out = []
    for name, reason in report.skipped.items():
        out.append(f"skipped backend {name}: {reason}")
    for warning in report.warnings:
        out.append(f"warning: {warning}")
    return ([""] + out) if out else []


def format_paper_table(report: BenchReport) -> str:
    """Our numbers beside the paper's (TensorRT FP16; Orin latency at batch 1, L40 throughput)."""
    b = report.backends[0] if report.backends else None
    where = f"{b.name} ({b.precision}) on {b.device}" if b else "?"
    out = [f"rf-bench --paper-table: ours on {where}; the paper's: TensorRT FP16 on DRIVE Orin (latency) and L40 (throughput)"]
    out += _header_lines(report)
    rows = []
    for pair in report.paper:
        model, vs, res = pair["model"], pair["vs"], pair["resolution"]
        batches = sorted({m.batch for m in report.measurements if m.model == model})
        for batch in batches:
            ours_a = next(m for m in report.measurements if m.model == model and m.batch == batch)
            ours_b = next(m for m in report.measurements if m.model == vs and m.batch == batch)
            ratio = next((p.ratio for p in report.pairs if p.model == model and p.batch == batch), None)
            orin = pair["orin_fp16_ms"] if batch == 1 else None
            l40 = pair["l40_fp16_img_s"].get(str(batch))
            rows.append(
                [
                    f"{model} vs {vs}",
                    res,
                    batch,
                    _ms(ours_a.stats.median_ms),
                    _ms(ours_b.stats.median_ms),
                    _img_s(ours_a.throughput_img_s),
                    _img_s(ours_b.throughput_img_s),
                    _ratio(ratio),
                    f"{orin[0]:.2f} / {orin[1]:.2f} ({_ratio(orin[1] / orin[0])})" if orin else "–",
                    f"{l40[0]:,.0f} / {l40[1]:,.0f} ({_ratio(l40[0] / l40[1])})" if l40 else "–",
                ]
            )
    headers = [
        "pair",
        "res",
        "batch",
        "ours ms (rf)",
        "ours ms (evit)",
        "ours img/s (rf)",
        "ours img/s (evit)",
        "ours ratio",
        "paper Orin ms rf / evit (ratio)",
        "paper L40 img/s rf / evit (ratio)",
    ]
    out += ["", render_table(headers, rows, "lrrrrrrrrr")]
    out.append("ratio: how many times faster the ReduceFormer model is (throughput rf / throughput evit).")
    out += _trailer(report)
    return "\n".join(out)


def bench_markdown(report: BenchReport, plot: str | None = None) -> str:
    """A Markdown report: results, method, what each timing contains, environment."""
    title = "Paper table" if report.paper else f"{' vs '.join(report.models)} at {report.resolution}×{report.resolution}"
    out = [f"# rf-bench: {title}", ""]
    if report.warnings:
        out += [f"> **Warning:** {w}" for w in report.warnings] + [""]
    out += ["## Results", "", "```", format_bench(report), "```", ""]
    if plot:
        out += [f"![throughput against batch size]({plot})", ""]
    out += ["## Backends", ""]
    out += render_table(
        ["backend", "precision", "device", "timing", "host↔device copies"],
        [[b.name, b.precision, b.device, b.timing, b.copies] for b in report.backends],
        "lllll",
    ).splitlines()
    for name, reason in report.skipped.items():
        out.append(f"\nSkipped **{name}**: {reason}")
    s = report.settings
    out += [
        "",
        "## Method",
        "",
        f"- {s.warmup} warm-up iterations per model and batch size, untimed;",
        f"- {s.rounds} rounds, each running every model for {s.iterations} timed iterations, the order of the models "
        "alternating from round to round (interleaved: drift touches both alike);",
        f"- {s.rotate} distinct input batches rotated (on the GPU one CUDA graph per input buffer);",
        "- median, p90 and p99 over all timed iterations; throughput = batch / median latency;",
        "- ratio = median latency of the second model / median latency of the first = throughput ratio; "
        "the range is the lowest and highest ratio of per-round medians.",
        "",
        "## Environment",
        "",
    ]
    out += [f"- {line}" for line in report.environment.lines()]
    out += ["", f"Wall time of the run: {report.seconds:.0f} s.", ""]
    return "\n".join(out)


#: one marker per series, hollow and of falling size, so that a point drawn over another leaves both visible
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
#: the horizontal spread of series at one batch size, in octaves of the log-2 batch axis
_DODGE_OCTAVES = 0.12


def throughput_figure(report: BenchReport):
    """The figure of :func:`plot_throughput`: images/s against batch size, one line per model and
    backend. The y-axis starts at zero; series at the same batch size sit side by side (dodged by a
    fraction of an octave), so equal or close figures of two models stay visible."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    series: dict[tuple[str, str, int], list[Measurement]] = {}
    for m in report.measurements:
        series.setdefault((m.model, m.backend, m.resolution), []).append(m)
    batches = sorted({m.batch for m in report.measurements})
    spread = _DODGE_OCTAVES if len(series) > 1 and len(batches) > 1 else 0.0
    for index, ((model, backend, resolution), points) in enumerate(sorted(series.items())):
        points.sort(key=lambda m: m.batch)
        offset = 2 ** (spread * (index / max(len(series) - 1, 1) - 0.5))
        marker, size = _MARKERS[index % len(_MARKERS)], 8 - 3 * index / max(len(series), 1)
        label = f"{model} r{resolution} ({backend}, {points[0].precision})"
        ax.plot([m.batch * offset for m in points], [m.throughput_img_s for m in points], marker=marker, markersize=size,
                markerfacecolor="none", label=label)  # fmt: skip
    if batches and batches[-1] > batches[0]:
        ax.set_xscale("log", base=2)
    ax.set_xticks(batches)
    ax.set_xticklabels([str(b) for b in batches])
    ax.set_ylim(bottom=0)
    ax.set_xlabel("batch size" + (" (series side by side at each size)" if spread else ""))
    ax.set_ylabel("throughput (images/s, from the median latency; axis from 0)")
    device = ", ".join(sorted({b.device for b in report.backends}))
    ax.set_title(f"rf-bench on {device}", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    loaded = [w for w in report.warnings if "loaded" in w]
    if loaded:
        fig.text(0.01, 0.01, loaded[0], fontsize=6, color="darkred")
    fig.tight_layout()
    return fig


def plot_throughput(report: BenchReport, path: str | Path) -> Path:
    """PNG of :func:`throughput_figure` (matplotlib's Agg backend: no display needed)."""
    fig = throughput_figure(report)
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


def format_backend_status(status: Sequence[tuple[str, bool, str]]) -> str:
    """The ``--list-backends`` table from (name, available, reason) rows."""
    return render_table(["backend", "available", "why"], [[n, "yes" if ok else "no", r] for n, ok, r in status], "lll")


def write_report_files(
    data: dict,
    markdown: Callable[[str | None], str],
    plot: Callable[[Path], Path] | None,
    json_path: str | Path | None = None,
    markdown_path: str | Path | None = None,
    plot_path: str | Path | None = None,
    folder: str | Path | None = None,
) -> list[Path]:
    """Write whichever of the JSON (``data``), Markdown (``markdown(plot link)``) and PNG (``plot``; None:
    nothing to draw) outputs are asked for; returns their paths. ``folder`` (created) holds
    ``bench.json``, ``bench.md`` and ``bench.png`` for those not given a path. Every rf-bench backend
    writes its files through this."""
    from ...files import write_file_atomic, write_json

    if folder:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        json_path = json_path or folder / "bench.json"
        markdown_path = markdown_path or folder / "bench.md"
        plot_path = plot_path or folder / "bench.png"
    written = []
    if plot_path and plot is not None:
        written.append(plot(Path(plot_path)))
    else:
        plot_path = None
    if json_path:
        write_json(Path(json_path), data)
        written.append(Path(json_path))
    if markdown_path:
        plot_ref = None
        if plot_path:
            try:
                plot_ref = str(Path(plot_path).resolve().relative_to(Path(markdown_path).resolve().parent))
            except ValueError:
                plot_ref = str(Path(plot_path).resolve())
        write_file_atomic(Path(markdown_path), markdown(plot_ref).encode())
        written.append(Path(markdown_path))
    return written


def write_outputs(
    report: BenchReport,
    json_path: str | Path | None = None,
    markdown_path: str | Path | None = None,
    plot_path: str | Path | None = None,
    folder: str | Path | None = None,
) -> list[Path]:
    """:func:`write_report_files` for a benchmark of the local backends."""
    return write_report_files(
        report.as_dict(), lambda ref: bench_markdown(report, ref), lambda path: plot_throughput(report, path), json_path, markdown_path, plot_path, folder
    )
