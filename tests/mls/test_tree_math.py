"""Tree math (RFC 9420 Appendix C, §4.1) against the figures of the RFC and brute force."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moqmls.mls import tree_math as tm
from moqmls.mls.errors import TreeMathError


def test_eight_member_tree_of_appendix_c() -> None:
    # "An 8-member tree represented as an array": root 7, levels by index.
    assert tm.node_width(8) == 15
    assert tm.root(8) == 7
    assert [tm.level(x) for x in range(15)] == [0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0]
    assert (tm.left(7), tm.right(7)) == (3, 11)
    assert (tm.left(3), tm.right(3)) == (1, 5)


def test_direct_path_and_copath_of_section_4_1() -> None:
    # §4.1 figure (8 leaves A..H): A's direct path is its ancestors, its copath their siblings.
    assert tm.direct_path(0, 8) == (1, 3, 7)
    assert tm.copath(0, 8) == (2, 5, 11)
    assert tm.direct_path(10, 8) == (9, 11, 7)
    assert tm.copath(10, 8) == (8, 13, 3)
    assert tm.direct_path(7, 8) == ()
    assert tm.copath(7, 8) == ()


def test_single_leaf_tree() -> None:
    assert tm.root(1) == 0
    assert tm.direct_path(0, 1) == ()
    with pytest.raises(TreeMathError):
        tm.parent(0, 1)


def test_misuse_raises_tree_math_error() -> None:
    with pytest.raises(TreeMathError):
        tm.left(4)
    with pytest.raises(TreeMathError):
        tm.right(0)
    with pytest.raises(TreeMathError):
        tm.parent(15, 8)
    with pytest.raises(TreeMathError):
        tm.node_to_leaf(3)


def _ancestors(x: int, n: int) -> list[int]:
    """Brute force: every parent p whose left/right descendants include x."""
    out = []
    for p in range(1, tm.node_width(n), 2):
        lo, hi = p - (1 << tm.level(p)) + 1, p + (1 << tm.level(p)) - 1
        if lo <= x <= hi and p != x:
            out.append(p)
    return sorted(out, key=tm.level)


@given(st.integers(0, 6).map(lambda k: 1 << k), st.data())
def test_direct_path_equals_brute_force(n: int, data: st.DataObject) -> None:
    x = data.draw(st.integers(0, tm.node_width(n) - 1))
    assert list(tm.direct_path(x, n)) == _ancestors(x, n)
    for p in tm.direct_path(x, n):
        assert x in (tm.left(p), tm.right(p)) or tm.level(p) > tm.level(x)


@given(st.integers(1, 6).map(lambda k: 1 << k), st.data())
def test_common_ancestor_is_lowest_shared_ancestor(n: int, data: st.DataObject) -> None:
    a = data.draw(st.integers(0, n - 1))
    b = data.draw(st.integers(0, n - 1))
    x, y = tm.leaf_to_node(a), tm.leaf_to_node(b)
    shared = [p for p in (x, *tm.direct_path(x, n)) if p in (y, *tm.direct_path(y, n))]
    assert tm.common_ancestor(x, y) == shared[0]


@given(st.integers(0, 6).map(lambda k: 1 << k), st.data())
def test_subtree_leaves(n: int, data: st.DataObject) -> None:
    x = data.draw(st.integers(0, tm.node_width(n) - 1))
    expected = [leaf for leaf in range(n) if x in (2 * leaf, *tm.direct_path(2 * leaf, n))]
    assert list(tm.subtree_leaves(x)) == expected
