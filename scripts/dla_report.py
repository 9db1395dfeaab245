#!/usr/bin/env python
"""The DLA placement table of issue 12: rf-inspect's prediction for each model on a DLA core (nodes on
DLA and on the GPU, DLA↔GPU transitions, DLA loadables against the 16 a core holds, and whether a
build without GPU fallback would succeed), from the documented rules in rftrt/targets/dla_rules.toml.

A prediction, not a measurement: rf-build records TensorRT's own answer (can_run_on_DLA per layer)
beside it in an engine's sidecar. The graphs are the ones ``rf-inspect --target T --dla N`` inspects:
as ``rf-export --dla N`` deploys them (static batch, the DLA rewrites, the precision plan's nodes kept
on the GPU), so the table follows the passes as they stand.

    .venv/bin/python scripts/dla_report.py                          # rf_b1/b2/b3, evit_b1 at r224 (about a minute)
    .venv/bin/python scripts/dla_report.py --models rf_b0 --resolutions 64   # smoke test

Writes dla_report.json and dla_report.md into ``--out`` (default rftrt_out/figures/dla).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rftrt.errors import RftrtError
from rftrt.files import write_file_atomic
from rftrt.tools.inspect.report import inspect_model
from rftrt.tools.tables import render_table

_HEADERS = ["model", "res", "DLA nodes", "GPU nodes", "transitions", "loadables", "without GPU fallback", "GPU ops (count)"]


def _gpu_ops(placements: list[dict]) -> str:
    counts: dict[str, int] = {}
    for p in placements:
        if p["device"] == "GPU":
            counts[p["op"]] = counts.get(p["op"], 0) + 1
    return ", ".join(f"{op} {n}" for op, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))) or "none"


def _row(d: dict, model: str, resolution: int) -> list:
    fallback = "succeeds" if d["without_fallback"] else "fails"
    loadables = f"{d['loadables']} (core holds {d['loadables_per_core']})"
    return [model, resolution, d["dla_nodes"], d["gpu_nodes"], d["transitions"], loadables, fallback, _gpu_ops(d["placements"])]


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--models", default="rf_b1,rf_b2,rf_b3,evit_b1")
    cli.add_argument("--resolutions", default="224")
    cli.add_argument("--target", default="orin")
    cli.add_argument("--dla", type=int, default=0, metavar="CORE")
    cli.add_argument("--out", default="rftrt_out/figures/dla")
    args = cli.parse_args(argv)

    rows, records = [], []
    try:
        for resolution in (int(r) for r in args.resolutions.split(",")):
            for model in (m for m in args.models.split(",") if m):
                print(f"predicting {model} r{resolution} on {args.target} DLA core {args.dla} …", file=sys.stderr)
                start = time.perf_counter()
                d = inspect_model(model, resolution, target=args.target, gpus=(args.target,), batches=(1,), dla_core=args.dla).dla.as_dict()
                rows.append(_row(d, model, resolution))
                records.append({"model": model, "resolution": resolution, "seconds": round(time.perf_counter() - start, 1), **d})
    except RftrtError as exc:
        print(f"dla_report: error: {exc}", file=sys.stderr)
        return 2
    label = records[0]["label"] if records else ""
    lines = [f"# DLA placement on {args.target}, DLA core {args.dla} (the graphs rf-export --dla deploys, as rf-inspect --dla inspects them)", "", label, "", render_table(_HEADERS, rows, "lrrrrlll"), ""]
    lines += [f"- {r['model']} r{r['resolution']}: without GPU fallback the build {r['without_fallback_reason']}" for r in records]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_file_atomic(out / "dla_report.md", text.encode())
    write_file_atomic(out / "dla_report.json", (json.dumps(records, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode())
    print(f"wrote {out / 'dla_report.md'} and {out / 'dla_report.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
