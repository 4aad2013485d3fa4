"""A tree drawn as boxes and edges (the base planner's instruction trie):
a tidy-tree layout of a frame with node and parent columns, then the chart."""
from __future__ import annotations

from typing import Any, Sequence

import pandas as pd

from ..errors import AnalysisError
from ..labels import shorten_middle
from ._base import _alt, _tip


def tree_layout(data: pd.DataFrame, node: str = "node", parent: str = "parent") -> pd.Series:
    """The vertical place of every node of a forest, indexed like ``data``:
    leaves get 0, 1, 2 … in depth-first order (children in the frame's
    order), an inner node the mean of its children's places.  A node whose
    ``parent`` is null or not a node of ``data`` is a root; roots are laid out
    in the frame's order."""
    for col in (node, parent):
        if col not in data.columns:
            raise AnalysisError(f"tree_layout(): no column {col!r} in the frame")
    nodes = [int(n) for n in data[node]]
    if len(set(nodes)) != len(nodes):
        raise AnalysisError(f"tree_layout(): column {node!r} has repeated values")
    known = set(nodes)
    children: dict[int, list[int]] = {}
    roots = []
    for n, p in zip(nodes, data[parent]):
        if pd.isna(p) or int(p) not in known:
            roots.append(n)
        else:
            children.setdefault(int(p), []).append(n)
    place: dict[int, float] = {}
    counter = 0
    # iterative depth-first walk (a long chain of steps must not hit the recursion limit)
    stack: list[tuple[int, bool]] = [(r, False) for r in reversed(roots)]
    while stack:
        n, done = stack.pop()
        kids = children.get(n, [])
        if not kids:
            place[n] = float(counter)
            counter += 1
        elif done:
            place[n] = sum(place[k] for k in kids) / len(kids)
        else:
            stack.append((n, True))
            stack.extend((k, False) for k in reversed(kids))
    if len(place) != len(nodes):
        raise AnalysisError("tree_layout(): the parent links form a cycle")
    return pd.Series([place[n] for n in nodes], index=data.index, name="place", dtype="float64")


def trie_chart(
    data: Any,
    node: str = "node",
    parent: str = "parent",
    depth: str = "depth",
    label: str = "step",
    color: str = "image",
    tooltip: Sequence[str] = ("step", "apps", "size", "image"),
    *,
    missing: str = "(none)",
    label_chars: int = 100,
    width: int = 720,
    row_height: int = 34,
    title: str | None = None,
):
    """A tree from a frame of nodes (the base planner's ``plan.trie``, ROOT
    row dropped): each node a box at (``tree_layout`` place, ``depth``),
    base at the top, an edge to its ``parent``, at most ``label_chars`` of
    ``label`` beside it (shortened in the middle), coloured by ``color`` (null shown as ``missing``).
    ``tooltip`` columns holding lists are shown joined with commas."""
    if not isinstance(data, pd.DataFrame):
        raise AnalysisError(f"charts.trie_chart(): data must be a DataFrame, got {type(data).__name__}")
    cols = [node, parent, depth, label, color, *tooltip]
    missing_cols = [c for c in dict.fromkeys(cols) if c not in data.columns]
    if missing_cols:
        raise AnalysisError(f"charts.trie_chart(): no column(s) {missing_cols} in the frame")
    if data.empty:
        raise AnalysisError("charts.trie_chart(): the frame has no nodes")
    alt = _alt()
    t = data.assign(
        _x=tree_layout(data, node, parent),
        _y=data[depth].astype("int64"),
        _label=data[label].astype("string").map(lambda v: shorten_middle(v, label_chars) if isinstance(v, str) else v,
                                                 na_action="ignore").astype("string"),
        _color=data[color].astype("string").fillna(missing),
    )
    for c in tooltip:
        if t[c].dtype == object and t[c].map(lambda v: isinstance(v, (list, tuple))).any():
            t[c] = t[c].map(lambda v: ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else v)
    pos = t[[node, "_x", "_y"]]
    edges = t[[node, parent, "_x", "_y"]].merge(
        pos.rename(columns={node: parent, "_x": "_px", "_y": "_py"}), on=parent)
    top, bottom = int(t["_y"].min()), int(t["_y"].max())
    x_scale = alt.Scale(domain=[-0.5, float(t["_x"].max()) + 2.0])
    y_scale = alt.Scale(domain=[top - 0.5, bottom + 0.5], reverse=True)
    edge_chart = alt.Chart(edges).mark_rule(color="#999").encode(
        x=alt.X("_px:Q", scale=x_scale, axis=None),
        y=alt.Y("_py:Q", scale=y_scale, title=f"{depth} (base at the top)"),
        x2="_x:Q", y2="_y:Q")
    tips = [_tip(alt, f"{c}:Q", format=",") if pd.api.types.is_numeric_dtype(t[c]) else _tip(alt, f"{c}:N")
            for c in tooltip]
    nodes = alt.Chart(t).mark_square(size=220).encode(
        x=alt.X("_x:Q", scale=x_scale, axis=None),
        y=alt.Y("_y:Q", scale=y_scale),
        color=alt.Color("_color:N", title=color),
        tooltip=tips,
    )
    labels = nodes.mark_text(align="left", dx=12, fontSize=10).encode(text="_label:N", color=alt.value("#333"))
    return (edge_chart + nodes + labels).properties(width=width, height=row_height * (bottom - top + 1),
                                                    title=title or "")
