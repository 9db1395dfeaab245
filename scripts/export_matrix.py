#!/usr/bin/env python3
"""Every registry model × every target (its default TensorRT release), FP16, through the library's
``run_export``: the validation figures of each bundle as one Markdown table.

    python scripts/export_matrix.py [--resolution 224] [--models rf_b1,evit_b1] [--targets orin,l40]

Columns: max |Δlogit| PyTorch vs exported ONNX and exported vs passed ONNX (FP32, photographs and
random inputs together), max |Δlogit| of the FP16 plan vs FP32, the FP16 top-1 agreement on the
bundled photographs, and the number of FP32 nodes of the plan.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from rftrt.models import list_models
from rftrt.pipeline import ExportOptions, run_export
from rftrt.targets.profiles import list_targets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--models", default=",".join(list_models()))
    parser.add_argument("--targets", default=",".join(list_targets()))
    args = parser.parse_args()
    print("| model | target | TensorRT | dialect | PyTorch→ONNX max|Δ| | passes max|Δ| | FP16 max|Δ| | FP16 top-1 (photos) | FP32 nodes | s |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            for target in args.targets.split(","):
                start = time.perf_counter()
                out = Path(tmp) / f"{model}-{target}"
                result = run_export(
                    ExportOptions(model=model, target=target, precision="fp16", resolution=args.resolution, out_dir=str(out)),
                    log=lambda line: None,
                )
                by = defaultdict(list)
                for c in result.comparisons:
                    by[c.kind].append(c)
                fp16_photos = next(c for c in by["fp16"] if c.inputs == "photographs")
                print(
                    f"| {model} | {target} | {result.target.release.version} | {result.target.release.dialect} "
                    f"| {max(c.max_abs for c in by['fp32']):.1e} | {max(c.max_abs for c in by['passes']):.1e} "
                    f"| {max(c.max_abs for c in by['fp16']):.1e} | {fp16_photos.top1_agreement:.0%} "
                    f"| {len(result.plan.fp32_nodes)} | {time.perf_counter() - start:.1f} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
