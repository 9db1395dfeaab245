#!/usr/bin/env python
"""Figure 3 (issue 6): estimated memory traffic per image of rf_b1 and evit_b1 at 224/256/288,
beside the ReduceFormer paper's "Avg Mem BW (MB/image)" column.

The paper's column is not in our documents, and searches of the stored copies of the paper (arXiv
2406.07488v1 and its summaries) returned only its abstract and introduction, so that column is
printed as "not available"; our two estimates (unfused, fused: rules in rftrt.tools.inspect.traffic) are
printed with the time floor they imply on Orin and L40.

    .venv/bin/python scripts/memory_traffic.py                  # the figure (about a minute)
    .venv/bin/python scripts/memory_traffic.py --resolutions 64 # smoke test

Writes memory_traffic.json and memory_traffic.md into ``--out`` (default rftrt_out/figures/memory).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rftrt.errors import RftrtError
from rftrt.tools.inspect.report import inspect_model
from rftrt.tools.inspect.traffic import TRAFFIC_RULES
from rftrt.tools.tables import render_table

#: The paper's "Avg Mem BW (MB/image)" per (model, resolution); empty: not available to us.
PAPER_MB_PER_IMAGE: dict[tuple[str, int], float] = {}


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--models", default="rf_b1,evit_b1")
    cli.add_argument("--resolutions", default="224,256,288")
    cli.add_argument("--precision", choices=("fp16", "fp32"), default="fp16")
    cli.add_argument("--gpus", default="orin,l40")
    cli.add_argument("--out", default="rftrt_out/figures/memory")
    args = cli.parse_args(argv)

    gpus = tuple(g for g in args.gpus.split(",") if g)
    results = []
    try:
        for resolution in (int(r) for r in args.resolutions.split(",")):
            for model in args.models.split(","):
                print(f"inspecting {model} r{resolution} …", file=sys.stderr)
                results.append(inspect_model(model, resolution, gpus=gpus, precision=args.precision, batches=(1,)))
    except RftrtError as exc:
        print(f"memory_traffic: error: {exc}", file=sys.stderr)
        return 2

    rows = []
    for r in results:
        t = r.traffic
        paper = PAPER_MB_PER_IMAGE.get((r.model, r.resolution))
        floors = {f.gpu: f for f in r.floors if f.fused and f.batch == 1}
        rows.append(
            [r.model, r.resolution, f"{t.weights_bytes / 1e6:.2f}", f"{t.activations_unfused_bytes / 1e6:.2f}",
             f"{t.activations_fused_bytes / 1e6:.2f}", f"{t.per_image(False) / 1e6:.2f}", f"{t.per_image(True) / 1e6:.2f}",
             "not available" if paper is None else f"{paper:.1f}"]
            + [f"{floors[g].floor_us:.0f}" for g in gpus]
        )  # fmt: skip
    # rf / evit at each resolution
    ratio_rows = []
    by_key = {(r.model, r.resolution): r for r in results}
    models = args.models.split(",")
    if len(models) == 2:
        for resolution in sorted({r.resolution for r in results}):
            a, b = by_key[(models[0], resolution)], by_key[(models[1], resolution)]
            ratio_rows.append(
                [resolution, f"{a.traffic.per_image(False) / b.traffic.per_image(False):.3f}", f"{a.traffic.per_image(True) / b.traffic.per_image(True):.3f}"]
            )
    headers = ["model", "res", "weights MB", "activations MB unfused", "activations MB fused", "MB/image unfused",
               "MB/image fused", "paper MB/image"] + [f"floor µs {g} (fused, b1)" for g in gpus]  # fmt: skip
    table = render_table(headers, rows)
    lines = [
        f"Memory traffic per image at batch 1 ({args.precision}; weights read once, the batch's only image carries them)",
        table,
    ]
    if ratio_rows:
        lines += ["", render_table(["res", f"{models[0]} / {models[1]} unfused", "fused"], ratio_rows)]
    lines += [
        "",
        f"unfused: {TRAFFIC_RULES['unfused']}.",
        f"fused: {TRAFFIC_RULES['fused']}.",
        "paper MB/image: the paper's 'Avg Mem BW (MB/image)' column is not available (not in our documents; "
        "the stored copies of arXiv 2406.07488 hold only its abstract and introduction).",
    ]
    text = "\n".join(lines)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "memory_traffic.json").write_text(json.dumps([r.as_dict() for r in results], indent=2, sort_keys=True) + "\n")
    (out / "memory_traffic.md").write_text("# Figure 3: memory traffic per image\n\n" + text + "\n")
    print(f"wrote {out}/memory_traffic.json, memory_traffic.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
