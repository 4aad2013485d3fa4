"""Layer contents: stream layer blobs into per-layer file tables.

* :mod:`.compression` — gzip / zstd / bzip2 / xz / plain, told by magic bytes;
  the layer media types and what compression each declares;
* :mod:`.tar` — the one tar header reader (ustar, GNU, PAX), streaming;
  :mod:`.tarindex` walks a byte range of a local file with the same rules;
* :mod:`.whiteouts` — OCI path rules: tar names, whiteout / opaque markers;
* :mod:`.tarscan` — one blob → one file table, hashing contents and checking
  the diff_id as the bytes stream past (:mod:`.rangescan`: by byte range);
* :mod:`.cache` — the Parquet cache keyed by diff_id;
* :mod:`.sizes` — Docker's layer-size rule, and the sizes remembered by diff_id;
* :mod:`.options` — :class:`~.options.ScanOptions`, what a scan is asked for;
* :mod:`.scan` — every layer of an image (cache, else the source; two
  worker processes when the source allows), stacked and merged;
* :mod:`.merge` — OCI whiteout semantics: the final filesystem and what hid what;
* :mod:`.dive` — dive's efficiency figures over the stacked layers;
* :mod:`.figures` — what the analyses share (merge outcome, dive's figures) and its cache;
* :mod:`.results` — those results for one image, computed once;
* :mod:`.memo` — the per-image cache (``Image._memo``) that makes "once" hold in memory;
* :mod:`.layers` — the frames: ``Image.files()`` and ``Image.filesystem()``;
* :mod:`.schema` — the columns of ``Image.files()`` and ``Image.filesystem()``;
* :mod:`._runtime` — worker environment, read-ahead, scoped interpreter settings.

The package sits above :mod:`layerlab.model` (whose ``Image.files()`` calls
into it) and imports the model only for typing; it reads blobs only through
what :class:`layerlab.model.BlobProvider` declares, and never imports a
source or an analysis.

Importing this package is cheap; the submodules (pyarrow, zstandard) load on use.
"""
from __future__ import annotations

__all__ = ["FILE_COLUMNS", "FILESYSTEM_COLUMNS", "default_cache_dir"]


def __getattr__(name):
    if name in ("FILE_COLUMNS", "FILESYSTEM_COLUMNS"):
        from . import schema

        return getattr(schema, name)
    if name == "default_cache_dir":
        from .cache import default_cache_dir

        return default_cache_dir
    raise AttributeError(name)
