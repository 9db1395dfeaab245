"""The ONNX Runtime timing process (``python -m rftrt.tools.bench --ort-worker``): it imports ONNX
Runtime and NumPy only, never torch, whose threads and ORT's spinning ones disturb each other.

It reads a JSON job on stdin (from :mod:`.ort`) and writes JSON lines on stdout: ``{"progress": …}``,
then ``{"result": …}`` or ``{"error": …}`` (a user-facing problem, one line)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import numpy as np

from ....timing import Timed, interleave
from ..results import BenchSettings

__all__ = ["main"]


def main() -> int:
    """Time the job's ONNX models with ONNX Runtime; the exit status (3: no usable CUDA device)."""
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    job = json.loads(sys.stdin.read())
    settings = BenchSettings(**job["settings"])
    cuda = job["provider"] == "cuda"
    sessions = {}
    for name, path in job["files"].items():
        session = _session(ort, path, settings.threads, cuda)
        if cuda and session.get_providers()[0] != "CUDAExecutionProvider":
            _emit(error=f"ONNX Runtime fell back to {session.get_providers()[0]} for {name}: no usable CUDA device; nothing was timed")
            return 3
        sessions[name] = session
    samples = _time_batches(sessions, job["resolution"], job["batches"], settings, cuda, job["copies"])
    _emit(
        result={
            "samples": samples,
            "onnxruntime": ort.__version__,
            "providers": {name: s.get_providers() for name, s in sessions.items()},
            "torch_imported_in_timing_process": "torch" in sys.modules,
        }
    )
    return 0


def _emit(**message: Any) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _session(ort: Any, path: str, threads: int, cuda: bool) -> Any:
    """An inference session with sequential execution on ``threads`` intra-op threads."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers = [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]
    return ort.InferenceSession(path, options, providers=providers)


def _time_batches(
    sessions: dict[str, Any], resolution: int, batches: list[int], settings: BenchSettings, cuda: bool, copies: str
) -> dict[str, dict[int, list[list[float]]]]:
    """The interleaved run of every session at each batch size: samples per model, batch and round."""
    rng = np.random.default_rng(settings.seed)
    samples: dict[str, dict[int, list[list[float]]]] = {name: {} for name in sessions}
    for batch in batches:
        shape = (batch, 3, resolution, resolution)
        timers = {
            name: _timer(session, [rng.standard_normal(shape).astype(np.float32) for _ in range(settings.rotate)], cuda, copies)
            for name, session in sessions.items()
        }
        label = " vs ".join(sessions)
        _emit(progress=f"{label} batch {batch}: warm-up")
        rounds = interleave(
            timers,
            settings.warmup,
            settings.rounds,
            settings.iterations,
            lambda i, b=batch: _emit(progress=f"{label} batch {b} round {i}/{settings.rounds}"),
        )
        for name, per_round in rounds.items():
            samples[name][batch] = per_round
    return samples


def _timer(session: Any, inputs: list[np.ndarray], cuda: bool, copies: str) -> Timed:
    """Wall clock around ``session.run`` on the rotated inputs; with the CUDA provider and copies
    excluded, around ``run_with_iobinding`` on inputs already on the device."""
    import onnxruntime as ort

    input_name = session.get_inputs()[0].name
    output_name = session.get_outputs()[0].name
    state = {"k": 0}
    if cuda and copies == "exclude":
        binding = session.io_binding()
        device_inputs = [ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0) for x in inputs]
        classes = session.get_outputs()[0].shape[-1]
        output = ort.OrtValue.ortvalue_from_shape_and_type([inputs[0].shape[0], classes], np.float32, "cuda", 0)
        binding.bind_ortvalue_output(output_name, output)

        def run_bound(iterations: int) -> list[float]:
            times = []
            for _ in range(iterations):
                binding.bind_ortvalue_input(input_name, device_inputs[state["k"] % len(device_inputs)])
                state["k"] += 1
                start = time.perf_counter()
                session.run_with_iobinding(binding)
                binding.synchronize_outputs()
                times.append((time.perf_counter() - start) * 1e3)
            return times

        return run_bound

    def run(iterations: int) -> list[float]:
        times = []
        for _ in range(iterations):
            feed = {input_name: inputs[state["k"] % len(inputs)]}
            state["k"] += 1
            start = time.perf_counter()
            session.run([output_name], feed)
            times.append((time.perf_counter() - start) * 1e3)
        return times

    return run
