"""What-if merges: predict what joining build steps into one layer does.

>>> pred = ll.what_if_merge(img, [(2, 4), [6, 7]], fleet=fleet)
>>> pred.summary    # layers, size, compressed size, sharing lost: before and after
>>> pred.groups     # one row per merged group: exact merged size, measured compressed size, method
>>> pred.layers     # the predicted layer list
>>> pred.sharing    # per other image of the fleet: bytes shared before and after
>>> pred.rebuild    # per step: bytes rebuilt (and pushed) when it changes, before and after
>>> ll.suggest_merges(img)   # merges ranked by bytes saved, with the reason

Steps are **layer positions** (the ``position`` column of ``img.layers()``,
0 = base).  A group is ``(first, last)`` (inclusive), a ``range``, or a list
of consecutive positions; several groups at once: ``[(2, 4), [6, 7]]``.

How the numbers are obtained
----------------------------
*Uncompressed size of a merged layer* — exact, from the layers' file tables
(``img.files()``; or the blobs scanned with :mod:`layerlab.contents`): the
group's layers are applied in order on top of the filesystem below the group,
with the OCI rules (a whiteout removes the path and everything under it; an
opaque directory hides what lower layers had under it).  What survives is the
merged layer: a file added then deleted inside the group vanishes, a file
written twice counts once (last version), whiteouts and opaque markers of
*lower* paths stay.  Its size is Docker's accounting: the sum of the tar
entries' sizes (directories, symlinks, whiteouts: 0; a hardlink whose target
was deleted inside the group becomes a regular file of the target's size).

*Compressed size* — measured: the merged layer tar is actually written
(streamed from the source blobs into a temporary file, or into ``output_dir``
when given) and compressed with the algorithm and level the source used: gzip
level read from the blob header's XFL byte (2 -> 9, 4 -> 1, otherwise the
default 6, what Docker pushes with), zstd level 3 (zstd records no level);
uncompressed sources (``docker save``) are compressed with gzip 6, as a push
would.  The group's original layers are recompressed the same way, so the
``method`` column can tell how close our compressor is to the one that made
the real blobs.

*Sharing lost* — every layer from the first changed position up gets a new
chain id, so layers of this image that other images of the fleet share (same
chain id) stop being shared.

*Rebuild cost* — when the step that made layer k changes, that layer and every
layer above it are rebuilt (and pushed: builds are not byte-reproducible, so
the new blobs are new); after a merge a change anywhere inside a group
rebuilds the whole merged layer.

Without layer contents (a snapshot, saved history), exact sizes cannot be
computed: those cells are ``<NA>`` with the reason in ``status``; the upper
bound (the group's current size) is given separately, never as the answer.
"""
from __future__ import annotations

import html
import os
import re
import tarfile
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Sequence

import pandas as pd

from ..errors import AnalysisError, LayerlabError
from ..model import Fleet, Image

__all__ = ["MergePrediction", "what_if_merge", "suggest_merges", "merged_layer_table", "parse_groups"]

WHITEOUT, OPAQUE, FILE, HARDLINK, DIR = "whiteout", "opaque", "file", "hardlink", "dir"


# -- input ------------------------------------------------------------------------------
def parse_groups(steps, n_layers: int, *, label: str = "image") -> list[list[int]]:
    """Normalise ``steps`` to a sorted list of groups of consecutive positions."""

    def one(g) -> list[int]:
        if isinstance(g, range):
            pos = list(g)
        elif isinstance(g, tuple) and len(g) == 2 and all(isinstance(x, int) for x in g):
            a, b = g
            if b < a:
                raise AnalysisError(f"{label}: group {g!r} runs backwards; write (first, last) with first <= last")
            pos = list(range(a, b + 1))
        elif isinstance(g, (list, tuple)) and all(isinstance(x, int) and not isinstance(x, bool) for x in g):
            pos = sorted(set(g))
        else:
            raise AnalysisError(
                f"{label}: cannot read the step group {g!r}; use (first, last), range(a, b) or a list of positions"
            )
        if len(pos) < 2:
            raise AnalysisError(f"{label}: group {g!r} has {len(pos)} layer; a merge needs at least two")
        if pos != list(range(pos[0], pos[-1] + 1)):
            raise AnalysisError(
                f"{label}: group {g!r} is not consecutive; only neighbouring layers can be merged without reordering steps"
            )
        bad = [p for p in pos if p < 0 or p >= n_layers]
        if bad:
            raise AnalysisError(f"{label}: position(s) {bad} do not exist (the image has layers 0..{n_layers - 1})")
        return pos

    if isinstance(steps, range) or (
        isinstance(steps, tuple) and len(steps) == 2 and all(isinstance(x, int) for x in steps)
    ):
        groups = [one(steps)]
    elif isinstance(steps, (list, tuple)) and steps and all(isinstance(x, int) and not isinstance(x, bool) for x in steps):
        groups = [one(list(steps))]
    elif isinstance(steps, (list, tuple)) and steps:
        groups = [one(g) for g in steps]
    else:
        raise AnalysisError(f"{label}: no step groups given ({steps!r}); e.g. what_if_merge(img, [(2, 4), [6, 7]])")
    groups.sort()
    for a, b in zip(groups, groups[1:]):
        if set(a) & set(b):
            raise AnalysisError(f"{label}: groups {a} and {b} overlap; give each layer to at most one group")
    return groups


# -- file tables --------------------------------------------------------------------------
def _plain(files: pd.DataFrame) -> pd.DataFrame:
    """The file table with plain Python values (None for missing), so that row
    logic never meets pandas' NA (whose truth value is ambiguous)."""
    keep = [c for c in ("image", "position", "path", "type", "size", "mode", "uid", "gid", "link_target", "hash")
            if c in files.columns]
    out = files[keep].astype(object)
    return out.where(out.notna(), None)


def _file_tables(img: Image, files: pd.DataFrame | None, progress: bool = False) -> tuple[pd.DataFrame | None, str | None]:
    """(files frame, reason it is unavailable)."""
    if files is not None:
        need = {"position", "path", "type", "size"}
        missing = need - set(files.columns)
        if missing:
            raise AnalysisError(f"files= frame lacks column(s) {sorted(missing)}; pass img.files()")
        if "image" in files.columns and files["image"].nunique() > 1:
            files = files[files["image"] == img.reference]
        return _plain(files), None
    getter = getattr(img, "files", None)
    if not callable(getter):
        return None, f"{img.reference} has no file table"
    try:
        return _plain(getter(progress=progress)), None
    except LayerlabError as e:
        if not img.has_contents:
            return None, (
                f"{img.reference} ({img.source}) carries no layer contents; load it from an archive, "
                "an OCI layout or the engine"
            )
        return None, f"its file table could not be read: {e}"


class _Tree:
    """The set of paths present in a filesystem, with subtree removal.

    Hand-written (a dict of children) because a flat set would make every
    whiteout of a directory a scan of all paths."""

    def __init__(self) -> None:
        self.kids: dict[str, set[str]] = {"": set()}

    def add(self, path: str) -> None:
        child: str | None = None
        while True:
            existed = path in self.kids
            if not existed:
                self.kids[path] = set()
            if child is not None:
                self.kids[path].add(child)
            if existed or path == "":
                return
            child, path = path, (path.rsplit("/", 1)[0] if "/" in path else "")

    def has(self, path: str) -> bool:
        return path in self.kids

    def has_children(self, path: str) -> bool:
        return bool(self.kids.get(path))

    def remove(self, path: str, *, keep_self: bool = False) -> list[str]:
        """Remove ``path`` and its subtree (only the subtree with keep_self); return what was removed."""
        if path not in self.kids:
            return []
        out: list[str] = []
        stack = list(self.kids[path])
        while stack:
            p = stack.pop()
            stack.extend(self.kids.get(p, ()))
            self.kids.pop(p, None)
            out.append(p)
        if keep_self:
            self.kids[path] = set()
        else:
            self.kids.pop(path, None)
            parent = path.rsplit("/", 1)[0] if "/" in path else ""
            self.kids.get(parent, set()).discard(path)
            out.append(path)
        return out


def _apply_lower(tree: _Tree, rows: pd.DataFrame, pos: int, origin: dict[str, tuple[int, int]]) -> None:
    """Apply one lower layer's entries to ``tree`` (deletions first: OCI rules);
    ``origin`` records, per regular file, the layer and size of its last writer."""
    types = rows["type"].to_numpy()
    paths = rows["path"].to_numpy()
    sizes = rows["size"].to_numpy()
    for t, p in zip(types, paths):
        if t == WHITEOUT:
            tree.remove(p)
        elif t == OPAQUE:
            tree.remove(p, keep_self=True)
    for t, p, z in zip(types, paths, sizes):
        if t not in (WHITEOUT, OPAQUE):
            tree.add(p)
            if t == FILE:
                origin[p] = (pos, int(z or 0))


def merged_layer_table(files: pd.DataFrame, positions: Sequence[int]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The entries the merged layer of ``positions`` holds (the file-table rows
    that survive, plus whiteout/opaque rows of lower paths), and counts of what
    vanished.  ``files`` is one image's file table (``position``, ``path``,
    ``type``, ``size`` …)."""
    positions = sorted(positions)
    first = positions[0]
    lower = _Tree()
    origin: dict[str, tuple[int, int]] = {}   # regular file -> (layer of its last writer, size)
    for pos, rows in files[files["position"] < first].groupby("position", sort=True):
        _apply_lower(lower, rows, int(pos), origin)

    state: dict[str, dict] = {}          # path -> surviving row (added inside the group)
    state_tree = _Tree()
    whiteouts: dict[str, dict] = {}      # lower paths the group deletes
    opaques: dict[str, dict] = {}        # directories whose lower contents the group hides
    hidden_lower: set[str] = set()       # lower directories the group deleted (for opaque re-creation)
    vanished_bytes = 0
    vanished_files = 0
    last_size: dict[str, int] = {}
    cols = list(files.columns)
    for pos in positions:
        rows = files[files["position"] == pos]
        recs = rows.to_dict("records") if len(rows) else []
        for r in recs:
            t, p = r["type"], r["path"]
            if t == WHITEOUT:
                for q in state_tree.remove(p):
                    old = state.pop(q, None)
                    if old is not None and old["type"] not in (WHITEOUT, OPAQUE):
                        vanished_bytes += int(old["size"] or 0)
                        vanished_files += 1
                for q in [w for w in whiteouts if w.startswith(p + "/")]:
                    del whiteouts[q]
                for q in [o for o in opaques if o == p or o.startswith(p + "/")]:
                    del opaques[q]
                if lower.has(p):
                    whiteouts[p] = r
                    hidden_lower.add(p)
            elif t == OPAQUE:
                for q in state_tree.remove(p, keep_self=True):
                    old = state.pop(q, None)
                    if old is not None:
                        vanished_bytes += int(old["size"] or 0)
                        vanished_files += 1
                for q in [w for w in whiteouts if w.startswith(p + "/")]:
                    del whiteouts[q]
                # kept even when nothing below needs hiding: the engine records the marker of a
                # directory created opaque (0 bytes either way)
                opaques[p] = r
        for r in recs:
            t, p = r["type"], r["path"]
            if t in (WHITEOUT, OPAQUE):
                continue
            old = state.get(p)
            if old is not None:
                vanished_bytes += int(old["size"] or 0)
                vanished_files += 1 if old["type"] == FILE else 0
            if t != DIR and state_tree.has_children(p):
                for q in state_tree.remove(p, keep_self=True):
                    o2 = state.pop(q, None)
                    if o2 is not None:
                        vanished_bytes += int(o2["size"] or 0)
                        vanished_files += 1
            state[p] = r
            state_tree.add(p)
            anc = p
            while "/" in anc:
                anc = anc.rsplit("/", 1)[0]
                if anc in whiteouts:
                    # a deleted lower directory comes back (implicitly, as a parent): overlayfs makes it opaque
                    opaques[anc] = {**whiteouts.pop(anc), "type": OPAQUE, "size": 0}
            if t == FILE:
                last_size[p] = int(r["size"] or 0)
                origin[p] = (int(pos), int(r["size"] or 0))
            if p in whiteouts:
                del whiteouts[p]
                if t == DIR and lower.has_children(p):
                    # a deleted lower directory re-created inside the group: overlayfs marks it opaque
                    opaques[p] = {**r, "type": OPAQUE, "size": 0}
    out_rows = []
    hardlink_fix = 0
    for p, r in state.items():
        row = dict(r)
        if row["type"] == HARDLINK:
            target = row.get("link_target")
            if target and target not in state and (target in whiteouts or not lower.has(target)) and target in origin:
                # the target was deleted inside the group: the merged tar must carry this link as a
                # regular file with the target's content (which may come from a layer below the group)
                row["type"] = FILE
                row["size"] = origin[target][1]
                row["materialise_from"] = origin[target][0]
                hardlink_fix += 1
        out_rows.append(row)
    for p, r in whiteouts.items():
        out_rows.append({**r, "type": WHITEOUT, "size": 0})
    for p, r in opaques.items():
        out_rows.append({**r, "type": OPAQUE, "size": 0})
    table = pd.DataFrame(out_rows, columns=cols + ["materialise_from"])
    if "position" in table.columns:
        table["source_position"] = table["position"]
    info = {"vanished_bytes": vanished_bytes, "vanished_entries": vanished_files, "hardlinks_materialised": hardlink_fix}
    return table, info


def _layer_size_from_table(files: pd.DataFrame, pos: int) -> int:
    return int(files.loc[files["position"] == pos, "size"].fillna(0).astype("int64").sum())


# -- compression ------------------------------------------------------------------------------
def _compression_of(head: bytes) -> tuple[str, int, str]:
    """(algorithm, level, how the level was found) from a blob's first bytes."""
    if head[:2] == b"\x1f\x8b":
        xfl = head[8] if len(head) > 8 else 0
        if xfl == 2:
            return "gzip", 9, "gzip header XFL=2 (maximum compression)"
        if xfl == 4:
            return "gzip", 1, "gzip header XFL=4 (fastest)"
        return "gzip", 6, f"gzip header XFL={xfl} (default level 6 assumed)"
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return "zstd", 3, "zstd (the frame records no level; zstd's default 3 assumed)"
    return "none", 6, "uncompressed source blob; compressed with gzip level 6, what docker push uses"


class _Compressor:
    """Counts the compressed length of bytes written to it; optionally keeps them in ``sink``."""

    def __init__(self, algorithm: str, level: int, sink: BinaryIO | None = None):
        self.algorithm = "gzip" if algorithm == "none" else algorithm
        self.level = level
        self.sink = sink
        self.count = 0
        self.raw = 0
        if self.algorithm == "zstd":
            import zstandard

            self._z = zstandard.ZstdCompressor(level=level).compressobj()
        else:
            self._z = zlib.compressobj(level, zlib.DEFLATED, 31)

    def _out(self, b: bytes) -> None:
        if b:
            self.count += len(b)
            if self.sink is not None:
                self.sink.write(b)

    def write(self, data) -> int:
        self.raw += len(data)
        self._out(self._z.compress(bytes(data)))
        return len(data)

    def close(self) -> int:
        self._out(self._z.flush())
        return self.count

    def flush(self) -> None:  # tarfile calls it
        pass


class _Tee:
    """A read-only file object that copies every byte read into ``sink``."""

    def __init__(self, src: BinaryIO, sink: _Compressor):
        self.src, self.sink = src, sink

    def read(self, n: int = -1) -> bytes:
        b = self.src.read(n)
        if b:
            self.sink.write(b)
        return b

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def _measure_compressed(img: Image, groups: list[list[int]], keep: dict[int, set[str]], extra: dict[int, list[dict]],
                        output_dir: str | os.PathLike | None,
                        materialise: dict[tuple[int, str], list[tuple[int, str]]] | None = None,
                        progress: bool = False) -> dict[int, dict[str, Any]]:
    """Write each group's merged tar, compressed like the source, and measure it.

    ``keep[pos]``: the paths whose entry from layer ``pos`` survives in its group's merged layer;
    ``extra[g]``: synthetic whiteout/opaque rows for group ``g``.  Returns per group index:
    after (bytes), before_recompressed (bytes), algorithm, level, method.
    """
    from ..contents.compression import DecodedStream

    pos_group = {p: gi for gi, g in enumerate(groups) for p in g}
    out: dict[int, dict[str, Any]] = {}
    sinks: dict[int, Any] = {}
    tars: dict[int, tarfile.TarFile] = {}
    comps: dict[int, _Compressor] = {}
    recomp: dict[int, int] = {gi: 0 for gi in range(len(groups))}
    comp_info: dict[int, tuple[str, int, str]] = {}
    materialise = materialise or {}
    # (target layer, target path) -> its content, spooled (bounded memory) for links that become files
    spool: dict[tuple[int, str], Any] = {}
    deferred: list[tuple[int, tarfile.TarInfo, tuple[int, str]]] = []
    link_of = {(p, link): key for key, links in materialise.items() for (p, link) in links}
    wanted = sorted(set(pos_group) | {k[0] for k in materialise})
    wanted_set = set(wanted)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(wanted), desc=f"writing merged layers of {img.reference}", unit="layer",
               disable=not progress, leave=False)
    try:
        for positions, mt, fobj in img.blobs.iter_blobs(wanted):  # type: ignore[union-attr]
            bar.update(len([p for p in positions if p in wanted_set]))
            in_groups = sorted({pos_group[p] for p in positions if p in pos_group})
            if not in_groups:
                # a layer below a group, read only for the content of hardlink targets
                need = {k[1]: k for k in materialise if k[0] in positions}
                stream = DecodedStream(fobj, label=f"{img.reference} layer {positions}", media_type=mt)
                try:
                    tf = tarfile.open(fileobj=stream, mode="r|", encoding="utf-8", errors="surrogateescape")
                    for ti in tf:
                        from ..contents.tarscan import normalise_path

                        path, _ = normalise_path(ti.name)
                        if path in need and ti.isfile():
                            sp = tempfile.SpooledTemporaryFile(max_size=1 << 22)
                            src = tf.extractfile(ti)
                            while True:
                                chunk = src.read(1 << 20) if src else b""
                                if not chunk:
                                    break
                                sp.write(chunk)
                            spool[need[path]] = sp
                except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
                    raise AnalysisError(f"{img.reference} layer {positions}: cannot read the layer tar ({e})") from e
                continue
            stream = DecodedStream(fobj, label=f"{img.reference} layer {positions}", media_type=mt)
            algo, level, how = _compression_of(bytes(getattr(stream, "_pending", b"")[:16]))
            for gi in in_groups:
                comp_info.setdefault(gi, (algo, level, how))
                if gi not in tars:
                    algo_g, level_g, _ = comp_info[gi]
                    if output_dir is not None:
                        d = Path(output_dir)
                        d.mkdir(parents=True, exist_ok=True)
                        ext = "tar.zst" if algo_g == "zstd" else "tar.gz"
                        sink = open(d / f"merged-{groups[gi][0]}-{groups[gi][-1]}.{ext}", "wb")
                    else:
                        sink = tempfile.TemporaryFile(prefix="layerlab-merge-")
                    sinks[gi] = sink
                    comps[gi] = _Compressor(algo_g, level_g, sink)
                    tars[gi] = tarfile.open(fileobj=comps[gi], mode="w|", format=tarfile.PAX_FORMAT)
            # recompress the original layer the same way (calibration), and copy surviving members
            gi0 = in_groups[0]
            cal = _Compressor(comp_info[gi0][0], comp_info[gi0][1])
            tee = _Tee(stream, cal)
            try:
                tf = tarfile.open(fileobj=tee, mode="r|", encoding="utf-8", errors="surrogateescape")
                for ti in tf:
                    from ..contents.tarscan import normalise_path

                    path, _ = normalise_path(ti.name)
                    base = path.rsplit("/", 1)[-1]
                    if base.startswith(".wh."):
                        continue  # whiteouts/opaques of the merged layer are written below
                    for p in positions:
                        if (p, path) in materialise and ti.isfile() and (p, path) not in spool:
                            sp = tempfile.SpooledTemporaryFile(max_size=1 << 22)
                            src = tf.extractfile(ti)
                            while src is not None:
                                chunk = src.read(1 << 20)
                                if not chunk:
                                    break
                                sp.write(chunk)
                            spool[(p, path)] = sp
                            if path in keep.get(p, ()):
                                sp.seek(0)
                                tars[pos_group[p]].addfile(ti, sp)
                                break
                        gi = pos_group.get(p)
                        if gi is None or path not in keep.get(p, ()):
                            continue
                        if (p, path) in link_of:
                            deferred.append((gi, ti, link_of[(p, path)]))
                            break
                        if ti.isfile():
                            data = tf.extractfile(ti)
                            tars[gi].addfile(ti, data)
                        else:
                            tars[gi].addfile(ti)
                        break
                tee.drain()
            except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
                raise AnalysisError(f"{img.reference} layer {positions}: cannot read the layer tar to merge it ({e})") from e
            for gi in in_groups:
                recomp[gi] += cal.close() * sum(1 for p in positions if pos_group.get(p) == gi)
        for gi, ti, key in deferred:
            sp = spool.get(key)
            if sp is None:
                raise AnalysisError(
                    f"{img.reference}: the content of {key[1]} (layer {key[0]}), which a hardlink of the merged layer "
                    "needs, was not found in the layer blobs"
                )
            sp.seek(0, 2)
            ti.type, ti.linkname, ti.size = tarfile.REGTYPE, "", sp.tell()
            sp.seek(0)
            tars[gi].addfile(ti, sp)
        for gi, rows in extra.items():
            if gi not in tars:
                continue
            for r in rows:
                p = r["path"].rstrip("/")
                if r["type"] == OPAQUE:
                    name = p + "/.wh..wh..opq"
                else:
                    head_, _, base_ = p.rpartition("/")
                    name = (head_ + "/" if head_ else "") + ".wh." + base_
                tars[gi].addfile(tarfile.TarInfo(name))
        for gi, tf in tars.items():
            tf.close()
            after = comps[gi].close()
            algo, level, how = comp_info[gi]
            out[gi] = {
                "after": after,
                "merged_tar_bytes": comps[gi].raw,
                "before_recompressed": recomp[gi],
                "algorithm": "gzip" if algo == "none" else algo,
                "source_algorithm": algo,
                "level": level,
                "method": f"merged tar written and compressed with {('gzip' if algo == 'none' else algo)} level {level} ({how})",
            }
    finally:
        bar.close()
        for sp in spool.values():
            sp.close()
        for s in sinks.values():
            try:
                s.close()
            except OSError:
                pass
    return out


# -- the prediction ---------------------------------------------------------------------------------
@dataclass
class MergePrediction:
    """What merging the given step groups would do (frames; see the module doc)."""

    image: str
    groups_list: list[list[int]]
    summary: pd.DataFrame
    groups: pd.DataFrame
    layers: pd.DataFrame
    sharing: pd.DataFrame
    rebuild: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    def metric(self, name: str, which: str = "after"):
        row = self.summary[self.summary["metric"] == name]
        if not len(row):
            raise KeyError(name)
        v = row[which].iloc[0]
        return None if pd.isna(v) else int(v)

    def __repr__(self) -> str:
        from ..frames import human_bytes

        s = {m: (b, a) for m, b, a in self.summary[["metric", "before", "after"]].itertuples(index=False)}

        def f(m, fmt=human_bytes):
            b, a = s.get(m, (None, None))
            b = None if pd.isna(b) else int(b)
            a = None if pd.isna(a) else int(a)
            return f"{fmt(b)} -> {fmt(a)}"

        groups = ", ".join(f"{g[0]}-{g[-1]}" for g in self.groups_list)
        return (
            f"<layerlab.MergePrediction {self.image!r} merge {groups}: layers {f('layers', str)}, "
            f"size {f('size')}, sharing lost {human_bytes(self.metric('sharing_lost') if 'sharing_lost' in s else None)}>"
        )

    def _repr_html_(self) -> str:
        e = html.escape
        parts = [
            f"<div class='layerlab-merge'><strong>layerlab.MergePrediction</strong> <code>{e(self.image)}</code>",
            self.summary.to_html(index=False, escape=True, na_rep="?"),
            self.groups.to_html(index=False, escape=True, na_rep="?"),
        ]
        if self.notes:
            parts.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in self.notes) + "</ul>")
        parts.append("</div>")
        return "".join(parts)


def _fleet_images(img: Image, fleet) -> list[Image]:
    if fleet is None:
        return []
    if isinstance(fleet, Image):
        fleet = [fleet]
    others = [f for f in fleet if isinstance(f, Image) and f is not img and f.reference != img.reference]
    if fleet is not None and not all(isinstance(f, Image) for f in fleet):
        raise AnalysisError("fleet= must be a Fleet or a list of Image objects")
    return others


def _sum(vals) -> int | None:
    vals = list(vals)
    return None if any(v is None or (isinstance(v, float) and v != v) for v in vals) else int(sum(vals))


def what_if_merge(
    img: Image,
    steps,
    *,
    fleet: Fleet | Sequence[Image] | None = None,
    files: pd.DataFrame | None = None,
    compressed: bool = True,
    output_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> MergePrediction:
    """Predict merging groups of consecutive layers of ``img`` into one layer each.

    ``fleet``: the images ``img`` sits among (for sharing lost); ``files``:
    ``img``'s file table if you already have it; ``compressed=False`` skips
    writing and compressing the merged tars; ``output_dir`` keeps the merged
    compressed layers there (``merged-<first>-<last>.tar.gz``).
    """
    if not isinstance(img, Image):
        raise AnalysisError(f"what_if_merge needs a layerlab Image, got {type(img).__name__}")
    n = len(img.layer_list)
    groups = parse_groups(steps, n, label=img.reference)
    notes: list[str] = []
    table, why = _file_tables(img, files, progress)
    layers = img.layer_list
    sizes = [l.size for l in layers]
    from ..contents.compression import kind_from_media_type

    # blob lengths are compressed sizes only when the blobs are compressed (not for docker save's plain tars)
    comp = [
        l.compressed_size if kind_from_media_type(l.media_type) in ("gzip", "zstd") else None for l in layers
    ]
    step_of = {s.layer_position: s for s in img.history_list if s.layer_position is not None}

    group_rows = []
    merged_size: dict[int, int | None] = {}
    keep: dict[int, set[str]] = {}
    extra: dict[int, list[dict]] = {}
    materialise: dict[tuple[int, str], list[tuple[int, str]]] = {}
    for gi, g in enumerate(groups):
        before = _sum(sizes[p] for p in g)
        row: dict[str, Any] = {
            "group": gi,
            "first": g[0],
            "last": g[-1],
            "layers_merged": len(g),
            "commands": " && ".join(
                (step_of[p].created_by or "") if p in step_of else f"(layer {p}: no history step)" for p in g
            ),
            "size_before": before,
            "size_after": None,
            "saved": None,
            "vanished_entries": None,
            "compressed_before": _sum(comp[p] for p in g),
            "compressed_after": None,
            "compressed_before_recompressed": None,
            "compressed_method": None,
            "status": "exact",
        }
        if table is None:
            row["status"] = f"unpredictable: {why}"
            merged_size[gi] = None
        else:
            merged, info = merged_layer_table(table, g)
            size = int(merged["size"].fillna(0).astype("int64").sum()) if len(merged) else 0
            merged_size[gi] = size
            row["size_after"] = size
            row["saved"] = None if before is None else before - size
            row["vanished_entries"] = info["vanished_entries"]
            # cross-check: the file table must account for each layer's known size
            for p in g:
                t_size = _layer_size_from_table(table, p)
                if sizes[p] is not None and t_size != sizes[p]:
                    notes.append(
                        f"layer {p}: its file table sums to {t_size} bytes but the source says {sizes[p]}; "
                        "the merged size follows the file table"
                    )
            for p in g:
                keep[p] = set()
            for r in merged.to_dict("records"):
                if r["type"] in (WHITEOUT, OPAQUE):
                    extra.setdefault(gi, []).append(r)
                else:
                    keep[int(r["position"])].add(r["path"])
                    mf = r.get("materialise_from")
                    if mf is not None and not pd.isna(mf):
                        materialise.setdefault((int(mf), r["link_target"]), []).append((int(r["position"]), r["path"]))
            if info["hardlinks_materialised"]:
                notes.append(f"group {g[0]}-{g[-1]}: {info['hardlinks_materialised']} hardlink(s) lose their target inside the group and become files")
        group_rows.append(row)

    if compressed and table is not None and img.has_contents:
        try:
            measured = _measure_compressed(img, groups, keep, extra, output_dir, materialise, progress)
        except LayerlabError as e:
            measured = {}
            notes.append(f"compressed size not measured: {e}")
        for gi, m in measured.items():
            r = group_rows[gi]
            r["compressed_after"] = m["after"]
            r["compressed_before_recompressed"] = m["before_recompressed"]
            real = r["compressed_before"]
            method = m["method"]
            if m["source_algorithm"] == "none":
                # the source stores plain tars: its blob lengths are not compressed sizes
                r["compressed_before"] = m["before_recompressed"]
                method += "; compressed_before: the original layers compressed the same way"
            elif real:
                method += f"; the original layers recompressed the same way: {m['before_recompressed']} bytes vs their real blobs {real}"
            r["compressed_method"] = method
    elif compressed:
        for r in group_rows:
            r["compressed_method"] = "not measured: " + (why or "no layer blobs")
    groups_df = pd.DataFrame(group_rows)
    groups_df = groups_df.astype(
        {
            "group": "Int64", "first": "Int64", "last": "Int64", "layers_merged": "Int64", "commands": "string",
            "size_before": "Int64", "size_after": "Int64", "saved": "Int64", "vanished_entries": "Int64",
            "compressed_before": "Int64", "compressed_after": "Int64", "compressed_before_recompressed": "Int64",
            "compressed_method": "string", "status": "string",
        }
    )

    # -- the layer list after --------------------------------------------------------------
    in_group = {p: gi for gi, g in enumerate(groups) for p in g}
    first_changed = groups[0][0]
    others = _fleet_images(img, fleet)
    shared_chain: dict[str, list[str]] = {}
    for o in others:
        for l in o.layer_list:
            if l.chain_id:
                shared_chain.setdefault(l.chain_id, []).append(o.reference)
    after_rows = []
    new_pos = 0
    for p, l in enumerate(layers):
        gi = in_group.get(p)
        if gi is not None and p != groups[gi][0]:
            continue
        if gi is not None:
            g = groups[gi]
            size = merged_size[gi]
            csize = group_rows[gi]["compressed_after"]
            srcs = tuple(g)
            cmd = group_rows[gi]["commands"]
        else:
            size, csize, srcs = l.size, comp[p], (p,)
            cmd = step_of[p].created_by if p in step_of else None
        after_rows.append(
            {
                "position": new_pos,
                "from_positions": srcs,
                "created_by": cmd,
                "size": size,
                "compressed_size": csize,
                "chain_changed": p >= first_changed,
                "shared_before": bool(l.chain_id and l.chain_id in shared_chain) if gi is None else any(
                    layers[q].chain_id in shared_chain for q in g if layers[q].chain_id
                ),
            }
        )
        new_pos += 1
    layers_df = pd.DataFrame(after_rows).astype(
        {"position": "Int64", "created_by": "string", "size": "Int64", "compressed_size": "Int64",
         "chain_changed": "boolean", "shared_before": "boolean"}
    )

    # -- sharing lost ---------------------------------------------------------------------------
    share_rows = []
    lost_total_chains: dict[str, int | None] = {}
    for o in others:
        ochains = {l.chain_id for l in o.layer_list if l.chain_id}
        before_l = [l for l in layers if l.chain_id in ochains]
        after_l = [l for l in before_l if l.position < first_changed]
        for l in before_l:
            if l.position >= first_changed:
                lost_total_chains[l.chain_id] = l.size  # type: ignore[index]
        share_rows.append(
            {
                "image": img.reference,
                "other": o.reference,
                "shared_layers_before": len(before_l),
                "shared_bytes_before": _sum(l.size for l in before_l),
                "shared_layers_after": len(after_l),
                "shared_bytes_after": _sum(l.size for l in after_l),
            }
        )
    sharing = pd.DataFrame(
        share_rows,
        columns=["image", "other", "shared_layers_before", "shared_bytes_before", "shared_layers_after", "shared_bytes_after"],
    ).astype({"image": "string", "other": "string", "shared_layers_before": "Int64", "shared_bytes_before": "Int64",
              "shared_layers_after": "Int64", "shared_bytes_after": "Int64"})
    sharing["lost_bytes"] = (sharing["shared_bytes_before"] - sharing["shared_bytes_after"]).astype("Int64")
    sharing_lost = _sum(lost_total_chains.values()) if others else 0
    if fleet is None:
        notes.append("no fleet= given: sharing lost is 0 by assumption (no other image shares this one's layers)")

    # -- rebuild cost -----------------------------------------------------------------------------
    after_sizes = list(layers_df["size"])
    after_comp = list(layers_df["compressed_size"])
    pos_after = {}
    for r in after_rows:
        for q in r["from_positions"]:
            pos_after[q] = r["position"]

    def tail(vals, k):
        v = vals[k:]
        return _sum(None if pd.isna(x) else int(x) for x in v)

    rb_rows = []
    for p, l in enumerate(layers):
        k = pos_after[p]
        rb_rows.append(
            {
                "position": p,
                "created_by": step_of[p].created_by if p in step_of else None,
                "layers_rebuilt_before": n - p,
                "layers_rebuilt_after": len(after_rows) - k,
                "bytes_rebuilt_before": tail(sizes, p),
                "bytes_rebuilt_after": tail(after_sizes, k),
                "bytes_pushed_before": tail(comp, p),
                "bytes_pushed_after": tail(after_comp, k),
            }
        )
    rebuild = pd.DataFrame(rb_rows).astype(
        {"position": "Int64", "created_by": "string", "layers_rebuilt_before": "Int64", "layers_rebuilt_after": "Int64",
         "bytes_rebuilt_before": "Int64", "bytes_rebuilt_after": "Int64", "bytes_pushed_before": "Int64",
         "bytes_pushed_after": "Int64"}
    )

    # -- summary ----------------------------------------------------------------------------------
    size_before = _sum(sizes)
    size_after = _sum(None if pd.isna(x) else int(x) for x in after_sizes)
    comp_before = _sum(comp)
    comp_after = _sum(None if pd.isna(x) else int(x) for x in after_comp)
    fleet_stored_before = fleet_stored_after = None
    if others:
        chains_b: dict[str, int | None] = {}
        for o in others:
            for l in o.layer_list:
                chains_b.setdefault(l.chain_id or f"{o.reference}:{l.position}", l.size)
        chains_a = dict(chains_b)
        for l in layers:
            chains_b.setdefault(l.chain_id or f"{img.reference}:{l.position}", l.size)
        for r in after_rows:
            p0 = r["from_positions"][0]
            key = layers[p0].chain_id if not r["chain_changed"] else f"new:{r['position']}"
            chains_a.setdefault(key or f"new:{r['position']}", None if pd.isna(r["size"]) else int(r["size"]))
        fleet_stored_before = _sum(chains_b.values())
        fleet_stored_after = _sum(chains_a.values())
    summary = pd.DataFrame(
        [
            {"metric": "layers", "before": n, "after": len(after_rows)},
            {"metric": "size", "before": size_before, "after": size_after},
            {"metric": "compressed_size", "before": comp_before, "after": comp_after},
            {"metric": "sharing_lost", "before": 0, "after": sharing_lost},
            {"metric": "fleet_stored", "before": fleet_stored_before, "after": fleet_stored_after},
        ]
    ).astype({"metric": "string", "before": "Int64", "after": "Int64"})
    summary["change"] = (summary["after"] - summary["before"]).astype("Int64")
    if table is None:
        notes.append(f"exact sizes need layer contents: {why}; upper bound of each merged layer = size_before")
    return MergePrediction(img.reference, groups, summary, groups_df, layers_df, sharing, rebuild, notes)


# -- suggestions -----------------------------------------------------------------------------------
_APT_UPDATE = re.compile(r"\bapt(-get)?\s+update\b")
_APT_INSTALL = re.compile(r"\bapt(-get)?\s+(-\S+\s+)*install\b")
_CHMOD = re.compile(r"\b(chmod|chown|chgrp)\b")


def _hidden_pairs(files: pd.DataFrame) -> pd.DataFrame:
    """Per (writer layer, hider layer): bytes the writer wrote that the hider
    deleted or overwrote, and how many of those were rewritten with the same
    content (a chmod/chown copy-up)."""
    live: dict[str, tuple[int, int, Any]] = {}   # path -> (position, size, hash)
    tree = _Tree()
    acc: dict[tuple[int, int], list] = {}      # (writer, hider) -> [bytes, same bytes, same files, examples]
    has_hash = "hash" in files.columns
    for pos, rows in files.groupby("position", sort=True):
        recs = rows.to_dict("records")
        for r in recs:
            t, p = r["type"], r["path"]
            if t in (WHITEOUT, OPAQUE):
                for q in tree.remove(p, keep_self=(t == OPAQUE)):
                    old = live.pop(q, None)
                    if old and old[1]:
                        a = acc.setdefault((old[0], int(pos)), [0, 0, 0, []])
                        a[0] += old[1]
                        a[3].append((old[1], q))
        for r in recs:
            t, p = r["type"], r["path"]
            if t in (WHITEOUT, OPAQUE):
                continue
            old = live.get(p)
            if old and old[1] and old[0] != int(pos):
                a = acc.setdefault((old[0], int(pos)), [0, 0, 0, []])
                a[0] += old[1]
                a[3].append((old[1], p))
                if has_hash and old[2] is not None and old[2] == r.get("hash"):
                    a[1] += old[1]
                    a[2] += 1
            tree.add(p)
            live[p] = (int(pos), int(r["size"] or 0) if t == FILE else 0, r.get("hash") if has_hash else None)
    rows = [
        {"writer": w, "hider": h, "hidden_bytes": v[0], "same_content_bytes": v[1], "same_content_files": v[2],
         "examples": [q for _, q in sorted(v[3], reverse=True)[:3]]}
        for (w, h), v in acc.items()
    ]
    return pd.DataFrame(
        rows, columns=["writer", "hider", "hidden_bytes", "same_content_bytes", "same_content_files", "examples"]
    )


def suggest_merges(
    img: Image,
    *,
    files: pd.DataFrame | None = None,
    fleet: Fleet | Sequence[Image] | None = None,
    limit: int = 10,
    min_bytes: int = 1,
    start: int = 1,
    progress: bool = True,
) -> pd.DataFrame:
    """Merges of consecutive layers ranked by bytes saved, each with the reason.

    From the file table: every pair of layers where a later one deletes or
    overwrites what an earlier one wrote (create-then-delete across steps,
    repeated chmod/chown of the same files: same content, new metadata) gives
    the candidate merge ``(writer, hider)``, sized exactly with
    :func:`what_if_merge`.  From the commands: ``apt-get update`` in a step of
    its own.  Without layer contents the candidates come from the commands
    only and ``saved`` is ``<NA>``.

    Candidates start at layer ``start`` (default 1: the base layer usually
    comes from the ``FROM`` image, and merging it would unshare it).
    Merges that would not save bytes (``saved <= 0``) are left out.

    Columns: ``first``, ``last``, ``layers_merged``, ``saved`` (bytes),
    ``size_before``, ``size_after``, ``sharing_lost``, ``kind`` ("create then
    delete", "chmod/chown copy", "same content stored again", "apt-get update
    alone"), ``reason`` (the steps, bytes and example paths).
    """
    from ..frames import human_bytes

    n = len(img.layer_list)
    if start < 0:
        raise AnalysisError(f"start={start}: a layer position must be >= 0")
    table, why = _file_tables(img, files, progress)
    step_of = {s.layer_position: s for s in img.history_list if s.layer_position is not None}

    def cmd(p: int) -> str:
        s = step_of.get(p)
        text = (s.created_by or "") if s else f"(layer {p})"
        text = re.sub(r"^/bin/sh -c (#\(nop\)\s*)?", "", text.strip())
        text = re.sub(r"\s*# buildkit$", "", text)
        return text if len(text) <= 70 else text[:67] + "..."

    cands: dict[tuple[int, int], dict[str, Any]] = {}
    if table is not None:
        pairs = _hidden_pairs(table)
        for r in pairs.itertuples(index=False):
            w, h = int(r.writer), int(r.hider)
            if r.hidden_bytes < min_bytes:
                continue
            eg = ", ".join("/" + q for q in r.examples)
            if r.same_content_files and r.same_content_bytes * 2 >= r.hidden_bytes:
                if _CHMOD.search(cmd(h)):
                    kind = "chmod/chown copy"
                    why_ = "a metadata change (chmod/chown) stores the whole file again"
                else:
                    kind = "same content stored again"
                    why_ = "the step rewrote them with the same bytes"
                reason = (
                    f"layer {h} ({cmd(h)}) stores {r.same_content_files} file(s) of layer {w} again with the same "
                    f"content ({human_bytes(int(r.same_content_bytes))}, e.g. {eg}; {why_}); "
                    f"merging {w}-{h} keeps one copy"
                )
            else:
                kind = "create then delete"
                reason = (
                    f"layer {w} ({cmd(w)}) wrote {human_bytes(int(r.hidden_bytes))} (e.g. {eg}) that layer {h} "
                    f"({cmd(h)}) deleted or overwrote; merging {w}-{h} never stores them"
                )
            c = cands.setdefault((w, h), {"first": w, "last": h, "kind": kind, "reasons": []})
            c["reasons"].append(reason)
    for p in range(n - 1):
        text = (step_of[p].created_by or "") if p in step_of else ""
        if _APT_UPDATE.search(text) and not _APT_INSTALL.search(text):
            nxt = next((q for q in range(p + 1, n) if q in step_of and _APT_INSTALL.search(step_of[q].created_by or "")), p + 1)
            c = cands.setdefault((p, nxt), {"first": p, "last": nxt, "kind": "apt-get update alone", "reasons": []})
            c["reasons"].append(
                f"layer {p} runs apt-get update in a step of its own: its package lists stay in that layer (and a "
                f"cached update layer installs stale versions later); run it in the same RUN as the install (layer {nxt})"
            )
    rows = []
    for (a, b), c in cands.items():
        if b <= a or a < start:
            continue
        size_before = size_after = saved = lost = None
        if table is not None:
            pred = what_if_merge(img, (a, b), fleet=fleet, files=table, compressed=False, progress=False)
            g = pred.groups.iloc[0]
            size_before = None if pd.isna(g["size_before"]) else int(g["size_before"])
            size_after = None if pd.isna(g["size_after"]) else int(g["size_after"])
            saved = None if pd.isna(g["saved"]) else int(g["saved"])
            lost = pred.metric("sharing_lost")
            if saved is not None and saved <= 0 and c["kind"] != "apt-get update alone":
                continue
        reasons = "; ".join(c["reasons"])
        if saved is not None and c["kind"] != "apt-get update alone":
            reasons += f" — in all, merging {a}-{b} saves {human_bytes(saved)}"
        rows.append(
            {
                "first": a,
                "last": b,
                "layers_merged": b - a + 1,
                "saved": saved,
                "size_before": size_before,
                "size_after": size_after,
                "sharing_lost": lost,
                "kind": c["kind"],
                "reason": reasons + ("" if table is not None else f" (bytes unknown: {why})"),
            }
        )
    df = pd.DataFrame(
        rows, columns=["first", "last", "layers_merged", "saved", "size_before", "size_after", "sharing_lost", "kind", "reason"]
    ).astype({"first": "Int64", "last": "Int64", "layers_merged": "Int64", "saved": "Int64", "size_before": "Int64",
              "size_after": "Int64", "sharing_lost": "Int64", "kind": "string", "reason": "string"})
    df = df.sort_values(["saved", "layers_merged"], ascending=[False, True], na_position="last").reset_index(drop=True)
    return df.head(limit)
