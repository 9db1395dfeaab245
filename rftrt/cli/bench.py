"""``rf-bench``: latency and throughput of two models side by side, interleaved, on one or more backends."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from ..errors import RftrtError
from . import parser, run
from .args import add_json_option, batch_sizes


def bench_main(argv: Sequence[str] | None = None) -> int:
    """``rf-bench``: latency and throughput of two models side by side, interleaved."""
    cli = parser(
        "rf-bench",
        "Benchmark a model against another, interleaved, on ONNX Runtime, PyTorch CUDA or a TensorRT engine; "
        "print a table, optionally write JSON, Markdown and a PNG plot.",
    )
    what = cli.add_argument_group("models")
    what.add_argument("--model", help="registry name, e.g. rf_b1")
    what.add_argument("--vs", metavar="MODEL", help="the model to compare with, e.g. evit_b1 (run interleaved)")
    what.add_argument("--resolution", type=int, help="input size (default 224, or the engine's)")
    what.add_argument("--vs-resolution", type=int, metavar="N", help="input size of --vs (must equal --resolution)")
    what.add_argument("--paper-table", action="store_true", help="run the ReduceFormer paper's B1/B2/B3 pairs and print its figures beside ours")
    how = cli.add_argument_group("backend")
    how.add_argument(
        "--backend",
        default="ort",
        help="ort, ort-cuda, torch, torch-compile, trt, a comma list, or all (available ones; others skipped with the reason). Default ort",
    )
    how.add_argument("--precision", choices=("fp32", "fp16", "int8"), help="default: fp32 for ort, fp16 for torch, the engine's for trt")
    how.add_argument("--batch", type=batch_sizes, metavar="N[,N…]", help="batch sizes (default: 1,8 on the CPU, 1,8,16,32 on a GPU)")
    how.add_argument("--engine", metavar="FILE", help="TensorRT engine of --model (trt backend)")
    how.add_argument("--vs-engine", metavar="FILE", help="TensorRT engine of --vs (trt backend)")
    how.add_argument("--engine-dir", metavar="DIR", help="--paper-table --backend trt: where the six models' engines are")
    how.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads (default 1)")
    how.add_argument("--copies", choices=("include", "exclude"), help="time host↔device copies or not (GPU backends; default per backend)")
    how.add_argument("--compile-mode", metavar="MODE", help="torch.compile mode for torch-compile (default: default; max-autotune-no-cudagraphs autotunes for longer)")
    how.add_argument("--contiguous", action="store_true", help="torch backends: NCHW-contiguous activations instead of channels-last")
    method = cli.add_argument_group("method")
    method.add_argument("--warmup", type=int, metavar="N", help="untimed iterations per model and batch size")
    method.add_argument("--rounds", type=int, metavar="N", help="interleaved rounds")
    method.add_argument("--iterations", type=int, metavar="N", help="timed iterations per model per round")
    method.add_argument("--rotate", type=int, metavar="N", help="distinct input batches cycled through")
    out = cli.add_argument_group("output")
    add_json_option(out, "the results")
    out.add_argument("--markdown", metavar="FILE", help="write a Markdown report")
    out.add_argument("--plot", metavar="FILE", help="write a PNG plot of throughput against batch size")
    out.add_argument("--out", metavar="DIR", help="write bench.json, bench.md and bench.png into DIR")
    out.add_argument("--quiet", action="store_true", help="no progress display")
    info = cli.add_argument_group("information")
    info.add_argument("--list-backends", action="store_true", help="print every backend, whether it is available here and why")

    def body(args: argparse.Namespace) -> int:
        from ..tools.bench import BACKENDS, Progress, backend_status, run_benchmark, run_paper_table
        from ..tools.report import format_bench, write_outputs
        from ..tools.tables import render_table

        if args.list_backends:
            print(render_table(["backend", "available", "why"], [[n, "yes" if ok else "no", r] for n, ok, r in backend_status()], "lll"))
            return 0
        backends = [b.strip() for b in args.backend.split(",") if b.strip()]
        for name in backends:
            if name != "all" and name not in BACKENDS:
                from ..tools.bench import backend

                backend(name)  # raises, naming the backends and the available ones
        overrides = {
            key: value
            for key, value in {
                "warmup": args.warmup,
                "rounds": args.rounds,
                "iterations": args.iterations,
                "rotate": args.rotate,
                "threads": args.threads,
                "copies": args.copies,
                "compile_mode": args.compile_mode,
                "channels_last": False if args.contiguous else None,
            }.items()
            if value is not None
        }
        progress = Progress(not args.quiet)
        if args.paper_table:
            if args.model or args.vs or args.engine or args.vs_engine:
                raise RftrtError("--paper-table runs the paper's pairs itself: leave out --model, --vs and the engines")
            if len(backends) != 1 or backends == ["all"]:
                raise RftrtError("--paper-table runs on one backend; name it with --backend")
            report = run_paper_table(backends[0], args.batch, args.precision, overrides, progress, args.engine_dir)
        else:
            if not args.model:
                raise RftrtError("--model is required (e.g. --model rf_b1 --vs evit_b1), or use --paper-table")
            if args.engine_dir:
                raise RftrtError("--engine-dir is for --paper-table; give --engine and --vs-engine here")
            if args.vs_engine and not args.vs:
                raise RftrtError("--vs-engine needs --vs")
            engines = {k: v for k, v in ((args.model, args.engine), (args.vs, args.vs_engine)) if v}
            if engines and "trt" not in backends:
                raise RftrtError("--engine and --vs-engine are for --backend trt")
            report = run_benchmark(
                args.model,
                args.vs,
                backends,
                args.resolution,
                args.batch,
                args.precision,
                overrides,
                engines,
                args.vs_resolution,
                progress,
            )
        progress.done()
        print(format_bench(report))
        json_path, markdown_path, plot_path = args.json, args.markdown, args.plot
        if args.out:
            folder = Path(args.out)
            folder.mkdir(parents=True, exist_ok=True)
            json_path = json_path or folder / "bench.json"
            markdown_path = markdown_path or folder / "bench.md"
            plot_path = plot_path or folder / "bench.png"
        for path in write_outputs(report, json_path, markdown_path, plot_path):
            print(f"wrote {path}")
        return 0

    return run("rf-bench", cli, body, argv)
