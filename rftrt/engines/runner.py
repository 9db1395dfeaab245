"""Running a TensorRT engine from Python: :class:`EngineRunner`, on the CUDA layer of :mod:`rftrt.engines.cuda`.

Load a plan, allocate one device buffer and one pinned host buffer per I/O tensor at the profile's
largest batch, then per call ``set_input_shape``, ``set_tensor_address``, ``execute_async_v3`` on the
runner's stream and copy back. Any batch inside the engine's optimisation profile runs on the same
buffers; optionally the enqueue is captured in a CUDA graph and replayed (not with DLA: graphs cannot
capture DLA engines, NVIDIA/TensorRT#3524).

``tensorrt`` is imported when a runner is activated: importing this module does not need it. Every
TensorRT name the runner touches is declared with :func:`~rftrt.engines.tensorrt_api.uses` on the
method that touches it; :data:`RUNNER_API_USED` is their union, checked against each supported
TensorRT release's Python API by ``tests/test_trt_api_conformance.py``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RftrtError
from .cuda import CudaGraph, DeviceBuffer, PinnedBuffer, Stream
from .plan_file import PlanHeader, check_plan_file
from .tensorrt_api import api_names, import_tensorrt, installed_tensorrt_version, tensorrt_logger, uses

__all__ = ["TensorInfo", "EngineRunner", "check_batch", "RUNNER_API_USED"]


def _last_error(logger: Any) -> str:
    errors = getattr(logger, "errors", None)
    return f" ({errors[-1]})" if errors else ""


def _load_failure(path: Path, header: PlanHeader | None, installed: str, logger: Any) -> str:
    built = header.version_text if header else None
    hint = f"; its header says TensorRT {built} built it, this is TensorRT {installed}" if built else ""
    return f"TensorRT could not load {path}{hint}{_last_error(logger)}; rebuild the engine here with rf-build"


def _known_shapes(shapes: dict[str, tuple[int, ...]], batch: int) -> dict[str, tuple[int, ...]]:
    for name, shape in shapes.items():
        if any(d < 0 for d in shape):
            raise RftrtError(f"TensorRT cannot tell the shape of {name} at batch {batch} ({shape})")
    return shapes


@dataclass(frozen=True)
class TensorInfo:
    """One I/O tensor of an engine."""

    name: str
    is_input: bool
    dtype: np.dtype
    #: the engine's shape, -1 where dynamic
    shape: tuple[int, ...]
    #: (min, opt, max) shapes of optimisation profile 0 (inputs with a dynamic dimension only)
    profile: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None = None


def check_batch(batch: int, batch_range: tuple[int, int]) -> None:
    """Refuse a batch outside the engine's profile, naming the profile."""
    low, high = batch_range
    if not isinstance(batch, (int, np.integer)) or isinstance(batch, bool) or batch < 1:
        raise RftrtError(f"batch must be a positive integer, got {batch!r}")
    if not low <= batch <= high:
        profile = f"{low}..{high}" if low != high else f"{low} (static)"
        raise RftrtError(f"batch {batch} outside the engine's profile {profile}")


class EngineRunner:
    """Runs a TensorRT engine: a context manager; :meth:`infer` returns ``{output name: array}``.

    ::

        with EngineRunner("rf_b1.engine") as runner:
            logits = runner.infer({"images": batch})["logits"]

    Buffers (device + pinned host) are allocated once, for the largest batch of the profile; every
    call copies its outputs out of them, so the returned arrays are the caller's to keep. ``dla_core``
    must name the core a DLA engine was built for (the sidecar says which). ``cuda_graph=True``
    captures the enqueue once per batch size and replays it (refused for DLA engines).
    """

    def __init__(
        self,
        engine: str | Path,
        *,
        dla_core: int | None = None,
        cuda_graph: bool = False,
        verbose: bool = False,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if cuda_graph and dla_core is not None:
            raise RftrtError("CUDA graphs cannot capture DLA engines (NVIDIA/TensorRT#3524); run without the CUDA graph")
        self.path = Path(engine)
        self.dla_core = dla_core
        self.cuda_graph = cuda_graph
        self.verbose = verbose
        self.log = log or (lambda line: print(line, file=sys.stderr))
        self.header: PlanHeader | None = None
        self.tensors: tuple[TensorInfo, ...] = ()
        self._trt: Any = None
        self._logger: Any = None
        self._runtime: Any = None
        self._engine: Any = None
        self._context: Any = None
        self._stream: Stream | None = None
        self._device: dict[str, DeviceBuffer] = {}
        self._host: dict[str, PinnedBuffer] = {}
        self._batch: int | None = None
        self._graph: CudaGraph | None = None

    # -- lifecycle --

    @property
    def is_active(self) -> bool:
        return self._context is not None

    def __enter__(self) -> "EngineRunner":
        self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    def activate(self) -> None:
        if self.is_active:
            return
        self.header = check_plan_file(self.path)
        try:
            self._deserialize()
            self._describe_io()
            self._stream = Stream()
            self._allocate()
        except BaseException:
            self.deactivate()
            raise

    def deactivate(self) -> None:
        self._drop_graph()
        for buffer in [*self._device.values(), *self._host.values()]:
            buffer.free()
        self._device, self._host = {}, {}
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        # Release in reverse order of creation.
        self._context = self._engine = self._runtime = self._logger = None
        self._batch = None

    # -- steps --

    @uses(
        "Runtime",
        "Runtime.DLA_core",
        "Runtime.deserialize_cuda_engine",
        "ICudaEngine.create_execution_context",
        calls=(tensorrt_logger,),
    )
    def _deserialize(self) -> None:
        trt = self._trt = import_tensorrt("running an engine")
        self._logger = tensorrt_logger(trt, verbose=self.verbose, echo=self.log)
        self._runtime = trt.Runtime(self._logger)
        if self.dla_core is not None:
            self._runtime.DLA_core = self.dla_core
        engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if engine is None:
            raise RftrtError(_load_failure(self.path, self.header, installed_tensorrt_version(trt), self._logger))
        self._engine = engine
        self._context = engine.create_execution_context()
        if self._context is None:
            raise RftrtError(f"TensorRT could not create an execution context for {self.path} (out of GPU memory?)")

    @uses(
        "ICudaEngine.num_io_tensors",
        "ICudaEngine.get_tensor_name",
        "ICudaEngine.get_tensor_mode",
        "ICudaEngine.get_tensor_dtype",
        "ICudaEngine.get_tensor_shape",
        "ICudaEngine.get_tensor_profile_shape",
        "TensorIOMode.INPUT",
        "nptype",
    )
    def _describe_io(self) -> None:
        trt, engine = self._trt, self._engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        shapes = {name: tuple(int(d) for d in engine.get_tensor_shape(name)) for name in names}
        inputs = {name for name in names if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT}
        dtypes = {name: np.dtype(trt.nptype(engine.get_tensor_dtype(name))) for name in names}
        profiles = {
            name: tuple(tuple(int(d) for d in dims) for dims in engine.get_tensor_profile_shape(name, 0))
            for name in names
            if name in inputs and -1 in shapes[name]
        }
        self._set_tensors(names, inputs, dtypes, shapes, profiles)

    def _set_tensors(self, names: list[str], inputs: set[str], dtypes: dict, shapes: dict, profiles: dict) -> None:
        self.tensors = tuple(TensorInfo(n, n in inputs, dtypes[n], shapes[n], profiles.get(n)) for n in names)
        if not self.inputs or not self.outputs:
            raise RftrtError(f"{self.path} has {len(self.inputs)} inputs and {len(self.outputs)} outputs; expected at least one of each")

    @property
    def inputs(self) -> tuple[TensorInfo, ...]:
        return tuple(t for t in self.tensors if t.is_input)

    @property
    def outputs(self) -> tuple[TensorInfo, ...]:
        return tuple(t for t in self.tensors if not t.is_input)

    @property
    def batch_range(self) -> tuple[int, int]:
        """(min, max) batch of optimisation profile 0: the range :meth:`infer` accepts."""
        lows, highs = [], []
        for t in self.inputs:
            if t.profile is None:
                lows.append(t.shape[0])
                highs.append(t.shape[0])
            else:
                lows.append(t.profile[0][0])
                highs.append(t.profile[2][0])
        return max(lows), min(highs)

    def _dynamic_input_shapes(self, batch: int) -> dict[str, tuple[int, ...]]:
        return {t.name: (batch, *t.shape[1:]) for t in self.inputs if t.profile is not None}

    @uses("IExecutionContext.set_input_shape", "IExecutionContext.get_tensor_shape")
    def set_batch(self, batch: int) -> dict[str, tuple[int, ...]]:
        """Set every dynamic input to ``batch``; return every tensor's shape at that batch."""
        context = self._context
        if self._batch != batch:
            for name, shape in self._dynamic_input_shapes(batch).items():
                if not context.set_input_shape(name, shape):
                    raise RftrtError(f"TensorRT refused input shape {shape} for {name}")
            self._batch = batch
            self._drop_graph()  # its kernels were captured for the previous shapes
        shapes = {name: tuple(int(d) for d in context.get_tensor_shape(name)) for name in self._tensor_names()}
        return _known_shapes(shapes, batch)

    @property
    def stream(self) -> "Stream":
        """The runner's CUDA stream (valid while the runner is active)."""
        if self._stream is None:
            raise RftrtError("the engine runner is not active")
        return self._stream

    def _tensor_names(self) -> list[str]:
        return [t.name for t in self.tensors]

    def _drop_graph(self) -> None:
        if self._graph is not None:
            self._graph.close()
            self._graph = None

    def _allocate(self) -> None:
        shapes = self.set_batch(self.batch_range[1])
        for t in self.tensors:
            nbytes = max(int(np.prod(shapes[t.name], dtype=np.int64)) * t.dtype.itemsize, 1)
            self._device[t.name] = DeviceBuffer(nbytes)
            self._host[t.name] = PinnedBuffer(nbytes)
            self._bind(t.name, self._device[t.name].ptr)

    @uses("IExecutionContext.set_tensor_address")
    def _bind(self, name: str, address: int) -> None:
        if not self._context.set_tensor_address(name, address):
            raise RftrtError(f"TensorRT refused the device address for {name}")

    @uses("IExecutionContext.execute_async_v3")
    def _enqueue(self) -> None:
        if not self._context.execute_async_v3(int(self._stream)):
            raise RftrtError(f"TensorRT could not enqueue {self.path}{_last_error(self._logger)}")

    def enqueue(self) -> None:
        """Run the current batch on :attr:`stream` without copies or synchronisation (through the
        CUDA graph when enabled): what a device-time benchmark times between two CUDA events."""
        if not self.cuda_graph:
            self._enqueue()
            return
        if self._graph is None:
            # TensorRT: call enqueue once after a shape change, before capturing (it updates state).
            self._enqueue()
            self._stream.synchronize()
            graph = CudaGraph()
            try:
                with graph.capture(self._stream):
                    self._enqueue()
            except RftrtError as exc:
                graph.close()
                self.log(f"warning: CUDA graph capture failed ({exc}); running without the graph")
                self.cuda_graph = False
                self._enqueue()
                return
            self._graph = graph
        self._graph.launch(self._stream)

    # -- inference --

    def infer(self, feed: Mapping[str, np.ndarray] | np.ndarray) -> dict[str, np.ndarray]:
        """Run one batch. ``feed`` maps input names to arrays (a bare array for a one-input engine)."""
        if not self.is_active:
            raise RftrtError("the engine runner is not active; use it as `with EngineRunner(...) as runner:`")
        if isinstance(feed, np.ndarray):
            if len(self.inputs) != 1:
                raise RftrtError(f"the engine has {len(self.inputs)} inputs; pass a dict name → array")
            feed = {self.inputs[0].name: feed}
        names = {t.name for t in self.inputs}
        if set(feed) != names:
            raise RftrtError(f"inputs {sorted(feed)} do not match the engine's {sorted(names)}")
        batches = {np.asarray(a).shape[0] if np.ndim(a) else 0 for a in feed.values()}
        if len(batches) != 1:
            raise RftrtError(f"inputs have different batch sizes {sorted(batches)}")
        batch = batches.pop()
        check_batch(batch, self.batch_range)
        shapes = self.set_batch(batch)
        for t in self.inputs:
            array = np.asarray(feed[t.name])
            if array.shape != shapes[t.name]:
                raise RftrtError(f"input {t.name} has shape {array.shape}; the engine wants {shapes[t.name]}")
            np.copyto(self._host[t.name].view(shapes[t.name], t.dtype), array, casting="same_kind")
            self._device[t.name].copy_from_host(self._host[t.name], self._stream, array.size * t.dtype.itemsize)
        self.enqueue()
        for t in self.outputs:
            nbytes = int(np.prod(shapes[t.name], dtype=np.int64)) * t.dtype.itemsize
            self._device[t.name].copy_to_host(self._host[t.name], self._stream, nbytes)
        self._stream.synchronize()
        return {t.name: self._host[t.name].view(shapes[t.name], t.dtype).copy() for t in self.outputs}


#: Every TensorRT name the runner touches (the same on every release and dialect), derived from the
#: declarations on its methods.
RUNNER_API_USED: tuple[str, ...] = api_names(fn for fn in vars(EngineRunner).values() if hasattr(fn, "__trt_api__"))
