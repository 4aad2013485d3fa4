"""What a layer scan is asked for (:class:`ScanOptions`), and how a layer is
named to the user (:func:`layer_label`) and to the cache when unverified
(:func:`local_layer_key`).

Images are duck-typed (``reference``, ``layer_list``, ``blobs``): the contents
engine sits above the model and imports it only for typing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .cache import LayerCache

if TYPE_CHECKING:
    from ..model import Image


@dataclass
class ScanOptions:
    """How the layers of an image are read.

    ``hash``: "fast" (xxh128, or blake2b without the xxhash package), "sha256"
    or None (no content hashes).  ``cache_dir``: the per-layer Parquet cache
    (None: the default directory, see :func:`.cache.default_cache_dir`; False:
    no cache; else a path).  ``progress``: a tqdm bar per image.  ``verify``: a
    layer whose content does not hash to its diff_id, or whose stored blob
    does not hash to its digest (where the source states one), raises
    ``DigestMismatchError``; cached tables stand only for stored copies
    verified as they are now (:mod:`.verify`).  ``workers``: None scans in 2 processes when it
    helps, 1 in this process, n in n processes."""

    hash: str | None = "fast"
    cache_dir: Any = None
    progress: bool = True
    verify: bool = True
    workers: int | None = None

    def cache(self) -> LayerCache | None:
        if self.cache_dir is False:
            return None
        return LayerCache(self.cache_dir)


def layer_label(img: Image, pos: int) -> str:
    """``"<reference>: layer <pos> (<short id>)"``, for messages and progress."""
    layer = img.layer_list[pos]
    ident = (layer.diff_id or layer.digest or "?")[:19]
    return f"{img.reference}: layer {pos} ({ident})"


def local_layer_key(img: Image, pos: int) -> str | None:
    """The cache key of an unverified scan of layer ``pos`` (None unless its blob
    is a byte range of a local file): see :func:`.sizes.local_key`."""
    r = img.blobs.byte_range(pos) if img.blobs is not None else None
    if r is None:
        return None
    from .sizes import local_key

    return local_key(r[0], r[1], r[2], img.layer_list[pos].diff_id)
