"""Reference implementations the tests compare the fast library code with.

They are written for reading, not speed, and live here because only tests use them.
"""
from __future__ import annotations

import pyarrow as pa  # noqa: F401 - the annotation

from layerlab.contents.merge import (
    DELETED,
    DELETED_WITH_DIR,
    OPAQUE_HIDDEN,
    OVERWRITTEN,
    OVERWRITTEN_SAME_LAYER,
    REPLACED_BY_DIR,
    REPLACED_BY_FILE,
    Merge,
    _finish,
    _hide_subtree,
    _link,
    _new_merge,
)


def _parent(p: str) -> str:
    return p.rpartition("/")[0]


def merge_table_reference(table: pa.Table) -> Merge:
    """:func:`layerlab.contents.merge.merge_table`, written for reading: one pass per layer over every row.
    Kept as the reference the faster ``merge_table`` is tested against: the same
    primitives (hiding a subtree, resolving a hard link, finishing), a plainer
    traversal (every row of a layer visited for deletions, every ancestor walked)."""
    m = _new_merge(table)
    positions, paths, types, n = m.positions, m.paths, m.types, len(m.paths)
    state: dict[str, int] = {}
    kids: dict[str, set[str]] = {}
    hidden_by, how = m.hidden_by, m.how

    def hide_subtree(top: str, layer: int, top_how: str, child_how: str, keep_top: bool = False) -> None:
        _hide_subtree(state, kids, m, top, layer, top_how, child_how, keep_top)

    i = 0
    while i < n:
        layer = positions[i]
        j = i
        while j < n and positions[j] == layer:
            j += 1
        # 1. deletions against the lower layers
        for r in range(i, j):
            t = types[r]
            if t == "whiteout":
                p = paths[r]
                if p in state or p in kids:
                    hide_subtree(p, layer, DELETED, DELETED_WITH_DIR)
                else:
                    m.orphan_notes.append(f"layer {layer}: whiteout of /{p}, which no lower layer has")
            elif t == "opaque":
                hide_subtree(paths[r], layer, OPAQUE_HIDDEN, OPAQUE_HIDDEN, keep_top=True)
        # 2. additions in tar order
        for r in range(i, j):
            t = types[r]
            if t in ("whiteout", "opaque"):
                continue
            p = paths[r]
            base = p.rsplit("/", 1)[-1]
            if base.startswith(".wh..wh."):
                continue  # AUFS bookkeeping: not part of the filesystem
            # ancestors: make sure each is a directory (implicitly created if missing).
            # A parent that already has children registered and is a directory
            # (explicit or implied) was checked when its first child came: skip the walk.
            par = _parent(p)
            pr = state.get(par) if par else None
            if par and par in kids and (pr is None or types[pr] == "dir"):
                anc = []
            else:
                anc = []
                a = par
                while a:
                    anc.append(a)
                    a = _parent(a)
            for a in reversed(anc):
                ar = state.get(a)
                if ar is not None:
                    at = types[ar]
                    if at == "symlink":
                        m.note(r, f"parent /{a} is a symlink (layer {positions[ar]}): the entry is reached through it")
                    elif at != "dir":
                        hide_subtree(a, layer, REPLACED_BY_DIR, DELETED_WITH_DIR)
                kids.setdefault(_parent(a), set()).add(a)
            old = state.get(p)
            if old is not None:
                if types[old] == "dir" and t != "dir":
                    hide_subtree(p, layer, REPLACED_BY_FILE, DELETED_WITH_DIR)
                else:
                    hidden_by[old] = layer
                    how[old] = OVERWRITTEN_SAME_LAYER if positions[old] == layer else OVERWRITTEN
            state[p] = r
            kids.setdefault(_parent(p), set()).add(p)
            if t == "hardlink":
                _link(state, m, r)
        i = j
    return _finish(state, m)
