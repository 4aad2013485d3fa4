"""dive's efficiency figures over stacked layers, exactly.

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

Why dive has trees of its own instead of :func:`layerlab.contents.merge.merge_table`:
the OCI merge answers "what does the final filesystem show", dive's figures
are defined by dive's *traversal* — the order it visits leaves in, the early
stop of a layer's visit on a whiteout of a missing path, grafting that
overwrites a directory's size with an unlisted parent's empty info, the base
layer stacked twice, whiteouts of files counting 0.  None of that is the OCI
rule, and reproducing it through the merge would change dive's numbers.  What
both share is the parsing: whiteout and opaque markers, AUFS ``.wh..wh.*``
bookkeeping names and parent paths come from :mod:`layerlab.contents.whiteouts`.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..errors import LayerlabError
from ._divetree import _dive_path, _layer_tree, _Node, _stack, _StopLayer, _subtree_size, _Tree, _visit
from .whiteouts import META_PREFIX as _WHWH, WHITEOUT_PREFIX as _WH

__all__ = ["DiveResult", "dive_efficiency", "dive_efficiency_table"]


@dataclass
class DiveResult:
    """dive's figures for one image (``efficiencyScore``, ``sizeBytes``,
    ``inefficientBytes``, the user size, the inefficient files) and the
    per-path cumulative-minus-smallest total of dive pull #685."""

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
    from .merge import ImpliedBudget

    budget = ImpliedBudget("dive's leaves of a layer")
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
            budget.add(head)
            inner.add(head)
            head = head.rpartition("/")[0]
    for d in markers:
        if not d:
            continue
        size.setdefault(d, 0)
        head = d.rpartition("/")[0]
        while head and head not in inner:
            budget.add(head)
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


_SET_WHITEOUT_WORK = 20_000_000
"""Most (whiteouts x (universe + earlier whiteouts)) the set formulation takes on
(about 0.2 s); beyond, :func:`dive_efficiency`'s trees (linear in the nodes) answer."""


def _parents(paths):
    """The parent of each path ("" for a top-level name)."""
    import pyarrow.compute as pc

    parts = pc.split_pattern(paths, pattern="/", max_splits=1, reverse=True)
    return pc.if_else(pc.equal(pc.list_value_length(parts), 2), pc.list_element(parts, 0), "")


def _universe(paths, extra: list[str]):
    """(codes of ``paths``, all paths incl. implied parents and ``extra``, parent code per code
    (-1: top level), code of ``extra`` items).  The root "" never gets a code of its own
    beyond what ``paths`` holds.

    Linear in the bytes of ``paths``: the listed paths (and ``extra``) are the only
    strings; an implied parent (a directory no entry lists) gets a code but no string
    (null in the universe: dive never reports one, it is never a leaf), found by its
    parent's code and its name, so a path of thousands of components costs its own
    length, not the sum of all its prefixes.  The common case — every parent is
    listed — is one vectorised lookup."""
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
    ps = _parents(universe)
    idx = pc.index_in(ps, value_set=universe)
    parent = idx.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    missing = np.flatnonzero(pc.and_(idx.is_null(), pc.not_equal(ps, "")).to_numpy(zero_copy_only=False))
    root = -1
    empty = np.flatnonzero(pc.equal(universe, "").fill_null(False).to_numpy(zero_copy_only=False))
    if len(empty):
        root = int(empty[0])
    if len(missing):
        parent, n_implied = _implied_parents(universe, parent, missing, root)
        if n_implied:
            universe = pa.concat_arrays([universe, pa.nulls(n_implied, pa.string())])
    parent[empty] = -1  # the root has no parent
    extra_codes = (pc.index_in(pa.array(extra, pa.string()), value_set=universe).to_numpy(zero_copy_only=False)
                   .astype(np.int64) if extra else np.zeros(0, np.int64))
    return codes, universe, parent, extra_codes


def _implied_parents(universe, parent, missing, root: int):
    """Codes for the parents no path lists (see :func:`_universe`): ``(parent codes of
    the whole universe, how many implied nodes were added)``.  Nodes are keyed by
    (parent code, name); the paths whose parent is missing are placed shallowest
    first, each by walking its parent's components from the root (its own length)."""
    import numpy as np
    import pyarrow.compute as pc

    n = len(universe)
    par = parent.tolist()
    is_missing = np.zeros(n, bool)
    is_missing[missing] = True
    known = np.flatnonzero(~is_missing)
    last = pc.split_pattern(universe.take(known), pattern="/", max_splits=1, reverse=True)
    ends = last.offsets.to_numpy(zero_copy_only=False)[1:] - 1  # each list's last item: the name
    names = pc.list_flatten(last).take(ends)
    child: dict[tuple[int, str], int] = dict(zip(zip(parent[known].tolist(), names.to_pylist()), known.tolist()))
    lost = universe.take(missing)
    depth = pc.count_substring(lost, "/").to_numpy(zero_copy_only=False)
    order = np.argsort(depth, kind="stable")
    for i, s in zip(missing[order].tolist(), lost.take(order).to_pylist()):
        head, _, name = s.rpartition("/")
        node = root
        for comp in head.split("/"):
            key = (node, comp)
            nxt = child.get(key)
            if nxt is None:
                nxt = child[key] = len(par)
                par.append(node)
            node = nxt
        par[i] = node
        child[(node, name)] = i
    return np.asarray(par, np.int64), len(par) - n


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
    exact set formulation exists (see above).  Rows at a position at or above
    ``n_layers`` raise :class:`~layerlab.LayerlabError`."""
    import numpy as np
    import pyarrow.compute as pc

    n = int(pc.max(table.column("position")).as_py()) + 1 if table.num_rows else 0
    if n_layers is not None:
        if n_layers < n:
            raise LayerlabError(f"dive_efficiency_table: rows at position {n - 1} of {n_layers} layers")
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
    try:
        return _by_sets(pos, paths, types, sizes_arr, n)
    except _NeedTrees:
        return reference()


def _by_sets(pos, paths, types, sizes_arr, n: int) -> DiveResult:
    """The set formulation (see above); :class:`_NeedTrees` where dive's order matters."""
    import numpy as np
    import pyarrow.compute as pc

    bounds = np.searchsorted(pos, np.arange(n + 1), side="left")
    is_wh = pc.equal(types, "whiteout").to_numpy(zero_copy_only=False)
    is_opq = pc.equal(types, "opaque").to_numpy(zero_copy_only=False)
    if is_wh[bounds[0]:bounds[1]].any():
        raise _NeedTrees
    # ".wh." inside a name: only ".wh..wh.*" markers in a plain directory are handled here
    is_marker = np.zeros(len(paths), bool)
    marker_rows: list[int] = []
    marker_heads: list[str] = []
    odd = pc.match_substring(paths, _WH)
    if pc.any(odd).as_py():
        idx = np.flatnonzero(odd.to_numpy(zero_copy_only=False))
        for r, path, kind in zip(idx.tolist(), paths.take(idx).to_pylist(), types.take(idx).to_pylist()):
            head, _, last = path.rpartition("/")
            if kind in ("whiteout", "opaque") or not last.startswith(_WHWH) or _WH in head:
                raise _NeedTrees
            is_marker[r] = True
            marker_rows.append(r)
            marker_heads.append(head)
    sizes = sizes_arr.to_numpy()
    csum = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
    layer_sizes = [int(csum[bounds[k + 1]] - csum[bounds[k]]) for k in range(n)]

    codes, universe, parent, head_codes = _universe(paths, marker_heads)
    row_head = np.full(len(paths), -1, np.int64)
    row_head[np.asarray(marker_rows, np.int64)] = head_codes
    wh_layers = [k for k in range(n) if is_wh[bounds[k]:bounds[k + 1]].any()]
    rows = _Rows()
    rows.codes, rows.sizes, rows.row_head, rows.parent = codes, sizes, row_head, parent
    rows.is_wh, rows.is_opq, rows.is_marker = is_wh, is_opq, is_marker
    rows.plain = ~(is_wh | is_opq | is_marker)
    rows.is_dir = pc.equal(types, "dir").to_numpy(zero_copy_only=False)
    rows.empty = np.flatnonzero(pc.equal(universe, "").fill_null(False).to_numpy(zero_copy_only=False))  # the root
    last_wh = wh_layers[-1] if wh_layers else -1
    layers = [_layer_sets(rows, int(bounds[k]), int(bounds[k + 1]), len(universe), k < last_wh) for k in range(n)]

    leaf_codes = [lay.leaf_codes for lay in layers]
    leaf_sizes = [lay.leaf_sizes for lay in layers]
    for j in wh_layers[:-1]:
        # dive grafts a layer in sorted order: a whiteout of x sorts after x itself when
        # x's name sorts before ".wh."; if the layer also has nodes at x, they would be
        # added and then removed: leave that to the trees
        for t in layers[j].whiteouts.tolist():
            name = universe[t].as_py().rpartition("/")[2]
            if layers[j].node[t] and name < _WH + name:
                raise _NeedTrees
    # each whiteout below scans the universe and the earlier whiteouts: past this much work
    # (many whiteouts over a large image) dive's own traversal, linear in the nodes, is cheaper
    seen_wh, work = 0, 0
    for k in wh_layers:
        w = len(layers[k].whiteouts)
        work += w * (len(universe) + seen_wh)
        seen_wh += w
    if work > _SET_WHITEOUT_WORK:
        raise _NeedTrees
    for k in wh_layers:
        ws = layers[k].whiteouts
        leaf_codes.append(ws)
        leaf_sizes.append(np.array([_whiteout_size(layers, k, int(x), universe) for x in ws.tolist()], np.int64))
    return _figures(universe, np.concatenate(leaf_codes), np.concatenate(leaf_sizes).astype(np.int64), layer_sizes)


class _Rows:
    """Per-row arrays of an image table, shared by every layer's :func:`_layer_sets`."""

    __slots__ = ("codes", "sizes", "row_head", "parent", "is_wh", "is_opq", "is_marker", "plain", "is_dir",
                 "empty")


def _layer_sets(rows: _Rows, a: int, b: int, nu: int, stacked: bool) -> _Layer:
    """Layer rows ``a:b`` on codes: its leaves and whiteouts, and when ``stacked``
    (a layer below the last whiteout) its node membership, sizes and is_dir."""
    import numpy as np

    codes, sizes, empty = rows.codes, rows.sizes, rows.empty
    lay = _Layer()
    rr = np.arange(a, b)
    e_rows = rr[rows.plain[a:b]]
    # a path listed twice: the last entry wins
    rev = codes[e_rows][::-1]
    e_codes, first = np.unique(rev, return_index=True)
    e_last = e_rows[::-1][first]
    if len(empty):
        keep = e_codes != empty[0]
        e_codes, e_last = e_codes[keep], e_last[keep]
    d_codes = np.concatenate([codes[rr[rows.is_opq[a:b]]], rows.row_head[rr[rows.is_marker[a:b]]]])
    d_codes = np.unique(d_codes[d_codes >= 0])
    if len(empty):
        d_codes = d_codes[d_codes != empty[0]]
    w_codes = np.unique(codes[rr[rows.is_wh[a:b]]])
    inner = np.zeros(nu, bool)
    _mark_ancestors(rows.parent, np.concatenate([e_codes, d_codes, w_codes]), inner)
    in_e = np.zeros(nu, bool)
    in_e[e_codes] = True
    e_leaf = ~inner[e_codes]
    d_leaf = d_codes[~in_e[d_codes] & ~inner[d_codes]]
    lay.leaf_codes = np.concatenate([e_codes[e_leaf], d_leaf])
    lay.leaf_sizes = np.concatenate([sizes[e_last[e_leaf]], np.zeros(len(d_leaf), np.int64)])
    lay.whiteouts = w_codes
    if stacked:  # the stack below a whiteout layer
        node = inner | in_e
        node[d_codes] = True
        lay.node = node
        lay.size = np.zeros(nu, np.int64)
        lay.size[e_codes] = sizes[e_last]
        lay.is_dir = np.zeros(nu, bool)
        lay.is_dir[e_codes] = rows.is_dir[e_last]
    return lay


def _figures(universe, all_codes, vals, layer_sizes: list[int]) -> DiveResult:
    """dive's figures from every leaf visit (path code, size)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    # per dive path: cumulative size, smallest copy, copies
    nu = len(universe)
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
    under = np.flatnonzero(pc.starts_with(universe, xs + "/").fill_null(False).to_numpy(zero_copy_only=False))
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
