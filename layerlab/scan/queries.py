"""Fleet-wide questions over a scan's content-addressed cache, answered by DuckDB.

A scan (``layerlab.scan``) writes, under its cache ``ROOT`` (the layout is
``layerlab.scan.cache``'s contract):

* ``files/<diff_id hex>.<rows>.<xxh64>.parquet`` — one per distinct layer: the
  file-table columns of ``layerlab.contents.schema.FILE_COLUMNS`` (without
  ``image``/``position``) plus ``diff_id``;
* ``layers/<scan id>.parquet`` — one row per (image, position): the columns of
  ``layers()`` (``image``, ``position``, ``diff_id``, ``digest``, ``size``,
  ``compressed_size``, ``media_type``, …) plus ``source`` and ``scan_id``;
* ``images/<scan id>.parquet`` — the ``images()`` rows plus ``scan_source``
  and ``scan_id``.

``register_views(con, root)`` (``layerlab.scan.cache``) makes these the DuckDB
views ``files``, ``layers`` and ``images``.  Everything here runs as SQL over
those views: DuckDB reads the Parquet files itself, so no pandas frame of every
file is ever built; only the (small) answers come back as DataFrames.

``files_sql(source, sql)`` runs any query; ``dedup(source)`` answers the
deduplication questions of the Docker Hub study (Zhao et al., "Large-Scale
Analysis of the Docker Hub Dataset", CLUSTER 2019): how much of the fleet is
the same content, at the layer level and at the file level.

``source`` is a cache root (a path or fsspec URL; its views are registered on
a fresh in-memory DuckDB connection, for the scan ``scan_id`` when given) or a
``duckdb.DuckDBPyConnection`` on which the views ``files`` and ``layers`` (and
``images``) already exist.
"""
from __future__ import annotations

import contextlib
import os

from ..analysis._result import Result
from ..errors import AnalysisError

# What counts as file *content* everywhere in this module (the rule of
# layerlab.analysis.duplicates, written in SQL): a regular file with a content
# hash and at least one byte.  Empty files all share one hash and would inflate
# every duplicate count; hard links, symlinks, directories and whiteouts carry
# no bytes of their own in a layer tar.  Two copies are the same content when
# hash *and* size agree.
CONTENT = "type = 'file' AND size > 0 AND hash IS NOT NULL"



def _duckdb():
    try:
        import duckdb
    except ImportError as e:  # pragma: no cover - duckdb is a dependency
        raise AnalysisError("fleet queries need the duckdb package: pip install duckdb") from e
    return duckdb




def _register(con, root, scan_id, storage_options) -> None:
    from .cache import register_views

    register_views(con, root, scan_id=scan_id, storage_options=storage_options)


@contextlib.contextmanager
def _connection(source, scan_id=None, storage_options=None):
    """A DuckDB connection with the views ``files``, ``layers``, ``images``."""
    duckdb = _duckdb()
    if isinstance(source, duckdb.DuckDBPyConnection):
        yield source
        return
    if not isinstance(source, (str, os.PathLike)):
        raise AnalysisError(
            f"fleet queries: source is a {type(source).__name__}; pass a scan cache root (a path or URL) "
            "or a duckdb connection with the views files, layers and images"
        )
    con = duckdb.connect(":memory:")
    try:
        _register(con, source, scan_id, storage_options)
        yield con
    finally:
        con.close()


def _run(con, sql: str, params=None):
    duckdb = _duckdb()
    try:
        return con.execute(sql, params or []).df()
    except duckdb.Error as e:
        short = " ".join(sql.split())
        short = short if len(short) <= 200 else short[:197] + "..."
        raise AnalysisError(f"fleet query failed: {e}; the query was: {short}") from e


def files_sql(source, sql: str, params=None, *, scan_id: str | None = None, storage_options: dict | None = None):
    """Run ``sql`` with DuckDB over a scan cache and return the answer as a pandas DataFrame.

    The query sees three views (see the module doc): ``files`` — one row per
    (distinct layer, tar entry), the file-table columns plus ``diff_id``;
    ``layers`` — one row per (image, position); ``images`` — one row per image.
    Join ``files`` to ``layers`` on ``diff_id`` to ask per image.  DuckDB reads
    the Parquet files directly (nothing is loaded into pandas but the answer).
    ``params``: values for ``?`` / ``$1`` placeholders.

    ``source``: a cache root or a DuckDB connection that has the views.  For a
    root, ``scan_id`` limits ``layers``/``images`` (and ``files``) to that scan
    (default: for each source, its latest scan) and ``storage_options`` go to
    fsspec.  A query DuckDB rejects raises ``AnalysisError`` with DuckDB's message.

    >>> files_sql(root, "SELECT path, count(*) AS n FROM files GROUP BY 1 ORDER BY 2 DESC LIMIT 20")
    """
    if not isinstance(sql, str) or not sql.strip():
        raise AnalysisError("files_sql(): sql must be a non-empty SQL string over the views files, layers, images")
    with _connection(source, scan_id, storage_options) as con:
        return _run(con, sql, params)


# ---------------------------------------------------------------------------------------------
# dedup
# ---------------------------------------------------------------------------------------------
# CTEs shared by the dedup queries: the layer references, the distinct layers among
# them that have a file table, and the stored content copies of those layers.
_BASE = f"""
refs AS (SELECT image, diff_id FROM layers WHERE diff_id IS NOT NULL),
cached AS (SELECT DISTINCT diff_id FROM files),
dl AS (SELECT DISTINCT diff_id FROM refs WHERE diff_id IN (SELECT diff_id FROM cached)),
content AS (SELECT diff_id, path, size, hash FROM files
            WHERE {CONTENT} AND diff_id IN (SELECT diff_id FROM dl)),
per_layer AS (SELECT dl.diff_id, count(c.hash) AS files, coalesce(sum(c.size), 0) AS bytes
              FROM dl LEFT JOIN content c USING (diff_id) GROUP BY dl.diff_id)
"""

_COUNTS_SQL = f"""WITH {_BASE},
by_content AS (SELECT hash, size, count(*) AS copies FROM content GROUP BY hash, size)
SELECT
  (SELECT count(DISTINCT image) FROM refs) AS images,
  (SELECT count(*) FROM refs) AS layer_refs,
  (SELECT count(DISTINCT diff_id) FROM refs) AS distinct_layers,
  (SELECT count(*) FROM dl) AS cached_layers,
  (SELECT count(*) FROM refs WHERE diff_id IN (SELECT diff_id FROM dl)) AS cached_refs,
  (SELECT count(*) FROM layers WHERE diff_id IS NULL) AS refs_without_diff_id,
  (SELECT coalesce(sum(p.files), 0) FROM refs JOIN per_layer p USING (diff_id)) AS ref_files,
  (SELECT coalesce(sum(p.bytes), 0) FROM refs JOIN per_layer p USING (diff_id)) AS ref_bytes,
  (SELECT count(*) FROM content) AS stored_files,
  (SELECT coalesce(sum(size), 0) FROM content) AS stored_bytes,
  (SELECT count(*) FROM by_content) AS distinct_contents,
  (SELECT coalesce(sum(size), 0) FROM by_content) AS distinct_content_bytes,
  (SELECT count(*) FROM by_content WHERE copies = 1) AS singletons,
  (SELECT coalesce(sum(size), 0) FROM by_content WHERE copies = 1) AS singleton_bytes,
  (SELECT count(DISTINCT path) FROM content) AS distinct_paths,
  (SELECT count(*) FROM (SELECT DISTINCT path, hash, size FROM content)) AS distinct_path_contents,
  (SELECT coalesce(sum(size), 0) FROM (SELECT DISTINCT path, hash, size FROM content)) AS distinct_path_content_bytes,
  (SELECT list(DISTINCT split_part(hash, ':', 1)) FROM content) AS hash_algorithms,
  (SELECT count(*) FROM files WHERE type = 'file' AND size > 0 AND hash IS NULL
     AND diff_id IN (SELECT diff_id FROM dl)) AS files_without_hash
"""

_TOP_SQL = f"""WITH {_BASE},
by_content AS (SELECT hash, size, count(*) AS copies FROM content GROUP BY hash, size HAVING count(*) > 1),
top AS (SELECT hash, size, copies FROM by_content ORDER BY (copies - 1) * size DESC, hash, size LIMIT $top),
top_rows AS (SELECT c.hash, c.size, c.diff_id, c.path FROM content c SEMI JOIN top USING (hash, size)),
row_agg AS (SELECT hash, size, count(DISTINCT diff_id) AS layers, count(DISTINCT path) AS paths,
                   first(path ORDER BY length(path), path) AS example_path
            FROM top_rows GROUP BY hash, size),
layer_agg AS (SELECT hash, size, list(diff_id ORDER BY diff_id) AS layer_list
              FROM (SELECT DISTINCT hash, size, diff_id FROM top_rows) GROUP BY hash, size),
img_agg AS (SELECT hash, size, count(*) AS images, list(image ORDER BY image) AS image_list
            FROM (SELECT DISTINCT r.hash, r.size, refs.image FROM top_rows r JOIN refs USING (diff_id))
            GROUP BY hash, size)
SELECT t.hash, t.size, t.copies, a.layers, i.images, a.paths, a.example_path,
       (t.copies - 1) * t.size AS saved_bytes, i.image_list, l.layer_list
FROM top t JOIN row_agg a USING (hash, size) JOIN layer_agg l USING (hash, size) JOIN img_agg i USING (hash, size)
ORDER BY saved_bytes DESC, t.hash, t.size
"""

_REUSE_SQL = f"""WITH {_BASE},
meta AS (SELECT diff_id, max(size) AS size, max(compressed_size) AS compressed_size FROM layers
         WHERE diff_id IS NOT NULL GROUP BY diff_id)
SELECT r.diff_id, count(*) AS "references", count(DISTINCT r.image) AS images, m.size, m.compressed_size,
       p.files, p.bytes AS content_bytes, (count(*) - 1) * m.size AS saved_bytes, p.diff_id IS NOT NULL AS cached
FROM refs r JOIN meta m USING (diff_id) LEFT JOIN per_layer p USING (diff_id)
GROUP BY r.diff_id, m.size, m.compressed_size, p.files, p.bytes, p.diff_id
ORDER BY "references" DESC, m.size DESC NULLS LAST, r.diff_id
"""

# layer_reuse columns and dtypes (one row per distinct layer referenced)
LAYER_REUSE_COLUMNS: dict[str, str] = {
    "diff_id": "string", "references": "Int64", "images": "Int64", "size": "Int64", "compressed_size": "Int64",
    "files": "Int64", "content_bytes": "Int64", "saved_bytes": "Int64", "cached": "boolean",
}
TOP_FILE_COLUMNS: dict[str, str] = {
    "hash": "string", "size": "Int64", "copies": "Int64", "layers": "Int64", "images": "Int64", "paths": "Int64",
    "example_path": "string", "scope": "string", "saved_bytes": "Int64", "image_list": "object",
    "layer_list": "object",
}


class Dedup(Result):
    """How much of a fleet is the same content, per level (see :func:`dedup` for every definition).

    Frames: ``table`` (main; the study's side-by-side: no dedup, layer-level,
    file-level), ``levels`` (unique fractions by count and bytes per level),
    ``top_files`` (the most duplicated contents and where they come from),
    ``layer_reuse`` (one row per distinct layer), ``reuse_distribution`` (how
    many layers are used by 1, 2, … images).  ``summary``: the raw counts.
    """

    _frame_names = ("table", "levels", "top_files", "layer_reuse", "reuse_distribution")

    def __init__(self, *, table, levels, top_files, layer_reuse, reuse_distribution, summary, notes):
        self.table = table
        self.levels = levels
        self.top_files = top_files
        self.layer_reuse = layer_reuse
        self.reuse_distribution = reuse_distribution
        self.summary = summary
        self.notes = notes

    @property
    def file_store_saved_bytes(self) -> int:
        """Bytes a content-addressed file store saves over storing each distinct layer once."""
        return self.summary["stored_bytes"] - self.summary["distinct_content_bytes"]

    def _summary(self) -> str:
        from ..frames import human_bytes

        s = self.summary
        frac = s["distinct_contents"] / s["stored_files"] if s["stored_files"] else float("nan")
        return (f"{s['images']} images, {s['layer_refs']} layer references → {s['distinct_layers']} distinct layers; "
                f"{s['stored_files']} stored files → {s['distinct_contents']} distinct contents ({frac:.1%}); "
                f"a file-level store saves {human_bytes(self.file_store_saved_bytes)}")


def _empty(columns: dict[str, str]):
    import pandas as pd

    return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})


def _ratio(a, b) -> float:
    return float(a) / float(b) if b else float("nan")


def _typed(frame, columns: dict[str, str]):
    import pandas as pd

    out = pd.DataFrame({c: frame[c] if c in frame else pd.Series([None] * len(frame), dtype="object")
                        for c in columns})
    for c, t in columns.items():
        if t != "object":
            out[c] = out[c].astype(t)
    return out.reset_index(drop=True)


def _table(s: dict):
    """The study's side-by-side table from the counts."""
    import pandas as pd

    rows = [
        ("none", "every layer reference stores its layer", s["cached_refs"], s["ref_files"], s["ref_bytes"]),
        ("layer", "each distinct layer (diff_id) stored once", s["cached_layers"], s["stored_files"],
         s["stored_bytes"]),
        ("file", "each distinct file content (hash, size) stored once", None, s["distinct_contents"],
         s["distinct_content_bytes"]),
    ]
    t = pd.DataFrame(rows, columns=["level", "stores", "layers", "files", "bytes"])
    t["files_ratio"] = [_ratio(s["ref_files"], n) for n in t["files"]]
    t["bytes_ratio"] = [_ratio(s["ref_bytes"], n) for n in t["bytes"]]
    t["saved_bytes"] = [s["ref_bytes"] - n for n in t["bytes"]]
    t["saved_vs_layer_bytes"] = [None, 0, s["stored_bytes"] - s["distinct_content_bytes"]]
    for c in ("layers", "files", "bytes", "saved_bytes", "saved_vs_layer_bytes"):
        t[c] = t[c].astype("Int64")
    t["level"] = t["level"].astype("string")
    t["stores"] = t["stores"].astype("string")
    return t


def _levels(s: dict, layer_singletons: int):
    import pandas as pd

    rows = [
        ("layer", "layer references", s["cached_refs"], s["cached_layers"], s["ref_bytes"], s["stored_bytes"],
         layer_singletons),
        ("file by content", "stored files", s["stored_files"], s["distinct_contents"], s["stored_bytes"],
         s["distinct_content_bytes"], s["singletons"]),
        ("file by path", "stored files", s["stored_files"], s["distinct_paths"], s["stored_bytes"], None, None),
        ("file by path and content", "stored files", s["stored_files"], s["distinct_path_contents"],
         s["stored_bytes"], s["distinct_path_content_bytes"], None),
    ]
    lv = pd.DataFrame(rows, columns=["level", "population", "total", "unique", "total_bytes", "unique_bytes",
                                     "singletons"])
    lv["unique_fraction"] = [_ratio(u, t) for u, t in zip(lv["unique"], lv["total"])]
    lv["unique_bytes_fraction"] = [float("nan") if u is None or pd.isna(u) else _ratio(u, t)
                                   for u, t in zip(lv["unique_bytes"], lv["total_bytes"])]
    for c in ("total", "unique", "total_bytes", "unique_bytes", "singletons"):
        lv[c] = lv[c].astype("Int64")
    for c in ("level", "population"):
        lv[c] = lv[c].astype("string")
    return lv[["level", "population", "total", "unique", "unique_fraction", "total_bytes", "unique_bytes",
               "unique_bytes_fraction", "singletons"]]


def _distribution(reuse):
    """How many distinct layers are referenced k times, and their bytes."""
    import pandas as pd

    if not len(reuse):
        return pd.DataFrame({"references": pd.Series(dtype="Int64"), "layers": pd.Series(dtype="Int64"),
                             "bytes": pd.Series(dtype="Int64"), "referenced_bytes": pd.Series(dtype="Int64")})
    r = reuse.assign(referenced_bytes=reuse["size"] * reuse["references"])
    d = r.groupby("references", as_index=False).agg(
        layers=("diff_id", "size"), bytes=("size", lambda x: x.sum(min_count=1)),
        referenced_bytes=("referenced_bytes", lambda x: x.sum(min_count=1)))
    return d.astype({"references": "Int64", "layers": "Int64", "bytes": "Int64", "referenced_bytes": "Int64"})


def _notes(s: dict) -> list[str]:
    notes = [
        "Content is a regular file with a hash and at least one byte (empty files, links, directories and "
        "whiteouts carry no bytes); two copies are the same content when hash and size agree.",
        "Unique means distinct (the study's sense: only ~3% of Docker Hub's files were unique); "
        "'singletons' counts contents stored exactly once.",
    ]
    if s["refs_without_diff_id"]:
        notes.append(f"{s['refs_without_diff_id']} layer reference(s) have no diff_id and are left out.")
    missing = s["distinct_layers"] - s["cached_layers"]
    if missing:
        notes.append(f"{missing} of {s['distinct_layers']} distinct layers have no file table in the cache "
                     f"(failed or not scanned); every figure covers the {s['cached_layers']} that do.")
    if s["files_without_hash"]:
        notes.append(f"{s['files_without_hash']} regular files have no content hash (scanned with hash=None) "
                     "and are not counted as content.")
    if len(s["hash_algorithms"]) > 1:
        notes.append(f"the cache mixes hash algorithms {sorted(s['hash_algorithms'])}: the same content hashed "
                     "two ways counts twice; rescan with one hash=.")
    return notes


def dedup(source, *, top: int = 20, list_limit: int = 10, scan_id: str | None = None,
          storage_options: dict | None = None) -> Dedup:
    """How much of a scanned fleet is the same content, at the layer and the file level.

    ``source``: a scan cache root or a DuckDB connection with its views (see
    the module doc; ``scan_id``/``storage_options`` as for :func:`files_sql`).
    All figures are computed by DuckDB over the cache.

    Definitions (the population of every figure):

    * a **layer reference** is one (image, position) row of ``layers`` with a
      diff_id; a **distinct layer** is a distinct diff_id among them.  Only
      layers whose file table is in the cache count (the others are named in
      ``notes``);
    * **content** is a regular file (``type = 'file'``) with a content hash and
      ``size > 0``, as in :func:`layerlab.duplicates`; two copies are the same
      content when ``hash`` and ``size`` agree;
    * a **stored file** is one content row of a distinct layer: what a registry
      stores today, each layer once (the study's population);
    * **unique** means distinct: distinct diff_ids among layer references,
      distinct contents / paths / (path, content) among stored files.  Bytes
      are content bytes (sum of ``size``), so all levels are comparable;
    * a content-addressed **file store** keeps each distinct content once: it
      saves ``stored bytes − distinct content bytes`` over layer-level dedup.

    Frames of the result (:class:`Dedup`):

    * ``table`` — the study's layer-level vs file-level table, one row per
      level ``none`` (every layer reference stores its layer), ``layer``,
      ``file``: ``level``, ``stores`` (what is kept once), ``layers`` (Int64:
      layer copies kept; null for ``file``), ``files``/``bytes`` (Int64: file
      copies and their bytes kept), ``files_ratio``/``bytes_ratio`` (float:
      the dedup ratio, ``none``'s figure divided by this level's),
      ``saved_bytes`` (Int64: ``none`` − this level), ``saved_vs_layer_bytes``
      (Int64: ``layer`` − this level; null for ``none``);
    * ``levels`` — ``level`` (``layer``, ``file by content``, ``file by
      path``, ``file by path and content``), ``population``, ``total``,
      ``unique``, ``unique_fraction`` (float), ``total_bytes``,
      ``unique_bytes`` (null for ``file by path``: a path has no one size),
      ``unique_bytes_fraction``, ``singletons`` (layers referenced once /
      contents stored once; null where not defined);
    * ``top_files`` — the ``top`` contents stored more than once, most bytes
      saved first: ``hash``, ``size``, ``copies``, ``layers``, ``images``,
      ``paths``, ``example_path`` (the shortest, then first by name),
      ``scope`` (``same layer``/``same image``/``across images``),
      ``saved_bytes`` ((copies − 1) × size), ``image_list``/``layer_list``
      (the first ``list_limit`` images / diff_ids holding it, sorted; the
      counts are exact);
    * ``layer_reuse`` — one row per distinct layer referenced: ``diff_id``,
      ``references``, ``images``, ``size``/``compressed_size`` (the layer's,
      from ``layers``), ``files``/``content_bytes`` (its content; null when not
      cached), ``saved_bytes`` ((references − 1) × size: what layer sharing
      saves), ``cached``; most referenced first;
    * ``reuse_distribution`` — ``references`` k, ``layers`` referenced k
      times, their ``bytes`` and ``referenced_bytes`` (× k).
    """
    if not isinstance(top, int) or top < 0 or not isinstance(list_limit, int) or list_limit < 0:
        raise AnalysisError(f"dedup(): top and list_limit must be non-negative integers, not {top!r}, {list_limit!r}")
    with _connection(source, scan_id, storage_options) as con:
        counts = _run(con, _COUNTS_SQL).iloc[0].to_dict()
        # an empty layers view may lack columns the other queries name: nothing to ask then
        empty = counts["layer_refs"] == 0
        tops = _run(con, _TOP_SQL, {"top": top}) if not empty else _empty(TOP_FILE_COLUMNS)
        reuse = _run(con, _REUSE_SQL) if not empty else _empty(LAYER_REUSE_COLUMNS)
    s = {k: (int(v) if k != "hash_algorithms" else [a for a in (v if v is not None else []) if a])
         for k, v in counts.items()}
    reuse = _typed(reuse, LAYER_REUSE_COLUMNS)
    if len(tops):
        tops["scope"] = ["same layer" if ly == 1 else ("same image" if im == 1 else "across images")
                         for ly, im in zip(tops["layers"], tops["images"])]
        tops["image_list"] = [list(x)[:list_limit] for x in tops["image_list"]]
        tops["layer_list"] = [list(x)[:list_limit] for x in tops["layer_list"]]
    tops = _typed(tops, TOP_FILE_COLUMNS)
    return Dedup(table=_table(s), levels=_levels(s, int(((reuse["references"] == 1) & reuse["cached"]).sum())), top_files=tops,
                 layer_reuse=reuse, reuse_distribution=_distribution(reuse), summary=s, notes=_notes(s))


__all__ = ["files_sql", "dedup", "Dedup", "CONTENT", "LAYER_REUSE_COLUMNS", "TOP_FILE_COLUMNS"]
