"""The results of one image, computed once: :func:`image_results`.

What ``efficiency()``, ``waste()`` and ``filesystem()`` share (dive's figures
and the per-row outcome of the OCI merge, :class:`.figures.ImageResults`) is
looked up in this order: the image's memo (:mod:`.memo`), the results cache
on disk (:mod:`.figures`, which also describes its layout), what a byte-range
scan computed while it hashed the layers, and last computed from the stacked
layers — then cached.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from . import figures
from ._runtime.busy import busy
from .figures import ImageResults
from .memo import memo_of
from .scan import image_contents

if TYPE_CHECKING:
    from ..model import Image
    from .options import ScanOptions


@busy()
def image_results(img: Image, options: ScanOptions, table: pa.Table | None = None) -> ImageResults:
    """The results of ``img`` (memo on the image, else the cache, else computed
    from its layers and then cached).  With ``table`` (the image table the
    caller holds), results that do not describe its rows are recomputed."""
    keys = figures.result_keys(img, options)
    memo_key = figures.results_memo_key(img, options)
    memo = memo_of(img)
    if memo.results is not None and memo.results[0] == memo_key and (
        table is None or memo.results[1].matches(table)
    ):
        return memo.results[1]
    cache = options.cache()
    path = figures.results_path(cache.root, keys) if cache is not None and keys else None
    trusted = path is not None and path.is_file() and figures.results_trusted(img, options, cache)
    res = figures.read_results(path, keys) if trusted else None  # type: ignore[arg-type]
    if res is not None and table is not None and not res.matches(table):
        res = None
    if res is None:
        scans, full, _m = image_contents(img, merge=False, options=options)
        early, memo.early = memo.early, None  # computed by a byte-range scan while it hashed: taken once
        if early is not None and early[0] == memo_key and early[1].matches(full):
            res = early[1]
        else:
            scans, full, m = image_contents(img, options=options)
            res = figures.compute(full, m, len(img.layer_list))
        # written only for an image whose layers this run could read (and cache): an image without
        # blobs (a snapshot, a copy reading bundled tables) leaves its cache directory untouched,
        # as the file-table lookup does
        if path is not None and img.blobs is not None and scans and (
            all(s.verified for s in scans) if options.verify else all(s.cache_key for s in scans)
        ):
            figures.write_results(path, res, keys)  # type: ignore[arg-type]
    memo.results = (memo_key, res)
    return res


__all__ = ["ImageResults", "image_results"]
