"""What a bundle is and what this device has, side by side (the kit's ``info``).

It needs nothing but the standard library and the bundle: TensorRT, cuda-python and a GPU are each
reported as present or not, never required, so ``info`` answers on any machine. A bundle whose files
do not match its manifest is refused (one line), as every kit command refuses it.
"""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..engines.build_spec import BuildSpec
from ..engines.bundle import open_bundle
from ..errors import RftrtError
from ..targets.batch import format_batch
from ..targets.profiles import load_target
from ..targets.tensorrt import release_of

__all__ = ["DeviceFacts", "Match", "KitInfo", "device_facts", "describe"]

_MIN_PYTHON = (3, 8)
_MIN_NUMPY = (1, 17)


@dataclass(frozen=True)
class DeviceFacts:
    """This machine's Python, NumPy, TensorRT, cuda-python and first GPU; None where absent, with why."""

    machine: str
    python: str
    numpy: str | None
    tensorrt: str | None
    tensorrt_why: str = ""
    cuda_python: str | None = None
    gpu: str | None = None
    compute_capability: str | None = None
    gpu_why: str = ""


@dataclass(frozen=True)
class Match:
    """One requirement of the bundle against this device: ``ok``, ``missing`` or ``differs``."""

    what: str
    status: str
    text: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class KitInfo:
    bundle: Path
    spec: BuildSpec
    files: int
    device: DeviceFacts
    matches: list[Match] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return all(m.ok for m in self.matches)

    def lines(self) -> list[str]:
        s = self.spec
        batch = format_batch(s.batch) + (" (static)" if s.batch.static else "")
        d = self.device
        lines = [
            f"bundle    {self.bundle}",
            f"model     {s.model} r{s.resolution}, {s.precision}, batch {batch}, {s.input_name} → {s.output_name}",
            f"target    {s.target}, TensorRT {s.tensorrt_version} ({s.dialect}ly typed)" + (f", DLA core {s.dla_core}" if s.dla_core is not None else ""),
            f"files     {self.files} files, all match manifest.json",
            f"device    {d.machine}, Python {d.python}, NumPy {d.numpy or 'not installed'}",
            f"TensorRT  {d.tensorrt or 'not installed'}" + (f" ({d.tensorrt_why})" if d.tensorrt_why else ""),
            f"CUDA      cuda-python {d.cuda_python or 'not installed'}; GPU {d.gpu or 'none'}"
            + (f" (SM {d.compute_capability})" if d.compute_capability else "") + (f" ({d.gpu_why})" if d.gpu_why else ""),
        ]
        lines += [f"{m.status:<9} {m.what}: {m.text}" for m in self.matches]
        lines.append("ready to build: python3 rftrt-device.pyz build" if self.ready else "not ready to build here: see above")
        return lines

    def as_dict(self) -> dict:
        return {
            "bundle": str(self.bundle),
            "spec": {k: v for k, v in asdict(self.spec).items()},
            "files": self.files,
            "device": asdict(self.device),
            "matches": [asdict(m) for m in self.matches],
            "ready": self.ready,
        }


def _version(module: str) -> tuple[str | None, str]:
    try:
        imported = __import__(module)
    except Exception as exc:  # noqa: BLE001 - absent, or present without its libraries: both are "not usable"
        return None, "" if isinstance(exc, ModuleNotFoundError) else " ".join(str(exc).split())[:120]
    return str(getattr(imported, "__version__", "unknown")), ""


def device_facts() -> DeviceFacts:
    """What this machine has; never raises for what is missing."""
    from ..engines.cuda import cuda_python_version, gpu_info

    numpy, _ = _version("numpy")
    tensorrt, why = _version("tensorrt")
    cuda = cuda_python_version()
    gpu = cc = None
    gpu_why = "" if cuda else "needs cuda-python to look"
    if cuda:
        try:
            info = gpu_info(0)
            gpu, cc = info["name"], info["compute_capability"]
        except RftrtError as exc:
            gpu_why = str(exc)
    return DeviceFacts(platform.machine(), platform.python_version(), numpy, tensorrt, why, cuda, gpu, cc, gpu_why)


def _at_least(version: str | None, minimum: tuple[int, ...]) -> bool:
    try:
        return version is not None and tuple(int(p) for p in version.split(".")[: len(minimum)]) >= minimum
    except ValueError:
        return False


def _status(present: bool, matching: bool) -> str:
    return "ok" if present and matching else "differs" if present else "missing"


def _matches(spec: BuildSpec, device: DeviceFacts) -> list[Match]:
    target = load_target(spec.target)
    wanted = release_of(spec.tensorrt_version)
    trt = device.tensorrt
    trt_text = f"the bundle needs TensorRT {wanted}.x" + (f", this is {trt}" if trt else ", not installed here")
    gpu_text = f"the target is {target.display} ({target.arch}, SM {target.compute_capability})" + (
        f", this is {device.gpu} in a {device.machine} machine (SM {device.compute_capability})" if device.gpu else ", no GPU visible here"
    )
    same_gpu = device.compute_capability == target.compute_capability and device.machine == target.arch
    python = tuple(int(p) for p in device.python.split(".")[:2])
    return [
        Match("Python", _status(True, python >= _MIN_PYTHON), f"{device.python} (≥ {'.'.join(map(str, _MIN_PYTHON))} needed)"),
        Match("NumPy", _status(device.numpy is not None, _at_least(device.numpy, _MIN_NUMPY)), f"{device.numpy or 'not installed'} (≥ {'.'.join(map(str, _MIN_NUMPY))} needed)"),
        Match("TensorRT", _status(trt is not None, trt is not None and release_of(trt) == wanted), trt_text),
        Match("cuda-python", _status(device.cuda_python is not None, True), device.cuda_python or "not installed (cuda-python of the device's CUDA major is needed)"),
        Match("GPU", _status(device.gpu is not None, same_gpu), gpu_text),
    ]


def describe(bundle: str | Path) -> KitInfo:
    """The bundle (its files checked against the manifest) and this device."""
    bundle = Path(bundle)
    report, spec = open_bundle(bundle)
    device = device_facts()
    return KitInfo(bundle, spec, len(report.files), device, _matches(spec, device))
