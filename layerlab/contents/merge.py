"""Stack an image's layers the way a container runtime does (OCI image spec,
"Applying Changesets"), remembering for every tar entry whether it is visible
in the final filesystem and, if not, which layer hid it and how.

Rules, applied per layer from the base up:

1. The layer's deletions apply to the layers *below* it only (an entry in the
   same layer as a whiteout is never hidden by it):

   * ``.wh.<name>`` deletes ``<name>``; a deleted directory goes with all its
     children;
   * ``.wh..wh..opq`` in a directory hides everything the lower layers have in
     it (the directory itself stays).

2. Then its entries are added in tar order: an entry replaces the same path
   from below (a later entry of the same layer replaces an earlier one); a
   non-directory replacing a directory removes the directory's children; a
   directory (explicit or implied by a child's path) replacing a
   non-directory removes it; a path deleted below may be re-created.
3. Hard links resolve to the file they name, which may live in a lower layer;
   the link's content is that file's.

Written by hand: no maintained Python library applies OCI whiteouts to file
tables (only to real directories, which we never write).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from .whiteouts import META_PREFIX, OPAQUE, WHITEOUT, is_meta_name, parent

OVERWRITTEN = "overwritten"
OVERWRITTEN_SAME_LAYER = "overwritten in the same layer"
DELETED = "deleted"
DELETED_WITH_DIR = "deleted with its directory"
OPAQUE_HIDDEN = "hidden by an opaque directory"
REPLACED_BY_FILE = "directory replaced by a non-directory"
REPLACED_BY_DIR = "replaced by a directory"

_MAX_SYMLINK_HOPS = 40  # Linux's limit (ELOOP)


@dataclass
class Merge:
    """Per-row outcome of stacking one image's layers."""

    positions: list[int]
    paths: list[str]
    types: list[str]
    sizes: list[int]
    link_targets: list[str | None]
    hidden_by: list[int | None]               # layer position that hid the row
    how: list[str | None]                      # one of the constants above
    link_row: list[int | None]                 # hard link -> the file row it resolves to
    notes: dict[int, list[str]] = field(default_factory=dict)   # merge warnings per row
    final: dict[str, int] = field(default_factory=dict)         # visible path -> row
    orphan_notes: list[str] = field(default_factory=list)       # e.g. whiteouts of nothing
    kept_by_link: set[int] = field(default_factory=set)         # hidden rows a visible hard link still uses

    def wasted(self, r: int) -> bool:
        """Row ``r`` is stored but unreachable in the final filesystem."""
        return self.hidden_by[r] is not None and r not in self.kept_by_link

    def note(self, row: int, text: str) -> None:
        self.notes.setdefault(row, []).append(text)

    @property
    def visible_rows(self) -> list[int]:
        return sorted(self.final.values(), key=lambda r: self.paths[r])


def _hide_subtree(state: dict[str, int], kids: dict[str, set[str]], m: Merge, top: str, layer: int,
                  top_how: str, child_how: str, keep_top: bool = False) -> None:
    """Hide ``top`` and everything under it (only what is under it when ``keep_top``:
    an opaque directory), recording ``layer`` and how on each row not hidden yet."""
    hidden_by, how = m.hidden_by, m.how
    if keep_top:  # an opaque directory: hide what is below it, keep it
        stack = list(kids.get(top, ()))
        if top in kids:
            kids[top] = set()
    else:
        stack = [top]
        s = kids.get(parent(top))
        if s is not None:
            s.discard(top)
    while stack:
        q = stack.pop()
        r = state.pop(q, None)
        if r is not None and hidden_by[r] is None:
            hidden_by[r] = layer
            how[r] = top_how if q == top else child_how
        ch = kids.pop(q, None)
        if ch:
            stack.extend(ch)


def _link(state: dict[str, int], m: Merge, r: int) -> None:
    """Resolve hard link row ``r`` to the file row it names (rule 3), or note why not."""
    types, link_row = m.types, m.link_row
    target = m.link_targets[r] or ""
    tr = state.get(target)
    hops = 0
    while tr is not None and types[tr] == "hardlink" and hops < 64:
        tr = link_row[tr]
        hops += 1
    if tr is None:
        m.note(r, f"hard link target /{target} does not exist in this or a lower layer")
    elif types[tr] != "file":
        m.note(r, f"hard link to a {types[tr]} (/{target})")
    else:
        link_row[r] = tr


def _finish(state: dict[str, int], m: Merge) -> Merge:
    """Record the final filesystem, the hidden rows visible hard links still use, symlink loops."""
    m.final = state
    # content hidden at its own path but still reachable through a visible hard link is not waste
    for r in state.values():
        lr = m.link_row[r]
        if lr is not None and m.hidden_by[lr] is not None:
            m.kept_by_link.add(lr)
    _check_symlinks(m)
    return m


def _new_merge(table: pa.Table) -> Merge:
    """An empty :class:`Merge` over the rows of ``table`` (nothing hidden yet)."""
    cols = table.select(["position", "path", "type", "size", "link_target"]).to_pydict()
    n = len(cols["path"])
    return Merge(cols["position"], cols["path"], cols["type"], [s or 0 for s in cols["size"]], cols["link_target"],
                 [None] * n, [None] * n, [None] * n)


def _marks(table: pa.Table, m: Merge) -> tuple[list[int], set[int], list[int]]:
    """(whiteout/opaque rows, rows the additions skip: those and AUFS ``.wh..wh.*``
    bookkeeping, the first row of each layer and then the row count), with Arrow kernels."""
    import numpy as np
    import pyarrow.compute as pc

    marks = np.flatnonzero(pc.is_in(table.column("type"), value_set=pa.array([WHITEOUT, OPAQUE]))
                           .to_numpy(zero_copy_only=False))
    cand = np.flatnonzero(pc.match_substring(table.column("path"), META_PREFIX).to_numpy(zero_copy_only=False))
    skip = set(marks.tolist())
    skip.update(r for r in cand.tolist() if is_meta_name(m.paths[r]))
    pos_np = np.asarray(m.positions, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, pos_np[1:] != pos_np[:-1]]).tolist() + [len(m.paths)]
    return marks.tolist(), skip, starts


def merge_table(table: pa.Table) -> Merge:
    """Stack the rows of one image's file table (rows ordered by position, then tar
    order) by the rules above.

    Arranged for speed (≈2x over a plain pass per layer on a 66k-entry image): each
    layer's whiteout/opaque rows are found with Arrow kernels instead of a pass over
    every row, parents come from one ``rpartition`` per entry, a parent already
    known to be a directory skips the ancestor walk, and the hot loop uses local
    names.  ``tests/_reference.py`` holds the plain version it is tested against."""
    m = _new_merge(table)
    state: dict[str, int] = {}
    kids: dict[str, set[str]] = {}
    if not m.paths:
        return _finish(state, m)
    positions, paths, types = m.positions, m.paths, m.types
    hidden_by, how, note = m.hidden_by, m.how, m.note
    mark_list, skip, starts = _marks(table, m)
    mk = 0
    state_get, kids_get = state.get, kids.get
    # ``risky``: some directory with registered children (a key of ``kids``) is not a directory
    # in ``state`` (a symlink, a file).  Until then, every key of ``kids`` is a directory and so
    # are its ancestors, and an ancestor walk may stop at the first key it meets: a chain of
    # nested directories costs its length, not its length squared (a hostile 3,000-deep chain).
    risky = False
    implied = ImpliedBudget("the merge of the image's layers")

    for b in range(len(starts) - 1):
        i, j = starts[b], starts[b + 1]
        layer = positions[i]
        # 1. deletions against the lower layers
        while mk < len(mark_list) and mark_list[mk] < j:
            r = mark_list[mk]
            mk += 1
            p = paths[r]
            if types[r] == WHITEOUT:
                if p in state or p in kids:
                    _hide_subtree(state, kids, m, p, layer, DELETED, DELETED_WITH_DIR)
                else:
                    m.orphan_notes.append(f"layer {layer}: whiteout of /{p}, which no lower layer has")
            else:
                _hide_subtree(state, kids, m, p, layer, OPAQUE_HIDDEN, OPAQUE_HIDDEN, keep_top=True)
        # 2. additions in tar order
        for r in range(i, j):
            if r in skip:
                continue
            p = paths[r]
            t = types[r]
            par = p.rpartition("/")[0]
            if par:
                pr = state_get(par)
                if par not in kids or not (pr is None or types[pr] == "dir"):
                    # ancestors: make sure each is a directory (implicitly created if missing)
                    anc = []
                    a = par
                    while a and (risky or a is par or a not in kids):
                        anc.append(a)
                        a = a.rpartition("/")[0]
                    for a in reversed(anc):
                        ar = state_get(a)
                        if ar is not None:
                            at = types[ar]
                            if at == "symlink":
                                note(r, f"parent /{a} is a symlink (layer {positions[ar]}): the entry is reached through it")
                            elif at != "dir":
                                _hide_subtree(state, kids, m, a, layer, REPLACED_BY_DIR, DELETED_WITH_DIR)
                        elif a not in kids:
                            implied.add(a)
                        ap = a.rpartition("/")[0]
                        s = kids_get(ap)
                        if s is None:
                            kids[ap] = {a}
                            if not risky and ap:
                                pa_ = state_get(ap)
                                risky = pa_ is not None and types[pa_] != "dir"
                        else:
                            s.add(a)
            old = state_get(p)
            if old is not None:
                if types[old] == "dir" and t != "dir":
                    _hide_subtree(state, kids, m, p, layer, REPLACED_BY_FILE, DELETED_WITH_DIR)
                else:
                    hidden_by[old] = layer
                    how[old] = OVERWRITTEN_SAME_LAYER if positions[old] == layer else OVERWRITTEN
            state[p] = r
            if t != "dir" and not risky and p in kids:
                risky = True
            s = kids_get(par)
            if s is None:
                kids[par] = {p}
                if not risky and par:
                    pa_ = state_get(par)
                    risky = pa_ is not None and types[pa_] != "dir"
            else:
                s.add(p)
            if t == "hardlink":
                _link(state, m, r)
    return _finish(state, m)


class ImpliedBudget:
    """Bytes of the parent directories no entry lists (an implied directory's full
    path is a string of its own), counted against the ``path_bytes_per_layer`` limit
    (:func:`layerlab.limits`): real layers list their directories, and a hostile one
    of many deep, distinct, unlisted chains stops here instead of filling memory."""

    __slots__ = ("what", "left", "limit")

    def __init__(self, what: str) -> None:
        from .._limits import current

        self.what = what
        self.limit = self.left = current().path_bytes_per_layer

    def add(self, path: str) -> None:
        self.left -= len(path)
        if self.left < 0:
            from .._limits import exceeded

            raise exceeded(f"{self.what}: bytes of implied parent directories (paths no entry lists)",
                           "path_bytes_per_layer", self.limit, "bytes")


def _check_symlinks(m: Merge) -> None:
    """Flag symlinks that loop (a user following them would get ELOOP)."""
    state = m.final
    trie = _symlink_trie(state, m)
    if not trie:
        return
    for p, r in state.items():
        if m.types[r] != "symlink":
            continue
        if _resolve(state, m, p, trie) is None:
            m.note(r, "symlink loop: following it never ends (more than 40 links)")


def _symlink_trie(state: dict[str, int], m: Merge) -> dict:
    """The visible symlinks' paths as nested dicts of components (``None: True``
    where one ends), so resolving a path looks up only prefixes that can be one."""
    trie: dict = {}
    for p, r in state.items():
        if m.types[r] == "symlink":
            node = trie
            for c in p.split("/"):
                node = node.setdefault(c, {})
            node[None] = True
    return trie


def _resolve(state: dict[str, int], m: Merge, path: str, trie: dict) -> str | None:
    """Resolve ``path`` through symlinks inside the image; None on a loop.  Linear in
    the components walked: ``trie`` (:func:`_symlink_trie`) tells which prefixes are
    symlinks, so no prefix is spelled out unless it is one (a deep path used to cost
    the sum of all its prefixes)."""
    parts = path.split("/")[::-1]  # a stack: the next component last
    cur: list[str] = []
    at: list[dict | None] = [trie]  # at[i]: the trie node of cur[:i] (None: no symlink below)
    hops = 0
    while parts:
        name = parts.pop()
        if name in ("", "."):
            continue
        if name == "..":
            if cur:
                cur.pop()
                at.pop()
            continue
        node = at[-1]
        nxt = node.get(name) if node is not None else None
        if nxt is not None and nxt.get(None):
            r = state["/".join(cur + [name])]
            hops += 1
            if hops > _MAX_SYMLINK_HOPS:
                return None
            target = m.link_targets[r] or ""
            if target.startswith("/"):
                cur, at = [], [trie]
            parts.extend(reversed(target.split("/")))
            continue
        cur.append(name)
        at.append(nxt)
    return "/".join(cur)


def filesystem_table(table: pa.Table, m: Merge) -> pa.Table:
    """The visible rows of ``table`` (sorted by path), with ``content_size`` and
    merge warnings; hard links carry their target's hash."""
    rows = m.visible_rows
    idx = pa.array(rows, pa.int64())
    out = table.take(idx)
    hashes = table.column("hash").to_pylist()
    warns = table.column("warning").to_pylist()
    new_hash, new_warn, content = [], [], []
    for r in rows:
        t = m.types[r]
        lr = m.link_row[r]
        h = hashes[r]
        if t == "file":
            cs = m.sizes[r]
        elif t == "hardlink" and lr is not None:
            cs = m.sizes[lr]
            h = hashes[lr]
        else:
            cs = 0
        new_hash.append(h)
        content.append(cs)
        notes = ([warns[r]] if warns[r] else []) + m.notes.get(r, [])
        new_warn.append("; ".join(notes) if notes else None)
    out = out.set_column(out.schema.get_field_index("hash"), "hash", pa.array(new_hash, pa.string()))
    out = out.set_column(out.schema.get_field_index("warning"), "warning", pa.array(new_warn, pa.string()))
    out = out.append_column("content_size", pa.array(content, pa.int64()))
    return out
