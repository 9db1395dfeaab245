"""The bundle's golden data in Polygraphy's JSON format: a check of the engine that needs no rftrt.

``polygraphy run ENGINE --trt --load-inputs polygraphy_inputs.json --load-outputs
polygraphy_outputs.json --atol A --rtol R`` (what ``build.sh --verify`` runs) reads them. They hold
exactly the arrays of ``golden.npz``: ``images`` as the inputs, ``logits`` (ONNX Runtime on the
bundle's own ONNX) as the reference. The formats are Polygraphy's own, made by its own encoder:

- inputs: a list of feed dicts, one per iteration (what ``polygraphy run --save-inputs`` writes with
  ``polygraphy.json.save_json``); here one iteration, ``{input name: images}``;
- outputs: a ``polygraphy.comparator.RunResults`` (what ``--save-outputs`` writes): one runner with
  one ``IterationResult`` ``{output name: logits}``; no runtime, so the bytes do not depend on a clock.

Each array is ``np.save``'d and base64-encoded by Polygraphy's encoder, so the same arrays give the
same bytes (the manifest hashes them). The tolerances come from
:func:`rftrt.comparison.elementwise_tolerances` for the kind ``rf-verify`` judges an engine of the
bundle's precision by.
"""

from __future__ import annotations

import numpy as np
from polygraphy.comparator import RunResults
from polygraphy.json import to_json

from ..comparison import elementwise_tolerances
from ..engines.build_spec import BuildSpec
from ..engines.trtexec import PolygraphyCheck
from ..engines.verify import ENGINE_TOLERANCE

__all__ = ["INPUTS", "OUTPUTS", "REFERENCE_RUNNER", "polygraphy_check", "polygraphy_files"]

INPUTS = "polygraphy_inputs.json"
OUTPUTS = "polygraphy_outputs.json"
#: The runner name the reference is saved under (Polygraphy prints "<its runner> vs. <this>").
REFERENCE_RUNNER = "onnxrt-reference"


def polygraphy_check(spec: BuildSpec, logits: np.ndarray) -> PolygraphyCheck:
    """The files and the per-element tolerances for an engine of ``spec`` against ``logits``."""
    kind = ENGINE_TOLERANCE[spec.precision]
    atol, rtol = elementwise_tolerances(kind, logits)
    return PolygraphyCheck(INPUTS, OUTPUTS, atol, rtol, kind)


def polygraphy_files(spec: BuildSpec, golden: dict[str, np.ndarray]) -> dict[str, bytes]:
    """``polygraphy_inputs.json`` and ``polygraphy_outputs.json`` from the bundle's golden arrays,
    byte for byte what ``polygraphy.json.save_json`` would write."""
    inputs = [{spec.input_name: np.ascontiguousarray(golden["images"])}]
    results = RunResults()
    results.add([{spec.output_name: np.ascontiguousarray(golden["logits"])}], runner_name=REFERENCE_RUNNER)
    return {INPUTS: to_json(inputs).encode(), OUTPUTS: results.to_json().encode()}
