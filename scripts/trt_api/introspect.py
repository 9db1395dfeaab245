"""Import ``tensorrt`` against stub TensorRT libraries in a child process and walk it with ``dir()``.

1. The extension's undefined dynamic symbols that the running system cannot resolve (checked with
   ``ctypes`` in the importing interpreter: ``RESOLVE_CHILD``) are only TensorRT's C entry points
   such as ``createInferBuilder_INTERNAL``, ``getPluginRegistry``, ``createNvOnnxParser_INTERNAL``.
2. A stub library (``elf.write_stub_library``) defining exactly those symbols as trapping functions
   is written under each TensorRT library name next to the extension (its RPATH/RUNPATH is
   ``$ORIGIN``; ``LD_LIBRARY_PATH`` is also set).
3. ``INTROSPECT_CHILD`` imports ``tensorrt`` with ``python -I``, so no site-packages TensorRT can
   interfere (it also checks ``tensorrt.__file__``), and walks the module:

   * ``classes``: every public class, with every public attribute name ``dir(cls)`` gives
     (methods, properties, nested types; inherited members included, names starting with ``_``
     left out).  ``bases`` lists each class's direct bases that are themselves TensorRT classes.
   * ``enums``: every pybind11 (or Python) enum, with the keys of its ``__members__``; nested
     enums are named ``Outer.Inner`` (e.g. ``ILogger.Severity``).  Enums are not repeated under
     ``classes``.
   * ``functions``: public module-level callables that are not classes.
   * ``constants``: other public module-level values (e.g. ``float16``).
     ``__version__`` is returned as ``version``.

   Modules imported by ``__init__.py`` (``os``, ``ctypes`` ...) are skipped; so is the
   ``tensorrt.plugin`` sub-package (not imported by ``__init__``).

Reliability: registering classes, methods, properties and enum values in a pybind11 module only
stores Python objects.  Because every stub traps, a successful import proves that the module
initialiser made no call into TensorRT at all, so the stubs cannot have influenced what got
registered: what ``dir()`` sees is exactly what a user of that release sees after
``import tensorrt`` - including the names ``__init__.py`` adds in Python (``volume``, ``nptype``,
``common_enter``, ``DataType.itemsize``, ``Logger.Severity`` ...).  If a release did call into
TensorRT at import time the child would die and the extraction stops with an error; it never
writes partial data.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from .elf import elf_needed_and_undefined, write_stub_library
from .log import log

# stdin: JSON list of symbol names; stdout: JSON list of those the process cannot resolve.
RESOLVE_CHILD = r"""
import ctypes, json, sys
for lib in ("libstdc++.so.6", "libgcc_s.so.1", "libm.so.6", "libc.so.6", "libdl.so.2",
            "libpthread.so.0", "librt.so.1"):
    try:
        ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
    except OSError:
        pass
proc = ctypes.CDLL(None)
missing = []
for name in json.load(sys.stdin):
    try:
        getattr(proc, name)
    except AttributeError:
        missing.append(name)
json.dump(missing, sys.stdout)
"""

# argv[1]: the directory holding package tensorrt; stdout: JSON of version, classes, enums, bases,
# functions and constants.
INTROSPECT_CHILD = r"""
import enum, inspect, json, os, sys, types
site = sys.argv[1]
sys.path.insert(0, site)
import tensorrt as trt
assert os.path.dirname(os.path.abspath(trt.__file__)) == os.path.join(site, "tensorrt"), trt.__file__

def is_enum(cls):
    if isinstance(cls, type) and issubclass(cls, enum.Enum):
        return True
    # pybind11 py::enum_: a class whose __members__ is a dict of name -> instance of the class
    members = getattr(cls, "__members__", None)
    return (isinstance(members, dict) and bool(members)
            and all(isinstance(m, cls) for m in members.values()))

classes, enums, bases, functions, constants = {}, {}, {}, [], []
known_types = {}

def walk(cls, qualname):
    if id(cls) in known_types:  # alias of a type already recorded (e.g. Logger.Severity)
        if is_enum(cls):
            enums[qualname] = enums[known_types[id(cls)]]
        return
    known_types[id(cls)] = qualname
    if is_enum(cls):
        enums[qualname] = sorted(cls.__members__)
        return
    names = sorted(n for n in dir(cls) if not n.startswith("_"))
    classes[qualname] = names
    for n in names:
        try:
            attr = inspect.getattr_static(cls, n)
        except AttributeError:
            continue
        if isinstance(attr, type) and attr.__module__.split(".")[0] == "tensorrt":
            walk(attr, qualname + "." + n)

top_names = sorted(n for n in dir(trt) if not n.startswith("_"))
for n in top_names:
    v = getattr(trt, n)
    if isinstance(v, types.ModuleType):
        continue
    if isinstance(v, type):
        walk(v, n)
    elif callable(v):
        functions.append(n)
    else:
        constants.append(n)

for q in list(classes):
    cls = eval("trt." + q)
    bases[q] = sorted(b.__name__ if b.__qualname__ == b.__name__ else b.__qualname__
                      for b in cls.__bases__
                      if b.__module__.split(".")[0] == "tensorrt" and b.__name__ != "pybind11_object")
bases = {k: v for k, v in bases.items() if v}
json.dump({"version": getattr(trt, "__version__", None), "classes": classes, "enums": enums,
           "bases": bases, "functions": sorted(functions), "constants": sorted(constants)},
          sys.stdout)
"""


def run_child(python: str, code: str, args: list[str], env: dict, stdin: str | None = None) -> str:
    """Run `code` with ``python -I``; its stdout, or exit with its stderr if it fails."""
    res = subprocess.run([python, "-I", "-c", code, *args], input=stdin, capture_output=True,
                         text=True, env=env)
    if res.returncode != 0:
        raise SystemExit(f"child process failed (exit {res.returncode}):\n{res.stderr[-4000:]}")
    return res.stdout


def stub_tensorrt_libraries(python: str, so: Path, env: dict) -> None:
    """Write a trapping stub, under each TensorRT library name `so` needs, for every symbol of `so`
    that `python` cannot resolve."""
    needed, undefined = elf_needed_and_undefined(so)
    missing = json.loads(run_child(python, RESOLVE_CHILD, [], env, stdin=json.dumps(undefined)))
    trt_libs = [n for n in needed if n.startswith("libnv")]
    log(f"  TensorRT libraries needed: {trt_libs}; {len(missing)} symbols to stub: {missing}")
    for lib in trt_libs:
        write_stub_library(so.parent / lib, lib, missing)


def introspect(python: str, so: Path, site: Path) -> dict:
    """Import package ``tensorrt`` (unpacked under `site`, extension `so`) in a child `python`
    against stub TensorRT libraries; its version, classes, enums, bases, functions and constants."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    stub_tensorrt_libraries(python, so, env)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        [str(so.parent)] + ([env["LD_LIBRARY_PATH"]] if env.get("LD_LIBRARY_PATH") else []))
    env["PYTHONWARNINGS"] = "ignore"
    return json.loads(run_child(python, INTROSPECT_CHILD, [str(site)], env))
