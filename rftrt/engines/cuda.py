"""CUDA through cuda-python: devices, streams, device and page-locked host memory, host↔device copies
on an explicit stream, graph capture and replay, and CUDA-event timing.

Needs a CUDA GPU and cuda-python, not TensorRT; cuda-python is imported inside functions, so
importing this module needs neither. Both of cuda-python's layouts work: ``cuda.bindings.runtime``
(12.8 and later) and ``cuda.cudart`` (11.8, 12.0–12.6: what a CUDA 11.4 DRIVE OS 6 device needs); the
functions are the same. :data:`CUDART_API_USED` lists every cuda-python runtime call made
here (tests check them against the installed cuda-python, and that nothing else is called).
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from ..errors import RftrtError

__all__ = ["CUDART_API_USED", "cuda_device_count", "cuda_python_version", "gpu_info", "time_on_stream", "Stream", "DeviceBuffer", "PinnedBuffer", "CudaGraph"]

#: Every cuda-python runtime function this module calls.
CUDART_API_USED = (
    "cudaError_t",
    "cudaGetErrorName",
    "cudaGetDeviceCount",
    "cudaGetDeviceProperties",
    "cudaDriverGetVersion",
    "cudaRuntimeGetVersion",
    "cudaStreamCreateWithFlags",
    "cudaStreamNonBlocking",
    "cudaStreamSynchronize",
    "cudaStreamDestroy",
    "cudaMalloc",
    "cudaFree",
    "cudaMallocHost",
    "cudaFreeHost",
    "cudaMemcpyAsync",
    "cudaMemcpyKind",
    "cudaStreamBeginCapture",
    "cudaStreamCaptureMode",
    "cudaStreamEndCapture",
    "cudaGraphInstantiate",
    "cudaGraphLaunch",
    "cudaGraphExecDestroy",
    "cudaGraphDestroy",
    "cudaEventCreate",
    "cudaEventRecord",
    "cudaEventElapsedTime",
    "cudaEventDestroy",
)


def _cudart() -> Any:
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            raise RftrtError(
                "cuda-python is not installed: the engine runtime needs it, of the device's CUDA major "
                "(CUDA 11.x: pip install 'cuda-python>=11.8,<12'; 12.x: 'cuda-python>=12,<13'; 13.x: 'cuda-python>=13')"
            ) from None
    return cudart


def cuda_python_version() -> str | None:
    """The installed cuda-python's version (either layout), or None."""
    try:
        cudart = _cudart()
    except RftrtError:
        return None
    from importlib import metadata

    for dist in ("cuda-python", "cuda-bindings"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return getattr(cudart, "__version__", "unknown")


def _check(result: Any, what: str) -> Any:
    """Unpack a cuda-python ``(err, *values)`` tuple; raise a one-line error unless ``err`` is success."""
    cudart = _cudart()
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        _, name = cudart.cudaGetErrorName(err)
        name = name.decode() if isinstance(name, bytes) else str(name)
        hint = "; no usable CUDA GPU or driver here" if name in ("cudaErrorNoDevice", "cudaErrorInsufficientDriver") else ""
        raise RftrtError(f"CUDA error in {what}: {name}{hint}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def cuda_device_count() -> tuple[int, str]:
    """(number of CUDA devices, why 0 if 0). Never raises for a missing GPU, only for missing cuda-python."""
    cudart = _cudart()
    err, count = cudart.cudaGetDeviceCount()
    if err != cudart.cudaError_t.cudaSuccess:
        _, name = cudart.cudaGetErrorName(err)
        return 0, name.decode() if isinstance(name, bytes) else str(name)
    return int(count), "" if count else "no CUDA device"


def _version_text(v: int) -> str:
    # CUDA encodes 12.6 as 12060 (major·1000 + minor·10).
    return f"{v // 1000}.{(v % 1000) // 10}" if v else "unknown"


def gpu_info(device: int = 0) -> dict[str, str]:
    """Name, compute capability, driver and CUDA runtime versions of ``device``, as the sidecar records them."""
    cudart = _cudart()
    count, why = cuda_device_count()
    if count == 0:
        raise RftrtError(f"no CUDA GPU is visible here ({why}); engines are built and run on the target's GPU")
    prop = _check(cudart.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
    name = prop.name
    name = name.split(b"\0", 1)[0].decode() if isinstance(name, bytes) else str(name)
    driver = _check(cudart.cudaDriverGetVersion(), "cudaDriverGetVersion")
    runtime = _check(cudart.cudaRuntimeGetVersion(), "cudaRuntimeGetVersion")
    return {
        "device": str(device),
        "name": name,
        "compute_capability": f"{prop.major}.{prop.minor}",
        "driver_cuda_version": _version_text(int(driver)),
        "cuda_runtime_version": _version_text(int(runtime)),
    }


class Stream:
    """A non-blocking CUDA stream; ``int(stream)`` is the handle TensorRT's ``execute_async_v3`` takes."""

    def __init__(self) -> None:
        cudart = _cudart()
        self._stream = _check(cudart.cudaStreamCreateWithFlags(cudart.cudaStreamNonBlocking), "cudaStreamCreateWithFlags")

    @property
    def handle(self) -> Any:
        if self._stream is None:
            raise RftrtError("the CUDA stream is closed")
        return self._stream

    def __int__(self) -> int:
        return int(self.handle)

    def synchronize(self) -> None:
        _check(_cudart().cudaStreamSynchronize(self.handle), "cudaStreamSynchronize")

    def close(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            _check(_cudart().cudaStreamDestroy(stream), "cudaStreamDestroy")

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _host_pointer(host: "PinnedBuffer | np.ndarray", nbytes: int, what: str) -> int:
    if isinstance(host, PinnedBuffer):
        if nbytes > host.nbytes:
            raise RftrtError(f"{what}: {nbytes} bytes do not fit the {host.nbytes}-byte pinned buffer")
        return host.ptr
    if not isinstance(host, np.ndarray) or not host.flags.c_contiguous:
        raise TypeError(f"{what}: host memory must be a PinnedBuffer or a C-contiguous numpy array")
    if nbytes > host.nbytes:
        raise RftrtError(f"{what}: {nbytes} bytes do not fit the {host.nbytes}-byte array")
    return int(host.ctypes.data)


class DeviceBuffer:
    """``nbytes`` of device memory (``cudaMalloc``), with asynchronous copies to and from host memory."""

    def __init__(self, nbytes: int) -> None:
        if nbytes <= 0:
            raise ValueError(f"device buffer size must be positive, got {nbytes}")
        self.nbytes = int(nbytes)
        self._ptr: int | None = int(_check(_cudart().cudaMalloc(self.nbytes), f"cudaMalloc({self.nbytes})"))

    @property
    def ptr(self) -> int:
        if self._ptr is None:
            raise RftrtError("the device buffer is freed")
        return self._ptr

    def copy_from_host(self, host: "PinnedBuffer | np.ndarray", stream: Stream, nbytes: int | None = None) -> None:
        """Enqueue host → device (asynchronous for pinned memory, staged by the driver for pageable)."""
        nbytes = self.nbytes if nbytes is None else int(nbytes)
        if nbytes > self.nbytes:
            raise RftrtError(f"copy of {nbytes} bytes does not fit the {self.nbytes}-byte device buffer")
        cudart = _cudart()
        src = _host_pointer(host, nbytes, "host → device copy")
        _check(
            cudart.cudaMemcpyAsync(self.ptr, src, nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, stream.handle),
            "cudaMemcpyAsync host → device",
        )

    def copy_to_host(self, host: "PinnedBuffer | np.ndarray", stream: Stream, nbytes: int | None = None) -> None:
        """Enqueue device → host; the data is there after ``stream.synchronize()``."""
        nbytes = self.nbytes if nbytes is None else int(nbytes)
        if nbytes > self.nbytes:
            raise RftrtError(f"copy of {nbytes} bytes is larger than the {self.nbytes}-byte device buffer")
        cudart = _cudart()
        dst = _host_pointer(host, nbytes, "device → host copy")
        _check(
            cudart.cudaMemcpyAsync(dst, self.ptr, nbytes, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream.handle),
            "cudaMemcpyAsync device → host",
        )

    def free(self) -> None:
        if self._ptr is not None:
            ptr, self._ptr = self._ptr, None
            _check(_cudart().cudaFree(ptr), "cudaFree")

    def __enter__(self) -> "DeviceBuffer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.free()


class PinnedBuffer:
    """``nbytes`` of page-locked host memory (``cudaMallocHost``), seen from numpy through :meth:`view`."""

    def __init__(self, nbytes: int) -> None:
        if nbytes <= 0:
            raise ValueError(f"pinned buffer size must be positive, got {nbytes}")
        self.nbytes = int(nbytes)
        self._ptr: int | None = int(_check(_cudart().cudaMallocHost(self.nbytes), f"cudaMallocHost({self.nbytes})"))
        self._raw = (ctypes.c_ubyte * self.nbytes).from_address(self._ptr)

    @property
    def ptr(self) -> int:
        if self._ptr is None:
            raise RftrtError("the pinned buffer is freed")
        return self._ptr

    def view(self, shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
        """A numpy array over the first ``prod(shape)·itemsize`` bytes (no copy; valid until :meth:`free`)."""
        dtype = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64))
        if count * dtype.itemsize > self.nbytes:
            raise RftrtError(f"a {tuple(shape)} {dtype} view needs {count * dtype.itemsize} bytes; the pinned buffer has {self.nbytes}")
        if self._ptr is None:
            raise RftrtError("the pinned buffer is freed")
        return np.frombuffer(self._raw, dtype=dtype, count=count).reshape(shape)

    def free(self) -> None:
        if self._ptr is not None:
            ptr, self._ptr = self._ptr, None
            self._raw = None
            _check(_cudart().cudaFreeHost(ptr), "cudaFreeHost")

    def __enter__(self) -> "PinnedBuffer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.free()


class CudaGraph:
    """Work captured from a stream once (``cudaStreamBeginCapture`` … ``EndCapture``) and replayed.

    ``with graph.capture(stream): enqueue(stream)`` records; ``graph.launch(stream)`` replays. The
    captured kernels keep the pointers and shapes of capture time.
    """

    def __init__(self) -> None:
        self._graph: Any = None
        self._exec: Any = None

    @property
    def captured(self) -> bool:
        return self._exec is not None

    def capture(self, stream: Stream) -> "_Capture":
        if self.captured:
            raise RftrtError("this CUDA graph is already captured; make a new one")
        return _Capture(self, stream)

    def launch(self, stream: Stream) -> None:
        if not self.captured:
            raise RftrtError("the CUDA graph has not been captured")
        _check(_cudart().cudaGraphLaunch(self._exec, stream.handle), "cudaGraphLaunch")

    def close(self) -> None:
        cudart = _cudart() if (self._exec is not None or self._graph is not None) else None
        if self._exec is not None:
            graph_exec, self._exec = self._exec, None
            _check(cudart.cudaGraphExecDestroy(graph_exec), "cudaGraphExecDestroy")
        if self._graph is not None:
            graph, self._graph = self._graph, None
            _check(cudart.cudaGraphDestroy(graph), "cudaGraphDestroy")


class _Capture:
    def __init__(self, graph: CudaGraph, stream: Stream) -> None:
        self.graph, self.stream = graph, stream

    def __enter__(self) -> Stream:
        cudart = _cudart()
        _check(
            cudart.cudaStreamBeginCapture(self.stream.handle, cudart.cudaStreamCaptureMode.cudaStreamCaptureModeGlobal),
            "cudaStreamBeginCapture",
        )
        return self.stream

    def __exit__(self, exc_type: object, *rest: object) -> None:
        cudart = _cudart()
        # End the capture in every case, so the stream is usable again.
        err, graph = cudart.cudaStreamEndCapture(self.stream.handle)
        if exc_type is not None:
            if graph is not None and err == cudart.cudaError_t.cudaSuccess:
                cudart.cudaGraphDestroy(graph)
            return
        _check((err, graph), "cudaStreamEndCapture")
        self.graph._graph = graph
        self.graph._exec = _check(cudart.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")



def time_on_stream(stream: Stream, work: Any, iterations: int) -> list[float]:
    """Milliseconds of device time of each of ``iterations`` calls of ``work()`` (which enqueues on
    ``stream``), from CUDA events recorded around each call; one synchronisation at the end."""
    cudart = _cudart()
    pairs = []
    try:
        for _ in range(iterations):
            pairs.append((_check(cudart.cudaEventCreate(), "cudaEventCreate"), _check(cudart.cudaEventCreate(), "cudaEventCreate")))
        for start, end in pairs:
            _check(cudart.cudaEventRecord(start, stream.handle), "cudaEventRecord")
            work()
            _check(cudart.cudaEventRecord(end, stream.handle), "cudaEventRecord")
        stream.synchronize()
        return [float(_check(cudart.cudaEventElapsedTime(start, end), "cudaEventElapsedTime")) for start, end in pairs]
    finally:
        for start, end in pairs:
            cudart.cudaEventDestroy(start)
            cudart.cudaEventDestroy(end)
