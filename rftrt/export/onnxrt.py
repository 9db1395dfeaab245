"""Running ONNX models on ONNX Runtime's CPU provider: the reference runtime of every check before
a model reaches a device (ORT rounds every FP16 tensor, so FP16 overflow shows)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
import onnxruntime as ort

__all__ = ["ort_session", "run_onnx", "onnx_logits", "with_scalar_probes"]

# ONNX Runtime's optimiser logs harmless notes (e.g. an Unsqueeze it cannot remove) at warning level.
ort.set_default_logger_severity(3)


def ort_session(model: onnx.ModelProto, threads: int = 2, spinning: bool = True, lean: bool = False) -> ort.InferenceSession:
    """An ONNX Runtime CPU session with warnings off (its optimiser reports harmless rewrites).
    ``spinning=False`` stops ORT's worker threads spinning between runs, which would slow other work
    in the calling thread (the calibration's histograms). ``lean`` trades a little speed for memory
    on graphs with many outputs: buffers go back to the system as soon as they are free (no arena)
    and nodes run in an order that frees tensors early (rf_b3 r288's range probe: 4.8 → 1.9 GB)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    if lean:
        options.enable_cpu_mem_arena = False
        options.execution_order = ort.ExecutionOrder.PRIORITY_BASED
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def run_onnx(model: onnx.ModelProto, batches: dict[str, np.ndarray], threads: int = 2, lean: bool = False) -> dict[str, np.ndarray]:
    """Run ``model`` on each named batch with one ONNX Runtime CPU session (``lean``: see :func:`ort_session`)."""
    session = ort_session(model, threads, lean=lean)
    name = session.get_inputs()[0].name
    return {key: session.run(None, {name: images})[0] for key, images in batches.items()}


def onnx_logits(model: onnx.ModelProto, images: np.ndarray, batch: int = 64, threads: int = 2) -> np.ndarray:
    """The first output of ``model`` on ``images`` (ONNX Runtime, CPU), in batches; a static-batch
    model gets its own batch size, the last chunk padded."""
    session = ort_session(model, threads)
    name = session.get_inputs()[0].name
    static = session.get_inputs()[0].shape[0]
    if isinstance(static, int):
        batch = static
    outs = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        n = len(chunk)
        if isinstance(static, int) and n < static:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], static - n, axis=0)])
        outs.append(session.run(None, {name: np.ascontiguousarray(chunk)})[0][:n])
    return np.concatenate(outs)


def with_scalar_probes(
    model: onnx.ModelProto, wanted: Callable[[str], bool], probe: Callable[[str, str], list[onnx.NodeProto]], keep_outputs: bool = False
) -> tuple[onnx.ModelProto, list[str]]:
    """``model`` with one scalar FP32 output per ``wanted`` tensor a node produces, computed inside the
    graph by the nodes ``probe(tensor, output)`` returns (the last writes ``output``), so that ONNX
    Runtime never hands the tensors themselves back. Each probe sits right after its tensor's
    producer: ONNX Runtime runs nodes in this order, and a tensor whose last reader came at the end of
    the graph would stay alive (with all the others) until then. ``keep_outputs``: the model's own
    outputs stay first. Returns the model and the probed tensors, in graph order."""
    probed = onnx.ModelProto()
    probed.CopyFrom(model)
    if not keep_outputs:
        del probed.graph.output[:]
    nodes, tensors = [], []
    for node in model.graph.node:
        nodes.append(node)
        for name in (n for n in node.output if wanted(n)):
            output = f"rftrt_probe/{len(tensors)}"
            nodes += probe(name, output)
            probed.graph.output.append(onnx.helper.make_tensor_value_info(output, onnx.TensorProto.FLOAT, []))
            tensors.append(name)
    del probed.graph.node[:]
    probed.graph.node.extend(nodes)
    return probed, tensors
