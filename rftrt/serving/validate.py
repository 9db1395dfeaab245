"""Each ``config.pbtxt`` checked offline against Triton's own schema and against the bundle.

The schema is the ``ModelConfig`` protobuf tritonclient ships (``tritonclient.grpc.model_config_pb2``);
``google.protobuf.text_format`` refuses an unknown or misspelled field, a wrong type or a bad enum
value. The cross-check then holds the parsed config to build.json and the bundle's ONNX: names,
data types, dims without the batch dimension, ``max_batch_size`` within the profile, preferred batch
sizes and CUDA-graph sizes inside it, the platform and the model file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..engines.build_spec import BuildSpec
from ..errors import RftrtError
from .config import TRITON, TensorIO

__all__ = ["ConfigCheck", "parse_config", "check_config", "model_config_module"]


def model_config_module() -> Any:
    """tritonclient's ``model_config_pb2`` (the ``serving`` extra); one line where it is missing."""
    try:
        from tritonclient.grpc import model_config_pb2
    except ImportError as exc:
        raise RftrtError(
            f"checking a Triton config needs tritonclient's ModelConfig schema ({exc}); pip install 'rftrt[serving]' (tritonclient[grpc,http])"
        ) from None
    return model_config_pb2


def parse_config(text: str, where: str) -> Any:
    """``text`` parsed into Triton's ``ModelConfig``; any field the schema does not have is an error."""
    from google.protobuf import text_format

    config = model_config_module().ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise RftrtError(f"{where} is not a valid Triton ModelConfig: {exc}") from None
    return config


@dataclass(frozen=True)
class ConfigCheck:
    """One config.pbtxt: parsed by Triton's schema and held to the bundle."""

    path: str
    model: str
    platform: str
    max_batch_size: int
    preferred_batch_sizes: tuple[int, ...]
    graph_batch_sizes: tuple[int, ...]
    checks: tuple[str, ...]

    def line(self) -> str:
        batching = f"max_batch_size {self.max_batch_size}, preferred {list(self.preferred_batch_sizes)}" if self.max_batch_size else "no batching (static engine)"
        graphs = f", CUDA graphs {list(self.graph_batch_sizes)}" if self.graph_batch_sizes else ""
        return f"{self.path}: {self.platform}, {batching}{graphs}; schema ok, {len(self.checks)} checks against build.json ok"

    def as_dict(self) -> dict:
        return {
            "path": self.path,
            "model": self.model,
            "platform": self.platform,
            "max_batch_size": self.max_batch_size,
            "preferred_batch_sizes": list(self.preferred_batch_sizes),
            "graph_batch_sizes": list(self.graph_batch_sizes),
            "schema": "ok",
            "checks": list(self.checks),
        }


def _tensor_problems(kind: str, found: Sequence[Any], expected: Sequence[TensorIO], batched: bool, pb2: Any) -> list[str]:
    problems = []
    by_name = {t.name: t for t in found}
    if sorted(by_name) != sorted(t.name for t in expected):
        return [f"{kind}s {sorted(by_name)} are not the bundle's {sorted(t.name for t in expected)}"]
    for t in expected:
        got = by_name[t.name]
        dims = list(t.shape[1:] if batched else t.shape)
        if list(got.dims) != dims:
            problems.append(f"{kind} {t.name} has dims {list(got.dims)}, the engine's are {dims}" + (" (without the batch dimension)" if batched else ""))
        data_type = pb2.DataType.Name(got.data_type)
        if data_type != t.config_type:
            problems.append(f"{kind} {t.name} is {data_type}, the engine's is {t.config_type}")
    return problems


def _batch_problems(config: Any, spec: BuildSpec) -> list[str]:
    batch = spec.batch
    profile = f"{batch.min}:{batch.opt}:{batch.max}"
    if batch.static:
        return [] if config.max_batch_size == 0 else [f"max_batch_size {config.max_batch_size}: the engine's batch is static ({batch.opt}), so it must be 0"]
    problems = []
    if not 1 <= config.max_batch_size <= batch.max:
        problems.append(f"max_batch_size {config.max_batch_size} is outside the engine's profile {profile}")
    sizes = list(config.dynamic_batching.preferred_batch_size) + [g.batch_size for g in config.optimization.cuda.graph_spec if g.batch_size]
    for size in sizes:
        if not batch.min <= size <= min(batch.max, config.max_batch_size):
            problems.append(f"batch size {size} (preferred or CUDA graph) is outside the profile {profile} or above max_batch_size")
    return problems


def check_config(text: str, where: str, spec: BuildSpec, inputs: Sequence[TensorIO], outputs: Sequence[TensorIO], platform: str) -> ConfigCheck:
    """Parse ``text`` with Triton's schema and cross-check it against ``spec`` and the ONNX I/O;
    every problem found is reported, in one line."""
    pb2 = model_config_module()
    config = parse_config(text, where)
    batched = config.max_batch_size > 0
    problems: list[str] = []
    if config.platform != platform:
        problems.append(f"platform {config.platform!r} is not {platform!r}")
    key = next(k for k, v in TRITON["platforms"].items() if v == platform)
    if config.default_model_filename and config.default_model_filename != TRITON["files"][key]:
        problems.append(f"default_model_filename {config.default_model_filename!r} is not {TRITON['files'][key]!r}")
    problems += _tensor_problems("input", config.input, inputs, batched, pb2)
    problems += _tensor_problems("output", config.output, outputs, batched, pb2)
    problems += _batch_problems(config, spec)
    if problems:
        raise RftrtError(f"{where} does not match the bundle: {'; '.join(problems)}")
    checks = (
        f"platform {platform}",
        f"inputs {[t.name for t in inputs]} and outputs {[t.name for t in outputs]}: names, data types, dims",
        f"max_batch_size {config.max_batch_size} within the profile {spec.batch.min}:{spec.batch.opt}:{spec.batch.max}",
        "preferred and CUDA-graph batch sizes inside the profile",
    )
    return ConfigCheck(
        path=where,
        model=config.name,
        platform=config.platform,
        max_batch_size=config.max_batch_size,
        preferred_batch_sizes=tuple(config.dynamic_batching.preferred_batch_size),
        graph_batch_sizes=tuple(g.batch_size for g in config.optimization.cuda.graph_spec if g.batch_size),
        checks=checks,
    )
