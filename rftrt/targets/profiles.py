"""Deployment targets: which GPU, which TensorRT, which dialect, which builder settings.

One TOML file per target lives in ``profiles/`` beside this module (``orin``, ``jetson-orin``,
``l40``); each lists the TensorRT releases that platform ships, with the dialect (weakly or strongly
typed), the highest ONNX opset its parser reads and whether DLA is available with it. Facts and their
sources are in the files' comments and in ``docs/platforms.md``.

:func:`load_target` resolves a profile for one build: the TensorRT release (the profile's default or
the one asked for), the DLA core and the batch profile, checking each against the platform.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from .._data import list_folder, load_toml
from ..errors import RftrtError
from .batch import BatchProfile, check_batch, format_batch
from .tensorrt import version_tag

__all__ = [
    "TensorRTRelease",
    "Target",
    "list_targets",
    "load_target",
    "format_targets_table",
    "format_target",
]

_PACKAGE = "rftrt.targets"
_FOLDER = "profiles"
_DIALECTS = ("weak", "strong")


@dataclass(frozen=True)
class TensorRTRelease:
    """A TensorRT release as one platform ships it."""

    #: major.minor, e.g. "8.6", "10.3", "11.4"
    version: str
    #: the platform release it comes with, e.g. "DRIVE OS 6.0.x", "JetPack 6.1/6.2"
    platform: str
    #: "weak" (FP32 ONNX + builder precision flags) or "strong" (the ONNX carries the types)
    dialect: str
    #: highest ONNX opset the release's parser reads
    opset_max: int
    #: whether DLA can be used with this release on this platform
    dla: bool
    #: whether the target's profile picks this release when none is asked for
    default: bool = False

    @property
    def version_tag(self) -> int:
        """The number trtexec prints as ``[TensorRT vNNNN]``, without the patch digits (8600, 100300)."""
        return version_tag(self.version)


@dataclass(frozen=True)
class Target:
    """A target profile resolved for one build."""

    name: str
    display: str
    arch: str
    gpu: str
    compute_capability: str
    dla_cores: int
    #: the release this build uses
    release: TensorRTRelease
    #: the TensorRT version as asked for (``8.6.12``), else the release's (``8.6``): what build.json
    #: and a calibration cache's header carry; the release is matched on major.minor only
    tensorrt_version: str
    #: every release the platform offers, the default first
    releases: tuple[TensorRTRelease, ...]
    workspace_mib: int
    builder_optimization_level: int
    batch: BatchProfile
    dla_core: int | None = None
    notes: tuple[str, ...] = ()

    @property
    def strongly_typed(self) -> bool:
        return self.release.dialect == "strong"


# --- the profiles -------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _profiles() -> dict[str, Target]:
    """Every profile, unresolved: the default release, the profile's batch, no DLA."""
    names = [entry[: -len(".toml")] for entry in list_folder(_PACKAGE, _FOLDER) if entry.endswith(".toml")]
    return {name: _parse_profile(name, load_toml(_PACKAGE, f"{_FOLDER}/{name}.toml")) for name in names}


def _parse_profile(name: str, raw: dict[str, Any]) -> Target:
    # The profiles ship with the package, so a bad one is our bug, not the user's: ValueError.
    default = raw["default_release"]
    releases = [
        TensorRTRelease(
            version=r["version"],
            platform=r["platform"],
            dialect=r["dialect"],
            opset_max=int(r["opset_max"]),
            dla=bool(r["dla"]),
            default=r["version"] == default,
        )
        for r in raw["releases"]
    ]
    for r in releases:
        if r.dialect not in _DIALECTS:
            raise ValueError(f"target profile {name}: TensorRT {r.version} has dialect {r.dialect!r}, not one of {_DIALECTS}")
    chosen = [r for r in releases if r.default]
    if len(chosen) != 1:
        raise ValueError(f"target profile {name}: default_release {default!r} is not one of its releases")
    batch = BatchProfile(**raw["batch"])
    check_batch(batch)
    return Target(
        name=name,
        display=raw["display"],
        arch=raw["arch"],
        gpu=raw["gpu"],
        compute_capability=str(raw["compute_capability"]),
        dla_cores=int(raw["dla_cores"]),
        release=chosen[0],
        tensorrt_version=chosen[0].version,
        releases=tuple(chosen + [r for r in releases if not r.default]),
        workspace_mib=int(raw["workspace_mib"]),
        builder_optimization_level=int(raw["builder_optimization_level"]),
        batch=batch,
    )


def list_targets() -> list[str]:
    """The names of all target profiles, alphabetically."""
    return list(_profiles())


def _dla_targets() -> list[str]:
    return [name for name, t in _profiles().items() if t.dla_cores > 0]


def _release_list(target: Target) -> str:
    return ", ".join(f"{r.version} ({r.platform})" for r in target.releases)


def _pick_release(target: Target, trt_version: str) -> TensorRTRelease:
    # A full version such as 8.6.12 or 10.10.10 picks its major.minor release.
    version_tag(trt_version)  # refuses what no build.json or cache header could carry (8.6.x, 10.3.0.30)
    for release in target.releases:
        if trt_version == release.version or trt_version.startswith(release.version + "."):
            return release
    raise RftrtError(
        f"TensorRT {trt_version} is not available on {target.name}; {target.name} offers TensorRT {_release_list(target)}"
    )


def load_target(
    name: str,
    trt_version: str | None = None,
    dla_core: int | None = None,
    batch: BatchProfile | None = None,
) -> Target:
    """Resolve target ``name`` for one build.

    ``trt_version`` picks one of the platform's TensorRT releases (default: the profile's) and is kept
    as given in ``tensorrt_version`` (8.6.12 stays 8.6.12: DRIVE OS 6 ships 8.6.10 to 8.6.13);
    ``dla_core`` puts the network on that DLA core with GPU fallback; ``batch`` replaces the
    profile's batch profile (1:8:32). DLA needs static shapes, so with ``dla_core`` the batch becomes
    static at its opt value (a static batch is kept as given) and a note says so.
    """
    try:
        profile = _profiles()[name]
    except KeyError:
        raise RftrtError(f"unknown target {name!r}; available: {', '.join(list_targets())}") from None

    release = profile.release if trt_version is None else _pick_release(profile, trt_version)
    if batch is not None:
        check_batch(batch)
    resolved_batch = batch or profile.batch
    notes: list[str] = []

    if dla_core is not None:
        _check_dla(profile, release, dla_core)
        if not resolved_batch.static:
            n = resolved_batch.opt
            resolved_batch = BatchProfile(n, n, n)
            notes.append(f"DLA needs static shapes: batch fixed at {n}")
        notes.append(
            "DLA runs FP16/INT8 only; rf-export rewrites HardSwish, the global sums and means, "
            "GlobalAveragePool, the head's Gemm and LayerNorm into DLA layers (docs/dla.md); what is "
            "left (EfficientViT's MatMuls) falls back to the GPU, each transition costing a reformat"
        )
    if release.dialect == "strong":
        notes.append(
            f"TensorRT {release.version} is strongly typed: precision comes from the ONNX's tensor types, "
            "not from builder flags"
        )

    return replace(
        profile,
        release=release,
        batch=resolved_batch,
        dla_core=dla_core,
        notes=tuple(notes),
        tensorrt_version=trt_version or release.version,
    )


def _check_dla(profile: Target, release: TensorRTRelease, dla_core: int) -> None:
    if not isinstance(dla_core, int) or isinstance(dla_core, bool) or dla_core < 0:
        raise RftrtError(f"DLA core must be a non-negative integer, got {dla_core!r}")
    if profile.dla_cores == 0:
        raise RftrtError(f"{profile.name} has no DLA; DLA is on {', '.join(_dla_targets())}")
    if dla_core >= profile.dla_cores:
        raise RftrtError(
            f"DLA core {dla_core} does not exist: {profile.name} has {profile.dla_cores} DLA cores, "
            f"numbered {', '.join(map(str, range(profile.dla_cores)))}"
        )
    if not release.dla:
        with_dla = [r for r in profile.releases if r.dla]
        raise RftrtError(
            f"DLA is not available with TensorRT {release.version} ({release.platform}) on {profile.name}; "
            f"use TensorRT {', '.join(f'{r.version} ({r.platform})' for r in with_dla) or 'none'}"
        )


# --- printing -----------------------------------------------------------------------------------

_DIALECT_WORDS = {"weak": "weakly typed", "strong": "strongly typed"}


def format_targets_table() -> str:
    """The table ``rf-export --list-targets`` prints: each target with its TensorRT releases."""
    header = ("target", "arch", "SM", "TensorRT", "platform", "dialect", "opset<=", "DLA")
    rows: list[tuple[str, ...]] = []
    for t in _profiles().values():
        for i, r in enumerate(t.releases):
            first = i == 0
            dla = f"{t.dla_cores} cores" if t.dla_cores and r.dla else "no"
            rows.append(
                (
                    t.name if first else "",
                    t.arch if first else "",
                    t.compute_capability if first else "",
                    r.version + (" *" if r.default else ""),
                    r.platform,
                    r.dialect,
                    str(r.opset_max),
                    dla,
                )
            )
    widths = [max(len(row[c]) for row in [header, *rows]) for c in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    lines.append("* = the default release")
    return "\n".join(lines)


def format_target(target: Target) -> str:
    """The resolved settings of one build, as ``--print-config`` shows them."""
    r = target.release
    if target.dla_core is not None:
        dla = f"core {target.dla_core} of {target.dla_cores}, GPU fallback allowed"
    elif target.dla_cores:
        dla = f"off ({target.dla_cores} cores available)"
    else:
        dla = "none on this target"
    kind = "static" if target.batch.static else "dynamic, min:opt:max"
    rows = [
        ("target", f"{target.name}: {target.display}"),
        ("hardware", f"{target.arch}, {target.gpu}, SM {target.compute_capability}"),
        ("TensorRT", f"{target.tensorrt_version} ({r.platform}), {_DIALECT_WORDS[r.dialect]}"),
        ("ONNX opset", f"up to {r.opset_max}"),
        ("batch", f"{format_batch(target.batch)} ({kind})"),
        ("workspace", f"{target.workspace_mib} MiB"),
        ("builder", f"optimisation level {target.builder_optimization_level}"),
        ("DLA", dla),
    ]
    rows += [("note", note) for note in target.notes]
    width = max(len(key) for key, _ in rows)
    return "\n".join(f"{key.ljust(width)}  {value}" for key, value in rows)
