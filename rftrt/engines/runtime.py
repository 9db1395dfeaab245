"""Running a TensorRT engine from Python with cuda-python (``cuda.bindings``).

Two layers, so that each can be checked where it can run:

- **CUDA only** (:class:`Stream`, :class:`DeviceBuffer`, :class:`PinnedBuffer`, :class:`CudaGraph`,
  :func:`cuda_device_count`, :func:`gpu_info`): device and page-locked host memory, host↔device
  copies on an explicit stream, graph capture. Needs a CUDA GPU and cuda-python, not TensorRT.
- **TensorRT** (:class:`EngineRunner`): load a plan, allocate one device buffer and one pinned host
  buffer per I/O tensor at the profile's largest batch, then per call ``set_input_shape``,
  ``set_tensor_address``, ``execute_async_v3`` on the runner's stream and copy back. Any batch inside
  the engine's optimisation profile runs on the same buffers; optionally the enqueue is captured in a
  CUDA graph and replayed (not with DLA: graphs cannot capture DLA engines, NVIDIA/TensorRT#3524).

Plus :func:`read_plan_header`, which needs neither: a TensorRT plan starts with the magic tag
``b"ftrt"`` (the little-endian uint32 0x74727466 = 1953657958). Sources: TensorRT 10.9's own error
"header.magicTag == rt::PlanMagicTag::kPLAN_MAGIC_TAG failed … (1825 != 1953657958)" for an engine with
1825 bytes of Ultralytics JSON in front (ultralytics/ultralytics#20053; 8.6 reports the same check as
"plan->header.magicTag == rt::kPLAN_MAGIC_TAG", NVIDIA/TensorRT#2915), and Torch-TensorRT's loader,
which tells a raw plan from base64 by ``startswith(b"ftrt")`` (pytorch/TensorRT
``py/torch_tensorrt/dynamo/runtime/_TRTEngine.py``). Bytes 24, 25, 26 hold the building TensorRT's
major, minor and patch version (NVIDIA's answer in NVIDIA/TensorRT#3073, used by autoware
``tensorrt_common.hpp`` as ``TRT_MAJOR_IDX = 24``); that layout is not documented, so the version read
there only enriches messages and is never a reason to refuse an engine.

``tensorrt`` and ``cuda.bindings`` are imported inside functions: importing this module needs neither.
Every TensorRT name the runner touches is declared with :func:`uses` on the method that touches it;
``RUNTIME_API_USED`` is their union, checked against each supported TensorRT release's Python API by
``tests/test_trt_api_conformance.py``. ``CUDART_API_USED`` lists the cuda-python runtime calls.
"""

from __future__ import annotations

import ctypes
import json
import struct
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RftrtError

__all__ = [
    "PLAN_MAGIC",
    "PlanHeader",
    "read_plan_header",
    "check_plan_file",
    "uses",
    "api_names",
    "import_tensorrt",
    "tensorrt_logger",
    "installed_tensorrt_version",
    "CUDART_API_USED",
    "RUNTIME_API_USED",
    "cuda_device_count",
    "gpu_info",
    "Stream",
    "DeviceBuffer",
    "PinnedBuffer",
    "CudaGraph",
    "TensorInfo",
    "EngineRunner",
    "check_batch",
]

PLAN_MAGIC = b"ftrt"
_VERSION_OFFSET = 24
_SNIFF_BYTES = 1 << 16


# --- the plan header (no TensorRT, no GPU) ------------------------------------------------------


@dataclass(frozen=True)
class PlanHeader:
    """What the first bytes of a TensorRT plan say."""

    size: int
    #: (major, minor, patch) of the TensorRT that wrote it, from bytes 24..26; None if implausible
    version: tuple[int, int, int] | None

    @property
    def version_text(self) -> str | None:
        return None if self.version is None else ".".join(map(str, self.version))


def _hex(data: bytes) -> str:
    return " ".join(f"{b:02x}" for b in data)


def _prefix_hint(data: bytes, name: str) -> str:
    """Why ``data`` is not a plan, as specifically as the bytes allow."""
    if len(data) >= 8:
        (length,) = struct.unpack("<I", data[:4])
        start = 4 + length
        if 0 < length and data[start : start + 4] == PLAN_MAGIC:
            try:
                json.loads(data[4:start].decode("utf-8"))
                what = "a 4-byte length and JSON metadata (the Ultralytics layout)"
            except (UnicodeDecodeError, ValueError):
                what = "a 4-byte length and metadata"
            return (
                f"{name} has {start} bytes in front of the TensorRT plan: {what}; TensorRT and trtexec "
                f"read only a plain plan: cut the first {start} bytes off, or rebuild with rf-build, which "
                "keeps metadata in a sidecar <engine>.json"
            )
    if data[:1] == b"\x08" and (b"onnx" in data[:256].lower() or b"pytorch" in data[:256]):
        return f"{name} looks like an ONNX model, not a TensorRT plan: build an engine from the bundle with rf-build first"
    found = data.find(PLAN_MAGIC, 1)
    if found > 0:
        return (
            f"{name} has {found} bytes in front of the TensorRT plan (its magic tag {PLAN_MAGIC.decode()!r} "
            f"is at byte {found}, not 0); TensorRT reads only a plain plan: cut the first {found} bytes off, "
            "or rebuild with rf-build"
        )
    stripped = data.lstrip()
    if stripped[:1] in (b"{", b"["):
        return f"{name} is JSON, not a TensorRT plan (an engine's sidecar is <engine>.json; pass the engine itself)"
    return (
        f"{name} is not a TensorRT plan: it does not start with the magic tag {PLAN_MAGIC.decode()!r} "
        f"(first bytes: {_hex(data[:8]) or 'none, the file is empty'})"
    )


def read_plan_header(data: bytes, name: str = "the engine", size: int | None = None) -> PlanHeader:
    """Check that ``data`` (a plan's first bytes, or all of it) is a plain TensorRT plan.

    Raises :class:`RftrtError` naming what is there instead: metadata in front of the plan (with the
    number of bytes to cut), a JSON file, an ONNX model, an empty or foreign file.
    """
    size = len(data) if size is None else size
    if data[:4] != PLAN_MAGIC:
        raise RftrtError(_prefix_hint(bytes(data[:_SNIFF_BYTES]), name))
    if size < 32:
        raise RftrtError(f"{name} starts like a TensorRT plan but has only {size} bytes: it is truncated; rebuild it")
    major, minor, patch = data[_VERSION_OFFSET], data[_VERSION_OFFSET + 1], data[_VERSION_OFFSET + 2]
    plausible = 7 <= major <= 30 and minor < 100 and patch < 100
    return PlanHeader(size=size, version=(major, minor, patch) if plausible else None)


def check_plan_file(path: Path) -> PlanHeader:
    """:func:`read_plan_header` on a file (reads its first 64 KiB)."""
    path = Path(path)
    if not path.is_file():
        raise RftrtError(f"{path} does not exist or is not a file; pass the engine rf-build wrote")
    with open(path, "rb") as f:
        head = f.read(_SNIFF_BYTES)
    return read_plan_header(head, str(path), size=path.stat().st_size)


# --- declaring the TensorRT names each function touches --------------------------------------


def uses(*names: str, calls: Iterable[Callable[..., Any]] = ()) -> Callable:
    """Declare the TensorRT names a function touches (``"Class.member"``, ``"Enum.MEMBER"``, ``"Class"``).

    ``calls`` lists the functions with their own declarations that this one calls; :func:`api_names`
    follows them. tests/test_trt_api_conformance.py reads each declaration, checks it against the
    Python API of every TensorRT release the function runs with, and parses the function's source to
    check the declaration is complete.
    """

    def mark(fn: Callable) -> Callable:
        fn.__trt_api__ = tuple(names)  # type: ignore[attr-defined]
        fn.__trt_calls__ = tuple(calls)  # type: ignore[attr-defined]
        return fn

    return mark


def api_names(functions: Iterable[Callable]) -> tuple[str, ...]:
    """The sorted union of the names declared by ``functions`` and, transitively, by what they call."""
    seen: set[int] = set()
    names: set[str] = set()
    stack = list(functions)
    while stack:
        fn = stack.pop()
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        names.update(getattr(fn, "__trt_api__", ()))
        stack.extend(getattr(fn, "__trt_calls__", ()))
    return tuple(sorted(names))


# --- TensorRT import and logger -----------------------------------------------------------------


def import_tensorrt(purpose: str, where: str = "the target's Orin or L40") -> Any:
    """``import tensorrt``, or a one-line :class:`RftrtError` saying ``purpose`` runs on the device."""
    try:
        import tensorrt as trt
    except ModuleNotFoundError:
        raise RftrtError(
            f"TensorRT is not installed here: {purpose} runs on the device ({where}, where TensorRT's "
            "Python package comes with the platform); copy the bundle there"
        ) from None
    except (ImportError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RftrtError(f"TensorRT's Python package is here but does not load ({first}); check the TensorRT install") from None
    return trt


def installed_tensorrt_version(trt: Any) -> str:
    return str(getattr(trt, "__version__", "unknown"))


@uses(
    "ILogger",
    "ILogger.log",
    "ILogger.Severity.INTERNAL_ERROR",
    "ILogger.Severity.ERROR",
    "ILogger.Severity.WARNING",
    "ILogger.Severity.INFO",
    "ILogger.Severity.VERBOSE",
)
def tensorrt_logger(trt: Any, *, verbose: bool = False, echo: Callable[[str], None] | None = None) -> Any:
    """A ``trt.ILogger`` that prints warnings and errors (everything with ``verbose``), keeps the errors
    for the one-line message when a step fails, and counts the ``[DlaLayer]``/``[GpuLayer]`` lines
    TensorRT logs after a DLA build.

    The class is made here because ``tensorrt`` is only imported on the device.
    """
    echo = echo or (lambda line: print(line, file=sys.stderr))
    severity = trt.ILogger.Severity
    labels = {
        int(severity.INTERNAL_ERROR): "internal error",
        int(severity.ERROR): "error",
        int(severity.WARNING): "warning",
        int(severity.INFO): "info",
        int(severity.VERBOSE): "verbose",
    }
    threshold = int(severity.VERBOSE) if verbose else int(severity.WARNING)
    error_level = int(severity.ERROR)

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []
            self.dla_layers = 0
            self.gpu_layers = 0

        def log(self, level: Any, msg: str) -> None:
            level = int(level)
            if level <= error_level:
                self.errors.append(msg)
            if "[DlaLayer]" in msg:
                self.dla_layers += 1
            elif "[GpuLayer]" in msg:
                self.gpu_layers += 1
            if level <= threshold:
                echo(f"[TensorRT] {labels.get(level, 'log')}: {msg}")

    return _Logger()


# --- CUDA (cuda-python) -------------------------------------------------------------------------

#: Every cuda-python runtime function this module calls (tests check them against the installed
#: cuda-python, and that the module calls nothing else).
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
)


def _cudart() -> Any:
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        raise RftrtError(
            "cuda-python is not installed: the engine runtime needs it (pip install 'rftrt[device]' or pip install cuda-python)"
        ) from None
    return cudart


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


# --- TensorRT engine runner ---------------------------------------------------------------------


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
RUNTIME_API_USED: tuple[str, ...] = api_names(fn for fn in vars(EngineRunner).values() if hasattr(fn, "__trt_api__"))
