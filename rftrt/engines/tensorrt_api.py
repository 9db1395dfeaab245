"""TensorRT's Python API as rftrt meets it: importing ``tensorrt`` on the device, its version, a
logger, and the declarations of the TensorRT names each function touches.

A function that touches TensorRT says which names with :func:`uses`; :func:`api_names` collects
them (the builder's ``API_USED`` per path, the runner's ``RUNNER_API_USED``).
``tests/test_trt_api_conformance.py`` checks each declaration against the Python API of every
supported TensorRT release and parses the function's source to check it is complete; on the device,
:func:`missing_api` checks them against the installed ``tensorrt``. ``tensorrt`` is imported inside
functions only: importing this module does not need it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import RftrtError

__all__ = ["uses", "api_names", "missing_api", "import_tensorrt", "installed_tensorrt_version", "tensorrt_logger"]


# --- the TensorRT names each function touches: declared, collected, checked on the device ------


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


def missing_api(trt: Any, names: Iterable[str]) -> list[str]:
    """The names (``"Class.member"``, ``"Enum.MEMBER"``) that the installed ``tensorrt`` module lacks."""
    missing = []
    for name in names:
        obj = trt
        for part in name.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                missing.append(name)
                break
    return missing


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
    """The imported ``tensorrt`` module's version string ("unknown" if it has none)."""
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
