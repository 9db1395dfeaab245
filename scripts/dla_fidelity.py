#!/usr/bin/env python3
"""The network a DLA core runs, entirely in FP16, against the FP32 PyTorch model, on ONNX Runtime (CPU).

    python scripts/dla_fidelity.py [--models rf_b1] [--resolution 224] [--scales 1,4] [--json PATH]

Per model, two sets of weights:

- ``default``: rftrt's default weights (``rftrt.models.init``), on the bundled photographs;
- ``stress``: Kaiming-normal convolutions, identity BatchNorm (``rftrt.models.init.stress_weights``,
  the one definition, shared with ``scripts/compare_modelopt.py``), on the photographs ×1 and ×4 (``--scales``).

Two FP16 renderings of the same export (static batch: DLA's), both everything-FP16 with FP32 graph
input and output (``rftrt.precision.render.render_fp16``, the strongly typed rendering with no FP32
island, as a DLA core has none):

- ``DLA``: the passes ``rf-export --dla N`` runs (``pass_pipeline(..., dla=True)``: FP16 safety and
  the DLA rewrites of docs/dla.md);
- ``GPU passes``: the GPU pipeline's passes plus FP16 safety (the attention cores as they were before
  the DLA rewrites), for contrast.

Each against the FP32 PyTorch model: smallest per-image cosine, top-1 agreement over all images, max
|Δlogit|, and intermediate tensors holding an inf or NaN (every float tensor of the graph is probed;
the first one is named). The targets (docs/dla.md): cosine ≥ 0.999 and top-1 100% on the photographs
(×1) for both weights, cosine ≥ 0.99 at every scale on the stress weights, no inf/NaN anywhere. The
largest |activation| of the FP32 graph says whether FP16 can hold the network at all.

Before that, each DLA rewrite's exactness in FP32: per model, the largest deviation of its output
from the graph's before it, relative to the output's scale, on the photographs and on seeded Gaussian
images (default weights); and per core family, on the stress inputs of ``rftrt.export.stress`` (q|k|v
set directly) through the FP32 DLA pipeline, against the exported core.

Prints two Markdown tables; ``--json PATH`` writes every figure. Bad input: one line on stderr, exit 2.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
import torch

from rftrt.cli import parser
from rftrt.data.images import bundled_photographs
from rftrt.errors import RftrtError
from rftrt.export.onnx_export import INPUT_NAME, export_onnx
from rftrt.export.onnxrt import run_onnx
from rftrt.export.passes import run_pass, to_graph, to_model
from rftrt.export.prepare import attention_blocks, pass_pipeline, run_passes
from rftrt.export.stress import pass_errors
from rftrt.files import check_output_file, write_json
from rftrt.models import create
from rftrt.models.init import stress_weights
from rftrt.precision.fidelity import measure
from rftrt.precision.render import render_fp16
from rftrt.tools.tables import render_table

FP16_MAX = float(np.finfo(np.float16).max)


def largest_activation(model: onnx.ModelProto, images: np.ndarray) -> tuple[float, str]:
    """The largest |value| of any tensor a node of ``model`` produces on ``images``, and its name."""
    probed = onnx.ModelProto()
    probed.CopyFrom(model)
    names = [o for node in model.graph.node for o in node.output]
    reduce_nodes = [onnx.helper.make_node("ReduceMax", [f"{n}/abs"], [f"{n}/largest"], keepdims=0) for n in names]
    abs_nodes = [onnx.helper.make_node("Abs", [n], [f"{n}/abs"]) for n in names]
    probed.graph.node.extend(abs_nodes + reduce_nodes)
    probed.graph.output.extend(onnx.helper.make_tensor_value_info(f"{n}/largest", onnx.TensorProto.FLOAT, []) for n in names)
    session = ort.InferenceSession(probed.SerializeToString(), providers=["CPUExecutionProvider"])
    values = session.run(None, {INPUT_NAME: images})[len(model.graph.output) :]
    index = int(np.argmax(values))
    return float(values[index]), names[index]


def renderings(model: torch.nn.Module, resolution: int, batch: int) -> dict[str, tuple[onnx.ModelProto, onnx.ModelProto]]:
    """(FP32 after the passes, its FP16 rendering) for the DLA pipeline and for the GPU passes + FP16 safety."""
    exported = export_onnx(model, resolution, dynamic_batch=False, batch=batch)
    blocks = attention_blocks(model)
    forms = {"DLA": run_passes(exported, "fp16", blocks, dla=True)[0], "GPU passes": run_passes(exported, "fp16", blocks, fp16_cores=True)[0]}
    return {label: (fp32, render_fp16(fp32)) for label, fp32 in forms.items()}


def measure_model(name: str, resolution: int, checkpoint: str, scales: list[float], log) -> list[dict]:
    model = create(name, resolution=resolution)
    if checkpoint == "stress":
        stress_weights(model)
    photos = bundled_photographs(resolution)
    rows = []
    for label, (fp32, fp16) in renderings(model, resolution, len(photos)).items():
        for scale in scales if checkpoint == "stress" else [1.0]:
            images = np.ascontiguousarray(photos * np.float32(scale))
            with torch.no_grad():
                reference = model(torch.from_numpy(images)).numpy()
            m = measure(fp16, reference, images, f"photographs ×{scale:g}")
            largest, where = largest_activation(fp32, images)
            targets = m.finite and m.min_cosine >= (0.999 if scale == 1 else 0.99) and (scale != 1 or m.top1_agreement == 1.0)
            rows.append({"model": name, "resolution": resolution, "weights": checkpoint, "scale": scale, "rendering": label,
                         **m.as_dict(), "largest_fp32_activation": largest, "largest_at": where, "targets_met": targets})  # fmt: skip
            log(f"{name} {checkpoint} ×{scale:g} {label}: cos {m.min_cosine:.6f}, top-1 {m.top1_agreement:.0%}, {m.nonfinite_tensors} non-finite")
    return rows


def exactness(name: str, resolution: int) -> list[dict]:
    """Each DLA pass against the graph before it, FP32, on the photographs and Gaussian images."""
    model = create(name, resolution=resolution)
    photos = bundled_photographs(resolution)
    exported = export_onnx(model, resolution, dynamic_batch=False, batch=len(photos))
    batches = {"photographs": photos, "gaussian": np.random.default_rng(0).standard_normal(photos.shape).astype(np.float32)}
    graph, previous, rows = to_graph(exported), run_onnx(exported, batches), []
    for pass_fn, expected in pass_pipeline("fp16", attention_blocks(model), dla=True):
        report = run_pass(graph, pass_fn, expected)
        out = run_onnx(to_model(graph, exported), batches)
        if report.name.startswith("dla-"):
            deviation = {k: float(np.abs(out[k] - previous[k]).max() / np.abs(previous[k]).max()) for k in batches}
            rows.append({"model": name, "resolution": resolution, "pass": report.name, "matched": report.matched, **deviation})
        previous = out
    return rows


def stress_exactness() -> list[dict]:
    """The DLA passes on one core of each family, stress inputs, FP32 pipeline, against the exported core."""
    passes = [fn for fn, _ in pass_pipeline("fp32", dla=True)]
    return [e.__dict__ for family in ("rf", "evit") for e in pass_errors(family, passes) if e.name.startswith("dla-")]


def exactness_table(rows: list[dict], stress: list[dict]) -> str:
    worst = {}
    for e in stress:
        key = (e["family"], e["name"])
        worst[key] = max(worst.get(key, 0.0), e["max_relative"])
    body = [[f"{r['model']} r{r['resolution']}", r["pass"], r["matched"], f"{r['photographs']:.1e}", f"{r['gaussian']:.1e}",
             f"{max(worst.get((f, r['pass']), 0.0) for f in ('rf', 'evit')):.1e}"] for r in rows]  # fmt: skip
    headers = ["model", "pass", "matched", "photographs", "Gaussian images", "stress cores (worst of 5 inputs, rf and evit)"]
    return render_table(headers, body, "llrrrr")


def table(rows: list[dict]) -> str:
    headers = ["model", "weights", "input", "rendering", "min cosine", "top-1", "max |Δlogit|", "inf/NaN tensors", "largest FP32 |activation|", "targets"]
    body = []
    for r in rows:
        nonfinite = f"{r['nonfinite_tensors']} of {r['tensors']}" + (f" (first: {r['first_nonfinite']})" if r["first_nonfinite"] else "")
        over = " > FP16 max" if r["largest_fp32_activation"] > FP16_MAX else ""
        body.append([f"{r['model']} r{r['resolution']}", r["weights"], f"×{r['scale']:g}", r["rendering"], f"{r['min_cosine']:.6f}",
                     f"{r['top1_agreement']:.0%}", f"{r['max_abs']:.2e}", nonfinite, f"{r['largest_fp32_activation']:.3g}{over}",
                     "met" if r["targets_met"] else "NOT met"])  # fmt: skip
    return render_table(headers, body, "llllrrrlrl")


def main(argv: list[str] | None = None) -> int:
    cli = parser("dla_fidelity", __doc__.split("\n\n")[0])
    cli.add_argument("--models", default="rf_b1")
    cli.add_argument("--resolution", type=int, default=224)
    cli.add_argument("--scales", default="1,4", help="input scales for the stress checkpoint")
    cli.add_argument("--json", help="write every figure to this JSON file")
    args = cli.parse_args(argv)
    torch.set_num_threads(2)
    try:
        scales = [float(s) for s in args.scales.split(",") if s]
        if args.json:
            check_output_file(args.json, "--json")
        rows, exact = [], []
        for name in (m for m in args.models.split(",") if m):
            exact += exactness(name, args.resolution)
            for checkpoint in ("default", "stress"):
                rows += measure_model(name, args.resolution, checkpoint, scales, lambda message: print(message, file=sys.stderr))
        stress = stress_exactness()
    except (RftrtError, ValueError) as exc:
        if args.verbose:
            raise
        print(f"dla_fidelity: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(exactness_table(exact, stress) + "\n\n" + table(rows))
    if args.json:
        write_json(args.json, {"exactness": exact, "stress_exactness": stress, "fidelity": rows})
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    sys.exit(main())
