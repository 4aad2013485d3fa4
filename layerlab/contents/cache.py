"""The per-layer file-table cache, keyed by diff_id.

A layer's file table depends on nothing but its uncompressed content, which
its diff_id names; so a table is stored once under that key and reused by
every image (and every process) that has the layer: a base layer shared by
50 images is read once.  Nothing but the key invalidates an entry — no
timestamps, no source paths.  (Whether a *stored copy* of the layer is intact
is another question: a ``verify=True`` scan takes a cached table only for
layers whose archive or layout file was verified as it is now, see
:mod:`.verify`; otherwise the layer is read and checked again.)

Layout (all names derived from the validated hex digest, so nothing can be
written outside the cache directory)::

    <cache_dir>/files-v1/<hash algorithm or "nohash">/<hex[:2]>/<hex>.parquet
    <cache_dir>/files-v1/local/<hash algorithm or "nohash">/<hex[:2]>/<hex>.parquet

The second form holds scans made with ``verify=False`` of layers stored in a
local file (a ``docker save`` archive, an OCI layout): their bytes were not
hashed, so they must not be filed under the diff_id they merely claim (a
damaged or forged layer would then poison every image sharing that diff_id).
They are keyed instead by :func:`local_key` — the claimed diff_id plus the
file's identity (real path, device, inode, size, mtime and ctime in ns) and
the layer's byte range, the way ``git`` and ``make`` trust an unchanged file —
and only ``verify=False`` reads them.  A verified entry serves both kinds of
request.

The directory is, in order: the ``cache_dir=`` argument, ``$LAYERLAB_CACHE``,
``$XDG_CACHE_HOME/layerlab``, ``~/.cache/layerlab``.  Writes go to a temporary
file in the same directory followed by :func:`os.replace`, which is atomic on
POSIX, so concurrent processes never see half a table; two processes racing
on the same layer both write identical content and the last rename wins.
A file that cannot be read back (disk full, truncated copy) counts as a miss
and is rewritten.
"""
from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import LayerlabError
from .tarscan import LAYER_TABLE_SCHEMA, LayerScan, valid_diff_id

SCHEMA_VERSION = "files-v1"
_NOHASH = "nohash"
# when no content hash is wanted, any cached table will do: prefer the cheapest to read
_ANY_ORDER = (_NOHASH, "xxh128", "blake2b", "sha256")


from .sizes import default_cache_dir, is_local_key, write_atomically  # noqa: E402  (pyarrow-free)


class LayerCache:
    """Parquet file tables under ``root``, keyed by (diff_id, hash algorithm)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"<LayerCache {self.root}>"

    def path_for(self, diff_id: str | None, algo: str | None) -> Path | None:
        """Where the table for ``diff_id`` (or a :func:`local_key`) lives; None
        for a key that is not a well-formed digest (never cached: it cannot be
        trusted as a file name)."""
        if valid_diff_id(diff_id):
            hexpart = diff_id.split(":", 1)[1]  # type: ignore[union-attr]
            return self.root / SCHEMA_VERSION / (algo or _NOHASH) / hexpart[:2] / f"{hexpart}.parquet"
        if is_local_key(diff_id):
            hexpart = diff_id.split(":", 1)[1]  # type: ignore[union-attr]
            return self.root / SCHEMA_VERSION / "local" / (algo or _NOHASH) / hexpart[:2] / f"{hexpart}.parquet"
        return None

    def get(self, diff_id: str | None, algo: str | None) -> LayerScan | None:
        """The cached scan of ``diff_id`` with content hashes ``algo`` (None: any)."""
        for a in (_ANY_ORDER if algo is None else (algo,)):
            p = self.path_for(diff_id, None if a == _NOHASH else a)
            if p is None:
                return None
            if not p.is_file():
                continue
            scan = _read(p, diff_id)  # type: ignore[arg-type]
            if scan is not None:
                self.hits += 1
                return scan
        self.misses += 1
        return None

    def put(self, scan: LayerScan) -> Path | None:
        """Store a verified scan under its diff_id, or an unverified one of a
        local file under its :func:`local_key`; returns the path (None when
        not cacheable)."""
        key = scan.cache_key
        if key is None:
            return None
        p = self.path_for(key, scan.hash_algorithm)
        if p is None:
            return None
        def write(f) -> None:
            md = scan.metadata()
            if not scan.verified:
                md["local_key"] = key
            meta = {k.encode(): v.encode("utf-8", "backslashreplace") for k, v in md.items()}
            pq.write_table(scan.table.replace_schema_metadata(meta), f, compression="zstd")

        try:
            write_atomically(p, write, ".parquet")
        except OSError as e:
            raise LayerlabError(
                f"layer cache {self.root}: cannot write ({e.strerror or e}); pass cache_dir= a writable "
                "directory, set LAYERLAB_CACHE, or cache_dir=False to skip caching"
            ) from e
        return p


def _read(path: Path, diff_id: str) -> LayerScan | None:
    try:
        with pq.ParquetFile(path) as pf:  # not read_table: it imports pyarrow.dataset (~0.1 s) for nothing
            table = pf.read()
    except (OSError, pa.ArrowException, ValueError):
        return None
    meta = {k.decode(): v.decode("utf-8", "replace") for k, v in (table.schema.metadata or {}).items()}
    local = is_local_key(diff_id)
    if (meta.get("local_key") if local else meta.get("diff_id")) != diff_id:
        return None
    table = table.replace_schema_metadata(None)
    if not table.schema.equals(LAYER_TABLE_SCHEMA):
        return None
    try:
        return LayerScan(
            table=table,
            diff_id=meta["diff_id"] if local else diff_id,
            size=int(meta["size"]),
            entries=int(meta["entries"]),
            compression=meta.get("compression", ""),
            compressed_bytes=int(meta.get("compressed_bytes", 0)),
            uncompressed_bytes=int(meta.get("uncompressed_bytes", 0)),
            hash_algorithm=meta.get("hash_algorithm") or None,
            notes=[n for n in meta.get("notes", "").split("\n") if n],
            verified=not local,
            local_key=diff_id if local else None,
        )
    except (KeyError, ValueError):
        return None
