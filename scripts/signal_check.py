#!/usr/bin/env python3
"""Do the default weights carry the image? And what does the FP16 plan do to them?

    python scripts/signal_check.py [--models rf_b1,evit_b1] [--resolution 224]

For every registry model, on the eight bundled photographs:

- the logits' spread across the photographs (standard deviation over images, averaged over classes)
  divided by their spread across classes (over classes, averaged over images), and the number of
  distinct top-1 classes, under PyTorch's default initialisation (seed 0: what rftrt used before)
  and under rftrt's default weights (``rftrt.models.init``);
- with rftrt's default weights, the FP16 plan's typed rendering against the FP32 ONNX on ONNX
  Runtime: max |Δlogit|, the smallest per-image cosine, top-1 agreement (all images, and the decisive
  ones), and the largest activation the plan measured.

Prints one Markdown table.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from rftrt.comparison import compare
from rftrt.data.images import bundled_photographs
from rftrt.export.onnxrt import run_onnx
from rftrt.export.prepare import export_and_pass
from rftrt.models import create, list_models, model_info
from rftrt.models.efficientvit import EfficientViTCls
from rftrt.precision.plan import plan_precision
from rftrt.precision.render import render_fp16


def _spread(model: torch.nn.Module, photos: np.ndarray) -> tuple[float, int]:
    with torch.no_grad():
        logits = model(torch.from_numpy(photos)).numpy().astype(np.float64)
    return float(logits.std(axis=0).mean() / logits.std(axis=1).mean()), len(set(logits.argmax(axis=1)))


def _pytorch_default(name: str) -> torch.nn.Module:
    info = model_info(name)
    torch.manual_seed(0)
    return EfficientViTCls(info.family, info.variant).eval()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(list_models()))
    parser.add_argument("--resolution", type=int, default=224)
    args = parser.parse_args()
    photos = bundled_photographs(args.resolution)
    print("| model | PyTorch init: spread ratio / distinct top-1 | rftrt default: spread ratio / distinct top-1 "
          "| FP16 plan max\\|Δ\\| | min cosine | top-1 (decisive) | FP32 nodes | max \\|activation\\| |")
    print("|---|---|---|---:|---:|---|---:|---:|")
    for name in args.models.split(","):
        before = _spread(_pytorch_default(name), photos)
        model = create(name, args.resolution)
        after = _spread(model, photos)
        passed = export_and_pass(model, args.resolution, "fp16").passed
        plan = plan_precision(passed, photos, "photographs")
        fp32 = run_onnx(passed, {"p": photos})["p"]
        fp16 = run_onnx(render_fp16(passed, set(plan.fp32_nodes)), {"p": photos})["p"]
        c = compare("FP32", fp32, "FP16 plan", fp16, "photographs", "fp16")
        decisive = f"{c.decisive_agreement:.0%} of {c.decisive_images}"
        print(
            f"| {name} | {before[0]:.2e} / {before[1]} | {after[0]:.3f} / {after[1]} | {c.max_abs:.2e} | {c.min_cosine:.6f} "
            f"| {c.top1_agreement:.0%} ({decisive}) | {len(plan.fp32_nodes)} | {plan.max_activation:.3g} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
