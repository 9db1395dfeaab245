"""``python -m rftrt.tools.bench --ort-worker``: rf-bench's ONNX Runtime timing process (internal;
:mod:`rftrt.tools.bench.backends.ort` starts it)."""

import sys

from .backends.ort_worker import main

if __name__ == "__main__":
    if sys.argv[1:] == ["--ort-worker"]:
        sys.exit(main())
    sys.exit("usage: python -m rftrt.tools.bench --ort-worker  (internal: rf-bench's ONNX Runtime timing process)")
