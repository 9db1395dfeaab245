"""Minimal ELF64 reading and writing (x86-64, little endian), in pure Python.

Reading: the extension's dynamic section gives the ``DT_NEEDED`` libraries it links against (for
TensorRT ``libnvinfer.so.N``, ``libnvonnxparser.so.N``, ``libnvinfer_plugin.so.N`` and for 8.6
``libnvparsers.so.8``: not in the wheel, and large) and its undefined, non-weak dynamic symbols.

Writing: a stub shared object named like a missing TensorRT library, defining the given symbols
each as a function whose only instruction is ``ud2``, so any call kills the process with SIGILL.
The dynamic loader needs no section headers, so none are written, and no compiler is needed.

Searching: pybind11 registers every name from a C string literal, so each extracted name must occur
among the NUL-terminated strings of the extension (``occurs_as_c_string``).
"""

from __future__ import annotations

import struct
from pathlib import Path

SHT_DYNSYM, SHT_DYNAMIC = 11, 6
DT_NULL, DT_NEEDED, DT_HASH, DT_STRTAB, DT_SYMTAB, DT_STRSZ, DT_SYMENT, DT_SONAME = 0, 1, 4, 5, 6, 10, 11, 14
STB_GLOBAL, STT_FUNC = 1, 2
PT_LOAD, PT_DYNAMIC, PT_GNU_STACK = 1, 2, 0x6474E551
PF_X, PF_W, PF_R = 1, 2, 4

EHDR_SIZE, PHDR_SIZE, SYM_SIZE = 64, 56, 24
PAGE = 0x1000
UD2 = b"\x0f\x0b"  # any call traps (SIGILL), so a successful import proves none was made


# --- reading ------------------------------------------------------------------------------------


def _cstr(buf: bytes, off: int) -> str:
    end = buf.index(b"\0", off)
    return buf[off:end].decode("ascii", "replace")


def _section_headers(data: bytes) -> list[tuple]:
    """(name, type, flags, addr, offset, size, link, info, align, entsize) of each section."""
    (e_shoff,) = struct.unpack_from("<Q", data, 0x28)
    e_shentsize, e_shnum = struct.unpack_from("<HH", data, 0x3A)
    return [struct.unpack_from("<IIQQQQIIQQ", data, e_shoff + i * e_shentsize) for i in range(e_shnum)]


def _linked_strings(data: bytes, sections: list[tuple], sh: tuple) -> bytes:
    """The string table section `sh` links to."""
    strtab = sections[sh[6]]
    return data[strtab[4]:strtab[4] + strtab[5]]


def _undefined_globals(data: bytes, sh: tuple, strs: bytes) -> list[str]:
    names = []
    for k in range(1, sh[5] // SYM_SIZE):
        st_name, st_info, _other, st_shndx, _v, _s = struct.unpack_from("<IBBHQQ", data, sh[4] + k * SYM_SIZE)
        if st_shndx == 0 and (st_info >> 4) == STB_GLOBAL:
            names.append(_cstr(strs, st_name))
    return names


def _needed(data: bytes, sh: tuple, strs: bytes) -> list[str]:
    names = []
    for k in range(sh[5] // 16):
        tag, val = struct.unpack_from("<qQ", data, sh[4] + k * 16)
        if tag == DT_NULL:
            break
        if tag == DT_NEEDED:
            names.append(_cstr(strs, val))
    return names


def elf_needed_and_undefined(path: Path) -> tuple[list[str], list[str]]:
    """Return (DT_NEEDED names, undefined non-weak dynamic symbol names)."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise SystemExit(f"{path.name}: not a little-endian ELF64 file")
    sections = _section_headers(data)
    needed: list[str] = []
    undefined: list[str] = []
    for sh in sections:
        if sh[1] == SHT_DYNSYM:
            undefined += _undefined_globals(data, sh, _linked_strings(data, sections, sh))
        elif sh[1] == SHT_DYNAMIC:
            needed += _needed(data, sh, _linked_strings(data, sections, sh))
    return needed, sorted(set(undefined))


def occurs_as_c_string(data: bytes, name: str) -> bool:
    """True if `name` occurs in `data` followed by a NUL byte.  (The linker
    merges string literals that are tails of longer ones, e.g. "INT8" may be
    stored only as the end of "kINT8", so no left boundary is required.)"""
    return (name.encode("ascii") + b"\0") in data


# --- writing ------------------------------------------------------------------------------------


def _elf_hash(name: bytes) -> int:
    h = 0
    for c in name:
        h = ((h << 4) + c) & 0xFFFFFFFF
        g = h & 0xF0000000
        if g:
            h ^= g >> 24
        h &= ~g & 0xFFFFFFFF
    return h


def _hash_table(symbols: list[str]) -> bytes:
    """The SysV ``.hash`` section over symbol 0 (the null symbol) followed by `symbols`."""
    nsyms = len(symbols) + 1
    nbucket = max(1, len(symbols))
    buckets = [0] * nbucket
    chains = [0] * nsyms
    for idx, s in enumerate(symbols, start=1):
        b = _elf_hash(s.encode("ascii")) % nbucket
        chains[idx] = buckets[b]
        buckets[b] = idx
    return struct.pack(f"<II{nbucket}I{nsyms}I", nbucket, nsyms, *buckets, *chains)


def _string_table(soname: str, symbols: list[str]) -> tuple[bytes, int, list[int]]:
    """``.dynstr`` with the soname and each symbol: (table, soname offset, symbol offsets)."""
    strtab = bytearray(b"\0")
    offsets = []
    for s in [soname, *symbols]:
        offsets.append(len(strtab))
        strtab.extend(s.encode("ascii") + b"\0")
    return bytes(strtab), offsets[0], offsets[1:]


def _elf_header(n_ph: int) -> bytes:
    """ELF64 header of an x86-64 shared object (ET_DYN) with `n_ph` program headers and no sections."""
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    return ident + struct.pack("<HHIQQQIHHHHHH", 3, 62, 1, 0, EHDR_SIZE, 0, 0,
                               EHDR_SIZE, PHDR_SIZE, n_ph, 64, 0, 0)


def _program_headers(end_text: int, off_dyn: int, dyn_size: int) -> bytes:
    """Page 0 (R+X) up to the end of the code, page 1 (RW) the dynamic section, a non-executable stack."""
    phdrs = [
        (PT_LOAD, PF_R | PF_X, 0, 0, 0, end_text, end_text, PAGE),
        (PT_LOAD, PF_R | PF_W, off_dyn, off_dyn, off_dyn, dyn_size, dyn_size, PAGE),
        (PT_DYNAMIC, PF_R | PF_W, off_dyn, off_dyn, off_dyn, dyn_size, dyn_size, 8),
        (PT_GNU_STACK, PF_R | PF_W, 0, 0, 0, 0, 0, 16),
    ]
    return b"".join(struct.pack("<IIQQQQQQ", *ph) for ph in phdrs)


def write_stub_library(path: Path, soname: str, symbols: list[str]) -> None:
    """Write a minimal x86-64 ELF shared object that defines every name in
    `symbols` as a function whose body is the trapping instruction ``ud2``.
    Layout: page 0 (R+X) = ELF header, program headers, .dynsym, .dynstr,
    .hash, code; page 1 (RW) = .dynamic."""
    n_ph = 4
    strtab, soname_off, name_offs = _string_table(soname, symbols)
    off_dynsym = EHDR_SIZE + n_ph * PHDR_SIZE
    off_dynstr = off_dynsym + SYM_SIZE * (len(symbols) + 1)
    off_hash = (off_dynstr + len(strtab) + 7) & ~7
    hash_bytes = _hash_table(symbols)
    off_text = (off_hash + len(hash_bytes) + 15) & ~15
    end_text = off_text + len(UD2)
    off_dyn = (end_text + PAGE - 1) & ~(PAGE - 1)
    dyn_entries = [
        (DT_SONAME, soname_off), (DT_HASH, off_hash), (DT_STRTAB, off_dynstr),
        (DT_SYMTAB, off_dynsym), (DT_STRSZ, len(strtab)), (DT_SYMENT, SYM_SIZE), (DT_NULL, 0),
    ]
    dyn_bytes = b"".join(struct.pack("<qQ", t, v) for t, v in dyn_entries)

    out = bytearray(_elf_header(n_ph) + _program_headers(end_text, off_dyn, len(dyn_bytes)))
    out += bytes(SYM_SIZE)  # symbol 0
    for off in name_offs:
        out += struct.pack("<IBBHQQ", off, (STB_GLOBAL << 4) | STT_FUNC, 0, 1, off_text, len(UD2))
    assert len(out) == off_dynstr
    out += strtab
    out += bytes(off_hash - len(out)) + hash_bytes
    out += bytes(off_text - len(out)) + UD2
    out += bytes(off_dyn - len(out)) + dyn_bytes
    path.write_bytes(bytes(out))
