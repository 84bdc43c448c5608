"""Array-based tree arithmetic for the ratchet tree (RFC 9420 Appendix C, §4.1, §7.1).

Nodes are numbered left to right: leaf ``L`` sits at node ``2L``, parents at odd indices. RFC
9420 trees always have a power-of-two number of leaves. Every function takes plain ints; the
ones a tree walks repeatedly (direct path, copath) are memoised per ``(node, n_leaves)``.
"""

from __future__ import annotations

from functools import lru_cache

from moqmls.mls.errors import TreeMathError


def log2(x: int) -> int:
    """Appendix C: the exponent of the largest power of 2 not above ``x`` (0 for 0)."""
    return x.bit_length() - 1 if x > 0 else 0


def level(x: int) -> int:
    """Appendix C: a node's level (leaves 0, their parents 1, ...)."""
    return (~x & (x + 1)).bit_length() - 1


def node_width(n_leaves: int) -> int:
    """Appendix C: the number of array slots a tree of ``n_leaves`` leaves uses."""
    return 0 if n_leaves == 0 else 2 * (n_leaves - 1) + 1


def root(n_leaves: int) -> int:
    """Appendix C: the root's node index."""
    return (1 << log2(node_width(n_leaves))) - 1


def is_leaf(x: int) -> bool:
    """§4.1: leaves are the even node indices."""
    return x & 1 == 0


def leaf_to_node(leaf_index: int) -> int:
    """§4.1: the node index of leaf ``leaf_index``."""
    return 2 * leaf_index


def node_to_leaf(x: int) -> int:
    """§4.1: the leaf index of the leaf at node ``x``."""
    if x & 1:
        raise TreeMathError(f"node {x} is not a leaf")
    return x >> 1


def left(x: int) -> int:
    """Appendix C: the left child of a parent node."""
    k = level(x)
    if k == 0:
        raise TreeMathError(f"leaf node {x} has no children")
    return x ^ (0x01 << (k - 1))


def right(x: int) -> int:
    """Appendix C: the right child of a parent node."""
    k = level(x)
    if k == 0:
        raise TreeMathError(f"leaf node {x} has no children")
    return x ^ (0x03 << (k - 1))


def _check_in_tree(x: int, n_leaves: int) -> None:
    if x < 0 or x >= node_width(n_leaves):
        raise TreeMathError(f"node {x} is outside a tree of {n_leaves} leaves")


def parent(x: int, n_leaves: int) -> int:
    """Appendix C: the parent of a non-root node."""
    _check_in_tree(x, n_leaves)
    if x == root(n_leaves):
        raise TreeMathError("the root has no parent")
    k = level(x)
    b = (x >> (k + 1)) & 0x01
    return (x | (1 << k)) ^ (b << (k + 1))


def sibling(x: int, n_leaves: int) -> int:
    """Appendix C: the other child of a node's parent."""
    p = parent(x, n_leaves)
    return right(p) if x < p else left(p)


@lru_cache(maxsize=65536)
def direct_path(x: int, n_leaves: int) -> tuple[int, ...]:
    """§4.1: the proper ancestors of ``x``, from its parent up to the root."""
    _check_in_tree(x, n_leaves)
    r = root(n_leaves)
    path: list[int] = []
    while x != r:
        x = parent(x, n_leaves)
        path.append(x)
    return tuple(path)


@lru_cache(maxsize=65536)
def copath(x: int, n_leaves: int) -> tuple[int, ...]:
    """§4.1: the siblings of ``x`` and of its ancestors below the root, from ``x`` upward."""
    path = direct_path(x, n_leaves)
    if not path:
        return ()
    return tuple(sibling(y, n_leaves) for y in (x, *path[:-1]))


def common_ancestor(x: int, y: int) -> int:
    """Appendix C: the lowest node whose subtree holds both ``x`` and ``y``."""
    lx, ly = level(x) + 1, level(y) + 1
    if lx <= ly and x >> ly == y >> ly:
        return y
    if ly <= lx and x >> lx == y >> lx:
        return x
    k = 0
    while x != y:
        x >>= 1
        y >>= 1
        k += 1
    return (x << k) + (1 << (k - 1)) - 1


def subtree_leaves(x: int) -> range:
    """The leaf indices under node ``x`` (itself for a leaf), as a contiguous range."""
    k = level(x)
    first = (x >> (k + 1)) << k
    return range(first, first + (1 << k))
