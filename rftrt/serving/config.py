"""The ``config.pbtxt`` of each model in the repository, as text, from a bundle's build.json and the
I/O of its ONNX.

The text is rendered here by hand, not through Triton's protobuf, so that the validation
(:mod:`rftrt.serving.validate`), which parses it with the ``ModelConfig`` message tritonclient
ships, checks the writer against Triton's schema rather than against itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import _data
from ..engines.build_spec import BuildSpec
from ..errors import RftrtError

__all__ = ["TRITON", "Enum", "TensorIO", "ServingOptions", "render_pbtxt", "plan_config", "onnx_config", "plan_model_name", "onnx_model_name"]

#: serving/triton.toml: the platform names, model file names, data types and defaults
TRITON: dict[str, Any] = _data.load_toml("rftrt.serving", "triton.toml")


class Enum(str):
    """A protobuf enum value: written bare (``KIND_GPU``), not quoted."""


@dataclass(frozen=True)
class TensorIO:
    """One input or output of the served network: its name, ONNX element type and shape (the batch
    dimension included, as a name or a number)."""

    name: str
    elem_type: int
    shape: tuple[int | str, ...]

    @property
    def config_type(self) -> str:
        return _data_type(self.elem_type)["config"]

    @property
    def wire_type(self) -> str:
        return _data_type(self.elem_type)["wire"]


def _data_type(elem_type: int) -> dict[str, str]:
    found = TRITON["data_types"].get(str(elem_type))
    if found is None:
        raise RftrtError(f"ONNX element type {elem_type} is neither FP32 nor FP16; the repository serves FP32 or FP16 I/O only")
    return found


@dataclass(frozen=True)
class ServingOptions:
    """How the models are served; ``None`` fields take the bundle's profile (or triton.toml's default)."""

    max_batch_size: int | None = None
    preferred_batch_sizes: tuple[int, ...] | None = None
    max_queue_delay_us: int = TRITON["defaults"]["max_queue_delay_microseconds"]
    instance_count: int = TRITON["defaults"]["instance_count"]
    #: GPUs each instance group runs on (empty: every GPU Triton sees)
    gpus: tuple[int, ...] = field(default_factory=tuple)
    #: CPU instances of the ONNX Runtime variant
    cpu_instance_count: int = TRITON["defaults"]["instance_count"]

    def resolved(self, spec: BuildSpec) -> "ServingOptions":
        """These options with the profile's values filled in and checked against it: a max batch
        above the profile, a preferred size outside it, a count below 1 are refused (one line)."""
        for name, value in (("instance count", self.instance_count), ("CPU instance count", self.cpu_instance_count)):
            if value < 1:
                raise RftrtError(f"the {name} must be at least 1, got {value}")
        if self.max_queue_delay_us < 0 or any(g < 0 for g in self.gpus):
            raise RftrtError("the queue delay and the GPU indices must not be negative")
        batch = spec.batch
        if batch.static:
            if self.max_batch_size is not None or self.preferred_batch_sizes is not None:
                raise RftrtError(
                    f"the bundle's engine has a static batch of {batch.opt}: Triton serves it with max_batch_size 0 and no "
                    "dynamic batching; leave out the max and preferred batch sizes"
                )
            return ServingOptions(0, (), self.max_queue_delay_us, self.instance_count, self.gpus, self.cpu_instance_count)
        top = batch.max if self.max_batch_size is None else self.max_batch_size
        if not 1 <= top <= batch.max:
            raise RftrtError(f"max_batch_size {top} is outside the engine's profile {batch.min}:{batch.opt}:{batch.max}; use 1 to {batch.max}")
        preferred = self.preferred_batch_sizes if self.preferred_batch_sizes is not None else tuple(sorted({min(batch.opt, top), top}))
        for size in preferred:
            if not batch.min <= size <= top:
                raise RftrtError(
                    f"preferred batch size {size} is outside the engine's profile {batch.min}:{batch.opt}:{batch.max} "
                    f"(with max_batch_size {top}); use sizes from {batch.min} to {top}"
                )
        return ServingOptions(top, tuple(sorted(set(preferred))), self.max_queue_delay_us, self.instance_count, self.gpus, self.cpu_instance_count)


def plan_model_name(spec: BuildSpec) -> str:
    """The TensorRT model's name in the repository: the bundle's model."""
    return spec.model


def onnx_model_name(spec: BuildSpec) -> str:
    """The ONNX Runtime variant's name."""
    return f"{spec.model}_onnx"


# --- rendering ----------------------------------------------------------------------------------


def _scalar(value: Any) -> str:
    if isinstance(value, Enum):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise TypeError(f"cannot write {value!r} into a config.pbtxt")


def _render(message: Mapping[str, Any], indent: int) -> list[str]:
    pad = "  " * indent
    lines = []
    for key, value in message.items():
        if isinstance(value, Mapping):
            lines += [f"{pad}{key} {{", *_render(value, indent + 1), f"{pad}}}"]
        elif isinstance(value, Sequence) and not isinstance(value, str):
            if value and isinstance(value[0], Mapping):
                blocks = [[f"{pad}  {{", *_render(item, indent + 2), f"{pad}  }}"] for item in value]
                lines.append(f"{pad}{key} [")
                for i, block in enumerate(blocks):
                    lines += block[:-1] + [block[-1] + ("," if i < len(blocks) - 1 else "")]
                lines.append(f"{pad}]")
            else:
                lines.append(f"{pad}{key}: [ {', '.join(_scalar(v) for v in value)} ]")
        else:
            lines.append(f"{pad}{key}: {_scalar(value)}")
    return lines


def render_pbtxt(message: Mapping[str, Any]) -> str:
    """A protobuf text-format message from nested dicts and lists (enum values as :class:`Enum`)."""
    return "\n".join(_render(message, 0)) + "\n"


def _tensors(tensors: Sequence[TensorIO], batched: bool) -> list[dict[str, Any]]:
    """Inputs or outputs: dims without the batch dimension when Triton batches (max_batch_size > 0)."""
    out = []
    for t in tensors:
        dims = list(t.shape[1:] if batched else t.shape)
        if not all(isinstance(d, int) for d in dims):
            raise RftrtError(f"{t.name} has dims {list(t.shape)}: only the batch dimension may be dynamic")
        out.append({"name": t.name, "data_type": Enum(t.config_type), "dims": dims})
    return out


def _common(name: str, platform: str, options: ServingOptions, inputs: Sequence[TensorIO], outputs: Sequence[TensorIO]) -> dict[str, Any]:
    batched = options.max_batch_size > 0
    config: dict[str, Any] = {
        "name": name,
        "platform": platform,
        "max_batch_size": options.max_batch_size,
        "input": _tensors(inputs, batched),
        "output": _tensors(outputs, batched),
    }
    if batched:
        config["dynamic_batching"] = {
            "preferred_batch_size": list(options.preferred_batch_sizes),
            "max_queue_delay_microseconds": options.max_queue_delay_us,
        }
    return config


def plan_config(spec: BuildSpec, options: ServingOptions, inputs: Sequence[TensorIO], outputs: Sequence[TensorIO]) -> str:
    """The TensorRT model: the plan built from the bundle, on GPU instances, CUDA graphs captured for
    the preferred batch sizes (the sizes the dynamic batcher forms most)."""
    config = _common(plan_model_name(spec), TRITON["platforms"]["tensorrt"], options, inputs, outputs)
    group: dict[str, Any] = {"count": options.instance_count, "kind": Enum("KIND_GPU")}
    if options.gpus:
        group["gpus"] = list(options.gpus)
    config["instance_group"] = [group]
    if options.max_batch_size > 0:
        graphs = [{"batch_size": size} for size in options.preferred_batch_sizes]
    else:  # a static engine: one graph at its one shape
        graphs = [{"input": [{"key": t.name, "value": {"dim": list(t.shape)}} for t in inputs]}]
    config["optimization"] = {"cuda": {"graphs": True, "graph_spec": graphs}}
    config["default_model_filename"] = TRITON["files"]["tensorrt"]
    return render_pbtxt(config)


def onnx_config(spec: BuildSpec, options: ServingOptions, inputs: Sequence[TensorIO], outputs: Sequence[TensorIO]) -> str:
    """The ONNX Runtime variant: the same names, shapes and batching, on CPU instances."""
    config = _common(onnx_model_name(spec), TRITON["platforms"]["onnxruntime"], options, inputs, outputs)
    config["instance_group"] = [{"count": options.cpu_instance_count, "kind": Enum("KIND_CPU")}]
    config["default_model_filename"] = TRITON["files"]["onnxruntime"]
    return render_pbtxt(config)
