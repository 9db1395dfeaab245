#!/usr/bin/env python3
"""rftrt's precision plan beside NVIDIA ModelOpt's ONNX AutoCast (FP16) and ONNX PTQ (INT8), on ONNX Runtime (CPU).

    python scripts/compare_modelopt.py --setup          # once: ModelOpt into build/modelopt-venv (minutes)
    python scripts/compare_modelopt.py [--models rf_b1,evit_b1] [--resolution 224] [--scales 1,4,8]
                                       [--sections fp16,int8] [--json PATH]

ModelOpt runs in its own environment (``--env``, default ``build/modelopt-venv``, never the project's),
as the command-line tools NVIDIA documents: ``python -m modelopt.onnx.autocast`` and
``python -m modelopt.onnx.quantization``. ``--setup`` creates it: a virtual environment with
torch 2.13.0 installed first (so nothing after it pulls a CUDA build), then :data:`MODELOPT_PACKAGES`.

FP16 (``--sections fp16``), per model at ``--resolution``, on the FP32 ONNX after rftrt's passes (what
rf-export plans and renders for a GPU target), with two sets of weights:

- ``default``: rftrt's default weights (``rftrt.models.init``), on the bundled photographs;
- ``stress``: Kaiming-normal convolutions (seed 0), biases zero, identity BatchNorm
  (:func:`stress_weights`), on the photographs ×1, ×4 and ×8 (``--scales``).

Four FP16 renderings with FP32 inputs and outputs: rftrt's strongly typed rendering of its plan (ranges
measured on the photographs); rftrt's weakly typed plan as an equivalent ONNX (FP16 everywhere but the
layers a weakly typed build pins); ModelOpt AutoCast in its default mode (its reference run on random
inputs); ModelOpt AutoCast with the photographs as ``--calibration_data``. Each against FP32: max |Δlogit|,
the smallest per-image cosine, top-1 agreement, images with inf/NaN logits and intermediate tensors
with inf/NaN (every float tensor is probed in the graph); nodes computing in FP32 (Casts not counted),
Casts, file size and conversion wall time.

INT8 (``--sections int8``), on the digits-trained ReduceFormer (``rftrt.models.digits``): rftrt's
calibration and Q/DQ (``rftrt.precision.int8``) beside ModelOpt ONNX PTQ INT8, both calibrated on the
same training images, with FP32 and with FP16 elsewhere: held-out top-1, top-1 agreement with FP32,
Q/DQ node counts, wall time.

Prints the tables (Markdown) and, with ``--json PATH``, writes every figure. Bad input: one line on
stderr, exit code 2.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch

from rftrt.cli import parser
from rftrt.data.images import bundled_photographs
from rftrt.errors import RftrtError
from rftrt.export.onnx_export import INPUT_NAME
from rftrt.export.passes import to_graph
from rftrt.export.passes.attention import find_attention_cores
from rftrt.export.prepare import export_and_pass
from rftrt.files import check_output_file, write_json
from rftrt.models import create
from rftrt.models.init import stress_weights
from rftrt.precision.fidelity import fp32_logits, measure, tensor_types
from rftrt.precision.plan import RANGE_LIMIT, PrecisionPlan, plan_on_photographs
from rftrt.precision.render import render_fp16
from rftrt.tools.tables import render_table

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ENV = ROOT / "build" / "modelopt-venv"
#: What ``--setup`` installs after torch: ModelOpt without its ``[onnx]`` extra, plus what its ONNX tools import.
MODELOPT_PACKAGES = (
    "nvidia-modelopt==0.47.0",
    "onnx",
    "onnxruntime",
    "onnx-graphsurgeon",
    "onnxconverter-common",
    "polygraphy",
    "onnxslim",
    "ml_dtypes",
    "onnxscript",
    "lief",
)
TORCH = "torch==2.13.0"
RFTRT, RFTRT_WEAK, MO_DEFAULT, MO_PHOTOS = "rftrt", "rftrt weak (pins)", "ModelOpt default", "ModelOpt + photographs"
FP16_RENDERINGS = (RFTRT, RFTRT_WEAK, MO_DEFAULT, MO_PHOTOS)
_FLOATS = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
_DIGITS_CALIBRATION = 256


# --- the ModelOpt environment ---------------------------------------------------------------------


def env_python(env: Path) -> Path:
    return env / "bin" / "python"


def setup_environment(env: Path) -> str:
    """Create ``env`` (a virtual environment) with torch first, then ModelOpt; returns ModelOpt's version."""
    if not env_python(env).exists():
        subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    pip = [str(env_python(env)), "-m", "pip", "install", "--quiet"]
    subprocess.run(pip + [TORCH], check=True)  # first: ModelOpt's torch requirement is then met by the CPU build
    subprocess.run(pip + list(MODELOPT_PACKAGES), check=True)
    return modelopt_version(env)


def modelopt_version(env: Path) -> str:
    """ModelOpt's version in ``env``; an RftrtError saying how to set it up where it is missing."""
    python = env_python(env)
    if not python.exists():
        raise RftrtError(f"no ModelOpt environment at {env}: run 'python scripts/compare_modelopt.py --setup' first (or pass --env)")
    done = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('nvidia-modelopt'))"], capture_output=True, text=True)
    if done.returncode != 0:
        raise RftrtError(f"{env} has no nvidia-modelopt: run 'python scripts/compare_modelopt.py --setup --env {env}'")
    return done.stdout.strip()


def run_modelopt(env: Path, tool: str, args: list[str]) -> float:
    """Run ``python -m modelopt.onnx.<tool> ARGS`` in ``env``; its wall time in seconds."""
    start = time.perf_counter()
    done = subprocess.run([str(env_python(env)), "-m", f"modelopt.onnx.{tool}", *args], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise RftrtError(f"modelopt.onnx.{tool} failed (exit {done.returncode}): {last}")
    return seconds


def modelopt_startup(env: Path) -> float:
    """Seconds ModelOpt's command line takes to start (``--help``): part of every ModelOpt wall time below."""
    start = time.perf_counter()
    subprocess.run([str(env_python(env)), "-m", "modelopt.onnx.autocast", "--help"], capture_output=True, check=True)
    return time.perf_counter() - start


# --- models ---------------------------------------------------------------------------------------


@torch.no_grad()
def passed_onnx(name: str, resolution: int, checkpoint: str) -> onnx.ModelProto:
    """The FP32 ONNX after rftrt's passes for a GPU FP16 build (what rf-export plans and renders)."""
    model = create(name, resolution=resolution)
    if checkpoint == "stress":
        stress_weights(model)
    return export_and_pass(model, resolution, "fp16").passed


# --- measuring a rendering ------------------------------------------------------------------------


def structure(model: onnx.ModelProto, cores: frozenset[str] = frozenset()) -> dict:
    """Nodes computing in FP32 (any FP32 output; Casts not counted), how many of ``cores`` (node
    names: the attention cores' nodes) among them, Casts, all nodes, file size."""
    types = tensor_types(model)
    nodes = list(model.graph.node)
    fp32 = {n.name for n in nodes if n.op_type != "Cast" and any(types.get(o) == onnx.TensorProto.FLOAT for o in n.output)}
    return {
        "nodes": len(nodes),
        "fp32_nodes": len(fp32),
        "fp32_core_nodes": len(fp32 & cores),
        "casts": sum(n.op_type == "Cast" for n in nodes),
        "file_mb": round(model.ByteSize() / 1e6, 2),
    }


# --- rftrt's islands ------------------------------------------------------------------------------


def islands(model: onnx.ModelProto, plan: PrecisionPlan) -> list[dict]:
    """The plan's FP32 nodes as connected islands (nodes joined by a tensor), each with its reasons."""
    fp32 = set(plan.fp32_nodes)
    parent = {name: name for name in fp32}

    def root(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    producer = {o: n.name for n in model.graph.node if n.name in fp32 for o in n.output}
    for node in model.graph.node:
        if node.name in fp32:
            for tensor in node.input:
                if tensor in producer:
                    parent[root(node.name)] = root(producer[tensor])
    members: dict[str, list[str]] = {}
    for name in plan.fp32_nodes:
        members.setdefault(root(name), []).append(name)
    found = []
    for names in members.values():
        reasons = Counter(plan.reasons[n] if plan.reasons[n].startswith("attention core") else plan.reasons[n].split(":")[0] for n in names)
        found.append({"nodes": len(names), "first": names[0], "reasons": dict(reasons)})
    return found


def island_summary(found: list[dict]) -> str:
    kinds: Counter = Counter()
    for island in found:
        kinds[" + ".join(sorted({r.split(":")[0] for r in island["reasons"]}))] += 1
    return ", ".join(f"{n} × {kind}" for kind, n in sorted(kinds.items()))


# --- FP16 -----------------------------------------------------------------------------------------


@dataclass
class Rendering:
    model: onnx.ModelProto
    seconds: float
    structure: dict = field(default_factory=dict)


def rftrt_renderings(passed: onnx.ModelProto, resolution: int) -> tuple[dict[str, Rendering], PrecisionPlan]:
    """rftrt's two renderings of its plan for ``passed``; each timed with the plan's measurement."""
    start = time.perf_counter()
    plan = plan_on_photographs(passed, resolution)
    planned = time.perf_counter() - start
    renderings = {}
    # a weakly typed bundle pins every plan node (BuildSpec.fp32_layers): its all-FP16-except-pinned
    # equivalent is rendered from the same list, through the same code
    for label, nodes in ((RFTRT, plan.fp32_nodes), (RFTRT_WEAK, plan.fp32_nodes)):
        start = time.perf_counter()
        rendered = render_fp16(passed, set(nodes))
        renderings[label] = Rendering(rendered, planned + time.perf_counter() - start)
    return renderings, plan


def modelopt_renderings(env: Path, passed: onnx.ModelProto, photos: np.ndarray, work: Path) -> dict[str, Rendering]:
    """ModelOpt AutoCast to FP16 with FP32 I/O: its default mode, and with the photographs as calibration data."""
    source = work / "passed.onnx"
    onnx.save(passed, source)
    np.savez(work / "photographs.npz", **{INPUT_NAME: photos})
    renderings = {}
    for label, extra in ((MO_DEFAULT, []), (MO_PHOTOS, ["--calibration_data", str(work / "photographs.npz")])):
        out = work / f"{label.replace(' ', '_').replace('+', 'and')}.onnx"
        args = ["--onnx_path", str(source), "--output_path", str(out), "--low_precision_type", "fp16", "--keep_io_types", "--providers", "cpu", "--log_level", "WARNING"]
        seconds = run_modelopt(env, "autocast", args + extra)
        renderings[label] = Rendering(onnx.load(out), seconds)
    return renderings


def input_sets(checkpoint: str, photos: np.ndarray, scales: list[float]) -> dict[str, np.ndarray]:
    if checkpoint == "default":
        return {"photographs": photos}
    return {f"×{s:g}": np.ascontiguousarray(photos * np.float32(s)) for s in scales}


def compare_fp16(name: str, resolution: int, checkpoint: str, scales: list[float], env: Path | None, log) -> dict:
    """Every FP16 rendering of one model and checkpoint on its input sets (``env`` None: rftrt's only)."""
    photos = bundled_photographs(resolution)
    log(f"{name} r{resolution} {checkpoint} weights: export and passes")
    passed = passed_onnx(name, resolution, checkpoint)
    log(f"{name} {checkpoint}: rftrt's plan and renderings")
    renderings, plan = rftrt_renderings(passed, resolution)
    if env is not None:
        log(f"{name} {checkpoint}: ModelOpt AutoCast, default and with photographs")
        with tempfile.TemporaryDirectory(prefix="compare-modelopt-") as work:
            renderings.update(modelopt_renderings(env, passed, photos, Path(work)))
    cores = frozenset(n.name for core in find_attention_cores(to_graph(passed)) for n in core.nodes)
    for rendering in renderings.values():
        rendering.structure = structure(rendering.model, cores)
    results: dict[str, dict] = {label: {} for label in renderings}
    for inputs, images in input_sets(checkpoint, photos, scales).items():
        log(f"{name} {checkpoint} {inputs}: ONNX Runtime, FP32 and {len(renderings)} renderings")
        reference = fp32_logits(passed, images)
        for label, rendering in renderings.items():
            results[label][inputs] = measure(rendering.model, reference, images, inputs)
    found = islands(passed, plan)
    return {
        "model": name,
        "resolution": resolution,
        "checkpoint": checkpoint,
        "attention_core_nodes": len(cores),
        "plan": {"fp32_nodes": len(plan.fp32_nodes), "summary": plan.summary(), "islands": found, "island_summary": island_summary(found)},
        "renderings": {
            label: {"seconds": round(r.seconds, 2), **r.structure, "inputs": {k: m.as_dict() for k, m in results[label].items()}}
            for label, r in renderings.items()
        },
        "_measured": results,
    }


def stress_targets(stress: dict) -> list[tuple[str, bool]]:
    """The issue's targets for rftrt's renderings against ModelOpt-with-photographs on the stress checkpoint."""
    renderings, measured = stress["renderings"], stress["_measured"]
    if MO_PHOTOS not in measured:
        return []
    checks = []
    for label in (RFTRT, RFTRT_WEAK):
        ours, theirs = measured[label], measured[MO_PHOTOS]
        checks.append((f"{label}: finite at every scale (logits and tensors)", all(m.finite for m in ours.values())))
        checks.append((f"{label}: top-1 100% at every scale", all(m.top1_agreement == 1.0 for m in ours.values())))
        checks.append((f"{label}: max|Δ| ≤ ModelOpt + photographs' at every scale", all(ours[k].max_abs <= theirs[k].max_abs for k in ours)))
        checks.append(
            (f"{label}: fewer FP32 nodes than ModelOpt + photographs ({renderings[label]['fp32_nodes']} vs {renderings[MO_PHOTOS]['fp32_nodes']})",
             renderings[label]["fp32_nodes"] < renderings[MO_PHOTOS]["fp32_nodes"])
        )  # fmt: skip
    return checks


def fp16_table(runs: list[dict]) -> str:
    """One table per model: a row per checkpoint and input (max|Δ| / min cosine / top-1), then structure rows."""
    labels = [label for label in FP16_RENDERINGS if label in runs[0]["renderings"]]
    rows = []
    for run in runs:
        tag = run["checkpoint"]
        for inputs in run["_measured"][labels[0]]:
            rows.append([f"{tag} {inputs}: max|Δ| / cos / top-1"] + [run["_measured"][label][inputs].cell() for label in labels])
        rows.append([f"{tag}: FP32 nodes / Casts / MB"] + [_structure_cell(run["renderings"][label]) for label in labels])
        rows.append([f"{tag}: attention-core nodes FP32 (of {run['attention_core_nodes']})"] + [run["renderings"][label]["fp32_core_nodes"] for label in labels])
        rows.append([f"{tag}: conversion s"] + [f"{run['renderings'][label]['seconds']:.1f}" for label in labels])
    return render_table(["", *labels], rows)


def _structure_cell(rendering: dict) -> str:
    return f"{rendering['fp32_nodes']} / {rendering['casts']} / {rendering['file_mb']:.1f}"


# --- INT8 -----------------------------------------------------------------------------------------


def _quantized_compute(model: onnx.ModelProto) -> int:
    """Conv/Gemm/MatMul nodes that read a dequantized tensor (through Casts, as FP16 renderings have them)."""
    producer = {o: n for n in model.graph.node for o in n.output}

    def dequantized(tensor: str) -> bool:
        node = producer.get(tensor)
        while node is not None and node.op_type == "Cast":
            node = producer.get(node.input[0])
        return node is not None and node.op_type == "DequantizeLinear"

    return sum(n.op_type in ("Conv", "Gemm", "MatMul") and any(dequantized(t) for t in n.input) for n in model.graph.node)


def int8_renderings(fp32: onnx.ModelProto, calibration: np.ndarray, env: Path | None, log) -> dict[str, Rendering]:
    """rftrt's Q/DQ (percentile, its default, and entropy, ModelOpt's default) and ModelOpt ONNX PTQ INT8,
    each with FP32 and with FP16 outside INT8, calibrated on the same images."""
    from rftrt.data.sources import ArraySource
    from rftrt.precision.int8 import calibrate
    from rftrt.targets.profiles import load_target

    target = load_target("l40")  # strongly typed: both renderings (FP32 rest, FP16 rest)
    renderings = {}
    for method in ("percentile", "entropy"):
        log(f"digits: rftrt calibration, {method}")
        start = time.perf_counter()
        result = calibrate(fp32, ArraySource(calibration), target=target, method=method, progress=False, log=lambda _: None)
        seconds = time.perf_counter() - start
        renderings[f"rftrt {method}, FP32 rest"] = Rendering(result.qdq_model, seconds)
        renderings[f"rftrt {method}, FP16 rest"] = Rendering(result.typed_model, seconds)
    if env is None:
        return renderings
    with tempfile.TemporaryDirectory(prefix="compare-modelopt-") as tmp:
        work = Path(tmp)
        onnx.save(fp32, work / "digits.onnx")
        np.savez(work / "calibration.npz", **{INPUT_NAME: calibration})
        for rest in ("fp32", "fp16"):
            log(f"digits: ModelOpt ONNX PTQ INT8, {rest.upper()} rest")
            out = work / f"digits.int8.{rest}.onnx"
            args = ["--onnx_path", str(work / "digits.onnx"), "--quantize_mode", "int8", "--calibration_data_path", str(work / "calibration.npz"),
                    "--calibration_eps", "cpu", "--high_precision_dtype", rest, "--output_path", str(out), "--log_level", "WARNING"]  # fmt: skip
            seconds = run_modelopt(env, "quantization", args)
            renderings[f"ModelOpt entropy, {rest.upper()} rest"] = Rendering(onnx.load(out), seconds)
    return renderings


def compare_int8(env: Path | None, log) -> dict:
    """INT8 on the digits-trained model: held-out top-1 and agreement with FP32, Q/DQ counts, wall time."""
    from rftrt.data.digits import load_digits_data
    from rftrt.export.onnxrt import onnx_logits
    from rftrt.models.digits import load_checkpoint
    from rftrt.precision.accuracy import topk_accuracy

    data = load_digits_data()
    digits = load_checkpoint()
    fp32 = export_and_pass(digits, digits.resolution, "fp16").passed
    step = max(1, len(data.train_images) // _DIGITS_CALIBRATION)
    calibration = np.ascontiguousarray(data.train_images[::step][:_DIGITS_CALIBRATION])
    renderings = {"FP32": Rendering(fp32, 0.0), **int8_renderings(fp32, calibration, env, log)}
    reference = None
    rows = {}
    for label, rendering in renderings.items():
        logits = onnx_logits(rendering.model, data.test_images)
        reference = logits if reference is None else reference
        ops = Counter(n.op_type for n in rendering.model.graph.node)
        rows[label] = {
            "top1": topk_accuracy(logits, data.test_labels),
            "agreement": float(np.mean(logits.argmax(1) == reference.argmax(1))),
            "quantize": ops["QuantizeLinear"],
            "dequantize": ops["DequantizeLinear"],
            "quantized_nodes": _quantized_compute(rendering.model),
            "seconds": round(rendering.seconds, 2),
        }
    return {"held_out": len(data.test_labels), "calibration_images": len(calibration), "renderings": rows}


def int8_table(result: dict) -> str:
    rows = [
        [label, f"{r['top1']:.2%}", f"{r['agreement']:.2%}", r["quantize"], r["dequantize"], r["quantized_nodes"], f"{r['seconds']:.1f}"]
        for label, r in result["renderings"].items()
    ]
    return render_table(["digits model", "held-out top-1", "agreement with FP32", "Q", "DQ", "quantized Conv/Gemm/MatMul", "wall s"], rows)


# --- command line ---------------------------------------------------------------------------------


def run(args: argparse.Namespace, log) -> dict:
    """Every section asked for; the report (what ``--json`` writes) with its tables under ``tables``."""
    env = None if args.rftrt_only else args.env
    report: dict = {"resolution": args.resolution, "threads": 2, "sections": args.sections, "plan_range_limit": RANGE_LIMIT}
    report["onnxruntime"] = onnxruntime.__version__
    if env is not None:
        report["modelopt"] = {"version": modelopt_version(env), "startup_s": round(modelopt_startup(env), 2)}
    tables = []
    if env is not None:
        tables.append(f"ModelOpt {report['modelopt']['version']}; its command line takes {report['modelopt']['startup_s']:.1f} s to start (part of each ModelOpt time below)")
    if "fp16" in args.sections:
        report["fp16"] = []
        for name in args.models:
            runs = [compare_fp16(name, args.resolution, checkpoint, args.scales, env, log) for checkpoint in ("default", "stress")]
            checks = stress_targets(runs[1])
            tables.append(f"## {name} r{args.resolution}: FP16 against FP32 (cells: max|Δlogit| / min cosine / top-1)\n\n{fp16_table(runs)}")
            tables.append(f"rftrt's plan: range limit {RANGE_LIMIT:.0f}; FP32 islands: " + "; ".join(f"{r['checkpoint']}: {r['plan']['island_summary']}" for r in runs))
            if checks:
                tables.append("\n".join(f"- target {'met' if ok else 'MISSED'}: {text}" for text, ok in checks))
            for r in runs:
                r.pop("_measured")
                r["targets"] = [{"target": text, "met": ok} for text, ok in checks] if r["checkpoint"] == "stress" else []
            report["fp16"].extend(runs)
    if "int8" in args.sections:
        report["int8"] = compare_int8(env, log)
        tables.append(f"## INT8 on the digits-trained model ({report['int8']['held_out']} held-out images, "
                      f"{report['int8']['calibration_images']} calibration images)\n\n{int8_table(report['int8'])}")  # fmt: skip
    report["tables"] = tables
    return report


def parse(argv: list[str] | None) -> argparse.Namespace:
    cli = parser("compare_modelopt", __doc__.split("\n\n")[0])  # one-line errors, --verbose
    cli.add_argument("--setup", action="store_true", help="create the ModelOpt environment (--env) and exit")
    cli.add_argument("--env", type=Path, default=DEFAULT_ENV, help="ModelOpt's virtual environment (default: build/modelopt-venv)")
    cli.add_argument("--rftrt-only", action="store_true", help="only rftrt's renderings (no ModelOpt environment needed)")
    cli.add_argument("--models", default="rf_b1,evit_b1")
    cli.add_argument("--resolution", type=int, default=224)
    cli.add_argument("--scales", default="1,4,8", help="input scales for the stress checkpoint")
    cli.add_argument("--sections", default="fp16,int8", help="comma-separated: fp16, int8")
    cli.add_argument("--json", type=Path, help="write every figure to this JSON file")
    args = cli.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    args.sections = [s for s in args.sections.split(",") if s]
    unknown = [s for s in args.sections if s not in ("fp16", "int8")]
    if unknown:
        cli.error(f"unknown section {unknown[0]!r}; use fp16, int8")
    try:
        args.scales = [float(s) for s in args.scales.split(",") if s]
    except ValueError:
        cli.error(f"--scales: not a comma-separated list of numbers: {args.scales!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    torch.set_num_threads(2)
    try:
        if args.setup:
            print(f"ModelOpt {setup_environment(args.env)} in {args.env}")
            return 0
        if args.json is not None:
            check_output_file(args.json, "--json")
        report = run(args, lambda message: print(message, file=sys.stderr))
    except (RftrtError, subprocess.CalledProcessError) as exc:
        if args.verbose:
            raise
        print(f"compare_modelopt: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print("\n\n".join(report["tables"]))
    if args.json is not None:
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    sys.exit(main())
