"""What a matched attention core computes, checked before anything rewrites it.

:mod:`.attention` finds cores by structure (a division fed by two ReLUs of a q|k|v split). That is
not enough to rebuild them: a core with its reduction axes swapped, its division upside down or v
where k belongs has the same ops and would be "canonicalised" into something else. So every core
found is read back as an expression over q, k and v (:func:`core_expression`) and compared with what
each form must compute; a core that matches none is refused, naming its division.

The forms, with ``sum₃`` a sum (or mean) over the token axis and ``sum₂`` over the channel axis of the
(B, G, d, N) groups, and ``q̂ = ReLU(q)``, ``k̂ = ReLU(k)``::

    reduce          q̂ · sum₃(k̂ · v)            / guard(sum₂(q̂ · sum₃(k̂)))
    litemla         (v · k̂ᵀ) · q̂                / guard(sum₂(q̂ · sum₃(k̂)))
    litemla padded  rows[:-1]((pad₁(v) · k̂ᵀ) · q̂) / guard(rows[-1:]((pad₁(v) · k̂ᵀ) · q̂))

``guard`` is ``+ ε`` or ``max(·, ε)`` with a scalar constant ε; both token reductions of a core
must be of the same kind (sums or means), or the scale of numerator and denominator differs.
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from ...errors import RftrtError

__all__ = ["core_expression", "check_core_form"]

_INT64_MAX = np.iinfo(np.int64).max
_RANK = 4  # the groups are (B, G, d, N)


def _values(tensor: gs.Tensor) -> list | None:
    return [v.item() for v in np.asarray(tensor.values).reshape(-1)] if isinstance(tensor, gs.Constant) else None


def _scalar_constant(tensor: gs.Tensor) -> bool:
    return isinstance(tensor, gs.Constant) and np.asarray(tensor.values).size == 1


def _axes(node: gs.Node) -> list[int] | None:
    axes = _values(node.inputs[1]) if len(node.inputs) > 1 else node.attrs.get("axes")
    return None if axes is None else [int(a) % _RANK for a in axes]


def _slice(node: gs.Node) -> tuple[int, int, int] | None:
    """(start, end, axis) of a one-axis Slice with constant bounds and step 1."""
    parts = [_values(t) for t in node.inputs[1:]]
    if len(parts) < 3 or any(p is None or len(p) != 1 for p in parts):
        return None
    start, end, axis = parts[0][0], parts[1][0], parts[2][0] % _RANK
    step = parts[3][0] if len(parts) > 3 else 1
    return (start, end, axis) if step == 1 else None


class _Reader:
    """Reads tensors of one core as nested tuples over the leaves ``q``, ``k``, ``v``."""

    def __init__(self, leaves: dict[int, str], head_dim: int) -> None:
        self.leaves, self.head_dim, self.memo = leaves, head_dim, {}

    def read(self, tensor: gs.Tensor) -> tuple:
        key = id(tensor)
        if key in self.leaves:
            return (self.leaves[key],)
        if key not in self.memo:
            node = tensor.inputs[0] if isinstance(tensor, gs.Variable) and tensor.inputs else None
            self.memo[key] = ("?", "input") if node is None else self._node(node)
        return self.memo[key]

    def _node(self, node: gs.Node) -> tuple:
        op, args = node.op, node.inputs
        if op == "Relu":
            return ("relu", self.read(args[0]))
        if op in ("ReduceSum", "ReduceMean") and node.attrs.get("keepdims", 1) == 1 and _axes(node) and len(_axes(node)) == 1:
            return ("sum", _axes(node)[0], op, self.read(args[0]))
        if op == "Mul" and len(args) == 2:
            return ("mul", *sorted((self.read(args[0]), self.read(args[1])), key=repr))
        if op in ("Add", "Max") and len(args) == 2 and sum(map(_scalar_constant, args)) == 1:
            return ("guard", self.read(next(t for t in args if not _scalar_constant(t))))
        if op in ("Div", "MatMul") and len(args) == 2:
            return (op.lower(), self.read(args[0]), self.read(args[1]))
        if op == "Transpose" and list(node.attrs.get("perm", [])) == [0, 1, 3, 2]:
            return ("T", self.read(args[0]))
        if op == "Pad" and _values(args[1]) == [0, 0, 0, 0, 0, 0, 1, 0] and len(args) > 2 and _values(args[2]) == [1.0]:
            return ("pad1", self.read(args[0]))
        if op == "Slice" and _slice(node) in ((0, -1, 2), (-1, _INT64_MAX, 2)):
            return ("rows_head" if _slice(node)[0] == 0 else "rows_last", self.read(args[0]))
        return ("?", op)


def _leaves(reshape_in: gs.Node, head_dim: int) -> dict[int, str]:
    """The q, k, v tensors: the thirds of the grouped channel axis that Slices or a Split take."""
    names = {0: "q", head_dim: "k", 2 * head_dim: "v"}
    leaves: dict[int, str] = {}
    for consumer in reshape_in.outputs[0].outputs:
        if consumer.op == "Split" and consumer.attrs.get("axis") % _RANK == 2 and _values(consumer.inputs[1]) == [head_dim] * 3:
            leaves.update({id(t): n for t, n in zip(consumer.outputs, "qkv")})
        elif consumer.op == "Slice" and (bounds := _slice(consumer)) and bounds[2] == 2 and bounds[0] in names:
            end = bounds[0] + head_dim
            if bounds[1] == end or (bounds[0] == 2 * head_dim and bounds[1] >= end):
                leaves[id(consumer.outputs[0])] = names[bounds[0]]
    return leaves


def core_expression(div: gs.Node, reshape_in: gs.Node, head_dim: int) -> tuple:
    """What the division ``div`` computes, over the q|k|v split of ``reshape_in``."""
    return _Reader(_leaves(reshape_in, head_dim), head_dim).read(div.outputs[0])


def _token_sums(expression: tuple) -> tuple[tuple, set[str]]:
    """``expression`` with every token-axis reduction written ``("sum₃", x)``, and their op kinds."""
    kinds: set[str] = set()

    def walk(e):
        if not isinstance(e, tuple):
            return e
        if e and e[0] == "sum" and e[1] == 3:
            kinds.add(e[2])
            return ("sum3", walk(e[3]))
        if e and e[0] == "sum" and e[1] == 2 and e[2] == "ReduceSum":
            return ("sum2", walk(e[3]))
        return tuple(walk(x) for x in e)

    return walk(expression), kinds


def _mul(a: tuple, b: tuple) -> tuple:
    return ("mul", *sorted((a, b), key=repr))


_Q, _K, _V = ("relu", ("q",)), ("relu", ("k",)), ("v",)
_DEN = ("guard", ("sum2", _mul(_Q, ("sum3", _K))))
_PRODUCT = ("matmul", ("matmul", ("pad1", _V), ("T", _K)), _Q)
_FORMS = {
    "reduce": [("div", _mul(_Q, ("sum3", _mul(_K, _V))), _DEN)],
    "litemla": [
        ("div", ("matmul", ("matmul", _V, ("T", _K)), _Q), _DEN),
        ("div", ("rows_head", _PRODUCT), ("guard", ("rows_last", _PRODUCT))),
    ],
}


def check_core_form(kind: str, div: gs.Node, reshape_in: gs.Node, head_dim: int) -> None:
    """Refuse (naming ``div``) a ``kind`` core that does not compute ReLU linear attention in one of
    the forms above."""
    expression, kinds = _token_sums(core_expression(div, reshape_in, head_dim))
    if expression not in _FORMS[kind]:
        raise RftrtError(
            f"the attention core ending in {div.name!r} has the ops of a {kind} core but does not compute its "
            "formula (reduction axes, operand order or q/k/v roles differ); refusing to rewrite it"
        )
    if len(kinds) > 1:
        raise RftrtError(f"the attention core ending in {div.name!r} mixes token sums and means; refusing to rewrite it")
