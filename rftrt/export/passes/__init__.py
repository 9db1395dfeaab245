"""onnx-graphsurgeon passes, one per module.

A pass is a plain function ``(graph: gs.Graph) -> PassReport`` that rewires the graph in place and
reports what it matched and changed. It never deletes nodes itself: :func:`run_pass` calls
``cleanup().toposort()`` once afterwards, which drops whatever no longer reaches an output.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import onnx
import onnx_graphsurgeon as gs

from ...errors import RftrtError

__all__ = ["PassReport", "Pass", "run_pass", "to_graph", "to_model"]


@dataclass
class PassReport:
    """What one pass did. ``expected`` is the number of matches the model says there must be."""

    name: str
    matched: int = 0
    changed: int = 0
    expected: int | None = None
    nodes_before: int = 0
    nodes_after: int = 0
    seconds: float = 0.0
    details: list[str] = field(default_factory=list)

    def summary(self) -> str:
        found = f"{self.matched}" + (f"/{self.expected}" if self.expected is not None else "")
        return (
            f"{self.name}: matched {found}, changed {self.changed}, "
            f"nodes {self.nodes_before} → {self.nodes_after}"
        )

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "matched": self.matched,
            "changed": self.changed,
            "expected": self.expected,
            "nodes_before": self.nodes_before,
            "nodes_after": self.nodes_after,
            "details": list(self.details),
        }


Pass = Callable[[gs.Graph], PassReport]


def to_graph(model: onnx.ModelProto) -> gs.Graph:
    """Import with inferred shapes, which the passes read (static C, H, W; symbolic batch)."""
    return gs.import_onnx(onnx.shape_inference.infer_shapes(model, data_prop=True))


def to_model(graph: gs.Graph, template: onnx.ModelProto) -> onnx.ModelProto:
    """Export ``graph`` keeping the template's opset, IR version and metadata, then check it."""
    model = gs.export_onnx(graph, do_type_check=True)
    model.ir_version = template.ir_version
    del model.opset_import[:]
    model.opset_import.extend(template.opset_import)
    del model.metadata_props[:]
    model.metadata_props.extend(template.metadata_props)
    model.producer_name, model.producer_version = template.producer_name, template.producer_version
    onnx.checker.check_model(model)
    return model


def run_pass(graph: gs.Graph, pass_fn: Pass, expected: int | None = None) -> PassReport:
    """Run one pass, clean up after it, and hold it to the expected match count."""
    before = len(graph.nodes)
    start = time.perf_counter()
    report = pass_fn(graph)
    graph.cleanup(remove_unused_graph_inputs=False).toposort()
    report.seconds = time.perf_counter() - start
    report.nodes_before, report.nodes_after = before, len(graph.nodes)
    report.expected = expected
    if expected is not None and report.matched != expected:
        raise RftrtError(
            f"pass {report.name} found {report.matched} blocks but the model has {expected}; "
            "the exported graph does not have the expected structure (run with --verbose and report it)"
        )
    _check_boundary(graph, report.name)
    return report


def _check_boundary(graph: gs.Graph, name: str) -> None:
    """Every variable tensor must have a producer or be a graph input (Polygraphy's rule)."""
    inputs = {t.name for t in graph.inputs}
    for tensor in graph.tensors().values():
        if isinstance(tensor, gs.Variable) and not tensor.inputs and tensor.name not in inputs and tensor.name:
            if tensor.outputs:
                raise RftrtError(f"pass {name} left tensor {tensor.name!r} without a producer")


# onnx-graphsurgeon logs a warning (and a hint about colours) for every transient duplicate name
# while a pass rewires; the passes check the result themselves.
gs.logger.G_LOGGER.severity = gs.logger.G_LOGGER.ERROR
