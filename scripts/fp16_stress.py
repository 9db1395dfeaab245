#!/usr/bin/env python3
"""The FP16 stress case: a naive all-FP16 conversion against the precision plan, on ONNX Runtime.

    python scripts/fp16_stress.py [--model rf_b1] [--resolution 224] [--scales 1,8]

For each scale, the model's qkv projections are multiplied by it (larger attention activations, as
trained models have), then the FP32 ONNX after the passes is rendered twice: everything FP16 (the
exported ε = 1e-15 underflows, sums unguarded), and with the precision plan's FP32 islands. Both are
compared with FP32 on the bundled photographs.
"""

from __future__ import annotations

import argparse
import sys

import torch

from rftrt.comparison import compare
from rftrt.data.images import bundled_photographs
from rftrt.export.onnx_export import export_onnx
from rftrt.export.onnxrt import run_onnx
from rftrt.export.prepare import run_passes
from rftrt.models import create
from rftrt.precision.plan import plan_precision
from rftrt.precision.render import render_fp16


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="rf_b1")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--scales", default="1,8")
    args = parser.parse_args()
    photos = bundled_photographs(args.resolution)
    print("| model | qkv scale | rendering | finite | max|Δlogit| | min cosine | top-1 agreement |")
    print("|---|---:|---|---|---:|---:|---:|")
    for scale in map(float, args.scales.split(",")):
        torch.manual_seed(0)
        model = create(args.model, resolution=args.resolution)
        with torch.no_grad():
            for module in model.modules():
                if hasattr(module, "qkv"):
                    module.qkv.conv.weight.mul_(scale)
        proto = export_onnx(model, args.resolution)
        reference = run_onnx(proto, {"p": photos})["p"]
        passed, _ = run_passes(proto, "fp16")
        plan = plan_precision(passed, photos, "photos")
        renderings = {
            "naive all-FP16": render_fp16(run_passes(proto, "fp32")[0]),  # without the FP16-safety pass
            "precision plan": render_fp16(passed, set(plan.fp32_nodes)),
        }
        for label, rendered in renderings.items():
            c = compare("FP32", reference, label, run_onnx(rendered, {"p": photos})["p"], "photos", "fp16")
            max_abs = "inf/NaN" if not c.finite else f"{c.max_abs:.2e}"
            print(f"| {args.model} | {scale:g} | {label} | {c.finite} | {max_abs} | {c.min_cosine:.4f} | {c.top1_agreement:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
