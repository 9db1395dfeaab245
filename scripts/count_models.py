#!/usr/bin/env python3
"""Count every registry model (parameters; MACs at 224/256/288) and print the counts file, or
rewrite ``rftrt/models/counts.toml`` with ``--write``.

    python scripts/count_models.py [--write]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rftrt.models import PUBLISHED_RESOLUTIONS, list_models
from rftrt.models.counts import count_model, counts_toml


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite rftrt/models/counts.toml")
    args = parser.parse_args()
    text = counts_toml({name: count_model(name, PUBLISHED_RESOLUTIONS) for name in list_models()})
    if args.write:
        (Path(__file__).parents[1] / "rftrt" / "models" / "counts.toml").write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
