"""The contents engine's per-image cache: one mechanism, one place.

Reading, stacking and merging an image's layers, and the results computed
from them, are costly and a pure function of the image's layers and the scan
options; ``files()``, ``filesystem()``, ``efficiency()`` and ``waste()`` on one
image should do them once.  They are kept in an :class:`ImageMemo` held by
the image's declared field ``Image._memo`` (made on first use by
:func:`memo_of`; not part of the image's identity, ``repr`` or equality, and
not carried over by ``dataclasses.replace``).  Every entry records the key it
was computed under and is used only when the caller's key matches; nothing
else is stored on the image.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class ImageMemo:
    """What the engine remembers about one image (each entry ``(key, value)`` or None)."""

    contents: tuple[tuple, tuple] | None = None
    """``(ids, hash algorithm, verify, repr(cache_dir))`` -> ``(scans, table, merge or None)``,
    from :func:`.scan.image_contents`; one entry only (the tables can be large)."""
    results: tuple[tuple, Any] | None = None
    """``(results_memo_key, ImageResults)`` from :func:`.results.image_results`."""
    early: tuple[tuple, Any] | None = None
    """``(results_memo_key, ImageResults)`` a byte-range scan computed while the
    layers were hashed (:func:`.scan.image_contents`); taken once by
    :func:`.results.image_results`."""


def memo_of(img) -> ImageMemo:
    """The memo of ``img`` (an ``Image``), made on first use."""
    memo = img._memo
    if memo is None:
        memo = img._memo = ImageMemo()
    return memo
