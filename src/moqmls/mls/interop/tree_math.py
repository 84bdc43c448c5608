"""Runner for ``tree-math.json``: root, children, parent and sibling of every node (Appendix C)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moqmls.mls import tree_math
from moqmls.mls.errors import TreeMathError
from moqmls.mls.interop import check_eq


def _or_none(fn: Callable[..., int], *args: int) -> int | None:
    try:
        return fn(*args)
    except TreeMathError:
        return None


def run(case: dict[str, Any]) -> None:
    """Compare every relation the case lists against the tree math."""
    n = case["n_leaves"]
    check_eq(tree_math.node_width(n), case["n_nodes"], "n_nodes")
    check_eq(tree_math.root(n), case["root"], "root")
    for x in range(case["n_nodes"]):
        check_eq(_or_none(tree_math.left, x), case["left"][x], f"left({x})")
        check_eq(_or_none(tree_math.right, x), case["right"][x], f"right({x})")
        check_eq(_or_none(tree_math.parent, x, n), case["parent"][x], f"parent({x})")
        check_eq(_or_none(tree_math.sibling, x, n), case["sibling"][x], f"sibling({x})")
