"""``rf-bench``: latency and throughput of two models side by side, interleaved, on one or more backends."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import parser, run
from .args import add_json_option, batch_sizes, output_dir, output_file

if TYPE_CHECKING:  # pragma: no cover
    from ..tools.bench.request import BenchRequest


def _backend_names(text: str) -> list[str]:
    """argparse type of ``--backend``: a comma list of backend names."""
    return [b.strip() for b in text.split(",") if b.strip()]


def _parser() -> argparse.ArgumentParser:
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
        type=_backend_names,
        default="ort",
        help="ort, ort-cuda, torch, torch-compile, trt, a comma list, or all (available ones; others skipped with the reason); "
        "or triton alone (a running server, --url). Default ort",
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
    server = cli.add_argument_group("triton (a running Triton Inference Server serving a bundle's repository: rf-triton)")
    server.add_argument("--url", metavar="HOST:PORT", help="the server (gRPC port 8001 or HTTP port 8000 by default in Triton)")
    server.add_argument("--protocol", choices=("grpc", "http"), default="grpc", help="default grpc")
    server.add_argument("--bundle", metavar="BUNDLE", help="the bundle the served model was exported as: its golden images and reference")
    server.add_argument("--triton-model", metavar="NAME", help="the model's name on the server (default: the bundle's model, the TensorRT plan)")
    server.add_argument("--concurrency", type=batch_sizes, metavar="N[,N…]", default=[1, 2, 4, 8], help="requests in flight to sweep (default 1,2,4,8)")
    method = cli.add_argument_group("method")
    method.add_argument("--warmup", type=int, metavar="N", help="untimed iterations per model and batch size")
    method.add_argument("--rounds", type=int, metavar="N", help="interleaved rounds")
    method.add_argument("--iterations", type=int, metavar="N", help="timed iterations per model per round (triton: timed requests per stream)")
    method.add_argument("--rotate", type=int, metavar="N", help="distinct input batches cycled through")
    out = cli.add_argument_group("output")
    add_json_option(out, "the results")
    out.add_argument("--markdown", metavar="FILE", type=output_file("Markdown report"), help="write a Markdown report")
    out.add_argument("--plot", metavar="FILE", type=output_file("plot"), help="write a PNG plot of throughput against batch size")
    out.add_argument("--out", metavar="DIR", type=output_dir("output folder"), help="write bench.json, bench.md and bench.png into DIR")
    out.add_argument("--quiet", action="store_true", help="no progress display")
    info = cli.add_argument_group("information")
    info.add_argument("--list-backends", action="store_true", help="print every backend, whether it is available here and why")
    return cli


def _request(args: argparse.Namespace) -> BenchRequest:
    """The request the arguments make; :meth:`BenchRequest.run` checks it."""
    from ..tools.bench.request import BenchRequest

    settings = {
        "warmup": args.warmup,
        "rounds": args.rounds,
        "iterations": args.iterations,
        "rotate": args.rotate,
        "threads": args.threads,
        "copies": args.copies,
        "compile_mode": args.compile_mode,
        "channels_last": False if args.contiguous else None,
    }
    return BenchRequest(
        model=args.model,
        vs=args.vs,
        backends=args.backend,
        resolution=args.resolution,
        vs_resolution=args.vs_resolution,
        batches=args.batch,
        precision=args.precision,
        settings={key: value for key, value in settings.items() if value is not None},
        engine=args.engine,
        vs_engine=args.vs_engine,
        engine_dir=args.engine_dir,
        paper_table=args.paper_table,
    )


def _triton(args: argparse.Namespace) -> int:
    """``--backend triton``: the served model checked against the bundle, then load-tested."""
    from ..errors import RftrtError
    from ..tools.bench.backends.triton import TritonBench, run_triton_bench, write_triton_outputs

    if not args.url or not args.bundle:
        raise RftrtError("--backend triton needs --url HOST:PORT and --bundle BUNDLE (the bundle the server's repository was written from)")
    if args.model or args.vs or args.paper_table or args.engine or args.vs_engine:
        raise RftrtError("--backend triton takes its model from --bundle (and --triton-model); leave out --model, --vs, --paper-table and the engines")
    timing = {"warmup": args.warmup, "requests": args.iterations}
    request = TritonBench(
        url=args.url, bundle=args.bundle, protocol=args.protocol, model=args.triton_model, batches=args.batch,
        concurrencies=args.concurrency, **{k: v for k, v in timing.items() if v is not None},
    )  # fmt: skip
    report = run_triton_bench(request)
    print("\n".join(report.lines()))
    for path in write_triton_outputs(report, args.json, args.markdown, args.plot, args.out):
        print(f"wrote {path}")
    return 0 if report else 1


def bench_main(argv: Sequence[str] | None = None) -> int:
    """``rf-bench``: latency and throughput of two models side by side, interleaved."""

    def body(args: argparse.Namespace) -> int:
        from ..tools.bench.backends.registry import backend_status
        from ..tools.bench.progress import Progress
        from ..tools.bench.report import format_backend_status, format_bench, write_outputs

        if args.list_backends:
            print(format_backend_status(backend_status()))
            return 0
        if args.backend == ["triton"]:
            return _triton(args)
        progress = Progress(not args.quiet)
        report = _request(args).run(progress)
        progress.done()
        print(format_bench(report))
        for path in write_outputs(report, args.json, args.markdown, args.plot, args.out):
            print(f"wrote {path}")
        return 0

    return run("rf-bench", _parser(), body, argv)
