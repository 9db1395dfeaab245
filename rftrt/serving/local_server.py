"""A real Triton Inference Server on the CPU, serving a repository's ONNX Runtime variant through
PyTriton: for checking clients (``rf-bench --backend triton``) where no GPU is.

    python -m rftrt.serving.local_server REPO MODEL [--host 127.0.0.1] [--http-port 8000] [--grpc-port 8001]

``nvidia-pytriton`` ships a ``tritonserver`` binary with only the Python backend, so the variant's
``model.onnx`` runs in a Python callable through ONNX Runtime, bound under the variant's name with the
inputs, outputs, ``max_batch_size`` and dynamic batching of its ``config.pbtxt`` (parsed with
Triton's schema). It prints ``ready`` once the server answers, and stops on SIGINT or SIGTERM.

PyTriton pins ``numpy<2``, so it usually lives in a Python environment of its own; this module
needs only NumPy, ONNX Runtime, PyTriton and the standard-library parts of rftrt there.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sysconfig
import threading
from collections.abc import Sequence
from pathlib import Path

from .validate import parse_config

__all__ = ["serve", "main", "free_ports"]


def free_ports(n: int) -> list[int]:
    """``n`` TCP ports free on 127.0.0.1 now (bound together, so distinct, then released)."""
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _matching_libpython() -> None:
    """Point the Python backend's stub at this interpreter's own libpython.

    The stub links ``libpython3.X.so`` by name; where the interpreter is not the system's (pyenv,
    conda), the loader would find the system's library of another patch release, whose C modules
    do not match this interpreter's standard library (``RLock._recursion_count`` missing, say). The
    server and the stub inherit the environment, so prepending the interpreter's LIBDIR fixes it.
    """
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir and Path(libdir).is_dir():
        os.environ["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libdir, os.environ.get("LD_LIBRARY_PATH", "")) if p)


def serve(repo: Path, model: str, host: str, http_port: int, grpc_port: int, metrics_port: int, stop: threading.Event) -> None:
    """Serve ``repo/model`` until ``stop`` is set; print ``ready`` once it answers."""
    import numpy as np
    import onnxruntime as ort
    from pytriton.decorators import batch
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig

    config = parse_config((repo / model / "config.pbtxt").read_text(encoding="utf-8"), f"{model}/config.pbtxt")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # one core per instance, as Triton's CPU instances run
    session = ort.InferenceSession(str(repo / model / "1" / (config.default_model_filename or "model.onnx")), options, providers=["CPUExecutionProvider"])
    dtypes = {"TYPE_FP32": np.float32, "TYPE_FP16": np.float16}
    from tritonclient.grpc import model_config_pb2

    def tensors(items) -> list:
        return [Tensor(name=t.name, dtype=dtypes[model_config_pb2.DataType.Name(t.data_type)], shape=tuple(t.dims)) for t in items]

    input_names, output_names = [t.name for t in config.input], [t.name for t in config.output]

    @batch
    def infer(**inputs):
        return dict(zip(output_names, session.run(output_names, {name: inputs[name] for name in input_names})))

    batcher = DynamicBatcher(
        max_queue_delay_microseconds=config.dynamic_batching.max_queue_delay_microseconds,
        preferred_batch_size=list(config.dynamic_batching.preferred_batch_size),
    )
    _matching_libpython()
    triton_config = TritonConfig(http_address=host, http_port=http_port, grpc_address=host, grpc_port=grpc_port, metrics_port=metrics_port)
    with Triton(config=triton_config) as triton:
        triton.bind(
            model_name=config.name,
            infer_func=infer,
            inputs=tensors(config.input),
            outputs=tensors(config.output),
            config=ModelConfig(max_batch_size=config.max_batch_size, batcher=batcher),
            strict=True,
        )
        triton.run()
        print("ready", flush=True)
        stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    cli = argparse.ArgumentParser(prog="python -m rftrt.serving.local_server", description=__doc__.split("\n\n")[0])
    cli.add_argument("repo", type=Path, help="a repository written by rf-triton")
    cli.add_argument("model", help="the ONNX Runtime variant's name, e.g. rf_b1_onnx")
    cli.add_argument("--host", default="127.0.0.1")
    cli.add_argument("--http-port", type=int, default=8000)
    cli.add_argument("--grpc-port", type=int, default=8001)
    cli.add_argument("--metrics-port", type=int, default=8002)
    args = cli.parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    serve(args.repo, args.model, args.host, args.http_port, args.grpc_port, args.metrics_port, stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
