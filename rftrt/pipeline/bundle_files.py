"""The files of an ``rf-export`` bundle: the build specification, the golden data, the README and
the versions that made them. Everything here is a pure function of the run's results, so the same
inputs give the same bytes."""

from __future__ import annotations

import io
import json
import platform
import shlex
import zipfile
from importlib import metadata

import numpy as np

from .. import __version__
from ..comparison import TOLERANCES
from ..device.bench import profile_batches
from ..device.kit import KIT_NAME, build_kit
from ..engines.build_spec import BuildSpec
from ..engines.trtexec import PolygraphyCheck, build_script, polygraphy_command
from ..precision.plan import PrecisionPlan
from ..precision.store import record_bytes
from ..targets.dla import PREDICTION_FILE
from ..targets.profiles import Target
from ..targets.tensorrt import version_tag
from ..tools.inspect.dla import DlaPrediction, prediction_bytes
from .polygraphy_files import INPUTS, OUTPUTS, polygraphy_check, polygraphy_files

__all__ = ["CALIBRATION_CACHE", "versions", "npz_bytes", "golden_images", "bundle_readme", "bundle_files"]

CALIBRATION_CACHE = "calibration.cache"


def versions() -> dict[str, str]:
    """The versions of what produced a bundle (its manifest records them)."""
    found = {"rftrt": __version__, "python": platform.python_version()}
    for dist in ("torch", "onnx", "onnxruntime", "onnx-graphsurgeon", "polygraphy", "numpy"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An ``.npz`` (what ``np.load`` reads) without the wall-clock timestamps ``np.savez`` stores,
    so identical data gives identical bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            array_buffer = io.BytesIO()
            np.lib.format.write_array(array_buffer, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            archive.writestr(info, array_buffer.getvalue())
    return buffer.getvalue()


def golden_images(photos: np.ndarray, batch: int) -> np.ndarray:
    """``batch`` photographs (cycled if fewer are bundled): the bundle's golden input."""
    return photos[np.arange(batch) % len(photos)]


def _int8_route(spec: BuildSpec) -> str | None:
    """build.json's INT8 route ("cache" or "qdq"), None for FP32 and FP16 bundles."""
    return spec.int8.route if spec.int8 is not None else None


def _int8_rows(spec: BuildSpec, calibration) -> list[str]:
    """The INT8 files beside the ONNX, each saying whether this build uses it."""
    if calibration is None:
        return []
    route, rows = _int8_route(spec), []
    if spec.dialect == "weak" and route == "qdq":
        rows.append(f"| `{spec.model}.onnx` | the FP32 network the INT8 files were made from (their tensor names are its own); not used by this build |")
    if calibration.cache_text:
        use = "this build's INT8 scales (implicit INT8, `--calib`)" if route == "cache" else (
            "not used by this build (TensorRT 10 deprecated the calibrator, so GPU INT8 builds from the Q/DQ ONNX); "
            "for a DLA build or `rf-calib --from-cache`"
        )  # fmt: skip
        rows.append(f"| `calibration.cache` | TensorRT INT8 calibration cache: {use} |")
    if calibration.qdq_model is not None and spec.dialect == "weak" and route != "qdq":
        rows.append(
            f"| `{spec.model}.qdq.onnx` | the same network with explicit Q/DQ nodes: not used by this build, which takes "
            "`calibration.cache`; for `rf-eval` on ONNX Runtime or an explicit-quantization build |"
        )
    return rows


def _file_rows(spec: BuildSpec, plan: PrecisionPlan | None, calibration=None) -> list[str]:
    typed = "typed (the ONNX carries every precision)" if spec.dialect == "strong" else "FP32; precision comes from builder flags"
    if spec.dialect == "weak" and _int8_route(spec) == "qdq":
        typed = "FP32 with explicit INT8 Q/DQ nodes (TensorRT 10 explicit quantization); FP16 and the pins come from builder flags"
    return [
        "| file | what |",
        "|---|---|",
        f"| `{spec.onnx}` | the network, {typed} |",
        "| `build.json` | the build specification: target, TensorRT release and dialect, shapes, precision plan, DLA |",
        "| `build.sh` | the equivalent trtexec command lines; `--verify` checks the engine with Polygraphy |",
        "| `golden.npz` | `images` (preprocessed bundled photographs) and ONNX Runtime reference logits: `logits_fp32` (FP32 ONNX), `logits` (this bundle's ONNX) |",
        f"| `{INPUTS}` | `images` of `golden.npz` in Polygraphy's JSON format (`polygraphy run --load-inputs`) |",
        f"| `{OUTPUTS}` | `logits` of `golden.npz` as Polygraphy `RunResults` (`polygraphy run --load-outputs`) |",
        f"| `{KIT_NAME}` | the device kit: `info`, `build`, `verify`, `bench` with Python ≥ 3.8 and NumPy (see On the device) |",
        *(["| `precision_plan.json` | which nodes stay FP32 and why |"] if plan else []),
        *([f"| `{PREDICTION_FILE}` | the predicted DLA placement: each node on DLA or GPU with the rule that decided (a prediction; `build` records TensorRT's answer beside it in the sidecar) |"] if spec.dla_core is not None else []),
        *_int8_rows(spec, calibration),
        *(["| `calibration.json` | how the INT8 ranges were measured (method, data hash, ranges) |"] if spec.precision == "int8" else []),
        "| `manifest.json` | sha256 and size of every file, and the versions that produced them |",
    ]


def _dialect_line(spec: BuildSpec) -> str:
    if spec.dialect == "strong":
        how = "The ONNX carries every tensor's type; no precision flags are passed."
    elif spec.precision != "fp32":
        flags = "int8 --fp16 --calib=calibration.cache" if spec.precision == "int8" else "fp16"
        network = "The FP32 ONNX"
        if _int8_route(spec) == "qdq":
            flags, network = "int8 --fp16", f"The Q/DQ ONNX (`{spec.onnx}`, explicit quantization, no calibration cache)"
        how = (
            f"{network} is built with `--{flags}` "
            f"and {len(spec.fp32_layers)} layers pinned to FP32 (`--precisionConstraints=obey --layerPrecisions=…`)."
        )
        if spec.calibration_cache:
            how += (
                f" `build.sh` passes the cache as it is, header `TRT-{version_tag(spec.tensorrt_version)}`: a TensorRT "
                "whose version differs may ignore it and calibrate on random data, so build with `rf-build` (it serves "
                "the cache with the installed TensorRT's version) or export with `--trt-version` set to the device's."
            )
    else:
        how = "FP32 build."
    return f"Dialect: **{'strongly' if spec.dialect == 'strong' else 'weakly'} typed**. " + how


def _kit_steps(spec: BuildSpec, target: Target, check: PolygraphyCheck) -> list[str]:
    """How to use the device kit on the device, step by step (what rftrt/cli/device.py does)."""
    kit, engine = f"python3 {KIT_NAME}", spec.engine
    limits = ", ".join(f"{k} {v}" for k, v in TOLERANCES[check.tolerance].items())
    batches = ", ".join(map(str, profile_batches(spec)))
    return [
        "## On the device",
        "",
        f"Copy this whole folder to the {target.display} (every file: `manifest.json` checks them) and run the kit with "
        f"the device's own `python3`. It needs what the device ships and nothing from pip: Python ≥ 3.8, NumPy ≥ 1.17, "
        f"TensorRT {spec.tensorrt_version} with its Python bindings and, for `verify` and `bench`, cuda-python of the device's "
        "CUDA major. Its bundle is the folder it sits in, wherever it is run from.",
        "",
        "```",
        f"{kit} info      # what this bundle is, what this device has, whether they match",
        f"{kit} build     # → {engine} and {engine}.json",
        f"{kit} verify    # {engine} on the golden images against the ONNX Runtime reference",
        f"{kit} bench     # latency and throughput at batch {batches}",
        "```",
        "",
        "1. `info` prints the bundle (model, target, TensorRT release and dialect, precision, shapes, its files checked against "
        "`manifest.json`) and the device (machine, Python, NumPy, TensorRT, cuda-python, GPU), then one line per requirement "
        "(`ok`, `missing` or `differs`) and `ready to build` or `not ready to build here`. Exit code 0, also without TensorRT "
        "or a GPU. `--json FILE` writes the same as JSON.",
        f"2. `build` builds the engine with the installed TensorRT (what `rf-build` does): `{engine}` (the plain plan) and "
        f"`{engine}.json` (the sidecar: TensorRT and GPU, hashes, flags, per-layer precisions), reading and writing back "
        "`timing.cache`. It prints `built …` and the next command. `--out FILE`, `--timing-cache FILE`, `--allow-other-gpu` "
        "(build for a GPU of another architecture than the target's; the engine then runs only on GPUs like it).",
        f"3. `verify [ENGINE]` (default `{engine}`) runs the engine on the golden images of `golden.npz` and compares its logits "
        f"with `logits` (tolerance `{check.tolerance}`: {limits}; NaN or Inf fails). It prints the comparison and `PASSED` or "
        "`FAILED`. Exit code 0 within tolerance, 1 mismatch. `--batch N` (golden images cycled), `--cuda-graph`, `--json FILE`.",
        f"4. `bench [ENGINE]` times the engine at batch {batches} (the profile's min, opt and max; `--batch N[,N…]`) with CUDA "
        "events and, off DLA, CUDA graphs, host↔device copies excluded unless `--copies include`. It prints median, p90 and "
        "p99 latency and images/s per batch. `--warmup`, `--rounds`, `--iterations`, `--json FILE`.",
        "",
        "Each command refuses with one line on stderr and exit code 2, writing nothing, where what it needs is missing or "
        "does not match: no TensorRT or GPU, another TensorRT release, an edited file, an engine from another GPU or ONNX, a "
        "batch outside the profile. `--verbose` adds the traceback.",
        "",
        "### Without the kit: trtexec and Polygraphy",
        "",
        "```",
        f"bash build.sh            # trtexec build → {engine} (log build.log); prints the benchmark command",
        "bash build.sh --verify   # build, then check the engine with Polygraphy (log verify.log)",
        "bash build.sh --bench    # build, then time it with trtexec (log bench.log)",
        "```",
        "",
        "`build.sh` needs trtexec (`TRTEXEC=/path/to/trtexec` if it is not on `PATH`) and, for `--verify`, NVIDIA's Polygraphy "
        "(`POLYGRAPHY=…`). Exit code 0 done; 1 trtexec failed or wrote no engine, or Polygraphy found a mismatch; 2 usage; "
        "127 trtexec or Polygraphy not found. `--verify` runs, and can be run by hand on an engine built either way:",
        "",
        "```",
        shlex.join(polygraphy_command(engine, "--trt", check)),
        "```",
        "",
        f"An element fails when |engine − reference| > atol and > rtol·|reference| (Polygraphy's element-wise check). atol and "
        f"rtol are derived from `verify`'s `{check.tolerance}` tolerance (`rftrt.comparison.elementwise_tolerances`) so that "
        "passing them implies passing `verify`: Polygraphy's check is the stricter one. Polygraphy prints `PASSED` or `FAILED` "
        "and exits 0 or 1."
        + (" Polygraphy sets no DLA core when it loads an engine: check this DLA engine with `verify`." if spec.dla_core is not None else "")
        + " The same files check the bundle's ONNX on any machine with ONNX Runtime:",
        "",
        "```",
        shlex.join(polygraphy_command(spec.onnx, "--onnxrt", check)),
        "```",
        "",
        "Where rftrt itself is installed (Python ≥ 3.10): `rf-build .`, `rf-verify " + engine + " --bundle .`, "
        "`rf-bench --backend trt`.",
        "",
    ]


def bundle_readme(spec: BuildSpec, target: Target, plan: PrecisionPlan | None, validation: list[str], calibration=None, check: PolygraphyCheck | None = None) -> str:
    lines = [
        f"# {spec.model} r{spec.resolution} for {target.display} (TensorRT {spec.tensorrt_version}, {spec.precision})",
        "",
        "Written by `rf-export`. Build the engine on the target itself, with the TensorRT that will run it.",
        "",
        *(_kit_steps(spec, target, check) if check is not None else []),
        "## Files",
        "",
        *_file_rows(spec, plan, calibration),
        "",
        _dialect_line(spec),
        "",
        f"Shapes: batch {spec.batch.min}:{spec.batch.opt}:{spec.batch.max} at {spec.resolution}×{spec.resolution}"
        + (" (static)" if spec.batch.static else "")
        + (f"; DLA core {spec.dla_core} {'with' if spec.gpu_fallback else 'without'} GPU fallback" if spec.dla_core is not None else "")
        + ".",
        "",
    ]
    if spec.notes:
        lines += ["Notes:", ""] + [f"- {note}" for note in spec.notes] + [""]
    lines += ["Validation on ONNX Runtime (CPU) before writing this bundle:", ""]
    lines += [f"- {line}" for line in validation]
    return "\n".join(lines) + "\n"


def bundle_files(
    spec: BuildSpec, target: Target, deployed_onnx: bytes, golden: dict[str, np.ndarray], plan: PrecisionPlan | None, validation: list[str],
    calibration=None, dla_prediction: DlaPrediction | None = None,
) -> dict[str, bytes]:
    """Every file of the bundle but its manifest, by name. ``dla_prediction``: the DLA placement
    predicted for the deployed ONNX (DLA bundles); rf-build sets TensorRT's answer beside it."""
    check = polygraphy_check(spec, golden["logits"])
    files = {
        spec.onnx: deployed_onnx,
        "build.json": spec.to_json().encode(),
        "build.sh": build_script(spec, check).encode(),
        "golden.npz": npz_bytes(golden),
        **polygraphy_files(spec, golden),
        "README.md": bundle_readme(spec, target, plan, validation, calibration, check).encode(),
        KIT_NAME: build_kit(),
    }
    if plan:
        files["precision_plan.json"] = (json.dumps(plan.as_dict(), indent=2, sort_keys=True) + "\n").encode()
    if dla_prediction is not None:
        files[PREDICTION_FILE] = prediction_bytes(dla_prediction)
    if calibration is not None:
        files["calibration.json"] = record_bytes(calibration.record)
        if calibration.cache_text:
            files[CALIBRATION_CACHE] = calibration.cache_text.encode()
        if calibration.qdq_model is not None and not target.strongly_typed:
            files[f"{spec.model}.qdq.onnx"] = calibration.qdq_model.SerializeToString()
            files[f"{spec.model}.onnx"] = deployed_onnx  # the FP32 ONNX, also when the build takes the Q/DQ one
    return files
