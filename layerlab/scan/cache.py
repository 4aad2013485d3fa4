"""The fleet scan's content-addressed cache: one Parquet file table per layer,
plus each scan's image and layer rows, at a local path or any fsspec URL.

Layout (``ROOT`` is the ``cache=`` of :func:`layerlab.scan`; this layout is a
contract — DuckDB views, notebooks and other processes read it)::

    ROOT/files/<diff_id hex>.<rows>.<xxh64>.parquet
        one file per layer content.  Columns: ``diff_id`` (string,
        ``sha256:…``) then the file-table columns of ``Image.files()`` less
        ``image``/``position`` (see :mod:`layerlab.contents.schema`): path,
        type, size, mode, uid, gid, link_target, mtime, hash, warning — one
        row per tar entry, in tar order.  ``<rows>`` is the row count and
        ``<xxh64>`` the xxHash64 of the file's bytes (16 hex digits): a
        truncated, corrupted or half-copied file does not match its own name
        and is never read as truth (:func:`verify_file`); the next scan that
        needs the layer rewrites it.  The Parquet key-value metadata holds
        what the scan learned of the blob (``diff_id``, ``docker_size``
        — Docker's layer size, as ``layers().size`` —, ``size``, ``entries``, ``compression``, ``compressed_bytes``,
        ``uncompressed_bytes``, ``hash_algorithm``, ``notes``).
    ROOT/layers/<scan id>.parquet
        one row per (image, position) of that scan: the columns of
        ``layers()`` (:data:`layerlab.frames.LAYER_COLUMNS`), plus ``source``
        (the source string given to the scan) and ``scan_id``.
    ROOT/images/<scan id>.parquet
        one row per image of that scan: the columns of ``images()``
        (:data:`layerlab.frames.IMAGE_COLUMNS`; there ``source`` is the
        transport, as in ``images()``), plus ``scan_source`` (the source
        string given to the scan) and ``scan_id``.
    ROOT/configs/<config digest hex>
        registry images' config blobs as fetched (``docker://`` sources get
        them here: :meth:`Cache.get_config`), so a rescan asks the registry
        only for manifests; a copy is used only when it hashes to its name.

A scan id is ``<UTC time %Y%m%dT%H%M%S%fZ>-<8 hex>``: ids sort by time.

Writes are atomic: the bytes go to ``.tmp-<random>`` in the same directory,
then a rename (``fs.mv``) gives the final name, so a reader (or a second scan
writing the same layer at the same moment: both write identical content) never
sees a partial file under a final name.  Names that do not parse
(``.tmp-*`` of a writer killed mid-write, ``_*``) are ignored; each scan
removes ``.tmp-*`` files older than an hour (:meth:`Cache.sweep_temps`).

:func:`register_views` makes DuckDB views ``files``, ``layers`` and ``images``
over a cache; ``files`` reads only files whose name verifies (one per
diff_id), checked when the views are created.
"""
from __future__ import annotations

import io
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable

import pyarrow as pa

from ..contents.tarscan import LAYER_TABLE_SCHEMA
from ..errors import LayerlabError

FILES, LAYERS, IMAGES, CONFIGS = "files", "layers", "images", "configs"
#: what a scan adds to the layers / images frames in its rows files
ROW_EXTRA = {LAYERS: ("source", "scan_id"), IMAGES: ("scan_source", "scan_id")}
CONFIG_BYTES = 4 * 1024 * 1024   # a kept config larger than this is not read (the registry source's limit is lower)
FILE_SCHEMA = pa.schema([pa.field("diff_id", pa.string()), *LAYER_TABLE_SCHEMA])
_NAME_RE = re.compile(r"^([0-9a-f]{64})\.(\d+)\.([0-9a-f]{16})\.parquet$")


def new_scan_id() -> str:
    """A fresh scan id: UTC time then 8 random hex digits (ids sort by time)."""
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"


def _xxh64():
    import xxhash

    return xxhash.xxh64()


@dataclass(frozen=True)
class CachedLayer:
    """A verified layer file: its diff_id, rows, path and what its metadata says."""

    diff_id: str
    rows: int
    path: str
    bytes: int
    size: int | None            # Docker's layer size (from the metadata)


class Cache:
    """The cache at ``root`` (a local path or an fsspec URL such as ``s3://bucket/prefix``)."""

    def __init__(self, root, storage_options: dict | None = None):
        import os

        import fsspec

        if not isinstance(root, (str, os.PathLike)):
            raise LayerlabError(f"scan cache {root!r}: pass a directory or an fsspec URL such as s3://bucket/prefix")
        root = os.fspath(root)
        if "://" not in root:
            root = os.path.abspath(os.path.expanduser(root))   # workers may run elsewhere: no relative paths
        self.url = root
        try:
            self.fs, path = fsspec.core.url_to_fs(root, **(storage_options or {}))
        except (ValueError, ImportError, TypeError) as e:
            raise LayerlabError(f"scan cache {root}: fsspec cannot open it ({e}); install the filesystem's "
                                "package (s3fs, gcsfs, …) or check the URL and storage_options") from e
        self.root = path.rstrip("/") or "/"

    def __repr__(self) -> str:
        return f"<layerlab scan cache {self.url}>"

    @property
    def local(self) -> bool:
        return _is_local(self.fs)

    def dir(self, kind: str) -> str:
        return f"{self.root}/{kind}"

    def url_of(self, path: str) -> str:
        """``path`` (as this filesystem names it) as a URL another process can open."""
        return path if self.local else self.fs.unstrip_protocol(path)

    # -- layer files ---------------------------------------------------------
    def candidates(self) -> dict[str, list[str]]:
        """diff_id → the paths under ``files/`` whose names parse (unverified), sorted."""
        self.fs.invalidate_cache(self.dir(FILES))   # object stores' listing caches: other writers add files
        try:
            names = self.fs.ls(self.dir(FILES), detail=False)
        except FileNotFoundError:
            return {}
        out: dict[str, list[str]] = {}
        for p in sorted(names):
            m = _NAME_RE.match(p.rsplit("/", 1)[-1])
            if m:
                out.setdefault(f"sha256:{m.group(1)}", []).append(p)
        return out

    def verified(self, diff_ids: Iterable[str] | None = None, workers: int = 8) -> dict[str, CachedLayer]:
        """diff_id → its verified file, for ``diff_ids`` (all when None)."""
        return self.check(diff_ids, workers)[0]

    def check(self, diff_ids: Iterable[str] | None = None, workers: int = 8,
              listing: dict[str, list[str]] | None = None, pool=None):
        """(diff_id → verified file, diff_id → paths that failed verification)
        for ``diff_ids`` (all when None): one listing of ``files/`` (or
        ``listing``, a :meth:`candidates` taken earlier), then each candidate's
        bytes hashed (on an object store: in ``workers`` threads, or in the
        executor ``pool``; a local file takes well under a millisecond, less
        than handing it to a thread); the first that matches its name wins."""
        from concurrent.futures import ThreadPoolExecutor

        cands = self.candidates() if listing is None else listing
        wanted = cands if diff_ids is None else {d: cands[d] for d in set(diff_ids) if d in cands}
        if not wanted:
            return {}, {}

        def sort(paths: list[str]) -> tuple[CachedLayer | None, list[str]]:
            bad = []
            for p in paths:
                got = verify_file(self.fs, p)
                if got is not None:
                    return got, bad
                bad.append(p)
            return None, bad

        if self.local:
            found = {d: sort(paths) for d, paths in wanted.items()}
        elif pool is not None:
            found = dict(zip(wanted, pool.map(sort, wanted.values())))
        else:
            with ThreadPoolExecutor(max_workers=workers) as own:
                found = dict(zip(wanted, own.map(sort, wanted.values())))
        return ({d: g for d, (g, _b) in found.items() if g is not None},
                {d: b for d, (g, b) in found.items() if b and g is None})

    def put_layer(self, diff_id: str, table: pa.Table, metadata: dict[str, str], stale: Iterable[str] = ()) -> CachedLayer:
        """Write one layer's table (:data:`FILE_SCHEMA` less ``diff_id``, which is
        added) atomically under its verifiable name, then remove ``stale`` (the
        files of this diff_id that failed verification when the scan was planned)."""
        import pyarrow.parquet as pq

        hexpart = _hex(diff_id)
        n = table.num_rows
        table = table.add_column(0, "diff_id", pa.repeat(pa.scalar(diff_id, pa.string()), n))
        meta = {k.encode(): v.encode("utf-8", "backslashreplace") for k, v in metadata.items()}
        sink = pa.BufferOutputStream()
        pq.write_table(table.cast(FILE_SCHEMA).replace_schema_metadata(meta), sink, compression="zstd")
        data = sink.getvalue().to_pybytes()
        h = _xxh64()
        h.update(data)
        path = f"{self.dir(FILES)}/{hexpart}.{n}.{h.hexdigest()}.parquet"
        self.write_bytes(path, data)
        for old in stale:
            if old != path and old.rsplit("/", 1)[-1].startswith(hexpart):
                self._rm(old)
        size = metadata.get("docker_size")
        return CachedLayer(diff_id, n, path, len(data), int(size) if size else None)

    def sweep_temps(self, max_age: float = 3600.0) -> int:
        """Remove ``.tmp-*`` files older than ``max_age`` seconds under ``files/``,
        ``layers/`` and ``images/`` (left by a writer killed mid-write; younger
        ones may belong to a scan writing now).  Returns how many were removed."""
        import time

        removed = 0
        for kind in (FILES, LAYERS, IMAGES):
            try:
                names = self.fs.ls(self.dir(kind), detail=False)
            except FileNotFoundError:
                continue
            for p in names:
                if not p.rsplit("/", 1)[-1].startswith(".tmp-"):
                    continue
                try:
                    age = time.time() - self.fs.modified(p).timestamp()
                except (OSError, NotImplementedError, FileNotFoundError):
                    continue
                if age > max_age:
                    self._rm(p)
                    removed += 1
        return removed

    def read_layer(self, diff_id: str) -> pa.Table | None:
        """The verified table of ``diff_id`` (None when the cache has no good file)."""
        import pyarrow.parquet as pq

        got = self.verified([diff_id]).get(diff_id)
        if got is None:
            return None
        with self.fs.open(got.path, "rb") as f:
            return pq.read_table(f).replace_schema_metadata(None)

    # -- config blobs (the config_store of docker:// loads) ---------------------
    def get_config(self, digest: str) -> bytes | None:
        """The kept config blob of ``digest`` (unverified: the loader hashes it), or None."""
        try:
            with self.fs.open(f"{self.dir(CONFIGS)}/{_hex(digest)}", "rb") as f:
                return f.read(CONFIG_BYTES + 1)
        except (OSError, LayerlabError, ValueError):
            return None

    def put_config(self, digest: str, raw: bytes) -> None:
        """Keep a verified config blob (atomically); a cache that cannot be written is skipped."""
        try:
            self.write_bytes(f"{self.dir(CONFIGS)}/{_hex(digest)}", raw)
        except LayerlabError:
            pass

    # -- scan rows -------------------------------------------------------------
    def put_rows(self, kind: str, scan_id: str, table: pa.Table) -> str:
        """Write a scan's ``layers`` or ``images`` rows (atomically)."""
        import pyarrow.parquet as pq

        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        path = f"{self.dir(kind)}/{scan_id}.parquet"
        self.write_bytes(path, sink.getvalue().to_pybytes())
        return path

    # -- low level -------------------------------------------------------------
    def write_bytes(self, path: str, data: bytes) -> None:
        """Write ``data`` to a temp name in ``path``'s directory, then rename it."""
        parent = path.rsplit("/", 1)[0]
        tmp = f"{parent}/.tmp-{uuid.uuid4().hex}"
        try:
            self.fs.makedirs(parent, exist_ok=True)
            with self.fs.open(tmp, "wb") as f:
                f.write(data)
            self.fs.mv(tmp, path)
        except OSError as e:
            self._rm(tmp)
            raise LayerlabError(
                f"scan cache {self.url}: cannot write {path} ({getattr(e, 'strerror', None) or e}); "
                "pass cache= a writable directory or URL"
            ) from e

    def _rm(self, path: str) -> None:
        try:
            self.fs.rm(path)
        except (OSError, FileNotFoundError):
            pass


def _hex(diff_id: str) -> str:
    m = re.match(r"^sha256:([0-9a-f]{64})$", diff_id or "")
    if not m:
        raise LayerlabError(f"diff_id {diff_id!r} is not sha256:<64 hex>; the scan cache files layers by diff_id")
    return m.group(1)


def _is_local(fs) -> bool:
    """Whether the fsspec filesystem ``fs`` is the local one (paths are the machine's own)."""
    protocol = fs.protocol
    return "file" in (protocol if isinstance(protocol, (tuple, list)) else (protocol,))


def verify_file(fs, path: str) -> CachedLayer | None:
    """The :class:`CachedLayer` at ``path`` if its bytes hash to the xxh64 in its
    name and it is a Parquet file of :data:`FILE_SCHEMA` with the named row
    count; None otherwise (missing, truncated, corrupted, foreign)."""
    import pyarrow.parquet as pq

    m = _NAME_RE.match(path.rsplit("/", 1)[-1])
    if not m:
        return None
    h = _xxh64()
    try:
        # a local file with the builtin open: fsspec's local opener costs ten times more per file
        # (0.3 ms), and a rescan verifies every cached layer of the fleet
        with (open(path, "rb") if _is_local(fs) else fs.open(path, "rb")) as f:
            data = f.read()
    except (OSError, FileNotFoundError):
        return None
    h.update(data)
    if h.hexdigest() != m.group(3):
        return None
    try:
        md = pq.ParquetFile(io.BytesIO(data)).metadata
        schema = md.schema.to_arrow_schema().remove_metadata()
    except (OSError, pa.ArrowException, ValueError):
        return None
    if md.num_rows != int(m.group(2)) or not schema.equals(FILE_SCHEMA):
        return None
    kv = {k.decode(): v.decode("utf-8", "replace") for k, v in (md.metadata or {}).items()}
    diff_id = f"sha256:{m.group(1)}"
    if kv.get("diff_id") != diff_id:
        return None
    size = kv.get("docker_size")
    return CachedLayer(diff_id, md.num_rows, path, len(data), int(size) if size and size.isdigit() else None)


# -- DuckDB ----------------------------------------------------------------------
def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def rows_table(df) -> pa.Table:
    """A scan's layer or image rows (the frame and :data:`ROW_EXTRA`'s columns) as written to
    ``<kind>/<scan id>.parquet``."""
    extra = {c for cols in ROW_EXTRA.values() for c in cols}
    return pa.Table.from_pandas(df.astype({c: "string" for c in extra if c in df}), preserve_index=False)


def _empty_rows_view(con, kind: str) -> str:
    """SELECT of no rows with the columns and types of ``kind``'s rows files (as DuckDB reads them)."""
    import pandas as pd

    from ..frames import images_frame, layers_frame
    from ..model import Fleet

    df = (layers_frame if kind == LAYERS else images_frame)(Fleet())
    for c in ROW_EXTRA[kind]:
        df[c] = pd.Series([], dtype="string")
    return _empty_select(con, rows_table(df).schema)


def _empty_select(con, schema: pa.Schema) -> str:
    """SELECT of no rows with ``schema``'s columns, typed as DuckDB reads them from Parquet."""
    rel = con.from_arrow(schema.empty_table())
    cols = ", ".join(f'NULL::{t} AS "{c}"' for c, t in zip(rel.columns, rel.types))
    return f"SELECT {cols} WHERE false"


def register_views(con, root, scan_id: str | None = None, storage_options: dict | None = None) -> dict[str, int]:
    """Create (or replace) DuckDB views ``files``, ``layers`` and ``images`` on
    connection ``con`` over the cache at ``root``.

    ``layers`` / ``images``: the rows of scan ``scan_id``; when None, for each
    source (``layers.source`` / ``images.scan_source``) the rows of the latest
    scan that read it.  ``files``: the rows of every verified layer file (one
    file per diff_id; each file's xxh64 and row count are checked now, so the
    view is a snapshot of the cache at this call) — restricted to the diff_ids
    of ``layers`` when ``scan_id`` is given.  Columns as in the module doc.
    Non-local roots are read through fsspec (``con.register_filesystem``).
    Returns the number of layer files the ``files`` view reads, by name
    ``{"files": n}``.
    """
    cache = Cache(root, storage_options)
    if not cache.local:
        con.register_filesystem(cache.fs)
    for kind, part in ((LAYERS, "source"), (IMAGES, "scan_source")):
        paths = _paths(cache, kind)
        if not paths:
            con.execute(f"CREATE OR REPLACE VIEW {kind} AS {_empty_rows_view(con, kind)}")
            continue
        src = f"read_parquet([{', '.join(_sql_str(p) for p in paths)}], union_by_name=true)"
        where = (f"WHERE scan_id = {_sql_str(scan_id)}" if scan_id else
                 f"QUALIFY scan_id = max(scan_id) OVER (PARTITION BY {part})")
        con.execute(f"CREATE OR REPLACE VIEW {kind} AS SELECT * FROM {src} {where}")
    wanted = None
    if scan_id:
        wanted = [r[0] for r in con.execute("SELECT DISTINCT diff_id FROM layers WHERE diff_id IS NOT NULL").fetchall()]
    good = sorted(c.path for c in cache.verified(wanted).values())
    if good:
        urls = ", ".join(_sql_str(cache.url_of(p)) for p in good)
        con.execute(f"CREATE OR REPLACE VIEW files AS SELECT * FROM read_parquet([{urls}])")
    else:
        con.execute(f"CREATE OR REPLACE VIEW files AS {_empty_select(con, FILE_SCHEMA)}")
    return {"files": len(good)}


def _paths(cache: Cache, kind: str) -> list[str]:
    cache.fs.invalidate_cache(cache.dir(kind))
    try:
        names = cache.fs.ls(cache.dir(kind), detail=False)
    except FileNotFoundError:
        return []
    return sorted(cache.url_of(p) for p in names if p.endswith(".parquet") and not p.rsplit("/", 1)[-1].startswith((".", "_")))


__all__ = ["Cache", "CachedLayer", "FILE_SCHEMA", "ROW_EXTRA", "new_scan_id", "register_views", "rows_table",
           "verify_file"]
