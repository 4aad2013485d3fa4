"""An image's file table stacked once with the OCI rules, and what a merged
layer of consecutive positions would hold.

Nothing here applies whiteouts itself: :func:`layerlab.contents.merge.merge_table`
stacks every layer once and says, per tar entry, which layer hid it and how
(``hidden_by``, ``how``) and which file a hard link resolves to
(``link_row``).  Every question a merge asks is read from that one stacking:

* the filesystem just below a group (``first``) holds the entries written
  below it that no layer below ``first`` hid;
* the filesystem after the group (``last``) holds the entries written up to
  ``last`` that no layer up to ``last`` hid;
* the merged layer holds the group's entries that survive to ``last``, plus
  the markers that turn the first filesystem into the second.

Sizes follow the file table: the merged layer's size is the sum of its tar
entries' sizes (``size``: regular files' bytes; directories, links and
markers 0; a hard link whose target the group deletes becomes a regular file
of the target's size).  That is not the rule of
``layerlab.contents.sizes.table_docker_size`` (which adds symlink target
lengths) on purpose: the engine counts a layer it *built* from a ``RUN``
without them.  Measured on Docker Engine 20.10 (overlay2, BuildKit) with the
image ``layerlab-bench/contents:1``: its built layers' ``docker history``
sizes equal the tar entries' sums exactly (layer 2: 1,362,176,548 bytes; with
symlink target lengths it would be 1,362,186,622), while its base layer,
imported (``docker import``) rather than built, follows the symlink-counting
rule.  A merged layer is built, so it is sized the first way (checked against
the engine in ``tests/test_merge_engine.py``), and the
prediction stays what it was.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ...contents.merge import OVERWRITTEN, OVERWRITTEN_SAME_LAYER, REPLACED_BY_FILE, merge_table
from ...contents.tarscan import DIR, FILE, HARDLINK, OPAQUE, WHITEOUT
from ...contents.whiteouts import META_PREFIX
from ...errors import AnalysisError, LayerlabError
from ...model import Image

_REWRITTEN = (OVERWRITTEN, OVERWRITTEN_SAME_LAYER, REPLACED_BY_FILE)
_COLUMNS = ("image", "position", "path", "type", "size", "mode", "uid", "gid", "link_target", "hash")


def _plain(files: pd.DataFrame) -> pd.DataFrame:
    """The file table's columns that matter here, rows ordered by layer (tar order
    kept), index 0..n-1."""
    keep = [c for c in _COLUMNS if c in files.columns]
    out = files[keep]
    if "link_target" not in out.columns:
        out = out.assign(link_target=pd.Series([None] * len(out), index=out.index, dtype="string"))
    pos = pd.to_numeric(out["position"]).to_numpy()
    if len(pos) > 1 and (np.diff(pos) < 0).any():
        out = out.iloc[np.argsort(pos, kind="stable")]
    return out.reset_index(drop=True)


def file_table(img: Image, files: pd.DataFrame | None, progress: bool = False) -> tuple[pd.DataFrame | None, str | None]:
    """(``img``'s file table — ``files`` when given, checked and narrowed to ``img`` —
    or None and the reason it is unavailable)."""
    if files is not None:
        need = {"position", "path", "type", "size"}
        missing = need - set(files.columns)
        if missing:
            raise AnalysisError(f"files= frame lacks column(s) {sorted(missing)}; pass img.files()")
        if "image" in files.columns and files["image"].nunique() > 1:
            files = files[files["image"] == img.reference]
        return files, None
    try:
        return img.files(progress=progress), None
    except LayerlabError as e:
        if not img.has_contents:
            return None, (
                f"{img.reference} ({img.source}) carries no layer contents; load it from an archive, "
                "an OCI layout or the engine"
            )
        return None, f"its file table could not be read: {e}"


def _ancestors(paths) -> set[str]:
    """Every strict ancestor directory of ``paths`` (implicit directories)."""
    out: set[str] = set()
    for p in paths:
        a = p.rpartition("/")[0]
        while a and a not in out:
            out.add(a)
            a = a.rpartition("/")[0]
    return out


@dataclass
class MergedLayer:
    """What the merged layer of one group holds (row numbers of the file table)."""

    keep: list[int]                                   # entries copied from the group's layers
    markers: list[tuple[str, int]]                    # (whiteout|opaque, row whose path and fields it takes)
    materialised: dict[int, int] = field(default_factory=dict)   # hard-link row -> file row it copies
    vanished_entries: int = 0


class Stacked:
    """One image's file table (pandas, rows by layer) and its layers stacked once
    (:func:`layerlab.contents.merge.merge_table`)."""

    def __init__(self, files: pd.DataFrame):
        import pyarrow as pa

        self.files = _plain(files)
        f = self.files
        arrow = pa.table({
            "position": pa.array(pd.to_numeric(f["position"]).astype("int64"), pa.int64()),
            "path": pa.array(f["path"].astype("string"), pa.string()),
            "type": pa.array(f["type"].astype("string"), pa.string()),
            "size": pa.array(f["size"].astype("Int64"), pa.int64()),
            "link_target": pa.array(f["link_target"].astype("string"), pa.string()),
        })
        self.m = merge_table(arrow)
        self.pos = np.asarray(self.m.positions, dtype=np.int64)
        # AUFS bookkeeping names (``.wh..wh.*``) are not part of the filesystem
        self._entry = [t not in (WHITEOUT, OPAQUE) and not p.rpartition("/")[2].startswith(META_PREFIX)
                       for t, p in zip(self.m.types, self.m.paths)]

    def rows_of(self, first: int, last: int) -> range:
        """The rows of layers ``first``..``last``."""
        return range(int(np.searchsorted(self.pos, first, "left")), int(np.searchsorted(self.pos, last, "right")))

    def visible(self, stop: int, at: int) -> dict[str, int]:
        """Path -> row of every entry visible once layer ``at`` is applied, among rows ``< stop``."""
        hid, paths, entry = self.m.hidden_by, self.m.paths, self._entry
        return {paths[r]: r for r in range(stop) if entry[r] and (hid[r] is None or hid[r] > at)}

    def layer_size(self, pos: int) -> int:
        """Sum of the tar entries' sizes of layer ``pos`` (see the module doc)."""
        sizes = self.m.sizes
        return int(sum(sizes[r] for r in self.rows_of(pos, pos)))

    def merged_size(self, ml: MergedLayer) -> int:
        """The merged layer's size: its tar entries' sizes (see the module doc); a hard
        link that becomes a file weighs its target."""
        sizes = self.m.sizes
        return int(sum(sizes[ml.materialised.get(r, r)] for r in ml.keep))

    # -- one group -------------------------------------------------------------------
    def merged(self, positions: Sequence[int]) -> MergedLayer:
        """The merged layer of the consecutive ``positions`` (see the module doc)."""
        first, last = min(positions), max(positions)
        rows = self.rows_of(first, last)
        m, entry = self.m, self._entry
        hid, how, types, paths = m.hidden_by, m.how, m.types, m.paths
        below = self.visible(rows.start, first - 1)
        after = self.visible(rows.stop, last)
        below_dirs, after_dirs = _ancestors(below), _ancestors(after)
        out = MergedLayer([], [])
        for r in rows:
            if not entry[r]:
                continue
            if after.get(paths[r]) == r:
                out.keep.append(r)
                lr = m.link_row[r]
                if types[r] == HARDLINK and lr is not None and hid[lr] is not None and hid[lr] <= last:
                    out.materialised[r] = lr   # its target is gone after the group: carry the content
            elif types[r] == FILE or how[r] not in _REWRITTEN:
                out.vanished_entries += 1      # a directory or link written again does not vanish
        out.markers = self._markers(rows, below, below_dirs, after, after_dirs)
        return out

    def _markers(self, rows: range, below, below_dirs, after, after_dirs) -> list[tuple[str, int]]:
        """Whiteouts of lower paths the group deletes, opaque directories it (re)creates.

        A group whiteout of ``p`` stays when ``p`` was there below the group, is gone
        after it, and no later step of the group deletes or hides a directory above
        ``p``.  When ``p`` comes back as a directory it becomes an opaque marker
        instead (re-created explicitly: only when the lower directory had
        contents).  A group opaque marker stays unless a later step deletes the
        directory or one above it."""
        types, paths = self.m.types, self.m.paths
        marks = [r for r in rows if types[r] in (WHITEOUT, OPAQUE)]
        later_wh: set[str] = set()     # paths whited out by a later marker row
        later_any: set[str] = set()    # paths whited out or made opaque by a later marker row
        seen: set[tuple[str, str]] = set()
        whiteouts: list[int] = []
        opaques: dict[str, tuple[int, int]] = {}   # path -> (order, row whose fields the marker takes)

        def opaque(p: str, row: int) -> None:
            # one marker per directory: placed where it was first decided, with the latest row's fields
            k, r0 = opaques.get(p, (row, row))
            opaques[p] = (min(k, row), max(r0, row))

        def covered(p: str, by: set[str]) -> bool:
            a = p.rpartition("/")[0]
            while a:
                if a in by:
                    return True
                a = a.rpartition("/")[0]
            return False

        for r in reversed(marks):
            t, p = types[r], paths[r]
            if (t, p) not in seen:
                seen.add((t, p))
                is_dir = (p in after and types[after[p]] == DIR) or (p not in after and p in after_dirs)
                if t == OPAQUE:
                    if p not in later_wh and not covered(p, later_wh) and is_dir:
                        opaque(p, r)
                elif (p in below or p in below_dirs) and not covered(p, later_any):
                    if p not in after and p not in after_dirs:
                        whiteouts.append(r)
                    elif is_dir and (p not in after or p in below_dirs):
                        # re-created: explicitly (the directory's own row) or as a parent (the whiteout's)
                        opaque(p, after.get(p, r))
            if t == WHITEOUT:
                later_wh.add(p)
            later_any.add(p)
        return [(WHITEOUT, r) for r in sorted(whiteouts)] + [(OPAQUE, r) for _k, r in sorted(opaques.values())]

    # -- every pair of layers ------------------------------------------------------------
    def hidden_pairs(self) -> pd.DataFrame:
        """Per (writer layer, hider layer): bytes of regular files the writer wrote
        that the later hider deleted or overwrote, and why, in bytes:
        ``deleted_bytes`` (deleted, not a cache), ``cache_bytes`` (deleted or
        rewritten with new content, a package-manager cache by
        :mod:`layerlab.analysis._cache_rules`),
        ``overwritten_bytes`` (new content, or content unknown without hashes),
        ``same_content_bytes`` / ``same_content_files`` (stored again with the
        same content), of which ``metadata_bytes`` changed only mode or owner
        (a chmod/chown copy-up); the three largest paths (``examples``) and
        the three largest of each of those columns (``examples_by``)."""
        from .._cache_rules import CACHE_KINDS, classify

        m, f = self.m, self.files

        def col(name):
            return f[name].astype(object).where(f[name].notna(), None).tolist() if name in f.columns else None
        hashes, modes, uids, gids = col("hash"), col("mode"), col("uid"), col("gid")
        first_at: dict[tuple[int, str], int] = {}
        if hashes is not None:
            for q, key in enumerate(zip(m.positions, m.paths)):
                first_at.setdefault(key, q)
        acc: dict[tuple[int, int], dict] = {}
        rows: list[tuple[tuple[int, int], int, str, str]] = []   # (pair, bytes, path, column)
        for r, (h, t, z) in enumerate(zip(m.hidden_by, m.types, m.sizes)):
            if h is None or t != FILE or not z or h == m.positions[r]:
                continue
            if m.how[r] != OVERWRITTEN:
                column = "deleted_bytes"
            else:
                q = first_at.get((h, m.paths[r])) if hashes is not None else None
                if q is not None and hashes[r] is not None and hashes[q] == hashes[r]:
                    same_meta = all(v is None or v[q] == v[r] for v in (modes, uids, gids))
                    column = "same_content_bytes" if same_meta else "metadata_bytes"
                else:
                    column = "overwritten_bytes"
            rows.append(((m.positions[r], h), z, m.paths[r], column))
        # a cache deleted or rewritten (apt's pkgcache.bin by the next apt-get) was left behind by its writer
        deleted = [i for i, row in enumerate(rows) if row[3] in ("deleted_bytes", "overwritten_bytes")]
        if deleted:
            kinds = classify(pd.Series([rows[i][2] for i in deleted], dtype="string"))
            for i, kind in zip(deleted, kinds):
                if kind in CACHE_KINDS:
                    rows[i] = (*rows[i][:3], "cache_bytes")
        for key, z, path, column in rows:
            a = acc.setdefault(key, {"hidden_bytes": 0, "deleted_bytes": 0, "cache_bytes": 0,
                                     "overwritten_bytes": 0, "same_content_bytes": 0, "same_content_files": 0,
                                     "metadata_bytes": 0, "examples": {}})
            a["hidden_bytes"] += z
            a[column] += z
            if column == "metadata_bytes":       # a metadata change stores the same content again too
                a["same_content_bytes"] += z
            if column in ("metadata_bytes", "same_content_bytes"):
                a["same_content_files"] += 1
            a["examples"].setdefault(column, []).append((z, path))
        cols = ["writer", "hider", "hidden_bytes", "deleted_bytes", "cache_bytes", "overwritten_bytes",
                "same_content_bytes", "same_content_files", "metadata_bytes", "examples", "examples_by"]
        out = [
            {**{k: v for k, v in a.items() if k != "examples"}, "writer": w, "hider": h,
             "examples": [q for _, q in sorted((x for v in a["examples"].values() for x in v), reverse=True)[:3]],
             "examples_by": {c: [q for _, q in sorted(v, reverse=True)[:3]] for c, v in a["examples"].items()}}
            for (w, h), a in sorted(acc.items())
        ]
        return pd.DataFrame(out, columns=cols)

    # -- the merged layer as a frame -------------------------------------------------------
    def merged_frame(self, ml: MergedLayer) -> pd.DataFrame:
        """The rows of the merged layer: kept entries, then whiteouts, then opaque markers."""
        f = self.files
        kept = f.iloc[ml.keep].copy()
        kept["materialise_from"] = pd.array([None] * len(kept), dtype="Int64")
        if ml.materialised:
            at = [ml.keep.index(r) for r in ml.materialised]
            src = list(ml.materialised.values())
            kept.iloc[at, kept.columns.get_loc("type")] = FILE
            kept.iloc[at, kept.columns.get_loc("size")] = [self.m.sizes[q] for q in src]
            kept.iloc[at, kept.columns.get_loc("materialise_from")] = [self.m.positions[q] for q in src]
        marks = f.iloc[[r for _k, r in ml.markers]].copy()
        marks["type"] = [k for k, _r in ml.markers]
        marks["size"] = 0
        marks["materialise_from"] = pd.array([None] * len(marks), dtype="Int64")
        out = pd.concat([kept, marks], ignore_index=True) if len(marks) else kept.reset_index(drop=True)
        out["source_position"] = out["position"]
        return out


def merged_layer_table(files: pd.DataFrame, positions: Sequence[int]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The entries the merged layer of ``positions`` holds (the file-table rows
    that survive, plus whiteout/opaque rows of lower paths), and counts of what
    vanished (``vanished_entries``, ``hardlinks_materialised``).  ``files`` is
    one image's file table (``position``, ``path``, ``type``, ``size`` …);
    hard links that become files carry ``materialise_from`` (the layer of the
    content)."""
    st = Stacked(files)
    ml = st.merged(sorted(positions))
    return st.merged_frame(ml), {"vanished_entries": ml.vanished_entries,
                                 "hardlinks_materialised": len(ml.materialised)}
