#!/usr/bin/env python3
"""Each export pass against the exported graph, on inputs built to break it.

    python scripts/pass_exactness.py

One attention core of each family on its own (``rftrt.export.stress``), its q|k|v set directly:
Gaussian, whole pixels with ReLU(q) = 0, pixels with ReLU(q) tiny but positive (6e-8, 1e-8), ×0.01
and ×100. For every pass of the pipeline rf-export runs (and the FP16-safety pass, which only DLA
builds will get), the largest deviation from the exported core relative to the output's scale, and
how many elements are off by more than 1e-5 of it. Prints one Markdown table.
"""

from __future__ import annotations

import sys

from rftrt.export.prepare import pass_pipeline
from rftrt.export.stress import pass_errors


def main() -> int:
    print("| core | pass | input | max relative error | elements > 1e-5 | in rf-export's GPU pipeline |")
    print("|---|---|---|---:|---:|---|")
    for family in ("rf", "evit"):
        gpu = {e.name for e in pass_errors(family, [fn for fn, _ in pass_pipeline("fp16")])}
        for error in pass_errors(family, [fn for fn, _ in pass_pipeline("fp16", fp16_cores=True)]):
            where = "yes" if error.name in gpu else "no (only where the cores run in FP16)"
            print(f"| {family} | {error.name} | {error.inputs} | {error.max_relative:.2e} | {error.elements_off} of {error.elements} | {where} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
