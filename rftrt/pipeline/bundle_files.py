"""The files of an ``rf-export`` bundle: the build specification, the golden data, the README and
the versions that made them. Everything here is a pure function of the run's results, so the same
inputs give the same bytes."""

from __future__ import annotations

import io
import json
import platform
import zipfile
from importlib import metadata

import numpy as np

from .. import __version__
from ..device.kit import KIT_NAME, build_kit
from ..engines.build_spec import BuildSpec
from ..engines.trtexec import build_script
from ..precision.plan import PrecisionPlan
from ..precision.store import record_bytes
from ..targets.profiles import Target
from ..targets.tensorrt import version_tag

__all__ = ["CALIBRATION_CACHE", "versions", "npz_bytes", "golden_images", "bundle_readme", "bundle_files"]

CALIBRATION_CACHE = "calibration.cache"


def versions() -> dict[str, str]:
    """The versions of what produced a bundle (its manifest records them)."""
    found = {"rftrt": __version__, "python": platform.python_version()}
    for dist in ("torch", "onnx", "onnxruntime", "onnx-graphsurgeon", "numpy"):
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
        "| `build.sh` | the equivalent trtexec command lines |",
        "| `golden.npz` | `images` (preprocessed bundled photographs) and ONNX Runtime reference logits: `logits_fp32` (FP32 ONNX), `logits` (this bundle's ONNX) |",
        *(["| `precision_plan.json` | which nodes stay FP32 and why |"] if plan else []),
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


def bundle_readme(spec: BuildSpec, target: Target, plan: PrecisionPlan | None, validation: list[str], calibration=None) -> str:
    lines = [
        f"# {spec.model} r{spec.resolution} for {target.display} (TensorRT {spec.tensorrt_version}, {spec.precision})",
        "",
        "Written by `rf-export`. Build the engine on the target itself, with the TensorRT that will run it:",
        "",
        "```",
        "bash build.sh            # trtexec build; prints the benchmark command",
        "bash build.sh --bench    # build, then time it with trtexec",
        "rf-build .               # or: build with rftrt (checks the manifest and TensorRT, writes a sidecar)",
        "```",
        "",
        *_file_rows(spec, plan, calibration),
        "",
        _dialect_line(spec),
        "",
        f"Shapes: batch {spec.batch.min}:{spec.batch.opt}:{spec.batch.max} at {spec.resolution}×{spec.resolution}"
        + (" (static)" if spec.batch.static else "")
        + (f"; DLA core {spec.dla_core} with GPU fallback" if spec.dla_core is not None else "")
        + ".",
        "",
    ]
    if spec.notes:
        lines += ["Notes:", ""] + [f"- {note}" for note in spec.notes] + [""]
    lines += ["Validation on ONNX Runtime (CPU) before writing this bundle:", ""]
    lines += [f"- {line}" for line in validation]
    return "\n".join(lines) + "\n"


def bundle_files(spec: BuildSpec, target: Target, deployed_onnx: bytes, golden: dict[str, np.ndarray], plan: PrecisionPlan | None, validation: list[str], calibration=None) -> dict[str, bytes]:
    """Every file of the bundle but its manifest, by name."""
    files = {
        spec.onnx: deployed_onnx,
        "build.json": spec.to_json().encode(),
        "build.sh": build_script(spec).encode(),
        "golden.npz": npz_bytes(golden),
        "README.md": bundle_readme(spec, target, plan, validation, calibration).encode(),
        KIT_NAME: build_kit(),
    }
    if plan:
        files["precision_plan.json"] = (json.dumps(plan.as_dict(), indent=2, sort_keys=True) + "\n").encode()
    if calibration is not None:
        files["calibration.json"] = record_bytes(calibration.record)
        if calibration.cache_text:
            files[CALIBRATION_CACHE] = calibration.cache_text.encode()
        if calibration.qdq_model is not None and not target.strongly_typed:
            files[f"{spec.model}.qdq.onnx"] = calibration.qdq_model.SerializeToString()
            files[f"{spec.model}.onnx"] = deployed_onnx  # the FP32 ONNX, also when the build takes the Q/DQ one
    return files
