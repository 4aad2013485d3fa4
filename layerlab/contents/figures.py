"""What the analyses need from an image's merged layers (:class:`ImageResults`,
:func:`compute`) and the results cache on disk.

``efficiency()``, ``waste()`` and ``filesystem()`` need two costly things from
an image's file table: dive's figures (:func:`.dive.dive_efficiency_table`) and, per row, the outcome of the OCI merge
(:mod:`.merge`: which layer hid the row and how, the file a hard link resolves
to, merge warnings, the rank of the visible rows by path).  Both are a pure
function of the image's layers in order, i.e. of the ordered list of their
diff_ids, so they are stored beside the per-layer file tables and a second run
reads them back instead of stacking the layers again.

Layout (under the same root as the file tables, :class:`.cache.LayerCache`)::

    <cache_dir>/results-v1/<k[:2]>/<k>.parquet

where ``k`` is the sha256 (hex) of the diff_ids joined by newlines; every
diff_id must be a well-formed ``sha256:<64 hex>`` digest (else nothing is
cached), so file names never come from user input.  A ``verify=False``
analysis uses the layers' ``local:`` keys instead (:func:`.sizes.local_key`:
the claimed diff_id plus the local file's identity), so its results, like its
unverified file tables, are never filed under diff_ids nobody checked.  One Parquet file per
image: one row per file-table row (merge columns) with dive's inefficient
paths in three further columns (first ``n`` rows, then nulls) and the scalar
figures as JSON in the schema metadata, including the diff_id list itself and
each layer's row count, which are checked on reading.  Entries are written
atomically (:func:`.sizes.write_atomically`), only when every layer's scan was
verified against its diff_id (with ``verify=False``: had a ``local:`` key) and the image's layers were readable (an image
without blobs only reads: bundled snapshot tables stay untouched), never with
``cache_dir=False``; nothing but the key invalidates one; a file that cannot
be read back is a miss.  A ``verify=True`` analysis reads them only when every
layer's stored copy was verified as it is now (:func:`results_trusted`), so a
changed archive is read and checked again rather than answered from the cache.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .options import local_layer_key

RESULTS_VERSION = "results-v1"
_META_KEY = b"layerlab.results"

_ROW_SCHEMA = pa.schema([
    ("hidden_by", pa.int32()),      # layer position that hid the row (null: not hidden)
    ("how", pa.string()),           # merge.OVERWRITTEN, merge.DELETED, ...
    ("link_row", pa.int64()),       # hard link -> row of the file it resolves to
    ("kept", pa.bool_()),           # hidden at its path but still reachable through a visible hard link
    ("note", pa.string()),          # merge warnings of the row, "; "-joined
    ("fs_rank", pa.int32()),        # visible rows: rank by path in the final filesystem
    ("ineff_path", pa.string()),    # dive's fileReference (first n_ineff rows)
    ("ineff_count", pa.int64()),
    ("ineff_size", pa.int64()),
])


@dataclass
class ImageResults:
    """Per-row merge outcome plus dive's figures for one image (see the module doc)."""

    layer_rows: list[int]
    hidden_by: pa.Array
    how: pa.Array
    link_row: pa.Array
    kept: pa.Array
    note: pa.Array
    fs_rank: pa.Array
    score: float
    size_bytes: int
    inefficient_bytes: int
    user_size_bytes: int
    dive_reclaimable_bytes: int
    layer_sizes: list[int]
    inefficient_files: pa.Table          # path, count, size_bytes
    wasted_by_layer: list[int]           # per hiding layer: bytes stored but unreachable
    orphan_notes: list[str] = field(default_factory=list)
    from_cache: bool = False

    @property
    def n_rows(self) -> int:
        return len(self.hidden_by)

    def matches(self, table: pa.Table) -> bool:
        """True when ``table`` (an image table) has the rows these results describe."""
        if table.num_rows != self.n_rows:
            return False
        if not self.layer_rows:
            return True
        counts = np.bincount(table.column("position").to_numpy(), minlength=len(self.layer_rows))
        return counts.tolist() == list(self.layer_rows)

    def wasted_mask(self) -> np.ndarray:
        """Rows stored but unreachable in the final filesystem."""
        return self.hidden_by.is_valid().to_numpy(zero_copy_only=False) & ~self.kept.to_numpy(zero_copy_only=False)

    def fs_rows(self) -> np.ndarray:
        """The visible rows, sorted by path."""
        rank = self.fs_rank
        valid = np.flatnonzero(rank.is_valid().to_numpy(zero_copy_only=False))
        out = np.empty(len(valid), np.int64)
        out[rank.filter(rank.is_valid()).to_numpy()] = valid
        return out


def compute(table: pa.Table, m, n_layers: int) -> ImageResults:
    """:class:`ImageResults` from an image table and its :class:`.merge.Merge`."""
    from .dive import dive_efficiency_table

    n = table.num_rows
    d = dive_efficiency_table(table, n_layers)
    hidden_by = pa.array(m.hidden_by, pa.int32())
    kept = np.zeros(n, bool)
    if m.kept_by_link:
        kept[list(m.kept_by_link)] = True
    notes: list[str | None] = [None] * n
    for r, ns in m.notes.items():
        notes[r] = "; ".join(ns)
    rank = np.full(n, -1, np.int64)
    vis = np.fromiter(m.final.values(), np.int64, len(m.final))
    if len(vis):
        order = pc.sort_indices(table.column("path").take(pa.array(vis))).to_numpy()
        rank[vis[order]] = np.arange(len(vis))
    sizes = pc.fill_null(table.column("size"), 0).to_numpy()
    wasted = hidden_by.is_valid().to_numpy(zero_copy_only=False) & ~kept
    wasted_by_layer = np.zeros(max(n_layers, 1), np.int64)
    np.add.at(wasted_by_layer, hidden_by.fill_null(0).to_numpy()[wasted], sizes[wasted])
    f = d.inefficient_files
    ineff = pa.table({
        "path": pa.array(f["path"].to_numpy(dtype=object, na_value=None), pa.string()),
        "count": pa.array(f["count"].to_numpy(dtype=np.int64), pa.int64()),
        "size_bytes": pa.array(f["size_bytes"].to_numpy(dtype=np.int64), pa.int64()),
    })
    counts = np.bincount(table.column("position").to_numpy(), minlength=n_layers) if n else np.zeros(n_layers, int)
    return ImageResults(
        layer_rows=[int(c) for c in counts[:n_layers]],
        hidden_by=hidden_by,
        how=pa.array(m.how, pa.string()),
        link_row=pa.array(m.link_row, pa.int64()),
        kept=pa.array(kept, pa.bool_()),
        note=pa.array(notes, pa.string()),
        fs_rank=pa.array(rank, pa.int32(), mask=rank < 0),
        score=d.score,
        size_bytes=d.size_bytes,
        inefficient_bytes=d.inefficient_bytes,
        user_size_bytes=d.user_size_bytes,
        dive_reclaimable_bytes=d.dive_reclaimable_bytes,
        layer_sizes=list(d.layer_sizes),
        inefficient_files=ineff,
        wasted_by_layer=[int(x) for x in wasted_by_layer[:n_layers]],
        orphan_notes=list(m.orphan_notes),
    )


# -- the cache ---------------------------------------------------------------------------
def results_key(diff_ids: list[str | None]) -> str | None:
    """sha256 hex of the ordered diff_ids (or, for ``verify=False``, the layers'
    ``local:`` keys: see :func:`.cache.local_key`); None unless every one is a
    valid digest."""
    from .sizes import is_local_key
    from .tarscan import valid_diff_id

    if not diff_ids or not all(valid_diff_id(d) or is_local_key(d) for d in diff_ids):
        return None
    return hashlib.sha256("\n".join(diff_ids).encode("ascii")).hexdigest()  # type: ignore[arg-type]


def results_path(root: Path, diff_ids: list[str | None]) -> Path | None:
    key = results_key(diff_ids)
    if key is None:
        return None
    return Path(root) / RESULTS_VERSION / key[:2] / f"{key}.parquet"


def write_results(path: Path, res: ImageResults, diff_ids: list[str]) -> bool:
    """Store ``res`` at ``path`` atomically; False when it cannot be stored
    (best effort: a results entry only saves time)."""
    import pyarrow.parquet as pq

    from .sizes import write_atomically

    n = res.n_rows
    k = res.inefficient_files.num_rows
    if k > n:  # cannot happen (each inefficient path takes 2+ rows); do not cache if it does
        return False
    pad = n - k

    def padded(col: str, typ) -> pa.Array:
        a = res.inefficient_files.column(col).combine_chunks().cast(typ)
        return pa.concat_arrays([a, pa.nulls(pad, typ)]) if pad else a

    meta = {
        "version": RESULTS_VERSION,
        "diff_ids": list(diff_ids),
        "layer_rows": list(res.layer_rows),
        "score": res.score,
        "size_bytes": res.size_bytes,
        "inefficient_bytes": res.inefficient_bytes,
        "user_size_bytes": res.user_size_bytes,
        "dive_reclaimable_bytes": res.dive_reclaimable_bytes,
        "layer_sizes": list(res.layer_sizes),
        "n_ineff": k,
        "wasted_by_layer": list(res.wasted_by_layer),
        "orphan_notes": list(res.orphan_notes),
    }
    t = pa.table([res.hidden_by, res.how, res.link_row, res.kept, res.note, res.fs_rank,
                  padded("path", pa.string()), padded("count", pa.int64()), padded("size_bytes", pa.int64())],
                 schema=_ROW_SCHEMA)
    t = t.replace_schema_metadata({_META_KEY: json.dumps(meta).encode()})
    try:
        write_atomically(path, lambda f: pq.write_table(t, f, compression="zstd"), ".parquet")
    except OSError:
        return False
    return True


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(v)
    return v


def read_results(path: Path, diff_ids: list[str]) -> ImageResults | None:
    """The entry at ``path`` for exactly these diff_ids; None when missing or unreadable."""
    import pyarrow.parquet as pq

    try:
        # ParquetFile, not read_table: the latter imports pyarrow.dataset (11 ms) for nothing here
        pf = pq.ParquetFile(path)
        try:
            t = pf.read()
        finally:
            pf.close()
        meta = json.loads((t.schema.metadata or {})[_META_KEY])
        if meta.get("version") != RESULTS_VERSION or meta.get("diff_ids") != list(diff_ids):
            return None
        t = t.replace_schema_metadata(None)
        if not t.schema.equals(_ROW_SCHEMA):
            return None
        layer_rows = [_int(x) for x in meta["layer_rows"]]
        n_ineff = _int(meta["n_ineff"])
        if len(layer_rows) != len(diff_ids) or sum(layer_rows) != t.num_rows or not 0 <= n_ineff <= t.num_rows:
            return None
        layer_sizes = [_int(x) for x in meta["layer_sizes"]]
        wasted = [_int(x) for x in meta["wasted_by_layer"]]
        if len(layer_sizes) != len(diff_ids) or len(wasted) != len(diff_ids):
            return None
        score = meta["score"]
        if not isinstance(score, float):
            return None
        t = t.combine_chunks()
        col = lambda name: t.column(name).chunk(0) if t.column(name).num_chunks == 1 else \
            t.column(name).combine_chunks()  # noqa: E731
        rank = col("fs_rank")
        ranks = rank.drop_null().to_numpy()
        if len(ranks) and (ranks.min() < 0 or ranks.max() >= len(ranks)
                           or np.bincount(ranks, minlength=len(ranks)).max() != 1):
            return None  # not a permutation of the visible rows
        links = col("link_row").drop_null().to_numpy()
        hiders = col("hidden_by").drop_null().to_numpy()
        if (len(links) and (links.min() < 0 or links.max() >= t.num_rows)) or \
                (len(hiders) and (hiders.min() < 0 or hiders.max() >= len(diff_ids))):
            return None  # rows or layers that do not exist
        ineff = pa.table({
            "path": col("ineff_path").slice(0, n_ineff),
            "count": col("ineff_count").slice(0, n_ineff),
            "size_bytes": col("ineff_size").slice(0, n_ineff),
        })
        return ImageResults(
            layer_rows=layer_rows,
            hidden_by=col("hidden_by"),
            how=col("how"),
            link_row=col("link_row"),
            kept=col("kept").fill_null(False),
            note=col("note"),
            fs_rank=rank,
            score=score,
            size_bytes=_int(meta["size_bytes"]),
            inefficient_bytes=_int(meta["inefficient_bytes"]),
            user_size_bytes=_int(meta["user_size_bytes"]),
            dive_reclaimable_bytes=_int(meta["dive_reclaimable_bytes"]),
            layer_sizes=layer_sizes,
            inefficient_files=ineff,
            wasted_by_layer=wasted,
            orphan_notes=[str(x) for x in meta.get("orphan_notes", [])],
            from_cache=True,
        )
    except (OSError, KeyError, TypeError, ValueError, IndexError, pa.ArrowException):
        return None


def results_memo_key(img, options) -> tuple:
    """What results computed for ``img`` under ``options`` depend on."""
    return (tuple(layer.diff_id for layer in img.layer_list), options.verify, repr(options.cache_dir))


def result_keys(img, options) -> list[str] | None:
    """The keys results of ``img`` are filed under: its diff_ids, or (``verify=False``)
    the layers' ``local:`` keys (their file tables' keys when unverified), never
    the diff_ids they claim; None when such a layer is not a byte range of a local file."""
    if options.verify:
        return [layer.diff_id for layer in img.layer_list]
    keys = [local_layer_key(img, layer.position) for layer in img.layer_list]
    return keys if keys and all(keys) else None  # type: ignore[return-value]


def results_trusted(img, options, cache) -> bool:
    """Whether cached results may stand for ``img``: always without ``verify``;
    with it, only when every layer's stored copy was verified before
    (:func:`.verify.source_verified`: a changed archive is read again)."""
    if not options.verify or cache is None:
        return True
    from .verify import source_verified

    return all(source_verified(img, layer.position, cache.root) for layer in img.layer_list)


def cached_results_path(img, options, cache) -> Path | None:
    """The results-cache file of ``img`` under ``options`` (None: not cacheable)."""
    keys = result_keys(img, options)
    return results_path(cache.root, keys) if cache is not None and keys else None


__all__ = ["ImageResults", "RESULTS_VERSION", "cached_results_path", "compute", "read_results", "result_keys",
           "results_key", "results_trusted", "results_memo_key", "results_path", "write_results"]
