"""Names in a ``trt-<version>.json`` record, and the names ``__init__.py`` only leaks.

A name is ``"Class.member"``, ``"Enum.MEMBER"``, ``"Class"``, ``"Enum"`` or ``"function"``; nested
types are named ``Outer.Inner`` (``"ILogger.Severity.WARNING"``). The conformance test loads this
lookup too, so the data files and the test read names the same way. Standard library only and no
imports from the rest of the package, so this file can also be loaded on its own by path.
"""

from __future__ import annotations

import ast


def has_name(api: dict, name: str) -> bool:
    """True if `name` is a class, enum, function or constant of `api`, or a member of one."""
    if name in api["classes"] or name in api["enums"] or name in api["functions"] or name in api["constants"]:
        return True
    owner, _, member = name.rpartition(".")
    if owner in api["enums"]:
        return member in api["enums"][owner]
    if owner in api["classes"]:
        return member in api["classes"][owner]
    return False


def distinct_names(api: dict) -> set[str]:
    """Every single name in `api`: functions, constants, each class and enum (last part of its
    dotted name) and each of their members."""
    names = set(api["functions"]) | set(api["constants"])
    for qualname, members in list(api["classes"].items()) + list(api["enums"].items()):
        names.add(qualname.split(".")[-1])
        names.update(members)
    return names


def loop_only_names(source: str) -> set[str]:
    """Names bound at module level of `source` only as ``for`` loop targets.

    ``__init__.py`` of the bindings leaks its loop variables (``for attr, value in
    ILogger.Severity.__members__.items()``); they are not API.
    """
    tree = ast.parse(source)
    loop, other = set(), set()
    for node in tree.body:
        if isinstance(node, (ast.For, ast.AsyncFor)):
            loop.update(n.id for n in ast.walk(node.target) if isinstance(n, ast.Name))
            body = node.body + node.orelse
        else:
            body = [node]
        for stmt in body:
            for sub in ast.walk(stmt):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                    other.add(sub.id)
                elif isinstance(sub, (ast.FunctionDef, ast.ClassDef)):
                    other.add(sub.name)
                elif isinstance(sub, ast.alias):
                    other.add((sub.asname or sub.name).split(".")[0])
    return loop - other
