"""Loading official, timm-named and cross-family checkpoints.

Our module tree is the official one, so an official ``efficientvit_bN_rXXX.pt`` loads as is. timm's
``efficientvit_mit`` state dicts hold the same tensors in the same order under other prefixes
(``stem.…``, ``stages.N.blocks.M.…``, ``head.classifier.…``) and are renamed by the table below. A
ReduceFormer model can start from an EfficientViT checkpoint of the same size: every tensor maps,
except the grouped 1×1 of the multi-scale aggregation (``…aggreg.K.1.weight``), which ReduceFormer
does not have; those keys are reported as unused.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import RftrtError
from ..files import sha256_file

__all__ = ["LoadReport", "load_weights", "read_state_dict", "timm_to_official", "official_to_timm"]

#: timm key prefix ↔ official key prefix (model_spec §4.2), first match wins in either direction.
#: ``{a}``/``{b}`` are block numbers; the official stem counts its input conv as block 0 (``{a+1}``).
_KEY_PREFIXES = (
    ("stem.in_conv.", "backbone.input_stem.op_list.0."),
    ("stem.res{a}.", "backbone.input_stem.op_list.{a+1}."),
    ("stages.{a}.blocks.{b}.", "backbone.stages.{a}.op_list.{b}."),
    ("head.in_conv.", "head.op_list.0."),
    ("head.classifier.0.", "head.op_list.2.linear."),
    ("head.classifier.1.", "head.op_list.2.norm."),
    ("head.classifier.4.", "head.op_list.3.linear."),
)
_FIELD = re.compile(r"\{(\w)(?:\+(\d+))?\}")


def _rule(source: str, target: str):
    """(regex matching the ``source`` prefix, function giving the ``target`` prefix of a match)."""
    offsets = {m.group(1): int(m.group(2) or 0) for m in _FIELD.finditer(source)}
    pattern = re.compile("^" + "".join(
        f"(?P<{part[1]}>\\d+)" if part.startswith("{") else re.escape(part) for part in _split(source)
    ))  # fmt: skip

    def rename(match: re.Match) -> str:
        def field(m: re.Match) -> str:
            return str(int(match.group(m.group(1))) - offsets[m.group(1)] + int(m.group(2) or 0))

        return _FIELD.sub(field, target)

    return pattern, rename


def _split(template: str) -> list[str]:
    """A template cut into literal text and ``{…}`` fields."""
    return [part for part in re.split(r"(\{\w(?:\+\d+)?\})", template) if part]


_TIMM_TO_OFFICIAL = [_rule(timm, official) for timm, official in _KEY_PREFIXES]
_OFFICIAL_TO_TIMM = [_rule(official, timm) for timm, official in _KEY_PREFIXES]
#: Keys an EfficientViT checkpoint has and a ReduceFormer model does not: the grouped 1×1 conv.
_LITEMLA_ONLY = re.compile(r"\.context_module\.main\.aggreg\.\d+\.1\.weight$")
_CLASSIFIER = "head.op_list.3.linear.weight"


@dataclass(frozen=True)
class LoadReport:
    """What a checkpoint load did: its naming, hash, and the keys it left unused."""

    source: str  # "random", "official" or "timm"
    path: str | None = None
    sha256: str | None = None
    unused_keys: tuple[str, ...] = field(default_factory=tuple)
    #: how random weights were made (empty for a checkpoint)
    init: str = ""

    @classmethod
    def random_init(cls, init: str = "") -> "LoadReport":
        return cls(source="random", init=init)

    @property
    def random(self) -> bool:
        return self.source == "random"

    def describe(self) -> str:
        """One line: how the weights were made, or which checkpoint they came from."""
        if self.random:
            return self.init or "random"
        return f"{self.source} checkpoint {Path(self.path).name} (sha256 {self.sha256[:12]}…, {len(self.unused_keys)} keys unused)"


def _rename(key: str, table: list) -> str:
    for pattern, replacement in table:
        if pattern.match(key):
            return pattern.sub(replacement, key, count=1)
    return key


def timm_to_official(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a timm ``efficientvit_mit`` state dict to official keys (order kept)."""
    return {_rename(k, _TIMM_TO_OFFICIAL): v for k, v in state_dict.items()}


def official_to_timm(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an official state dict to timm's keys (order kept)."""
    return {_rename(k, _OFFICIAL_TO_TIMM): v for k, v in state_dict.items()}


_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTOCOL = 0x80


def _why_unreadable(path: Path, exc: Exception) -> str:
    """Why ``torch.load`` failed, said from the file's own bytes (torch's messages run to paragraphs)."""
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        return "the file is empty"
    if head == _ZIP_MAGIC:
        if not zipfile.is_zipfile(path):
            return f"its zip archive has no central directory ({path.stat().st_size:,} bytes): truncated or damaged, download it again"
        first = " ".join(str(exc).split()).split(". ")[0]
        return f"torch refused its contents ({first[:100]})"
    if head[0] == _PICKLE_PROTOCOL:
        return "a legacy pickle that torch could not read with weights_only (it may hold more than tensors)"
    return f"its first bytes ({head.hex()}) are neither a zip archive (torch.save) nor a pickle"


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """Read a checkpoint file into an official-named state dict and the naming it came in
    (``"official"`` or ``"timm"``).

    Accepts ``torch.save`` files (a state dict or ``{"state_dict": …}``) and ``.safetensors``.
    """
    path = Path(path)
    if not path.is_file():
        raise RftrtError(f"weights file not found: {path}")
    not_a_checkpoint = f"{path} is not a PyTorch checkpoint"
    try:
        if path.suffix == ".safetensors":
            try:
                from safetensors.torch import load_file
            except ImportError:
                raise RftrtError(f"{path}: reading .safetensors needs the 'safetensors' package (pip install safetensors)") from None
            obj = load_file(str(path))
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except RftrtError:
        raise
    except Exception as exc:  # noqa: BLE001 - the unpickler raises anything from IndexError to UnpicklingError on foreign bytes
        raise RftrtError(f"{not_a_checkpoint}: {_why_unreadable(path, exc)}; expected a state dict saved with torch.save") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise RftrtError(f"{not_a_checkpoint}: it holds no state dict of tensors")
    keys = list(obj)
    if any(k.startswith(("backbone.", "head.op_list.")) for k in keys):
        return obj, "official"
    if any(k.startswith(("stem.", "stages.", "head.classifier.", "head.in_conv.")) for k in keys):
        return timm_to_official(obj), "timm"
    raise RftrtError(f"{path} is not an EfficientViT/ReduceFormer checkpoint (first keys: {', '.join(keys[:3])})")


def load_weights(model: nn.Module, path: str | Path) -> LoadReport:
    """Load ``path`` into ``model`` with strict checking, except the documented cross-family keys.

    Raises :class:`RftrtError` naming the first mismatched keys (and their shapes) when the
    checkpoint is for another variant, and the class counts when only the classifier differs.
    """
    path = Path(path)
    state, source = read_state_dict(path)
    expected = model.state_dict()
    unused = tuple(k for k in state if k not in expected and _LITEMLA_ONLY.search(k))
    checked = {k: v for k, v in state.items() if k not in unused}

    if _CLASSIFIER in checked and _CLASSIFIER in expected:
        got, want = checked[_CLASSIFIER].shape[0], expected[_CLASSIFIER].shape[0]
        if got != want:
            raise RftrtError(
                f"{path} has {got} classes but the model was built with {want}; "
                f"build it with num_classes={got} (--num-classes {got})"
            )
    # Shape mismatches first: they say the most about which variant the checkpoint is for.
    mismatches = [
        f"{k} checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in checked.items()
        if k in expected and v.shape != expected[k].shape
    ]
    mismatches += [f"{k} missing from checkpoint (model {tuple(expected[k].shape)})" for k in expected if k not in checked]
    mismatches += [f"{k} not in model (checkpoint {tuple(v.shape)})" for k, v in checked.items() if k not in expected]
    if mismatches:
        name = getattr(model, "name", type(model).__name__)
        raise RftrtError(
            f"{path} does not match {name} ({len(mismatches)} mismatched keys; is it for another variant?): "
            + "; ".join(mismatches[:3])
        )
    model.load_state_dict(checked, strict=True)
    return LoadReport(source=source, path=str(path), sha256=sha256_file(path), unused_keys=unused)
