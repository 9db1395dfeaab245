"""What the files beside an engine say about it, checked before anything runs it: model, resolution,
batch profile, precision, target, the GPU it was built on and its DLA core."""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import RftrtError
from ..targets.profiles import load_target

__all__ = ["EngineInfo"]


@dataclass(frozen=True)
class EngineInfo:
    """What the files beside an engine say about it: its sidecar ``<engine>.json`` (written by
    rf-build) or the ``build.json`` of its bundle: model, resolution, batch profile, precision, target,
    the GPU it was built on and its DLA core."""

    path: Path
    model: str | None = None
    resolution: int | None = None
    batch: tuple[int, int, int] | None = None
    precision: str | None = None
    target: str | None = None
    #: compute capability and name of the GPU the engine was built on (sidecar only)
    built_on_cc: str | None = None
    built_on_gpu: str | None = None
    #: the build host's architecture (sidecar only)
    built_on_machine: str | None = None
    dla_core: int | None = None
    sidecar: Path | None = None

    @classmethod
    def from_file(cls, path: str | Path) -> EngineInfo:
        path = Path(path)
        if not path.is_file():
            raise RftrtError(f"engine {path} does not exist")
        for sidecar in (path.with_name(path.name + ".json"), path.parent / "build.json"):
            if not sidecar.is_file():
                continue
            try:
                data = json.loads(sidecar.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise RftrtError(f"{sidecar}: not readable JSON ({exc})") from None
            batch = data.get("batch")
            profile = (int(batch["min"]), int(batch["opt"]), int(batch["max"])) if isinstance(batch, dict) else None
            gpu = data.get("gpu") if isinstance(data.get("gpu"), dict) else {}
            dla = data.get("dla")
            core = dla.get("core") if isinstance(dla, dict) else data.get("dla_core")
            return cls(
                path=path,
                model=data.get("model"),
                resolution=data.get("resolution"),
                batch=profile,
                precision=data.get("precision"),
                target=data.get("target"),
                built_on_cc=gpu.get("compute_capability"),
                built_on_gpu=gpu.get("name"),
                built_on_machine=data.get("machine") if isinstance(data.get("machine"), str) else None,
                dla_core=core,
                sidecar=sidecar,
            )
        return cls(path)

    def check_batches(self, batches: Sequence[int]) -> None:
        if self.batch is None:
            return
        low, opt, high = self.batch
        outside = [b for b in batches if not low <= b <= high]
        if outside:
            raise RftrtError(
                f"batch {', '.join(map(str, outside))} is outside engine {self.path.name}'s profile "
                f"{low}:{opt}:{high} (min:opt:max); use --batch within {low}–{high} or rebuild the engine for it"
            )

    def check_machine(self, machine: str | None = None, compute_capability: str | None = None) -> None:
        """An engine runs only on the GPU architecture (and TensorRT) it was built for. The sidecar's
        record of the machine and GPU it was built on decides; without one, the bundle's target (an
        engine built with ``rf-build --allow-other-gpu`` is for the GPU it was built on, not for its target)."""
        machine = machine or platform.machine()
        target = None
        if self.target is not None:
            try:
                target = load_target(self.target)
            except RftrtError:
                target = None  # a target this rftrt does not know: TensorRT's own check will speak
        if self.built_on_machine is not None and self.built_on_machine != machine:
            raise RftrtError(
                f"engine {self.path.name} was built on {self.built_on_gpu or 'a GPU'} in a {self.built_on_machine} machine; "
                f"this machine is {machine}: engines do not move across GPUs, build one here from the bundle"
            )
        if self.built_on_machine is None and target is not None and target.arch != machine:
            raise RftrtError(
                f"engine {self.path.name} was built for {target.display} ({target.arch}, SM {target.compute_capability}); "
                f"this machine is {machine}: engines do not move across GPUs, build one here from the bundle"
            )
        built = self.built_on_cc or (target.compute_capability if target is not None else None)
        if compute_capability is not None and built is not None and compute_capability != built:
            what = self.built_on_gpu or (target.display if target is not None else "another GPU")
            raise RftrtError(
                f"engine {self.path.name} was built on {what} (SM {built}); this GPU is SM {compute_capability}: "
                "engines do not move across GPUs, build one here from the bundle"
            )
