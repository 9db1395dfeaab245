#!/usr/bin/env python
"""Figure 2 (issue 6): PyTorch FP16 on a CUDA GPU with CUDA graphs, eager and ``torch.compile``:
rf_b1 against evit_b1 at 224×224, batch 1/8/16/32, images/s and the ratio, beside the ceiling
rf-inspect computes for the same case on this GPU. The paper's goal for the ratio is ≥ 1.35× at
batch 8–32 (its L40 TensorRT figures).

    .venv/bin/python scripts/bench_gpu.py                      # the figure
    .venv/bin/python scripts/bench_gpu.py --profile 16         # + where the time goes at batch 16 (kernels)
    .venv/bin/python scripts/bench_gpu.py --backends torch --batch 8 --rounds 2 --iterations 5   # quick look

Without a CUDA device it says so and exits with status 2, measuring nothing. Writes gpu.json,
gpu.md, gpu.png (and profile.txt with --profile) into ``--out`` (default rftrt_out/figures/gpu).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

from rftrt.errors import RftrtError
from rftrt.targets.hardware import hardware_key_for_device
from rftrt.tools.bench.backends.registry import backend
from rftrt.tools.bench.progress import Progress
from rftrt.tools.bench.report import bench_markdown, plot_throughput
from rftrt.tools.bench.results import BenchReport
from rftrt.tools.bench.run import run_benchmark
from rftrt.tools.tables import render_table

GOAL = 1.35
MODELS = ("rf_b1", "evit_b1")


def _kernel_category(name: str) -> str:
    """A coarse label for a CUDA kernel name (heuristic, for the summary only)."""
    n = name.lower()
    if any(k in n for k in ("conv", "implicit_gemm", "cudnn", "xmma_fprop", "dgrad", "wgrad", "fprop")):
        return "convolution"
    if any(k in n for k in ("gemm", "cutlass", "matmul", "sm90_xmma", "ampere_h", "cublas", "bmm")):
        return "matrix product"
    if any(k in n for k in ("reduce", "triton_red", "triton_per", "norm")):
        return "reduction / norm"
    if any(k in n for k in ("memcpy", "copy", "cat", "transpose", "permute", "nchw", "nhwc")):
        return "copy / layout"
    if any(k in n for k in ("elementwise", "vectorized", "triton_poi", "hardswish", "relu", "activation", "add", "mul", "div")):
        return "element-wise"
    return "other"


def profile_kernels(model_name: str, compiled: bool, batch: int, resolution: int, compile_mode: str = "default", iterations: int = 20) -> list[tuple[str, int, float]]:
    """(kernel, calls, total µs) for ``iterations`` FP16 forwards (not graph-captured, so the profiler
    sees every kernel; the kernels are those the CUDA graph replays)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from rftrt.models import create

    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = True
    model = create(model_name, resolution).eval().to("cuda", torch.float16, memory_format=torch.channels_last)
    fn = torch.compile(model, mode=compile_mode, dynamic=False) if compiled else model
    x = torch.randn(batch, 3, resolution, resolution, device="cuda", dtype=torch.float16).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        for _ in range(5):
            fn(x)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(iterations):
                fn(x)
            torch.cuda.synchronize()
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for event in prof.events():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            entry = totals[event.name]
            entry[0] += 1
            entry[1] += event.device_time_total if hasattr(event, "device_time_total") else event.cuda_time_total
    return sorted(((k, int(c / iterations), t / iterations) for k, (c, t) in totals.items()), key=lambda r: -r[2])


def _profile_text(batch: int, backends: list[str], resolution: int, compile_mode: str) -> str:
    lines = [f"Kernel time per forward at batch {batch} (FP16, channels-last, torch.profiler; µs)"]
    for name in backends:
        compiled = name == "torch-compile"
        per_model = {m: profile_kernels(m, compiled, batch, resolution, compile_mode) for m in MODELS}
        lines += ["", f"## {name}"]
        cats = sorted({_kernel_category(k) for rows in per_model.values() for k, _, _ in rows})
        table = []
        for cat in cats:
            values = [sum(t for k, _, t in per_model[m] if _kernel_category(k) == cat) for m in MODELS]
            table.append([cat] + [f"{v:.1f}" for v in values] + [f"{values[1] - values[0]:+.1f}"])
        totals = [sum(t for _, _, t in per_model[m]) for m in MODELS]
        table.append(["total"] + [f"{v:.1f}" for v in totals] + [f"{totals[1] - totals[0]:+.1f}"])
        lines.append(render_table(["category", *MODELS, "evit − rf"], table))
        for m in MODELS:
            lines += ["", f"top kernels, {m}:"]
            lines.append(
                render_table(
                    ["kernel", "calls", "µs", "category"],
                    [[re.sub(r"\s+", " ", k)[:110], c, f"{t:.1f}", _kernel_category(k)] for k, c, t in per_model[m][:15]],
                    "lrrl",
                )
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--backends", default="torch,torch-compile", help="comma list (default torch,torch-compile)")
    cli.add_argument("--batch", default="1,8,16,32")
    cli.add_argument("--resolution", type=int, default=224)
    cli.add_argument("--warmup", type=int, default=20)
    cli.add_argument("--rounds", type=int, default=10)
    cli.add_argument("--iterations", type=int, default=50)
    cli.add_argument("--compile-mode", default="default", help="torch.compile mode (default; or max-autotune-no-cudagraphs: slower to compile)")
    cli.add_argument("--profile", type=int, metavar="BATCH", help="also profile the kernels of both models at this batch size")
    cli.add_argument("--out", default="rftrt_out/figures/gpu")
    cli.add_argument("--quiet", action="store_true")
    args = cli.parse_args(argv)

    names = [b.strip() for b in args.backends.split(",") if b.strip()]
    for name in names:
        ok, reason = backend(name).available()
        if not ok:
            print(f"bench_gpu: no CUDA device to measure on: {name}: {reason}; nothing was measured", file=sys.stderr)
            return 2
    batches = [int(b) for b in args.batch.split(",")]
    overrides = {"warmup": args.warmup, "rounds": args.rounds, "iterations": args.iterations, "compile_mode": args.compile_mode}
    try:
        report: BenchReport = run_benchmark(
            MODELS[0], MODELS[1], names, args.resolution, batches, "fp16", overrides, progress=Progress(not args.quiet)
        )
    except RftrtError as exc:
        print(f"bench_gpu: error: {exc}", file=sys.stderr)
        return 2

    import torch

    from rftrt.tools.inspect.report import inspect_model

    device = torch.cuda.get_device_name(0)
    key = hardware_key_for_device(device)
    ceilings: dict[tuple[str, int], float] = {}
    if key is not None:
        for model in MODELS:
            inspected = inspect_model(model, args.resolution, gpus=(key,), precision="fp16", batches=tuple(batches))
            for limit in inspected.limits:
                ceilings[(model, limit.batch)] = limit.ceiling_img_s

    rows = []
    for pair in report.pairs:
        a = report.measurement(pair.model, pair.batch, pair.backend)
        b = report.measurement(pair.vs, pair.batch, pair.backend)
        goal = "–" if pair.batch < 8 else ("met" if pair.ratio >= GOAL else "short")
        ceiling_a, ceiling_b = ceilings.get((pair.model, pair.batch)), ceilings.get((pair.vs, pair.batch))
        rows.append(
            [
                pair.backend,
                pair.batch,
                f"{a.throughput_img_s:,.0f}",
                f"{b.throughput_img_s:,.0f}",
                f"{pair.ratio:.3f}×",
                f"{pair.ratio_range[0]:.2f}–{pair.ratio_range[1]:.2f}",
                goal,
                f"{ceiling_a:,.0f} ({a.throughput_img_s / ceiling_a:.0%})" if ceiling_a else "–",
                f"{ceiling_b:,.0f} ({b.throughput_img_s / ceiling_b:.0%})" if ceiling_b else "–",
            ]
        )
    title = (
        f"PyTorch FP16, CUDA graphs, {MODELS[0]} vs {MODELS[1]} at r{args.resolution} on {device}; "
        f"copies excluded; CUDA-event device time; goal ≥ {GOAL}× at batch 8–32"
    )
    table = render_table(
        ["backend", "batch", f"{MODELS[0]} img/s", f"{MODELS[1]} img/s", "ratio", "per-round range", "goal",
         f"{MODELS[0]} ceiling img/s (reached)", f"{MODELS[1]} ceiling img/s (reached)"],
        rows,
    )  # fmt: skip
    print(title)
    print(table)
    if key is None:
        print(f"no ceiling: {device} is not in rftrt/targets/hardware.toml")
    else:
        print(f"ceilings: rf-inspect's lower bound on {key} (hardware.toml): compulsory traffic and dense FP16 compute, a limit no engine beats")
    for warning in report.warnings:
        print(f"warning: {warning}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = report.as_dict()
    data["ceiling_img_s"] = {f"{m}@{b}": v for (m, b), v in ceilings.items()}
    (out / "gpu.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    plot_throughput(report, out / "gpu.png")
    (out / "gpu.md").write_text(f"# Figure 2: {title}\n\n{table}\n\n" + bench_markdown(report, "gpu.png").split("\n", 1)[1])
    written = ["gpu.json", "gpu.md", "gpu.png"]
    if args.profile:
        text = _profile_text(args.profile, names, args.resolution, args.compile_mode)
        print(text)
        (out / "profile.txt").write_text(text + "\n")
        written.append("profile.txt")
    print(f"wrote {out}/" + ", ".join(written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
