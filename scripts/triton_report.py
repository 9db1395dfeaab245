#!/usr/bin/env python3
"""The figures of the Triton serving work: for the paper's B1/B2/B3 pairs (ReduceFormer and
EfficientViT at the paper's resolutions), an L40 FP16 export with ``--triton`` (the time the
repository stage adds), each config validated against Triton's schema and build.json, and the
rf-bench triton client's throughput over a concurrency sweep against a real Triton server
(PyTriton's tritonserver, CPU, serving the ONNX Runtime variant).

    python scripts/triton_report.py --out triton_report [--pytriton-python PY] [--serve rf_b1,evit_b1]

``--pytriton-python``: a Python with nvidia-pytriton and onnxruntime (PyTriton pins numpy<2, so it
usually has its own environment); without it the server part is skipped and said so. Writes
``triton_report.json`` and ``triton_report.md`` into ``--out`` and prints the Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rftrt.pipeline import ExportOptions, run_export
from rftrt.serving import check_repository, default_repository_dir
from rftrt.serving.local_server import free_ports
from rftrt.tools.bench.backends.triton import TritonBench, run_triton_bench
from rftrt.tools.bench.paper import paper_pairs
from rftrt.tools.tables import render_table

ROOT = Path(__file__).resolve().parents[1]


def _export(model: str, resolution: int, folder: Path) -> dict:
    """One L40 FP16 export with --triton: its stages' times and the repository's validation."""
    out = folder / f"{model}-r{resolution}"
    started = time.perf_counter()
    result = run_export(ExportOptions(model=model, target="l40", precision="fp16", resolution=resolution, out_dir=str(out), triton=True), log=lambda _: None)
    total = time.perf_counter() - started
    stages = {s["stage"]: s["seconds"] for s in result.stages}
    checks = check_repository(default_repository_dir(out), out)
    return {
        "model": model,
        "resolution": resolution,
        "bundle": str(out),
        "export_seconds": round(total, 2),
        "triton_seconds": stages["triton"],
        "triton_share": round(stages["triton"] / total, 4),
        "stages": stages,
        "configs": [c.as_dict() for c in checks.checks],
    }


def _serve_and_bench(python: str, bundle: Path, model: str, concurrencies: list[int], batches: list[int], requests: int) -> dict:
    """Start PyTriton's server on the bundle repository's ONNX Runtime variant, run the client, stop it."""
    repo = default_repository_dir(bundle)
    http, grpc, metrics = free_ports(3)
    log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
    argv = [python, "-m", "rftrt.serving.local_server", str(repo), f"{model}_onnx", "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics)]
    server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 180
        while "ready" not in Path(log.name).read_text().splitlines():
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: {Path(log.name).read_text()[-1500:]}")
            time.sleep(0.5)
        request = TritonBench(url=f"127.0.0.1:{grpc}", bundle=str(bundle), model=f"{model}_onnx", batches=batches, concurrencies=concurrencies, requests=requests)
        return run_triton_bench(request).as_dict()
    finally:
        server.terminate()
        server.wait(timeout=60)
        os.unlink(log.name)


def _markdown(exports: list[dict], served: list[dict], skipped: str | None) -> str:
    rows = [
        [e["model"], e["resolution"], f"{e['export_seconds']:.1f}", f"{e['triton_seconds']:.2f}", f"{100 * e['triton_share']:.1f}%",
         "; ".join(f"{c['model']}: {c['platform']}, max {c['max_batch_size']}, preferred {c['preferred_batch_sizes']}, schema ok, {len(c['checks'])} checks ok" for c in e["configs"])]
        for e in exports
    ]  # fmt: skip
    out = [
        "# Triton serving figures",
        "",
        "## Config validation and the time `--triton` adds (rf-export --target l40 --fp16 --triton)",
        "",
        render_table(["model", "res", "export s", "--triton s", "share", "configs (Triton ModelConfig schema + build.json)"], rows, "lrrrrl"),
        "",
        "## rf-bench --backend triton against a real Triton server (CPU, ONNX Runtime variant via PyTriton)",
        "",
    ]
    if skipped:
        out.append(f"Skipped: {skipped}")
    for s in served:
        out += [
            f"### {s['model']} (Triton {s['server']['version']}, {s['platform']} backend, {s['protocol']})",
            "",
            f"Answers: {'PASSED' if s['passed'] else 'FAILED'}, max|Δ| {s['check']['max_abs']:.2e} against the bundle's reference (tolerance {s['tolerance']['kind']}).",
            "",
            render_table(
                ["batch", "concurrency", "requests", "median ms", "p90", "p99", "img/s"],
                [[p["batch"], p["concurrency"], p["requests"], f"{p['stats']['median_ms']:.2f}", f"{p['stats']['p90_ms']:.2f}", f"{p['stats']['p99_ms']:.2f}", f"{p['throughput_img_s']:,.1f}"] for p in s["points"]],
            ),
            "",
            "Client machine: " + "; ".join(s["environment"]["cpu"].split("\n")[:1]) + f", {s['environment']['usable_cpus']} usable CPUs (server and client share them).",
            "",
        ]
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("triton_report"))
    parser.add_argument("--pytriton-python", default=os.environ.get("RFTRT_PYTRITON_PYTHON"), help="a Python with nvidia-pytriton and onnxruntime")
    parser.add_argument("--serve", default="rf_b1,evit_b1", help="models to serve and load-test (default rf_b1,evit_b1)")
    parser.add_argument("--concurrency", default="1,2,4,8")
    parser.add_argument("--batch", default="1,8")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per stream at each point")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.out / "bundles"
    exports = []
    for pair in paper_pairs():
        for model in (pair.model, pair.vs):
            print(f"exporting {model} r{pair.resolution} with --triton …", file=sys.stderr, flush=True)
            exports.append(_export(model, pair.resolution, work))
    served, skipped = [], None
    if args.pytriton_python:
        bundles = {e["model"]: Path(e["bundle"]) for e in exports}
        for model in args.serve.split(","):
            print(f"serving {model} …", file=sys.stderr, flush=True)
            served.append(_serve_and_bench(args.pytriton_python, bundles[model], model, [int(c) for c in args.concurrency.split(",")], [int(b) for b in args.batch.split(",")], args.requests))
    else:
        skipped = "no --pytriton-python (a Python with nvidia-pytriton and onnxruntime) given"
    report = {"exports": exports, "served": served, "skipped": skipped}
    (args.out / "triton_report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    markdown = _markdown(exports, served, skipped)
    (args.out / "triton_report.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
