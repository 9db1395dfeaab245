"""Finding attention cores in an exported graph, and the one canonical form they are rebuilt in.

An attention core is the part of a LiteMLA / ReduceFormer context module between the concatenated
multi-scale qkv map ``x`` of shape (B, G·3d, H, W) and the map that feeds ``proj``, of shape
(B, G·d, H, W). It is found from its division, the one node every variant ends in, by walking back
to the reshape that splits ``x`` into G groups of q|k|v (matched on structure: op types, constant
inputs, shapes; never on names), then read back as an expression over q, k and v and checked
against the formula of its kind (:mod:`.core_form`) before anything rewrites it.

The canonical form, shared by both families::

    x ─ Reshape[0, G, 3d, H·W] ─ Split(axis 2, d|d|d) ─┬ q ─ Relu ─ q̂
                                                     ├ k ─ Relu ─ k̂
                                                     └ v
    ΣK   = ReduceSum(k̂, axis 3)                         (B, G, d, 1)
    den  = ReduceSum(q̂ · ΣK, axis 2) + ε                (B, G, 1, N)
    num  = q̂ · ReduceSum(k̂ · v, axis 3)                 ReduceFormer (element-wise and sums only)
         = MatMul(MatMul(v, Transpose(k̂)), q̂)            LiteMLA (no padded-ones row)
    out  = Reshape[0, G·d, H, W](num / den)

Constant reshape shapes with a 0 (copy) batch entry need no shape arithmetic, so a dynamic batch
parses in TensorRT (mit-han-lab/efficientvit#73 is the padded-ones ``Pad`` under a dynamic batch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_graphsurgeon as gs

from .core_form import check_core_form

__all__ = ["AttentionCore", "find_attention_cores", "build_canonical_core", "SPATIAL_REDUCTIONS"]

#: ReduceFormer's spatial sums may become means (the FP16-safe form).
SPATIAL_REDUCTIONS = ("ReduceSum", "ReduceMean")
_PASS_THROUGH = ("Slice", "Split")
_MAX_CORE_NODES = 40


@dataclass
class AttentionCore:
    """One matched core: its boundary tensors, its nodes and its hyper-parameters."""

    kind: str  # "reduce" or "litemla"
    x: gs.Variable
    out: gs.Variable
    nodes: list[gs.Node]
    groups: int
    head_dim: int
    height: int
    width: int
    eps: float
    #: "Add" (den + ε, as exported) or "Max" (max(den, ε), the FP16-safe form)
    guard: str
    padded_ones: bool  # LiteMLA still in the official Pad(v, 1) form

    @property
    def anchor(self) -> str:
        """A name for new nodes: the input reshape's scope (``…/context_module/main``)."""
        scope = self.nodes[0].name.rsplit("/", 1)[0] if "/" in self.nodes[0].name else self.nodes[0].name
        return scope.removesuffix("/core")

    def ops(self) -> list[str]:
        return sorted(n.op for n in self.nodes)


def _producer(tensor: gs.Tensor) -> gs.Node | None:
    return tensor.inputs[0] if isinstance(tensor, gs.Variable) and tensor.inputs else None


def _static_dims(tensor: gs.Tensor) -> list[int] | None:
    shape = tensor.shape
    if shape is None or len(shape) != 4 or not all(isinstance(s, int) for s in shape[1:]):
        return None
    return list(shape)


def _is_float(tensor: gs.Tensor) -> bool:
    return tensor.dtype is not None and np.issubdtype(np.dtype(tensor.dtype), np.floating)


def _scalar(tensor: gs.Tensor) -> float | None:
    if isinstance(tensor, gs.Constant) and tensor.values.size == 1:
        return float(np.asarray(tensor.values).reshape(()))
    return None


def _match_from_division(div: gs.Node) -> AttentionCore | None:
    consumers = div.outputs[0].outputs
    if len(consumers) != 1 or consumers[0].op != "Reshape":
        return None
    reshape_out = consumers[0]

    # Walk back from the division to the reshape whose output is split into q | k | v.
    nodes: dict[int, gs.Node] = {id(div): div}
    stack = [div]
    reshape_in: gs.Node | None = None
    while stack:
        node = stack.pop()
        for tensor in node.inputs:
            producer = _producer(tensor)
            if producer is None or id(producer) in nodes or not _is_float(tensor):
                continue  # shape arithmetic (int64) feeding Reshape/Pad is not part of the core
            if producer.op == "Reshape" and all(c.op in _PASS_THROUGH for c in producer.outputs[0].outputs):
                if reshape_in is not None and reshape_in is not producer:
                    return None
                reshape_in = producer
                nodes[id(producer)] = producer
                continue
            if producer.op in ("Conv", "Concat") or len(nodes) > _MAX_CORE_NODES:
                return None  # left the core without passing the q|k|v split
            nodes[id(producer)] = producer
            stack.append(producer)
    if reshape_in is None:
        return None

    ops = [n.op for n in nodes.values()]
    if ops.count("Relu") != 2 or ops.count("Div") != 1:
        return None
    padded_ones = "Pad" in ops
    if "MatMul" in ops:
        kind = "litemla"
    elif sum(ops.count(op) for op in SPATIAL_REDUCTIONS) == 3 and ops.count("Mul") == 3:
        kind = "reduce"
    else:
        return None

    x = reshape_in.inputs[0]
    grouped = reshape_in.outputs[0].shape
    dims = _static_dims(x)
    if dims is None or grouped is None or len(grouped) != 4 or not isinstance(grouped[2], int):
        return None
    _, channels, height, width = dims
    head_dim = grouped[2] // 3
    if head_dim * 3 != grouped[2] or channels % (3 * head_dim):
        return None
    check_core_form(kind, div, reshape_in, head_dim)

    guards = [
        (n.op, value)
        for n in nodes.values()
        if n.op in ("Add", "Max")  # den + ε, or the FP16-safe max(den, ε)
        for value in map(_scalar, n.inputs)
        if value is not None
    ]
    if len(guards) != 1:
        return None
    ordered = [n for n in _toposorted(nodes.values())] + [reshape_out]
    return AttentionCore(
        kind=kind,
        x=x,
        out=reshape_out.outputs[0],
        nodes=ordered,
        groups=channels // (3 * head_dim),
        head_dim=head_dim,
        height=height,
        width=width,
        eps=guards[0][1],
        guard=guards[0][0],
        padded_ones=padded_ones,
    )


def _toposorted(nodes) -> list[gs.Node]:
    nodes = list(nodes)
    members = {id(n) for n in nodes}
    order: list[gs.Node] = []
    seen: set[int] = set()

    def visit(node: gs.Node) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        for tensor in node.inputs:
            producer = _producer(tensor)
            if producer is not None and id(producer) in members:
                visit(producer)
        order.append(node)

    for node in nodes:
        visit(node)
    return order


def find_attention_cores(graph: gs.Graph, kind: str | None = None) -> list[AttentionCore]:
    """Every attention core in ``graph`` (in graph order), optionally of one ``kind`` only."""
    cores = [core for node in graph.nodes if node.op == "Div" and (core := _match_from_division(node))]
    return [c for c in cores if kind is None or c.kind == kind]


def build_canonical_core(graph: gs.Graph, core: AttentionCore, eps: float | None = None, spatial_op: str = "ReduceSum") -> None:
    """Rebuild ``core`` in the canonical form and make it produce ``core.out``.

    The old nodes are disconnected from ``core.out`` and disappear in the next cleanup.
    ``spatial_op`` chooses sums or means for ReduceFormer's global reductions.
    """
    name = core.anchor + "/core"
    g, d, h, w = core.groups, core.head_dim, core.height, core.width
    dtype = core.x.dtype or np.float32
    eps_value = core.eps if eps is None else eps
    opset = graph.opset

    def var(suffix: str, shape: list) -> gs.Variable:
        return gs.Variable(f"{name}/{suffix}", dtype=dtype, shape=shape)

    def const_i64(suffix: str, values: list[int]) -> gs.Constant:
        return gs.Constant(f"{name}/{suffix}", np.array(values, dtype=np.int64))

    def reduce(op: str, suffix: str, tensor: gs.Variable, axis: int, shape: list) -> gs.Variable:
        out = var(suffix, shape)
        if op == "ReduceSum" or opset >= 18:
            node = gs.Node(op, f"{name}/{suffix}", {"keepdims": 1}, [tensor, const_i64(f"{suffix}_axes", [axis])], [out])
        else:  # ReduceMean takes its axes as an attribute before opset 18
            node = gs.Node(op, f"{name}/{suffix}", {"keepdims": 1, "axes": [axis]}, [tensor], [out])
        graph.nodes.append(node)
        return out

    def node(op: str, suffix: str, inputs: list, shape: list, attrs: dict | None = None) -> gs.Variable:
        out = var(suffix, shape)
        graph.nodes.append(gs.Node(op, f"{name}/{suffix}", attrs or {}, inputs, [out]))
        return out

    batch = core.x.shape[0]
    n = h * w
    grouped = node("Reshape", "group", [core.x, const_i64("group_shape", [0, g, 3 * d, n])], [batch, g, 3 * d, n])
    q, k, v = (var(s, [batch, g, d, n]) for s in ("q", "k", "v"))
    graph.nodes.append(gs.Node("Split", f"{name}/split", {"axis": 2}, [grouped, const_i64("split_sizes", [d, d, d])], [q, k, v]))
    q_hat = node("Relu", "relu_q", [q], [batch, g, d, n])
    k_hat = node("Relu", "relu_k", [k], [batch, g, d, n])
    sum_k = reduce(spatial_op, "sum_k", k_hat, 3, [batch, g, d, 1])
    q_sum_k = node("Mul", "mul_q_sum_k", [q_hat, sum_k], [batch, g, d, n])
    sum_qk = reduce("ReduceSum", "sum_qk", q_sum_k, 2, [batch, g, 1, n])
    eps_const = gs.Constant(f"{name}/eps", np.array(eps_value, dtype=dtype))
    denominator = node(core.guard, "add_eps" if core.guard == "Add" else "max_eps", [sum_qk, eps_const], [batch, g, 1, n])
    if core.kind == "reduce":
        kv = node("Mul", "mul_k_v", [k_hat, v], [batch, g, d, n])
        sum_kv = reduce(spatial_op, "sum_kv", kv, 3, [batch, g, d, 1])
        numerator = node("Mul", "mul_q_sum_kv", [q_hat, sum_kv], [batch, g, d, n])
    else:
        k_t = node("Transpose", "transpose_k", [k_hat], [batch, g, n, d], {"perm": [0, 1, 3, 2]})
        vk = node("MatMul", "matmul_v_k", [v, k_t], [batch, g, d, d])
        numerator = node("MatMul", "matmul_vk_q", [vk, q_hat], [batch, g, d, n])
    attended = node("Div", "div", [numerator, denominator], [batch, g, d, n])

    old_reshape = core.out.inputs[0]
    old_reshape.outputs.clear()
    graph.nodes.append(
        gs.Node("Reshape", f"{name}/ungroup", {}, [attended, const_i64("ungroup_shape", [0, g * d, h, w])], [core.out])
    )


def canonical_ops(kind: str, spatial_op: str = "ReduceSum", guard: str = "Add") -> list[str]:
    """The sorted op types of a canonical core (to tell whether a core is already canonical)."""
    common = ["Reshape", "Split", "Relu", "Relu", spatial_op, "Mul", "ReduceSum", guard, "Div", "Reshape"]
    extra = ["Mul", spatial_op, "Mul"] if kind == "reduce" else ["Transpose", "MatMul", "MatMul"]
    return sorted(common + extra)
