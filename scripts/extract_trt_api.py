#!/usr/bin/env python3
"""Extract the public Python API names of TensorRT from its PyPI "bindings" wheels.

Output: one small JSON file per TensorRT version, ``trt-<version>.json``::

    {
      "tensorrt_version": "10.3.0",
      "wheel": "tensorrt_cu12_bindings-10.3.0-cp311-none-manylinux_2_17_x86_64.whl",
      "wheel_sha256": "...",
      "python": "3.11",
      "method": "...",                       # one line saying how the names were obtained
      "classes":   {"IBuilderConfig": ["add_optimization_profile", ...], ...},
      "bases":     {"IConvolutionLayer": ["ILayer"], ...},
      "enums":     {"BuilderFlag": ["FP16", ...], "ILogger.Severity": [...], ...},
      "functions": ["get_plugin_registry", "init_libnvinfer_plugins", ...],
      "constants": ["bfloat16", "float16", "float32", ...]
    }

The files are used by the project's tests as API-conformance data: code that
calls ``trt.IBuilderConfig.set_memory_pool_limit`` or uses
``trt.BuilderFlag.FP16`` can be checked against what each TensorRT release
actually exposes, without TensorRT being installed.

Usage (re-run from the repository root; needs network access to PyPI)::

    python3 scripts/extract_trt_api.py --out rftrt/engines/data/trt_api
    python3 scripts/extract_trt_api.py --out out/trt_api tensorrt-cu12-bindings==10.8.0.43
    python3 scripts/extract_trt_api.py --check-only --out rftrt/engines/data/trt_api

Standard library only; ``pip`` is called as a subprocess to download wheels.

How the names are obtained
--------------------------
The ``tensorrt*-bindings`` wheels hold the pybind11 extension
``tensorrt_bindings/tensorrt.so`` plus a small ``__init__.py`` (10.1x/11.x
also a ``plugin/`` sub-package); none of 8.6.1, 10.3.0, 10.16.1.11 and
11.4.0.106 ships ``.pyi`` stubs (the script notes it if a wheel does, but
still reads the real module).  The extension
is linked against the TensorRT runtime libraries (``libnvinfer.so.N``,
``libnvonnxparser.so.N``, ``libnvinfer_plugin.so.N`` and for 8.6
``libnvparsers.so.8``), which are not in the wheel and are large.

Statically scanning the ``.so`` for strings finds every name, but cannot say
reliably which class a method or which enum a member belongs to: pybind11
builds signatures and the ``Members:`` blocks of enum docstrings at import
time, and the string literals are not grouped by class in ``.rodata``.  So
this script does not guess; it imports the real module:

1. ``pip download --no-deps --only-binary=:all:`` the wheel for the Python
   version of the interpreter that will import it (``--python``, default: this
   one; all manylinux/linux x86-64 platform tags in ``PLATFORMS`` are offered
   to pip at once), and records its SHA-256.
2. Unpacks ``tensorrt_bindings/`` from the wheel as a package named
   ``tensorrt`` in a temporary directory.
3. Reads the extension's ELF dynamic section with a small pure-Python ELF
   reader: the ``DT_NEEDED`` TensorRT libraries and the undefined,
   non-weak dynamic symbols.  The symbols the running system cannot resolve
   (checked with ``ctypes`` in the importing interpreter: these are only
   TensorRT's C entry points such as ``createInferBuilder_INTERNAL``,
   ``getPluginRegistry``, ``createNvOnnxParser_INTERNAL``) are collected.
4. Writes, in pure Python, minimal x86-64 ELF shared objects named like the
   missing TensorRT libraries, each defining those symbols as a function
   whose only instruction is ``ud2`` (any call kills the process with
   SIGILL), next to the extension (its RPATH/RUNPATH is ``$ORIGIN``;
   ``LD_LIBRARY_PATH`` is also set).  No compiler is needed.
5. Imports ``tensorrt`` in a child process (``python -I``, so no
   site-packages TensorRT can interfere; the script checks
   ``tensorrt.__file__``) and walks the module with ``dir()``:

   * ``classes``: every public class, with every public attribute name
     ``dir(cls)`` gives (methods, properties, nested types; inherited members
     included, names starting with ``_`` left out).  ``bases`` lists each
     class's direct bases that are themselves TensorRT classes.
   * ``enums``: every pybind11 (or Python) enum, with the keys of its
     ``__members__``; nested enums are named ``Outer.Inner``
     (e.g. ``ILogger.Severity``).  Enums are not repeated under ``classes``.
   * ``functions``: public module-level callables that are not classes.
   * ``constants``: other public module-level values (e.g. ``float16``).
     ``__version__`` is stored as ``tensorrt_version``.

   Modules imported by ``__init__.py`` (``os``, ``ctypes`` ...) are skipped;
   so is the ``tensorrt.plugin`` sub-package (not imported by ``__init__``).

Reliability: registering classes, methods, properties and enum values in a
pybind11 module only stores Python objects.  Because every stub traps, a
successful import proves that the module initialiser made no call into
TensorRT at all, so the stubs cannot have influenced what got registered:
what ``dir()`` sees is exactly what a user of that release sees after
``import tensorrt`` - including the names ``__init__.py`` adds in Python
(``volume``, ``nptype``, ``common_enter``, ``DataType.itemsize``,
``Logger.Severity`` ...; module-level loop variables that ``__init__.py``
leaks, ``attr`` and ``value``, are dropped).  If a release did call into
TensorRT at import time the child would die and the script stops with an
error; it never writes partial data.
As a cross-check every extracted name that is not added by ``__init__.py``
is looked up among the NUL-terminated strings of the ``.so`` (it must occur
there, since pybind11 registers names from C string literals), and a table of
known facts (``KNOWN`` below: e.g. ``BuilderFlag.FP16`` exists in 8.6/10.x
and not in 11.x, ``IBuilderConfig.max_workspace_size`` only in 8.6,
``IExecutionContext.execute_async_v3`` in 8.6/10.x/11.x) is verified; any
failure stops the script before anything is written.

Limitations: needs Linux x86-64 with glibc and a CPython version for which
the wheel exists (``tensorrt-bindings==8.6.1`` has no cp312 wheel; 3.11 is
the newest that all four recorded releases have; use ``--python`` to point at
such an interpreter).  Names that exist only on other platforms or in other
build flavours (e.g. Windows-only code paths) are not seen.  Only names are recorded, not
signatures or argument names.  Output is deterministic (sorted keys and
lists); re-running with the same interpreter version gives byte-identical
files (the ``wheel``/``wheel_sha256`` fields name the per-Python-version
wheel, so they differ if another Python version is used).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

# The releases recorded in rftrt/engines/data/trt_api (pinned so that a re-run
# reproduces the checked-in files; pass other specs on the command line).
DEFAULT_SPECS = [
    "tensorrt-bindings==8.6.1",  # TensorRT 8.6 GA (only 8.6.x on PyPI)
    "tensorrt-cu12-bindings==10.3.0",  # newest (only) 10.3.x on PyPI
    "tensorrt-cu12-bindings==10.16.1.11",  # newest 10.x on PyPI
    "tensorrt-cu13-bindings==11.4.0.106",  # newest 11.x on PyPI
]

PLATFORMS = [
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux_2_28_x86_64",
    "manylinux_2_31_x86_64",
    "manylinux_2_34_x86_64",
    "manylinux_2_35_x86_64",
    "linux_x86_64",
]

# Known facts (from TensorRT release notes / API docs) checked after
# extraction: {name: {major_version: expected_presence}}.  A name is
# "Class.member", "Enum.MEMBER", "Class", "Enum" or "function".
KNOWN: dict[str, dict[int, bool]] = {
    # classes / interfaces
    "Builder": {8: True, 10: True, 11: True},
    "OnnxParser": {8: True, 10: True, 11: True},
    "EngineInspector": {8: True, 10: True, 11: True},
    "ITimingCache": {8: True, 10: True, 11: True},
    "TimingCache": {8: False, 10: False, 11: False},  # the Python class is ITimingCache
    # Not bound in 8.6: the 8.6.1 .so has no "IProgressMonitor"/"progress_monitor" string at all.
    "IProgressMonitor": {8: False, 10: True, 11: True},
    "IInt8EntropyCalibrator2": {8: True, 10: True},
    "IStreamReader": {8: False, 10: True},
    # Builder / parser
    "Builder.build_serialized_network": {8: True, 10: True, 11: True},
    "Builder.build_engine": {8: True, 10: False, 11: False},
    "Builder.create_network": {8: True, 10: True, 11: True},
    "Builder.create_builder_config": {8: True, 10: True, 11: True},
    "Builder.create_optimization_profile": {8: True, 10: True, 11: True},
    "Builder.max_batch_size": {8: True, 10: False, 11: False},
    "OnnxParser.parse": {8: True, 10: True, 11: True},
    "OnnxParser.parse_from_file": {8: True, 10: True, 11: True},
    # builder config
    "IBuilderConfig.set_memory_pool_limit": {8: True, 10: True, 11: True},
    "IBuilderConfig.max_workspace_size": {8: True, 10: False, 11: False},
    "IBuilderConfig.set_flag": {8: True, 10: True, 11: True},
    "IBuilderConfig.create_timing_cache": {8: True, 10: True, 11: True},
    "IBuilderConfig.set_timing_cache": {8: True, 10: True, 11: True},
    "IBuilderConfig.builder_optimization_level": {8: True, 10: True, 11: True},
    "IBuilderConfig.progress_monitor": {8: False, 10: True, 11: True},
    "IBuilderConfig.add_optimization_profile": {8: True, 10: True, 11: True},
    "IBuilderConfig.profiling_verbosity": {8: True, 10: True, 11: True},
    "IBuilderConfig.default_device_type": {8: True, 10: True, 11: True},
    "IBuilderConfig.DLA_core": {8: True, 10: True, 11: True},
    # 11.x removals below are from NVIDIA's "Removed Python APIs and Replacements"
    # page of the TensorRT 10.x -> 11.x migration guide.
    "IBuilderConfig.int8_calibrator": {8: True, 10: True, 11: False},
    "IBuilderConfig.set_calibration_profile": {8: True, 10: True, 11: False},
    "IBuilderConfig.get_calibration_profile": {8: True, 10: True, 11: False},
    "IBuilderConfig.set_quantization_flag": {8: True, 10: True, 11: False},
    "IBuilderConfig.quantization_flags": {8: True, 10: True, 11: False},
    "ICudaEngine.device_memory_size": {8: True, 10: True, 11: False},
    "IBuilderConfig.create_engine_inspector": {8: False, 10: False, 11: False},
    "MemoryPoolType.WORKSPACE": {8: True, 10: True, 11: True},
    # flags
    "BuilderFlag.FP16": {8: True, 10: True, 11: False},
    "BuilderFlag.INT8": {8: True, 10: True, 11: False},
    "BuilderFlag.FP8": {8: True, 10: True, 11: False},
    "BuilderFlag.BF16": {8: False, 10: True, 11: False},
    "BuilderFlag.INT4": {8: False, 10: True, 11: False},
    # The 11.4.1 migration guide corrects earlier pages: kDIRECT_IO is
    # "deprecated, not removed" in 11.x.
    "BuilderFlag.DIRECT_IO": {8: True, 10: True, 11: True},
    "BuilderFlag.TF32": {8: True, 10: True, 11: True},
    "BuilderFlag.GPU_FALLBACK": {8: True, 10: True, 11: True},
    "BuilderFlag.OBEY_PRECISION_CONSTRAINTS": {8: True, 10: True, 11: False},
    "BuilderFlag.PREFER_PRECISION_CONSTRAINTS": {8: True, 10: True, 11: False},
    "BuilderFlag.STRICT_TYPES": {8: True, 10: False, 11: False},
    "NetworkDefinitionCreationFlag.EXPLICIT_BATCH": {8: True, 10: True},
    "NetworkDefinitionCreationFlag.STRONGLY_TYPED": {8: False, 10: True},
    "DeviceType.DLA": {8: True, 10: True, 11: True},
    "DeviceType.GPU": {8: True, 10: True, 11: True},
    "LayerInformationFormat.JSON": {8: True, 10: True, 11: True},
    "ProfilingVerbosity.DETAILED": {8: True, 10: True, 11: True},
    # engine / context / runtime
    "ICudaEngine.num_io_tensors": {8: True, 10: True, 11: True},
    "ICudaEngine.get_tensor_name": {8: True, 10: True, 11: True},
    "ICudaEngine.get_tensor_mode": {8: True, 10: True, 11: True},
    "ICudaEngine.get_tensor_shape": {8: True, 10: True, 11: True},
    "ICudaEngine.get_tensor_dtype": {8: True, 10: True, 11: True},
    "ICudaEngine.serialize": {8: True, 10: True, 11: True},
    "ICudaEngine.create_execution_context": {8: True, 10: True, 11: True},
    "ICudaEngine.create_engine_inspector": {8: True, 10: True, 11: True},
    "ICudaEngine.num_bindings": {8: True, 10: False, 11: False},
    "ICudaEngine.get_binding_shape": {8: True, 10: False, 11: False},
    "IExecutionContext.execute_async_v3": {8: True, 10: True, 11: True},
    "IExecutionContext.execute_async_v2": {8: True, 10: False, 11: False},
    "IExecutionContext.execute_v2": {8: True, 10: True, 11: True},
    "IExecutionContext.set_input_shape": {8: True, 10: True, 11: True},
    "IExecutionContext.set_tensor_address": {8: True, 10: True, 11: True},
    "IExecutionContext.set_binding_shape": {8: True, 10: False, 11: False},
    "IExecutionContext.set_optimization_profile_async": {8: True, 10: True, 11: True},
    "Runtime.deserialize_cuda_engine": {8: True, 10: True, 11: True},
    "TensorIOMode.INPUT": {8: True, 10: True, 11: True},
    # network / layers
    "ILayer.precision": {8: True, 10: True},
    "ILayer.set_output_type": {8: True, 10: True},
    "ILayer.get_output_type": {8: True, 10: True},
    "ILayer.name": {8: True, 10: True, 11: True},
    "ILayer.type": {8: True, 10: True, 11: True},
    "INetworkDefinition.get_layer": {8: True, 10: True, 11: True},
    "INetworkDefinition.num_layers": {8: True, 10: True, 11: True},
    "INetworkDefinition.mark_output": {8: True, 10: True, 11: True},
    "IOptimizationProfile.set_shape": {8: True, 10: True, 11: True},
    "EngineInspector.get_engine_information": {8: True, 10: True, 11: True},
    "DataType.FLOAT": {8: True, 10: True, 11: True},
    "DataType.HALF": {8: True, 10: True, 11: True},
    "DataType.INT8": {8: True, 10: True, 11: True},
    "DataType.BF16": {8: False, 10: True, 11: True},
    "DataType.INT64": {8: False, 10: True, 11: True},
    "ILogger.Severity.WARNING": {8: True, 10: True, 11: True},
    # module level
    "get_plugin_registry": {8: True, 10: True, 11: True},
    "init_libnvinfer_plugins": {8: True, 10: True, 11: True},
    "volume": {8: True, 10: True, 11: True},
    "nptype": {8: True, 10: True, 11: True},
    "float16": {8: True, 10: True, 11: True},
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Wheel download
# --------------------------------------------------------------------------


def python_version_of(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def download_wheel(spec: str, dest: Path, pyver: str) -> Path:
    """pip-download the binary wheel for `spec` (no dependencies) into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps",
        "--only-binary=:all:", "--python-version", pyver,
        "--implementation", "cp", "--disable-pip-version-check",
        "-d", str(dest),
    ]
    for plat in PLATFORMS:
        cmd += ["--platform", plat]
    cmd.append(spec)
    res = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("*.whl"))
    if res.returncode != 0 or len(wheels) != 1:
        raise SystemExit(
            f"pip could not download a cp{pyver.replace('.', '')} linux x86-64 wheel for "
            f"{spec!r} (exit {res.returncode}); try --python with another interpreter "
            f"version.\n{res.stdout}\n{res.stderr}"
        )
    return wheels[0]


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def unpack_bindings(wheel: Path, site: Path) -> Path:
    """Unpack the wheel's `tensorrt_bindings/` (or `tensorrt/`) as package `tensorrt`."""
    pkg = site / "tensorrt"
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        if any(n.endswith(".pyi") for n in names):
            log(f"  note: wheel ships .pyi stubs: {[n for n in names if n.endswith('.pyi')]}")
        tops = {n.split("/", 1)[0] for n in names if "/" in n and ".dist-info" not in n.split("/", 1)[0]}
        top = "tensorrt_bindings" if "tensorrt_bindings" in tops else "tensorrt"
        if top not in tops:
            raise SystemExit(f"{wheel.name}: no tensorrt_bindings/ or tensorrt/ package in {sorted(tops)}")
        for n in names:
            if not n.startswith(top + "/") or n.endswith("/"):
                continue
            target = pkg / n[len(top) + 1:]
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(n) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
    sos = sorted(pkg.glob("tensorrt*.so"))
    if len(sos) != 1:
        raise SystemExit(f"{wheel.name}: expected one tensorrt*.so extension, found {sos}")
    return sos[0]


# --------------------------------------------------------------------------
# Minimal ELF64 reading / writing (x86-64, little endian)
# --------------------------------------------------------------------------

SHT_DYNSYM, SHT_DYNAMIC = 11, 6
DT_NULL, DT_NEEDED, DT_HASH, DT_STRTAB, DT_SYMTAB, DT_STRSZ, DT_SYMENT, DT_SONAME = 0, 1, 4, 5, 6, 10, 11, 14
STB_GLOBAL, STB_WEAK, STT_FUNC = 1, 2, 2


def _cstr(buf: bytes, off: int) -> str:
    end = buf.index(b"\0", off)
    return buf[off:end].decode("ascii", "replace")


def elf_needed_and_undefined(path: Path) -> tuple[list[str], list[str]]:
    """Return (DT_NEEDED names, undefined non-weak dynamic symbol names)."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise SystemExit(f"{path.name}: not a little-endian ELF64 file")
    (e_shoff,) = struct.unpack_from("<Q", data, 0x28)
    e_shentsize, e_shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = []
    for i in range(e_shnum):
        sh = struct.unpack_from("<IIQQQQIIQQ", data, e_shoff + i * e_shentsize)
        sections.append(sh)  # name,type,flags,addr,offset,size,link,info,align,entsize
    needed: list[str] = []
    undefined: list[str] = []
    for sh in sections:
        if sh[1] == SHT_DYNSYM:
            strtab = sections[sh[6]]
            strs = data[strtab[4]:strtab[4] + strtab[5]]
            for k in range(1, sh[5] // 24):
                st_name, st_info, _other, st_shndx, _v, _s = struct.unpack_from("<IBBHQQ", data, sh[4] + k * 24)
                if st_shndx == 0 and (st_info >> 4) == STB_GLOBAL:
                    undefined.append(_cstr(strs, st_name))
        elif sh[1] == SHT_DYNAMIC:
            strtab = sections[sh[6]]
            strs = data[strtab[4]:strtab[4] + strtab[5]]
            for k in range(sh[5] // 16):
                tag, val = struct.unpack_from("<qQ", data, sh[4] + k * 16)
                if tag == DT_NULL:
                    break
                if tag == DT_NEEDED:
                    needed.append(_cstr(strs, val))
    return needed, sorted(set(undefined))


def _elf_hash(name: bytes) -> int:
    h = 0
    for c in name:
        h = ((h << 4) + c) & 0xFFFFFFFF
        g = h & 0xF0000000
        if g:
            h ^= g >> 24
        h &= ~g & 0xFFFFFFFF
    return h


def write_stub_library(path: Path, soname: str, symbols: list[str]) -> None:
    """Write a minimal x86-64 ELF shared object that defines every name in
    `symbols` as a function whose body is the trapping instruction ``ud2``
    (no section headers are needed by the dynamic loader).  Layout: page 0 (R+X) = ELF header, program headers,
    .dynsym, .dynstr, .hash, code; page 1 (RW) = .dynamic."""
    ehdr_size, phdr_size, n_ph = 64, 56, 4
    strtab = bytearray(b"\0")

    def add_str(s: str) -> int:
        off = len(strtab)
        strtab.extend(s.encode("ascii") + b"\0")
        return off

    soname_off = add_str(soname)
    name_offs = [add_str(s) for s in symbols]
    nsyms = len(symbols) + 1
    off_dynsym = ehdr_size + n_ph * phdr_size
    off_dynstr = off_dynsym + 24 * nsyms
    off_hash = (off_dynstr + len(strtab) + 7) & ~7
    nbucket = max(1, len(symbols))
    buckets = [0] * nbucket
    chains = [0] * nsyms
    for idx, s in enumerate(symbols, start=1):
        b = _elf_hash(s.encode("ascii")) % nbucket
        chains[idx] = buckets[b]
        buckets[b] = idx
    hash_bytes = struct.pack(f"<II{nbucket}I{nsyms}I", nbucket, nsyms, *buckets, *chains)
    off_text = (off_hash + len(hash_bytes) + 15) & ~15
    code = b"\x0f\x0b"  # ud2: any call traps (SIGILL), so a successful import proves none was made
    end_text = off_text + len(code)
    page = 0x1000
    off_dyn = (end_text + page - 1) & ~(page - 1)
    dyn_entries = [
        (DT_SONAME, soname_off), (DT_HASH, off_hash), (DT_STRTAB, off_dynstr),
        (DT_SYMTAB, off_dynsym), (DT_STRSZ, len(strtab)), (DT_SYMENT, 24), (DT_NULL, 0),
    ]
    dyn_bytes = b"".join(struct.pack("<qQ", t, v) for t, v in dyn_entries)

    out = bytearray()
    out += b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    out += struct.pack("<HHIQQQIHHHHHH", 3, 62, 1, 0, ehdr_size, 0, 0,
                       ehdr_size, phdr_size, n_ph, 64, 0, 0)
    PT_LOAD, PT_DYNAMIC, PT_GNU_STACK = 1, 2, 0x6474E551
    PF_X, PF_W, PF_R = 1, 2, 4
    phdrs = [
        (PT_LOAD, PF_R | PF_X, 0, 0, 0, end_text, end_text, page),
        (PT_LOAD, PF_R | PF_W, off_dyn, off_dyn, off_dyn, len(dyn_bytes), len(dyn_bytes), page),
        (PT_DYNAMIC, PF_R | PF_W, off_dyn, off_dyn, off_dyn, len(dyn_bytes), len(dyn_bytes), 8),
        (PT_GNU_STACK, PF_R | PF_W, 0, 0, 0, 0, 0, 16),
    ]
    for ph in phdrs:
        out += struct.pack("<IIQQQQQQ", *ph)
    out += bytes(24)  # symbol 0
    for off in name_offs:
        out += struct.pack("<IBBHQQ", off, (STB_GLOBAL << 4) | STT_FUNC, 0, 1, off_text, len(code))
    assert len(out) == off_dynstr
    out += strtab
    out += bytes(off_hash - len(out)) + hash_bytes
    out += bytes(off_text - len(out)) + code
    out += bytes(off_dyn - len(out)) + dyn_bytes
    path.write_bytes(bytes(out))


def occurs_as_c_string(data: bytes, name: str) -> bool:
    """True if `name` occurs in `data` followed by a NUL byte.  (The linker
    merges string literals that are tails of longer ones, e.g. "INT8" may be
    stored only as the end of "kINT8", so no left boundary is required.)"""
    return (name.encode("ascii") + b"\0") in data


# --------------------------------------------------------------------------
# Child process: import and introspect
# --------------------------------------------------------------------------

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
    res = subprocess.run([python, "-I", "-c", code, *args], input=stdin, capture_output=True,
                         text=True, env=env)
    if res.returncode != 0:
        raise SystemExit(f"child process failed (exit {res.returncode}):\n{res.stderr[-4000:]}")
    return res.stdout


def extract(spec: str, python: str, pyver: str, workdir: Path) -> dict:
    log(f"== {spec}")
    wheel = download_wheel(spec, workdir / "wheel", pyver)
    digest = sha256_of(wheel)
    log(f"  wheel {wheel.name} sha256 {digest}")
    site = workdir / "site"
    so = unpack_bindings(wheel, site)
    needed, undefined = elf_needed_and_undefined(so)
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    missing = json.loads(run_child(python, RESOLVE_CHILD, [], env, stdin=json.dumps(undefined)))
    trt_libs = [n for n in needed if n.startswith("libnv")]
    log(f"  TensorRT libraries needed: {trt_libs}; {len(missing)} symbols to stub: {missing}")
    for lib in trt_libs:
        write_stub_library(so.parent / lib, lib, missing)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        [str(so.parent)] + ([env["LD_LIBRARY_PATH"]] if env.get("LD_LIBRARY_PATH") else []))
    env["PYTHONWARNINGS"] = "ignore"
    result = json.loads(run_child(python, INTROSPECT_CHILD, [str(site)], env))

    # Cross-check against the strings of the binary.
    so_bytes = so.read_bytes()
    init_text = (so.parent / "__init__.py").read_text()
    not_in_so = []
    all_names = set(result["functions"]) | set(result["constants"])
    for q, members in list(result["classes"].items()) + list(result["enums"].items()):
        all_names.add(q.split(".")[-1])
        all_names.update(members)
    for n in sorted(all_names):
        if not occurs_as_c_string(so_bytes, n) and not re.search(r"\b%s\b" % re.escape(n), init_text):
            not_in_so.append(n)
    if not_in_so:
        raise SystemExit(f"names neither in the .so strings nor in __init__.py: {not_in_so}")
    log(f"  cross-check: all {len(all_names)} distinct names occur in the .so strings or __init__.py")

    # Module-level loop variables that __init__.py leaks (``for attr, value in
    # ILogger.Severity.__members__.items()``) are not API; drop them.
    leaked = loop_only_names(init_text)
    result["constants"] = [n for n in result["constants"] if n not in leaked]
    result["functions"] = [n for n in result["functions"] if n not in leaked]

    version = result["version"]
    if not version:
        m = re.match(r"tensorrt[_a-z0-9]*-([0-9][^-]*)-", wheel.name)
        version = m.group(1)
    return {
        "tensorrt_version": version,
        "wheel": wheel.name,
        "wheel_sha256": digest,
        "python": pyver,
        "method": "import of the wheel's extension against generated stub TensorRT libraries; "
                  "names from dir()/__members__ (see scripts/extract_trt_api.py)",
        "classes": result["classes"],
        "bases": result["bases"],
        "enums": result["enums"],
        "functions": result["functions"],
        "constants": result["constants"],
    }


def loop_only_names(source: str) -> set[str]:
    """Names bound at module level of `source` only as ``for`` loop targets."""
    tree = ast.parse(source)
    loop, other = set(), set()
    for node in tree.body:
        if isinstance(node, (ast.For, ast.AsyncFor)):
            loop.update(n.id for n in ast.walk(node.target) if isinstance(n, ast.Name))
            body = node.body + node.orelse
        else:
            body = [node]
        for stmt in body:
            for sub in ast.walk(stmt):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                    other.add(sub.id)
                elif isinstance(sub, (ast.FunctionDef, ast.ClassDef)):
                    other.add(sub.name)
                elif isinstance(sub, ast.alias):
                    other.add((sub.asname or sub.name).split(".")[0])
    return loop - other


# --------------------------------------------------------------------------
# Known-fact checks
# --------------------------------------------------------------------------


def has_name(api: dict, name: str) -> bool:
    if name in api["classes"] or name in api["enums"] or name in api["functions"] or name in api["constants"]:
        return True
    owner, _, member = name.rpartition(".")
    if owner in api["enums"]:
        return member in api["enums"][owner]
    if owner in api["classes"]:
        return member in api["classes"][owner]
    return False


def check_known(api: dict) -> list[str]:
    major = int(api["tensorrt_version"].split(".")[0])
    failures = []
    for name, expect in sorted(KNOWN.items()):
        if major not in expect:
            continue
        got = has_name(api, name)
        if got != expect[major]:
            failures.append(f"{name}: expected {'present' if expect[major] else 'absent'}, "
                            f"found {'present' if got else 'absent'}")
    return failures


def dump(api: dict) -> str:
    """Deterministic JSON: keys sorted, one class/enum (or scalar field) per line."""
    lines = ["{"]
    keys = sorted(api)
    for i, key in enumerate(keys):
        value = api[key]
        comma = "," if i < len(keys) - 1 else ""
        if isinstance(value, dict):
            lines.append(f" {json.dumps(key)}: {{")
            sub = sorted(value)
            for j, name in enumerate(sub):
                sep = "," if j < len(sub) - 1 else ""
                lines.append(f"  {json.dumps(name)}: {json.dumps(value[name])}{sep}")
            lines.append(" }" + comma)
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value)}{comma}")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == api
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("specs", nargs="*", default=DEFAULT_SPECS,
                    help="pip requirement specs of bindings wheels (default: the recorded releases)")
    ap.add_argument("--out", type=Path, default=Path("rftrt/engines/data/trt_api"),
                    help="output directory for trt-<version>.json")
    ap.add_argument("--python", default=sys.executable,
                    help="CPython interpreter that imports the wheel (its version selects the wheel)")
    ap.add_argument("--check-only", action="store_true",
                    help="only run the known-name checks on the JSON files already in --out")
    ap.add_argument("--no-checks", action="store_true",
                    help="write the files even if the known-name checks fail (they are still printed)")
    ap.add_argument("--keep-temp", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()

    if args.check_only:
        bad = 0
        for path in sorted(args.out.glob("trt-*.json")):
            api = json.loads(path.read_text())
            fails = check_known(api)
            log(f"{path.name}: {'OK' if not fails else 'FAILED'}")
            for f in fails:
                log("  " + f)
            bad += bool(fails)
        return 1 if bad else 0

    if not (sys.platform.startswith("linux") and os.uname().machine == "x86_64"):
        raise SystemExit("this tool needs Linux x86-64 (the wheels' extension is imported)")
    pyver = python_version_of(args.python)
    results = []
    tmp = Path(tempfile.mkdtemp(prefix="trt_api_"))
    try:
        for i, spec in enumerate(args.specs):
            api = extract(spec, args.python, pyver, tmp / str(i))
            fails = check_known(api)
            if fails and not args.no_checks:
                raise SystemExit(f"{spec}: known-name checks failed:\n  " + "\n  ".join(fails))
            n_members = sum(len(v) for v in api["classes"].values())
            n_enum = sum(len(v) for v in api["enums"].values())
            log(f"  TensorRT {api['tensorrt_version']}: {len(api['classes'])} classes "
                f"({n_members} member names), {len(api['enums'])} enums ({n_enum} members), "
                f"{len(api['functions'])} functions, {len(api['constants'])} constants; "
                f"known-name checks: {'OK' if not fails else 'FAILED: ' + '; '.join(fails)}")
            results.append(api)
    finally:
        if args.keep_temp:
            log(f"temporary files kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    args.out.mkdir(parents=True, exist_ok=True)
    for api in results:
        path = args.out / f"trt-{api['tensorrt_version']}.json"
        path.write_text(dump(api))
        log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
