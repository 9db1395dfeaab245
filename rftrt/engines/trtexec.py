"""trtexec command lines for a :class:`~rftrt.engines.build_spec.BuildSpec`, and the bundle's build.sh.

The flags, checked against trtexec's own option parser and help (NVIDIA/TensorRT
``samples/common/sampleOptions.cpp`` of 8.6, a late 10.x and 11.3.0), NVIDIA's 8.x → 10.x and
10.x → 11.x trtexec migration guides, and ``data/trtexec_options.json`` (tests/test_trtexec.py checks
every emitted flag against it):

- both dialects: ``--onnx --saveEngine``, shapes (``--minShapes/--optShapes/--maxShapes``, or
  ``--shapes`` for a static batch, which trtexec copies into a min = opt = max profile),
  ``--memPoolSize=workspace:N`` (8.6 reads N in MiB and knows no suffix; 10.x takes base-2 suffixes and
  we write ``4096M``; ``--workspace`` is gone in 10), ``--builderOptimizationLevel`` (since 8.6),
  ``--timingCacheFile``, ``--skipInference`` (build only; ``--buildOnly`` is its deprecated alias),
  ``--useDLACore=N``, with ``--allowGPUFallback`` unless the whole network is predicted on DLA;
- weakly typed (8.x, 10.x): ``--fp16``; ``--int8 --fp16`` (plus ``--calib=FILE`` for a calibration
  cache); FP32 pins as ``--precisionConstraints=obey --layerPrecisions=name:fp32,…`` (trtexec splits the
  list on "," and each entry on its last ":"; 10.x reads one "*" in a name as a wildcard);
- strongly typed (11.x): none of ``--fp16 --int8 --best --calib --precisionConstraints
  --layerPrecisions --layerOutputTypes`` (removed in 11). ``--stronglyTyped`` is "no longer needed: it
  is always enabled" there; 11.3.0 still parses it as a deprecated no-op, so it is left out. A strongly
  typed build on 10.x does need it, and gets it. A weakly typed spec for 11.x is refused, as the
  builder refuses it (``build_plan.dialect_path``).

Benchmarks keep host↔device copies in, so that trtexec's "Host Latency" includes them and "GPU Compute
Time" does not. The defaults flipped in 11.x (read in the 11.3.0 ``InferenceOptions::parse``): copies
are off unless ``--includeDataTransfers``, CUDA graphs and spin-wait are on (``--useCudaGraph`` and
``--useSpinWait`` are deprecated no-ops, ``--noCudaGraph`` turns graphs off). 8.6 and 10.x need
``--useCudaGraph --useSpinWait`` and have copies on by default. CUDA graphs cannot capture DLA engines.

``build.sh --verify`` checks the engine with Polygraphy and no rftrt (:func:`polygraphy_command`):
``polygraphy run ENGINE --trt --load-inputs … --load-outputs …`` on the bundle's golden data in
Polygraphy's JSON format, with per-element tolerances worked out at export time
(:func:`rftrt.comparison.elementwise_tolerances`) and carried here as a :class:`PolygraphyCheck`.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from .. import __version__
from ..errors import RftrtError
from ..targets.batch import BatchProfile
from ..targets.tensorrt import version_tag
from .build_spec import INT8_ROUTES, BuildSpec

__all__ = ["PolygraphyCheck", "trtexec_build_command", "trtexec_bench_command", "polygraphy_command", "build_script"]

_PRECISIONS = ("fp32", "fp16", "int8")
_DIALECTS = ("weak", "strong")
# Characters that change how trtexec splits a shape or precision list (see the module docstring).
_LIST_BREAKERS = (",", "'", "*")


def _major(spec: BuildSpec) -> int:
    version_tag(spec.tensorrt_version)  # rejects a malformed version with a clear message
    return int(spec.tensorrt_version.split(".")[0])


def _check(spec: BuildSpec) -> None:
    """Refuse a spec that trtexec would reject or, worse, build into something else than asked."""
    if spec.dialect not in _DIALECTS:
        raise RftrtError(f"build.json dialect {spec.dialect!r} is not one of {', '.join(_DIALECTS)}")
    if spec.precision not in _PRECISIONS:
        raise RftrtError(f"build.json precision {spec.precision!r} is not one of {', '.join(_PRECISIONS)}")
    b = spec.batch
    if b.min < 1 or not b.min <= b.opt <= b.max:
        raise RftrtError(f"build.json batch {b.min}:{b.opt}:{b.max} must satisfy 1 <= min <= opt <= max")
    if any(c in spec.input_name for c in _LIST_BREAKERS):
        raise RftrtError(f"input name {spec.input_name!r} cannot be passed to trtexec: rename the ONNX input without , ' or *")
    major = _major(spec)
    if spec.dialect == "strong" and major < 10:
        raise RftrtError(f"TensorRT {spec.tensorrt_version} has no strongly typed networks; use the weak dialect")
    if spec.dialect == "weak" and major >= 11:
        raise RftrtError(
            f"TensorRT {spec.tensorrt_version} builds strongly typed networks only (its trtexec has no --fp16, --int8, "
            f"--calib or --layerPrecisions); this spec is weakly typed: export a typed ONNX with rf-export --trt-version {spec.tensorrt_version}"
        )
    if spec.dialect == "strong" and spec.calibration_cache:
        raise RftrtError(
            f"TensorRT {spec.tensorrt_version} strongly typed builds take no calibration cache; "
            "INT8 must come as Q/DQ nodes in the ONNX"
        )
    if spec.dla_core is not None:
        if not b.static:
            raise RftrtError(f"DLA needs static shapes: batch {b.min}:{b.opt}:{b.max} must have min = opt = max")
        if spec.precision == "fp32":
            raise RftrtError("DLA runs FP16 or INT8 only; choose fp16 or int8 precision, or build without DLA")
        if spec.dialect == "weak" and major < 10 and spec.precision == "int8" and not spec.calibration_cache:
            raise RftrtError(
                f"INT8 on DLA with TensorRT {spec.tensorrt_version} needs a calibration cache "
                "(its DLA path does not take explicit Q/DQ); calibrate first"
            )
    if spec.dialect == "weak":
        bad = [name for name in spec.fp32_layers if not name or any(c in name for c in _LIST_BREAKERS)]
        if bad:
            raise RftrtError(f"layer name {bad[0]!r} cannot be pinned with --layerPrecisions: it is empty or contains , ' or *")
    if spec.int8 is not None:
        _check_int8_source(spec)


def _check_int8_source(spec: BuildSpec) -> None:
    """Refuse an ``int8`` entry that names another route or file than the spec builds from."""
    route, file = spec.int8.route, spec.int8.file
    if spec.precision != "int8":
        raise RftrtError(f"build.json names an INT8 source ({route}: {file}) for a {spec.precision} build")
    if route not in INT8_ROUTES:
        raise RftrtError(f"build.json INT8 route {route!r} is not one of {', '.join(INT8_ROUTES)}")
    if route == "cache" and file != spec.calibration_cache:
        raise RftrtError(f"build.json's INT8 route is the calibration cache {file}, but its calibration_cache is {spec.calibration_cache!r}")
    if route == "qdq" and (file != spec.onnx or spec.calibration_cache):
        raise RftrtError(
            f"build.json's INT8 route is the Q/DQ ONNX {file}, but it builds {spec.onnx}"
            + (f" with the calibration cache {spec.calibration_cache}" if spec.calibration_cache else "")
        )


def _shape(spec: BuildSpec, which: str) -> str:
    return f"{spec.input_name}:{'x'.join(map(str, spec.batch.shape(which, spec.resolution)))}"


def _shape_flags(spec: BuildSpec) -> list[str]:
    if spec.batch.static:
        return [f"--shapes={_shape(spec, 'opt')}"]
    return [f"--minShapes={_shape(spec, 'min')}", f"--optShapes={_shape(spec, 'opt')}", f"--maxShapes={_shape(spec, 'max')}"]


def _precision_flags(spec: BuildSpec) -> list[str]:
    if spec.dialect == "strong":
        # 11.x: the ONNX carries every type; 10.x needs the opt-in flag.
        return [] if _major(spec) >= 11 else ["--stronglyTyped"]
    if spec.precision == "fp32":
        return []
    # INT8 with FP16 allowed, so layers without INT8 kernels run FP16 rather than FP32. Without a
    # calibration cache the ONNX must carry Q/DQ nodes (explicit quantization).
    flags = ["--fp16"] if spec.precision == "fp16" else ["--int8", "--fp16"]
    if spec.precision == "int8" and spec.calibration_cache:
        flags.append(f"--calib={spec.calibration_cache}")
    if spec.fp32_layers:
        pins = ",".join(f"{name}:fp32" for name in spec.fp32_layers)
        flags += ["--precisionConstraints=obey", f"--layerPrecisions={pins}"]
    return flags


def trtexec_build_command(spec: BuildSpec) -> list[str]:
    """The trtexec argv that builds ``spec.engine`` from ``spec.onnx`` (argv[0] is ``trtexec``)."""
    _check(spec)
    # 8.6 reads the size in MiB and has no unit suffixes; 10.x and later take an explicit "M".
    workspace = f"{spec.workspace_mib}" if _major(spec) < 10 else f"{spec.workspace_mib}M"
    argv = ["trtexec", f"--onnx={spec.onnx}", f"--saveEngine={spec.engine}", *_shape_flags(spec)]
    argv += [
        f"--memPoolSize=workspace:{workspace}",
        f"--builderOptimizationLevel={spec.builder_optimization_level}",
        f"--timingCacheFile={spec.timing_cache}",
        *_precision_flags(spec),
    ]
    if spec.dla_core is not None:
        argv += [f"--useDLACore={spec.dla_core}", *(["--allowGPUFallback"] if spec.gpu_fallback else [])]
    argv.append("--skipInference")
    return argv


def trtexec_bench_command(
    spec: BuildSpec,
    *,
    warmup_ms: int = 500,
    duration_s: int = 10,
    iterations: int = 100,
) -> list[str]:
    """The trtexec argv that times the built engine at the opt batch.

    Host↔device copies stay in ("Host Latency" includes them, "GPU Compute Time" does not); CUDA
    graphs are used on the GPU but not with DLA, which graphs cannot capture (NVIDIA/TensorRT#3524).
    """
    _check(spec)
    argv = [
        "trtexec",
        f"--loadEngine={spec.engine}",
        f"--shapes={_shape(spec, 'opt')}",
        f"--warmUp={warmup_ms}",
        f"--duration={duration_s}",
        f"--iterations={iterations}",
    ]
    dla = spec.dla_core is not None
    if dla:
        argv.append(f"--useDLACore={spec.dla_core}")
    if _major(spec) >= 11:
        # 11.x: graphs and spin-wait are the default, copies are not.
        argv.append("--includeDataTransfers")
        if dla:
            argv.append("--noCudaGraph")
    else:
        argv.append("--useSpinWait")
        if not dla:
            argv.append("--useCudaGraph")
    return argv


@dataclass(frozen=True)
class PolygraphyCheck:
    """What ``build.sh --verify`` hands to ``polygraphy run``: the bundle's golden inputs and
    reference outputs in Polygraphy's JSON format and the per-element tolerances for them."""

    inputs: str
    outputs: str
    atol: float
    rtol: float
    #: the rftrt tolerance kind (a key of rftrt.comparison.TOLERANCES) they were derived from
    tolerance: str

    def limits(self) -> str:
        return f"atol {self.atol:g}, rtol {self.rtol:g}"


def polygraphy_command(model: str, runner: str, check: PolygraphyCheck) -> list[str]:
    """``polygraphy run MODEL RUNNER`` on ``check``'s saved inputs against its saved outputs
    (``runner``: ``--trt`` for an engine, ``--onnxrt`` for the ONNX). The error statistic is given
    although it is Polygraphy's default, because the tolerances were derived for it."""
    return [
        "polygraphy", "run", model, runner,
        "--load-inputs", check.inputs, "--load-outputs", check.outputs,
        "--check-error-stat", "elemwise", "--atol", f"{check.atol:g}", "--rtol", f"{check.rtol:g}",
    ]  # fmt: skip


def _batch_text(batch: BatchProfile) -> str:
    return f"{batch.opt} (static)" if batch.static else f"{batch.min}:{batch.opt}:{batch.max} (min:opt:max)"


def _quoted(argv: list[str], tool: str) -> tuple[str, str]:
    """The echo of the exact command (copy-pasteable), and the command with ``$TOOL`` for argv[0]."""
    return f"echo {shlex.quote('+ ' + shlex.join(argv))}", f"\"${tool}\" {shlex.join(argv[1:])}"


def _run(argv: list[str], log: str, tool: str) -> str:
    echo, command = _quoted(argv, tool)
    return f"{echo}\n{command} 2>&1 | tee {shlex.quote(log)}\n"


def _read_options(check: PolygraphyCheck | None) -> str:
    """The lines of build.sh that read its options (``--verify`` only where the bundle has the Polygraphy files)."""
    usage = "[--bench] [--verify]" if check else "[--bench]"
    verify = "    --verify) verify=1 ;;\n" if check else ""
    return f"""bench=0
verify=0
for arg in "$@"; do
  case "$arg" in
    --bench) bench=1 ;;
{verify}    *) echo "usage: $0 {usage}" >&2; exit 2 ;;
  esac
done
"""


_POLYGRAPHY_FOUND = """
POLYGRAPHY="${POLYGRAPHY:-polygraphy}"
if [ "$verify" = 1 ] && ! command -v "$POLYGRAPHY" >/dev/null 2>&1; then
  echo "build.sh: $POLYGRAPHY not found: --verify needs NVIDIA's Polygraphy (python3 -m pip install polygraphy), or set POLYGRAPHY=/path/to/polygraphy; python3 rftrt-device.pyz verify checks the engine without it" >&2
  exit 127
fi
"""


def _polygraphy_lines(spec: BuildSpec, check: PolygraphyCheck | None) -> tuple[str, str]:
    """build.sh's check that Polygraphy is there (before the build, not after it) and its --verify step."""
    if check is None:
        return "", ""
    echo, command = _quoted(polygraphy_command(spec.engine, "--trt", check), "POLYGRAPHY")
    failed = f"build.sh: {spec.engine} differs from the ONNX Runtime reference beyond {check.limits()}, or Polygraphy could not run it (see verify.log)"
    step = f"""
# Polygraphy runs the engine on {check.inputs} and compares with {check.outputs} (ONNX Runtime on
# {spec.onnx}): an element fails when |engine - reference| > atol and > rtol * |reference|. The
# tolerances come from rftrt's {check.tolerance!r} tolerance and are stricter than rf-verify's.
if [ "$verify" = 1 ]; then
  echo {shlex.quote(f"==> checking {spec.engine} against the ONNX Runtime reference with Polygraphy ({check.limits()})")}
  {echo}
  if ! {command} 2>&1 | tee verify.log; then
    echo {shlex.quote(failed)} >&2
    exit 1
  fi
  echo {shlex.quote(f"==> {spec.engine} matches the reference ({check.limits()})")}
fi
"""
    return _POLYGRAPHY_FOUND, step


def build_script(spec: BuildSpec, check: PolygraphyCheck | None = None) -> str:
    """The bundle's ``build.sh``: build the engine with trtexec, check that it was written, then
    (``--verify``, where ``check`` is given) compare it with the bundle's reference with Polygraphy,
    and print (or, with ``--bench``, run) the benchmark."""
    build = trtexec_build_command(spec)
    bench = trtexec_bench_command(spec)
    tag = str(version_tag(spec.tensorrt_version))[:-2] + "xx"
    dialect = "strongly typed" if spec.dialect == "strong" else "weakly typed"
    fallback = "with GPU fallback" if spec.gpu_fallback else "entirely, without GPU fallback"
    where = f"DLA core {spec.dla_core} {fallback}" if spec.dla_core is not None else "GPU"
    polygraphy_found, verify_step = _polygraphy_lines(spec, check)
    engine, sidecar = shlex.quote(spec.engine), shlex.quote(spec.engine + ".json")
    verify_help = "#   ./build.sh --verify  build, then check it against the bundle's reference with Polygraphy (log: verify.log)\n" if check else ""
    notes = "".join(f"# note: {' '.join(note.split())}\n" for note in spec.notes)
    return f"""#!/usr/bin/env bash
# Build {spec.engine} from {spec.onnx}: {spec.model} at {spec.resolution}x{spec.resolution}, {spec.precision},
# for {spec.target} with TensorRT {spec.tensorrt_version} ({dialect}), on the {where}.
# Batch {_batch_text(spec.batch)}. Written by rftrt {__version__}; build.json holds the same settings.
{notes}#
#   ./build.sh           build the engine (log: build.log), then print the benchmark command
#   ./build.sh --bench   build, then run the benchmark (log: bench.log)
{verify_help}#
# trtexec comes with TensorRT (JetPack and DRIVE OS put it in /usr/src/tensorrt/bin); set
# TRTEXEC=/path/to/trtexec if it is not on PATH. It must be TensorRT {spec.tensorrt_version}, on the target itself:
# engines do not carry over between TensorRT versions or GPUs.
# Exit code 0: done; 1: trtexec failed or wrote no engine{", or --verify found a mismatch" if check else ""}; 2: usage; 127: a tool is missing.
set -euo pipefail
cd -- "$(dirname -- "${{BASH_SOURCE[0]}}")"

{_read_options(check)}
TRTEXEC="${{TRTEXEC:-trtexec}}"
if ! command -v "$TRTEXEC" >/dev/null 2>&1; then
  echo "build.sh: $TRTEXEC not found: install TensorRT {spec.tensorrt_version} and add the folder holding trtexec (often /usr/src/tensorrt/bin) to PATH, or set TRTEXEC=/path/to/trtexec" >&2
  exit 127
fi
{polygraphy_found}
# An engine (or rf-build's sidecar) from an earlier build must not pass for this one.
if [ -e {engine} ] || [ -e {sidecar} ]; then
  echo {shlex.quote(f"==> removing the earlier {spec.engine}")}
  rm -f -- {engine} {sidecar}
fi
echo {shlex.quote(f"==> building {spec.engine} with TensorRT {spec.tensorrt_version} (trtexec should report [TensorRT v{tag}])")}
{_run(build, "build.log", "TRTEXEC")}if [ ! -s {engine} ]; then
  echo {shlex.quote(f"build.sh: trtexec exited 0 but wrote no {spec.engine} (see build.log)")} >&2
  exit 1
fi
echo {shlex.quote(f"==> built {spec.engine}")}
{verify_step}
# Timing at batch {spec.batch.opt}: trtexec's "Host Latency" includes the host->device and device->host
# copies of input and output; "GPU Compute Time" excludes them.
if [ "$bench" = 1 ]; then
  echo {shlex.quote(f"==> timing {spec.engine} at batch {spec.batch.opt} (Host Latency includes copies, GPU Compute Time excludes them)")}
  {_run(bench, "bench.log", "TRTEXEC").replace(chr(10), chr(10) + "  ").rstrip()}
else
  echo "==> to time it, run ./build.sh --bench, or:"
  echo {shlex.quote("  " + shlex.join(bench))}
fi
"""
