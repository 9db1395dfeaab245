#!/usr/bin/env python
"""Figure 1 (issue 6): ONNX Runtime on the CPU, FP32, one intra-op thread: ReduceFormer against
EfficientViT for B1/B2/B3 at 224×224, batch 1 and 8, median of interleaved runs, with the ratio.

Each pair is exported by the parent process (torch) and timed by rf-bench's ONNX-Runtime-only worker
process (no torch in it), both models of the pair interleaved round by round.

    .venv/bin/python scripts/bench_ort_cpu.py                       # the figure (several minutes)
    .venv/bin/python scripts/bench_ort_cpu.py --resolution 64 --batch 1 --rounds 2 --iterations 2   # smoke test

Writes ``ort_cpu.json``, ``ort_cpu.md`` and ``ort_cpu.png`` into ``--out`` (default
rftrt_out/figures/ort_cpu) and prints the table. Timings taken on a machine that other work is
loading are flagged in the output.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rftrt.errors import RftrtError
from rftrt.tools.bench.progress import Progress
from rftrt.tools.bench.report import bench_markdown, plot_throughput
from rftrt.tools.bench.results import BenchReport, BenchSettings
from rftrt.tools.bench.run import run_benchmark
from rftrt.tools.tables import render_table


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--variants", default="b1,b2,b3", help="comma list of sizes (default b1,b2,b3)")
    cli.add_argument("--resolution", type=int, default=224)
    cli.add_argument("--batch", default="1,8", help="comma list (default 1,8)")
    cli.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (default 1)")
    cli.add_argument("--warmup", type=int, default=3)
    cli.add_argument("--rounds", type=int, default=10)
    cli.add_argument("--iterations", type=int, default=5, help="timed iterations per model per round")
    cli.add_argument("--out", default="rftrt_out/figures/ort_cpu")
    cli.add_argument("--quiet", action="store_true")
    args = cli.parse_args(argv)

    batches = [int(b) for b in args.batch.split(",")]
    settings = BenchSettings(warmup=args.warmup, rounds=args.rounds, iterations=args.iterations, threads=args.threads)
    progress = Progress(not args.quiet)
    reports: list[BenchReport] = []
    try:
        for variant in args.variants.split(","):
            reports.append(
                run_benchmark(f"rf_{variant}", f"evit_{variant}", ["ort"], args.resolution, batches, "fp32", settings, progress=progress)
            )
    except RftrtError as exc:
        print(f"bench_ort_cpu: error: {exc}", file=sys.stderr)
        return 2
    progress.done()

    merged = reports[0]
    for other in reports[1:]:
        merged.merge(other)

    rows = []
    for pair in merged.pairs:
        a = merged.measurement(pair.model, pair.batch, "ort")
        b = merged.measurement(pair.vs, pair.batch, "ort")
        rows.append(
            [
                f"{pair.model} vs {pair.vs}",
                pair.batch,
                f"{a.stats.median_ms:.2f}",
                f"{b.stats.median_ms:.2f}",
                f"{a.throughput_img_s:.1f}",
                f"{b.throughput_img_s:.1f}",
                f"{pair.ratio:.3f}×",
                f"{pair.ratio_range[0]:.3f}–{pair.ratio_range[1]:.3f}",
                f"{-pair.latency_reduction:+.1%}",
            ]
        )
    env = merged.environment
    title = (
        f"ONNX Runtime CPU, FP32, {args.threads} intra-op thread(s), r{args.resolution}; median of "
        f"{settings.rounds}×{settings.iterations} interleaved iterations per model; CPU: {env.cpu}"
    )
    table = render_table(
        ["pair", "batch", "rf ms", "evit ms", "rf img/s", "evit img/s", "ratio", "per-round range", "rf latency vs evit"], rows
    )
    print(title)
    print(table)
    for warning in merged.warnings:
        print(f"warning: {warning}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ort_cpu.json").write_text(json.dumps(merged.as_dict(), indent=2, sort_keys=True) + "\n")
    plot_throughput(merged, out / "ort_cpu.png")
    (out / "ort_cpu.md").write_text(
        f"# Figure 1: {title}\n\n{table}\n\nratio = median latency(evit) / median latency(rf).\n\n"
        + bench_markdown(merged, "ort_cpu.png").split("\n", 1)[1]
    )
    print(f"wrote {out}/ort_cpu.json, ort_cpu.md, ort_cpu.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
