"""Image efficiency: dive's figures, exactly, and the corrected ones beside them.

dive (wagoodman/dive, ``dive/filetree/efficiency.go``) scores an image like this,
and :func:`dive_efficiency` reproduces it rule for rule from the file tables:

* each layer becomes a tree of its tar entries (an entry's parents that the tar
  does not list become size-0, non-directory nodes; ``.wh..wh.*`` names are
  never added; a path listed twice keeps the last entry);
* for every layer, the *leaf* nodes of its tree are visited children first,
  in byte order of names; each adds to its path's record (whiteouts count under
  the path they delete):

  - a regular leaf adds its tar header size;
  - a whiteout adds the size of what it deletes *if that was a directory* in
    the stack of the layers below — the sum of every node's size in that
    subtree — and 0 if it was a file (!);
  - a whiteout of a path that the lower stack does not have stops the visit of
    the rest of that layer (dive logs an error and moves on), leaving a record
    with no copies whose minimum is -1;

* the stack of lower layers is dive's ``StackTreeRange(trees, 0, k-1)``: the
  base tree, copied, with every layer 0..k-1 grafted on (the base twice).
  Grafting overwrites a node's info even with the empty info of an unlisted
  parent, and removes whited-out paths;
* ``efficiencyScore`` = Σ min size per path / Σ cumulative size per path
  (1 when the latter is 0);
* ``inefficientBytes`` = Σ cumulative size over paths seen 2+ times — all
  copies, the kept one included (dive issue #684);
* ``sizeBytes`` = Σ over layers of the sum of their tar entries' header sizes.

The corrected figures come from the OCI merge (:mod:`layerlab.contents.merge`):
``reclaimable_bytes`` is what squashing the image would actually free — the
bytes of every entry that is stored in a layer but not visible in the final
filesystem, i.e. per path the cumulative size minus the copy that is kept
(0 kept when the path ends up deleted).  ``reclaimable_bytes_above_base``
counts only what a layer above the base image hid (the part a Dockerfile
author can fix).  ``dive_reclaimable_bytes`` is dive's own per-path
cumulative minus *smallest* copy, the fix proposed for #684 (pull #685).
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..errors import AnalysisError

_WH = ".wh."
_WHWH = ".wh..wh."


# -- dive's trees ----------------------------------------------------------------
class _Node:
    __slots__ = ("name", "path", "parent", "children", "size", "is_dir")

    def __init__(self, name: str, path: str, parent: "_Node | None"):
        self.name = name
        self.path = path            # without the leading "/"
        self.parent = parent
        self.children: dict[str, _Node] = {}
        self.size = 0
        self.is_dir = False


class _Tree:
    """dive's FileTree, plus an index path -> node (dive walks from the root on
    every call; the index gives the same results without the walks)."""

    def __init__(self) -> None:
        self.root = _Node("", "", None)
        self.index: dict[str, _Node] = {"": self.root}
        self.has_whiteouts = False

    def copy(self) -> "_Tree":
        t = _Tree()
        t.has_whiteouts = self.has_whiteouts

        def cp(src: _Node, parent: _Node) -> None:
            for name, c in src.children.items():
                n = _Node(name, c.path, parent)
                n.size, n.is_dir = c.size, c.is_dir
                parent.children[name] = n
                t.index[c.path] = n
                cp(c, n)

        cp(self.root, t.root)
        return t

    def add_path(self, path: str, size: int, is_dir: bool) -> None:
        """dive's FileTree.AddPath (``path`` clean, without the leading "/")."""
        node = self.index.get(path)
        if node is None:
            parent_path, _, name = path.rpartition("/")
            parent = self.index.get(parent_path)
            if parent is None:
                # create the missing parents the way dive does (stopping at ".wh..wh." names)
                parent = self.root
                comps = path.split("/")
                for name in comps[:-1]:
                    child = parent.children.get(name)
                    if child is None:
                        if name.startswith(_WHWH):
                            return
                        cpath = f"{parent.path}/{name}" if parent.path else name
                        child = _Node(name, cpath, parent)
                        parent.children[name] = child
                        self.index[cpath] = child
                    parent = child
                name = comps[-1]
            if name.startswith(_WHWH):
                return
            node = _Node(name, path, parent)
            parent.children[name] = node
            self.index[path] = node
        node.size, node.is_dir = size, is_dir

    def add_parents_of(self, path: str) -> None:
        """What dive's AddPath does for a ``.wh..wh.*`` name: create its parents only."""
        parent_path = path.rpartition("/")[0]
        if parent_path and parent_path not in self.index:
            node = self.root
            for name in parent_path.split("/"):
                child = node.children.get(name)
                if child is None:
                    if name.startswith(_WHWH):
                        return
                    cpath = f"{node.path}/{name}" if node.path else name
                    child = _Node(name, cpath, node)
                    node.children[name] = child
                    self.index[cpath] = child
                node = child

    def get(self, path: str) -> _Node | None:
        return self.index.get(path)

    def remove(self, node: _Node) -> None:
        if node is self.root:
            return
        del node.parent.children[node.name]  # type: ignore[union-attr]
        stack = [node]
        while stack:
            n = stack.pop()
            self.index.pop(n.path, None)
            stack.extend(n.children.values())


def _subtree_size(node: _Node) -> int:
    total = 0
    stack = [node]
    while stack:
        n = stack.pop()
        total += n.size
        stack.extend(n.children.values())
    return total


def _layer_tree(rows: list[tuple[str, str, int]]) -> _Tree:
    t = _Tree()
    for path, kind, size in rows:
        if kind == "whiteout":
            parent, _, name = path.rpartition("/")
            t.add_path(f"{parent}/{_WH}{name}" if parent else _WH + name, size, False)
            t.has_whiteouts = True
        elif kind == "opaque":
            t.add_parents_of(f"{path}/.wh..wh..opq" if path else ".wh..wh..opq")
        elif path.rpartition("/")[2].startswith(_WHWH):
            t.add_parents_of(path)
        else:
            t.add_path(path, size, kind == "dir")
    return t


def _dive_path(node: _Node) -> str:
    """dive's FileNode.Path(): "/" + path, the whiteout prefix stripped on the leaf."""
    if node.name.startswith(_WH):
        head = node.path[: len(node.path) - len(node.name)]
        return "/" + head + node.name[len(_WH):]
    return "/" + node.path


def _visit_sorted(node: _Node, fn, leaves_only: bool, is_root: bool = True) -> None:
    """dive's VisitDepthChildFirst: children by name (byte order), then the node; never the root."""
    for name in sorted(node.children):
        _visit_sorted(node.children[name], fn, leaves_only, False)
    if is_root or (leaves_only and node.children):
        return
    fn(node)


def _visit(tree: _Tree, fn, leaves_only: bool) -> None:
    """Visit like dive.  The order only matters in a layer with whiteouts (a
    failed whiteout stops dive's visit; grafting removes before it adds), so
    other layers are walked in index order, without sorting."""
    if tree.has_whiteouts:
        _visit_sorted(tree.root, fn, leaves_only)
        return
    for node in list(tree.index.values()):
        if node is tree.root or (leaves_only and node.children):
            continue
        fn(node)


def _stack(lower: _Tree, upper: _Tree) -> None:
    """dive's FileTree.Stack: graft ``upper`` onto ``lower`` in place."""

    def graft(node: _Node) -> None:
        if node.name.startswith(_WH):
            target = lower.get(_dive_path(node)[1:])
            if target is not None:
                lower.remove(target)
        else:
            lower.add_path(node.path, node.size, node.is_dir)

    _visit(upper, graft, leaves_only=False)


class _StopLayer(Exception):
    pass


@dataclass
class DiveResult:
    score: float
    size_bytes: int
    inefficient_bytes: int
    user_size_bytes: int
    inefficient_files: pd.DataFrame      # path, count, size_bytes (dive's fileReference)
    dive_reclaimable_bytes: int          # Σ (cumulative - min) over inefficient paths (#685)
    layer_sizes: list[int]


def _leaves(rows: list[tuple[str, str, int]]) -> list[tuple[str, int]] | None:
    """(dive path, size) of the leaves of a layer without whiteouts, from sets
    instead of a tree.  The nodes are the same as dive's: every entry (the last
    one of a path wins), every parent an entry implies (size 0 unless listed),
    and the directory of a ``.wh..wh.*`` marker (which itself is never added);
    the leaves are the nodes nothing lies under.  None when the layer needs the
    real tree (whiteouts, ``.wh..wh.`` names inside a path)."""
    size: dict[str, int] = {}
    inner: set[str] = set()
    markers: list[str] = []
    for path, kind, sz in rows:
        head, _, last = path.rpartition("/")
        if kind == "whiteout" or "/.wh..wh." in "/" + head:
            return None
        if kind == "opaque":
            markers.append(path)
            continue
        if last.startswith(_WHWH):
            markers.append(head)
            continue
        size[path] = sz
        while head and head not in inner:
            inner.add(head)
            head = head.rpartition("/")[0]
    for d in markers:
        if not d:
            continue
        size.setdefault(d, 0)
        head = d.rpartition("/")[0]
        while head and head not in inner:
            inner.add(head)
            head = head.rpartition("/")[0]
    return [("/" + p, sz) for p, sz in size.items() if p not in inner]


def dive_efficiency(layers: list[list[tuple[str, str, int]]]) -> DiveResult:
    """dive's efficiency over per-layer rows ``(path, type, size)`` in tar order."""
    layer_sizes = [sum(s for _p, _k, s in rows) for rows in layers]
    last_wh = max((i for i, rows in enumerate(layers) if any(k == "whiteout" for _p, k, _s in rows)), default=-1)
    # a real tree is needed where dive stacks (layers up to the last whiteout) or stops early
    trees: list[_Tree | None] = [_layer_tree(rows) if i <= last_wh else None for i, rows in enumerate(layers)]
    fast = [None if t is not None else _leaves(rows) for t, rows in zip(trees, layers)]
    for i, rows in enumerate(layers):
        if trees[i] is None and fast[i] is None:
            trees[i] = _layer_tree(rows)

    records: dict[str, list[int]] = {}   # path -> [cumulative, min, count]
    stacked: _Tree | None = trees[0].copy() if last_wh >= 0 else None  # type: ignore[union-attr]

    for k, tree in enumerate(trees):
        lower = stacked
        if tree is None:
            for path, size in fast[k]:  # type: ignore[union-attr]
                rec = records.get(path)
                if rec is None:
                    records[path] = [size, size, 1]
                else:
                    rec[0] += size
                    if rec[1] < 0 or size < rec[1]:
                        rec[1] = size
                    rec[2] += 1
            continue

        def visit(node: _Node) -> None:
            path = _dive_path(node)
            rec = records.get(path)
            if rec is None:
                rec = records[path] = [0, -1, 0]
            if node.name.startswith(_WH):
                prev = lower.get(path[1:]) if lower is not None else None
                if prev is None:
                    raise _StopLayer
                size = _subtree_size(prev) if prev.is_dir else 0
            else:
                size = node.size
            rec[0] += size
            if rec[1] < 0 or size < rec[1]:
                rec[1] = size
            rec[2] += 1

        try:
            _visit(tree, visit, leaves_only=True)
        except _StopLayer:
            pass
        if stacked is not None and k < last_wh:
            _stack(stacked, tree)

    min_sum = sum(r[1] for r in records.values())
    cum_sum = sum(r[0] for r in records.values())
    score = 1.0 if cum_sum == 0 else min_sum / cum_sum
    ineff = [(p, r[2], r[0], r[1]) for p, r in records.items() if r[2] >= 2]
    ineff.sort(key=lambda t: (-t[2], t[0]))
    frame = pd.DataFrame(
        {
            "path": pd.array([t[0] for t in ineff], dtype="string"),
            "count": pd.array([t[1] for t in ineff], dtype="Int64"),
            "size_bytes": pd.array([t[2] for t in ineff], dtype="Int64"),
        }
    )
    return DiveResult(
        score=score,
        size_bytes=sum(layer_sizes),
        inefficient_bytes=sum(t[2] for t in ineff),
        user_size_bytes=sum(layer_sizes[1:]),
        inefficient_files=frame,
        dive_reclaimable_bytes=sum(t[2] - t[3] for t in ineff),
        layer_sizes=layer_sizes,
    )


# -- the same figures from Arrow columns, without trees --------------------------------
# dive's trees cost a Python object per entry (≈0.4 s on a 66k-entry image).  The
# figures only need (a) the leaves of every layer's tree and (b), for each whiteout,
# what dive's stacked lower tree holds under the deleted path.  Both are worked out
# on integer codes: every path (and every parent a path implies) gets a code once,
# with its parent's code, so "is a node", "has a child" and "lies under x" are numpy
# operations on arrays indexed by code.  (a) is then set algebra per layer (a node is
# an entry, an implied parent or an opaque/marker directory; a leaf is a node that is
# nobody's parent); (b) replays only the deleted path's subtree through the lower
# layers.  Whenever dive's order would matter (a whiteout of a path the lower stack
# lacks, which makes dive stop the layer's visit; a layer that re-creates a path its
# own whiteout deletes, where dive's sorted graft may add before it removes;
# whiteouts in the base layer, which dive stacks twice; ".wh." inside a directory
# name), :func:`dive_efficiency_table` returns the reference :func:`dive_efficiency`'s
# result instead.  Tests cross-check both on random layers.


class _NeedTrees(Exception):
    pass


def _parents(paths):
    """The parent of each path ("" for a top-level name)."""
    import pyarrow.compute as pc

    parts = pc.split_pattern(paths, pattern="/", max_splits=1, reverse=True)
    return pc.if_else(pc.equal(pc.list_value_length(parts), 2), pc.list_element(parts, 0), "")


def _universe(paths, extra: list[str]):
    """(codes of ``paths``, all paths incl. implied parents and ``extra``, parent code per code
    (-1: top level), code of ``extra`` items).  The root "" never gets a code of its own
    beyond what ``paths`` holds."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    enc = paths.dictionary_encode()
    codes = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    universe = enc.dictionary
    if extra:
        ex = pc.unique(pa.array(extra, pa.string()))
        ex = ex.filter(pc.invert(pc.is_in(ex, value_set=universe)))
        if len(ex):
            universe = pa.concat_arrays([universe, ex])
    parent = np.full(len(universe), -1, np.int64)
    start = 0
    seg = universe
    while len(seg):
        ps = _parents(seg)
        idx = pc.index_in(ps, value_set=universe)
        missing = ps.filter(pc.and_(idx.is_null(), pc.not_equal(ps, "")))
        new = pc.unique(missing) if len(missing) else missing
        if len(new):
            universe = pa.concat_arrays([universe, new])
            idx = pc.index_in(ps, value_set=universe)
            parent = np.concatenate([parent, np.full(len(new), -1, np.int64)])
        parent[start:start + len(seg)] = idx.fill_null(-1).to_numpy()
        start += len(seg)
        seg = new
    parent[pc.equal(universe, "").to_numpy(zero_copy_only=False)] = -1  # the root has no parent
    extra_codes = (pc.index_in(pa.array(extra, pa.string()), value_set=universe).to_numpy(zero_copy_only=False)
                   .astype(np.int64) if extra else np.zeros(0, np.int64))
    return codes, universe, parent, extra_codes


def _mark_ancestors(parent, codes, mark) -> None:
    """Set ``mark`` for every proper ancestor of ``codes``."""
    import numpy as np

    cur = parent[codes]
    while len(cur):
        cur = cur[cur >= 0]
        cur = cur[~mark[cur]]
        if not len(cur):
            break
        cur = np.unique(cur)
        mark[cur] = True
        cur = parent[cur]


class _Layer:
    """One layer's tree on codes: node membership, sizes, is_dir; leaves; whiteouts."""

    __slots__ = ("node", "size", "is_dir", "leaf_codes", "leaf_sizes", "whiteouts")


def dive_efficiency_table(table, n_layers: int | None = None) -> DiveResult:
    """:func:`dive_efficiency` from an image's Arrow table (columns position, path,
    type, size; rows by position, then tar order) of ``n_layers`` layers (default:
    up to the last position with rows), without building dive's trees where an
    exact set formulation exists (see above)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    n = int(pc.max(table.column("position")).as_py()) + 1 if table.num_rows else 0
    if n_layers is not None:
        if n_layers < n:
            raise ValueError(f"dive_efficiency_table: rows at position {n - 1} of {n_layers} layers")
        n = n_layers
    pos = table.column("position").to_numpy()
    paths = table.column("path").combine_chunks()
    types = table.column("type").combine_chunks()
    sizes_arr = pc.fill_null(table.column("size"), 0).combine_chunks()

    def reference() -> DiveResult:
        per_layer: list[list[tuple[str, str, int]]] = [[] for _ in range(n)]
        for p, path, kind, size in zip(pos.tolist(), paths.to_pylist(), types.to_pylist(), sizes_arr.to_pylist()):
            per_layer[p].append((path, kind, size))
        return dive_efficiency(per_layer)

    if n == 0 or np.any(np.diff(pos) < 0):
        return reference()
    bounds = np.searchsorted(pos, np.arange(n + 1), side="left")
    is_wh = pc.equal(types, "whiteout").to_numpy(zero_copy_only=False)
    is_opq = pc.equal(types, "opaque").to_numpy(zero_copy_only=False)
    if is_wh[bounds[0]:bounds[1]].any():
        return reference()
    # ".wh." inside a name: only ".wh..wh.*" markers in a plain directory are handled here
    is_marker = np.zeros(len(paths), bool)
    marker_rows: list[int] = []
    marker_heads: list[str] = []
    odd = pc.match_substring(paths, ".wh.")
    if pc.any(odd).as_py():
        idx = np.flatnonzero(odd.to_numpy(zero_copy_only=False))
        for r, path, kind in zip(idx.tolist(), paths.take(idx).to_pylist(), types.take(idx).to_pylist()):
            head, _, last = path.rpartition("/")
            if kind in ("whiteout", "opaque") or not last.startswith(_WHWH) or ".wh." in head:
                return reference()
            is_marker[r] = True
            marker_rows.append(r)
            marker_heads.append(head)
    sizes = sizes_arr.to_numpy()
    is_dir = pc.equal(types, "dir").to_numpy(zero_copy_only=False)
    csum = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
    layer_sizes = [int(csum[bounds[k + 1]] - csum[bounds[k]]) for k in range(n)]

    codes, universe, parent, head_codes = _universe(paths, marker_heads)
    nu = len(universe)
    empty = np.flatnonzero(pc.equal(universe, "").to_numpy(zero_copy_only=False))  # the root, if listed
    plain = ~(is_wh | is_opq | is_marker)
    row_head = np.full(len(paths), -1, np.int64)
    row_head[np.asarray(marker_rows, np.int64)] = head_codes
    wh_layers = [k for k in range(n) if is_wh[bounds[k]:bounds[k + 1]].any()]
    last_wh = wh_layers[-1] if wh_layers else -1

    layers: list[_Layer] = []
    for k in range(n):
        a, b = int(bounds[k]), int(bounds[k + 1])
        lay = _Layer()
        rows = np.arange(a, b)
        e_rows = rows[plain[a:b]]
        # a path listed twice: the last entry wins
        rev = codes[e_rows][::-1]
        e_codes, first = np.unique(rev, return_index=True)
        e_last = e_rows[::-1][first]
        if len(empty):
            keep = e_codes != empty[0]
            e_codes, e_last = e_codes[keep], e_last[keep]
        d_codes = np.concatenate([codes[rows[is_opq[a:b]]], row_head[rows[is_marker[a:b]]]])
        d_codes = np.unique(d_codes[d_codes >= 0])
        if len(empty):
            d_codes = d_codes[d_codes != empty[0]]
        w_codes = np.unique(codes[rows[is_wh[a:b]]])
        inner = np.zeros(nu, bool)
        _mark_ancestors(parent, np.concatenate([e_codes, d_codes, w_codes]), inner)
        in_e = np.zeros(nu, bool)
        in_e[e_codes] = True
        e_leaf = ~inner[e_codes]
        d_leaf = d_codes[~in_e[d_codes] & ~inner[d_codes]]
        lay.leaf_codes = np.concatenate([e_codes[e_leaf], d_leaf])
        lay.leaf_sizes = np.concatenate([sizes[e_last[e_leaf]], np.zeros(len(d_leaf), np.int64)])
        lay.whiteouts = w_codes
        if k < last_wh:  # the stack below a whiteout layer
            node = inner | in_e
            node[d_codes] = True
            lay.node = node
            lay.size = np.zeros(nu, np.int64)
            lay.size[e_codes] = sizes[e_last]
            lay.is_dir = np.zeros(nu, bool)
            lay.is_dir[e_codes] = is_dir[e_last]
        layers.append(lay)

    leaf_codes = [lay.leaf_codes for lay in layers]
    leaf_sizes = [lay.leaf_sizes for lay in layers]
    if wh_layers:
        try:
            for j in wh_layers[:-1]:
                # dive grafts a layer in sorted order: a whiteout of x sorts after x itself when
                # x's name sorts before ".wh."; if the layer also has nodes at x, they would be
                # added and then removed: leave that to the trees
                for t in layers[j].whiteouts.tolist():
                    name = universe[t].as_py().rpartition("/")[2]
                    if layers[j].node[t] and name < _WH + name:
                        raise _NeedTrees
            for k in wh_layers:
                ws = layers[k].whiteouts
                leaf_codes.append(ws)
                leaf_sizes.append(np.array([_whiteout_size(layers, k, int(x), universe) for x in ws.tolist()],
                                           np.int64))
        except _NeedTrees:
            return reference()

    # per dive path: cumulative size, smallest copy, copies
    all_codes = np.concatenate(leaf_codes)
    vals = np.concatenate(leaf_sizes).astype(np.int64)
    cum = np.zeros(nu, np.int64)
    np.add.at(cum, all_codes, vals)
    low = np.full(nu, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(low, all_codes, vals)
    count = np.bincount(all_codes, minlength=nu)
    seen = count > 0
    min_sum, cum_sum = int(low[seen].sum()), int(cum[seen].sum())
    score = 1.0 if cum_sum == 0 else min_sum / cum_sum
    sel = np.flatnonzero(count >= 2)
    ineff = pa.table({"p": universe.take(pa.array(sel)), "s": pa.array(cum[sel]), "c": pa.array(count[sel]),
                      "m": pa.array(low[sel])})
    ineff = ineff.take(pc.sort_indices(ineff, sort_keys=[("s", "descending"), ("p", "ascending")]))
    ineff_paths = pc.utf8_replace_slice(ineff.column("p"), 0, 0, "/")  # dive's paths start with "/"
    frame = pd.DataFrame(
        {
            "path": pd.array(ineff_paths.combine_chunks(), dtype="string"),
            "count": pd.array(ineff.column("c").to_numpy(), dtype="Int64"),
            "size_bytes": pd.array(ineff.column("s").to_numpy(), dtype="Int64"),
        }
    )
    ineff_bytes = int(cum[sel].sum())
    return DiveResult(
        score=score,
        size_bytes=sum(layer_sizes),
        inefficient_bytes=ineff_bytes,
        user_size_bytes=sum(layer_sizes[1:]),
        inefficient_files=frame,
        dive_reclaimable_bytes=ineff_bytes - int(low[sel].sum()),
        layer_sizes=layer_sizes,
    )


def _whiteout_size(layers: list[_Layer], k: int, x: int, universe) -> int:
    """What dive adds for layer ``k``'s whiteout of path code ``x``: the size of the
    subtree at ``x`` in the stack of layers 0..k-1 if it is a directory there, else 0
    (the subtree replayed through those layers; see above)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    xs = universe[x].as_py()
    under = np.flatnonzero(pc.starts_with(universe, xs + "/").to_numpy(zero_copy_only=False))
    sub = np.concatenate([np.array([x], np.int64), under])   # sub[0] is x itself
    strs = universe.take(pa.array(sub))
    present = np.zeros(len(sub), bool)
    size = np.zeros(len(sub), np.int64)
    isdir = np.zeros(len(sub), bool)
    for j in range(k):
        lay = layers[j]
        for t in lay.whiteouts.tolist():
            ts = universe[t].as_py()
            if t == x or xs.startswith(ts + "/"):
                present[:] = False
            elif ts.startswith(xs + "/"):
                gone = (sub == t) | pc.starts_with(strs, ts + "/").to_numpy(zero_copy_only=False)
                present[gone] = False
        nd = lay.node[sub]
        present |= nd
        size = np.where(nd, lay.size[sub], size)
        isdir = np.where(nd, lay.is_dir[sub], isdir)
    if not present[0]:
        raise _NeedTrees  # dive stops visiting this layer: order matters
    return int(size[present].sum()) if isdir[0] else 0


# -- the public result --------------------------------------------------------------
from ._result import Result  # noqa: E402  (the public result, below the reference trees)


@dataclass(repr=False)
class Efficiency(Result):
    """dive-compatible efficiency of one image, with the corrected waste beside it.

    Frames: :meth:`figures` (one row, the figures as columns; also
    ``to_frame()``) and ``inefficient_files`` (dive's list: ``path``,
    ``count``, ``size_bytes``).  ``notes``: what the OCI merge of the layers
    reported (e.g. hard links to files no layer has)."""

    image: str
    score: float                         # dive's efficiencyScore
    size_bytes: int                      # dive's sizeBytes
    inefficient_bytes: int               # dive's inefficientBytes (all copies, #684)
    user_size_bytes: int                 # dive: size of every layer but the first
    reclaimable_bytes: int               # corrected: hidden bytes, cumulative minus the kept copy
    reclaimable_bytes_above_base: int    # corrected, hidden by layers above the base image
    dive_reclaimable_bytes: int          # dive's cumulative minus smallest copy (#685)
    base_layers: int                     # layers counted as the base image
    inefficient_files: pd.DataFrame = field(repr=False)
    layer_sizes: list[int] = field(default_factory=list, repr=False)
    notes: list[str] = field(default_factory=list, repr=False)

    _frame_names = ("figures", "inefficient_files")

    @property
    def wasted_user_percent(self) -> float:
        """dive's userWastedPercent (inefficient bytes / user size)."""
        return self.inefficient_bytes / self.user_size_bytes if self.user_size_bytes else 0.0

    @property
    def corrected_score(self) -> float:
        """Share of the stored bytes that the final filesystem still shows."""
        return 1.0 - self.reclaimable_bytes / self.size_bytes if self.size_bytes else 1.0

    def figures(self) -> pd.DataFrame:
        """One row: the figures as columns (for concatenating over a fleet)."""
        row = {
            "image": self.image,
            "score": self.score,
            "size_bytes": self.size_bytes,
            "inefficient_bytes": self.inefficient_bytes,
            "user_size_bytes": self.user_size_bytes,
            "wasted_user_percent": self.wasted_user_percent,
            "reclaimable_bytes": self.reclaimable_bytes,
            "reclaimable_bytes_above_base": self.reclaimable_bytes_above_base,
            "dive_reclaimable_bytes": self.dive_reclaimable_bytes,
            "corrected_score": self.corrected_score,
            "base_layers": self.base_layers,
        }
        df = pd.DataFrame([row])
        for c in df.columns:
            if c.endswith("bytes") or c == "base_layers":
                df[c] = df[c].astype("Int64")
        df["image"] = df["image"].astype("string")
        return df

    def _summary(self) -> str:
        from ..frames import human_bytes

        return (
            f"{self.image!r}: dive score {self.score:.4f}, "
            f"dive wasted {human_bytes(self.inefficient_bytes)} of {human_bytes(self.size_bytes)}; "
            f"reclaimable {human_bytes(self.reclaimable_bytes)} "
            f"({human_bytes(self.reclaimable_bytes_above_base)} above the base)"
        )

    def _repr_html_(self) -> str:
        from ..frames import human_bytes

        def row(label: str, value: str, note: str = "") -> str:
            return (
                f"<tr><th style='text-align:left'>{html.escape(label)}</th>"
                f"<td style='text-align:right'>{html.escape(value)}</td><td>{html.escape(note)}</td></tr>"
            )

        rows = [
            row("efficiency score (dive)", f"{self.score:.2%}", "Σ smallest copy / Σ all copies, per path"),
            row("image size (dive)", human_bytes(self.size_bytes), f"{self.size_bytes:,} bytes"),
            row("potential wasted space (dive)", human_bytes(self.inefficient_bytes),
                "all copies of repeated paths, the kept one included"),
            row("reclaimable (corrected)", human_bytes(self.reclaimable_bytes),
                f"{self.reclaimable_bytes:,} bytes stored but hidden in the final filesystem"),
            row("reclaimable above the base", human_bytes(self.reclaimable_bytes_above_base),
                f"hidden by layers {self.base_layers}+ (the base is layers 0..{self.base_layers - 1})"),
            row("corrected score", f"{self.corrected_score:.2%}", "visible bytes / stored bytes"),
        ]
        top = self.inefficient_files.head(10)
        files = "".join(
            f"<tr><td style='text-align:right'>{int(c)}</td><td style='text-align:right'>"
            f"{html.escape(human_bytes(int(s)))}</td><td><code>{html.escape(str(p))}</code></td></tr>"
            for p, c, s in zip(top["path"], top["count"], top["size_bytes"])
        )
        more = len(self.inefficient_files) - len(top)
        notes = "".join(f"<li>{html.escape(str(n))}</li>" for n in self.notes)
        return (
            "<div class='layerlab-efficiency layerlab-result'><strong>layerlab.Efficiency</strong> "
            f"<code>{html.escape(self.image)}</code><table>{''.join(rows)}</table>"
            + (f"<ul>{notes}</ul>" if notes else "")
            + (
                "<table><thead><tr><th>count</th><th>total space</th><th>path (dive's inefficient files)</th>"
                f"</tr></thead><tbody>{files}</tbody></table>" if files else ""
            )
            + (f"<p>… and {more} more paths</p>" if more > 0 else "")
            + "</div>"
        )


def base_layer_count(img, base: Any) -> int:
    """How many of ``img``'s layers belong to its base image.

    ``base``: an int (layer count), an Image (its layers are the common prefix
    by chain id), or None: 1, dive's convention (the first layer is the base;
    dive's "user" size is every other layer).
    """
    from ..model import Image

    n = len(img.layer_list)
    if base is None:
        return min(1, n)
    if isinstance(base, Image):
        k = 0
        for a, b in zip(img.layer_list, base.layer_list):
            if a.chain_id is None or a.chain_id != b.chain_id:
                break
            k += 1
        return k
    if isinstance(base, int) and not isinstance(base, bool) and 0 <= base <= n:
        return base
    raise AnalysisError(
        f"efficiency(): base={base!r} for {img.reference} ({n} layers): pass a layer count 0..{n}, "
        "the base Image, or None"
    )


def efficiency(img, *, base: Any = None, hash: str | None = None, cache_dir: Any = None, progress: bool = True,
               verify: bool = True, workers: int | None = None) -> Efficiency:
    """dive's efficiencyScore / sizeBytes / inefficientBytes for ``img``, exactly,
    plus the corrected waste.

    ``img``: a :class:`layerlab.Image` whose layer contents can be read (blobs,
    or file tables shipped with a snapshot).
    ``base``: the layers that belong to the base image — an int (layer count),
    the base :class:`layerlab.Image` (the common prefix by chain id), or None
    (dive's convention: the first layer); it sets ``reclaimable_bytes_above_base``.

    How the layers are read (as for ``img.files()``):
    ``hash``: content hashes to compute while reading — None (default: the
    figures need none), "fast" or "sha256" (the file tables are then cached
    with them, ready for a later ``files()``).
    ``cache_dir``: the per-layer and per-image Parquet cache — None: the
    default directory (``$LAYERLAB_CACHE``, else ``~/.cache/layerlab``), False:
    no cache, else a path.
    ``progress``: show a progress bar while layers are read.
    ``verify``: check that every layer hashes to its diff_id (a mismatch raises
    ``DigestMismatchError``); False trusts unchanged local files.
    ``workers``: processes scanning layers — None: 2 when the source allows it
    and there is enough to read, 1: this process only, n: n processes.

    The figures are cached with the file tables (:mod:`layerlab.contents.results`),
    so a second run on the same layers reads them instead of stacking the layers."""
    from ..contents.layers import ScanOptions
    from ..contents.results import image_results
    from ..model import Image

    if not isinstance(img, Image):
        raise AnalysisError(f"efficiency(): pass a layerlab.Image, not {type(img).__name__}")
    if not img.layer_list:
        raise AnalysisError(f"efficiency(): {img.reference} has no layers")
    base_layer_count(img, base)  # a bad base= fails before any reading
    options = ScanOptions(hash=hash, cache_dir=cache_dir, progress=progress, verify=verify, workers=workers)
    res = image_results(img, options)
    return efficiency_from_results(img, res, base=base)


def efficiency_from_results(img, res, *, base: Any = None) -> Efficiency:
    """:func:`efficiency` from :class:`layerlab.contents.results.ImageResults`."""
    nb = base_layer_count(img, base)
    f = res.inefficient_files
    frame = pd.DataFrame(
        {
            "path": pd.array(f.column("path").combine_chunks(), dtype="string"),
            "count": pd.array(f.column("count").to_numpy(), dtype="Int64"),
            "size_bytes": pd.array(f.column("size_bytes").to_numpy(), dtype="Int64"),
        }
    )
    return Efficiency(
        image=img.reference,
        score=res.score,
        size_bytes=res.size_bytes,
        inefficient_bytes=res.inefficient_bytes,
        user_size_bytes=res.user_size_bytes,
        reclaimable_bytes=sum(res.wasted_by_layer),
        reclaimable_bytes_above_base=sum(res.wasted_by_layer[nb:]),
        dive_reclaimable_bytes=res.dive_reclaimable_bytes,
        base_layers=nb,
        inefficient_files=frame,
        layer_sizes=list(res.layer_sizes),
        notes=list(res.orphan_notes),
    )


def efficiency_from(img, table, m, *, base: Any = None) -> Efficiency:
    """:func:`efficiency` from an already built image table and merge, with
    dive's figures from the reference implementation (dive's trees)."""
    n = len(img.layer_list)
    per_layer: list[list[tuple[str, str, int]]] = [[] for _ in range(n)]
    for pos, path, kind, size in zip(m.positions, m.paths, m.types, m.sizes):
        per_layer[pos].append((path, kind, size))
    if n == 0:
        raise AnalysisError(f"efficiency(): {img.reference} has no layers")
    d = dive_efficiency(per_layer)
    nb = base_layer_count(img, base)
    hidden = above = 0
    for r, h in enumerate(m.hidden_by):
        if h is None or not m.wasted(r):
            continue
        s = m.sizes[r]
        hidden += s
        if h >= nb:
            above += s
    return Efficiency(
        image=img.reference,
        score=d.score,
        size_bytes=d.size_bytes,
        inefficient_bytes=d.inefficient_bytes,
        user_size_bytes=d.user_size_bytes,
        reclaimable_bytes=hidden,
        reclaimable_bytes_above_base=above,
        dive_reclaimable_bytes=d.dive_reclaimable_bytes,
        base_layers=nb,
        inefficient_files=d.inefficient_files,
        layer_sizes=d.layer_sizes,
        notes=list(m.orphan_notes),
    )
