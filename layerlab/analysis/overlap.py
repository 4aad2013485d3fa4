"""Which layers (and bytes) images share, keyed four ways.

The *key* says what "the same layer" means; each is a deliberate choice:

``key="chain_id"`` (default) — what the Docker Engine counts as shared
    A layer *at this position on this base*.  Two images share a chain id
    only if everything below it is identical too, so sharing is always a
    common prefix.  This is the engine's own accounting: ``image_sharing``
    with this key reproduces ``docker system df -v`` SHARED SIZE / UNIQUE SIZE
    (moby ``daemon/images``: a layer's DiffSize counts as shared when more
    than one image's RootFS reaches its chain id).
``key="diff_id"``
    The same uncompressed content at *any* position, on any base: what a
    content-addressed store of layer tars would deduplicate.
``key="digest"``
    The same compressed blob: what a registry stores once and what
    ``docker pull`` skips when the host already has it.  Measured in
    ``compressed_size`` unless ``size=`` says otherwise.
``key="content"``
    File content (same ``hash`` and ``size``) from a files frame
    (``img.files()``; columns ``image``, ``path``, ``size``, ``hash``):
    what a file-level content-addressed store would deduplicate.  Rows
    without a hash (directories, links, whiteouts) are not content.

Any other column name (or a list of names) is accepted as the key too.

Rows whose key is null (identity unknown, e.g. no ``diff_id`` from a
registry record) can never be shared; rows whose size is null count in
``*_layers`` but add 0 bytes, and the ``unknown_*`` columns say how many.

``size=None`` picks the key's natural byte column: ``compressed_size`` for
``digest``, ``size`` otherwise.

Everything is vectorised over integer codes (numpy/pandas); the pairwise
overlap enumerates only pairs of images that share at least one key, never
an images x images structure (see ``overlap``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import AnalysisError
from ._common import as_frame, factorize, int_sizes, key_label, keys_list, natural_size, require, select_images

MAX_PAIR_ENTRIES = 200_000_000


@dataclass
class Coded:
    """A layers (or files) frame reduced to integer codes, one entry per
    distinct (image, key) — the input every fleet analysis works on."""

    image_names: pd.Index         # code -> image name
    img: np.ndarray               # per entry: image code
    key: np.ndarray               # per entry: key code (>= 0)
    key_size: np.ndarray          # per key code: bytes (0 where unknown)
    key_unknown: np.ndarray       # per key code: size unknown
    key_values: pd.DataFrame      # per key code: the key column(s)' values
    image_rows: np.ndarray        # per image code: number of rows (layers) in the input
    image_bytes: np.ndarray       # per image code: sum of sizes over its rows (nulls as 0)
    image_unknown: np.ndarray     # per image code: rows with unknown size or unknown key
    row_img: np.ndarray           # per input row: image code
    row_key: np.ndarray           # per input row: key code (-1 = null key)
    frame: pd.DataFrame           # the (filtered) input frame


def prepare(
    data: Any,
    key: str | Sequence[str] = "chain_id",
    size: str | None = None,
    image: str = "image",
    images: Sequence[str] | None = None,
    *,
    fn: str = "overlap",
) -> tuple[Coded, list[str], str]:
    """Validate and code the input.  Returns (coded, key columns, size column)."""
    content = key == "content"
    df = as_frame(data, "files" if content else "layers", fn=fn)
    if content:
        key = ["hash", "size"]
        require(df, ["hash"], fn=fn, hint="key='content' needs a files frame (img.files()) with a 'hash' column.")
        if "type" in df.columns:
            df = df[(df["type"] == "file") | df["type"].isna()]
    kcols = keys_list(key)
    size = natural_size(kcols, size)
    require(df, [image, *kcols, size], fn=fn)
    if images is not None:
        df = select_images(df, image, images, fn=fn, strict=True)
    df = df[df[image].notna()]

    img_codes, img_names = pd.factorize(df[image], sort=False)
    img_codes = np.asarray(img_codes, dtype=np.int64)
    names = pd.Index(img_names)
    n_img = len(names)
    key_codes, n_keys = factorize(df, kcols)
    sizes, size_null = int_sizes(df[size])

    # per key: its size (the largest known size among its rows; all rows of
    # one key should agree) and whether no row knows it
    valid = key_codes >= 0
    kc = key_codes[valid]
    key_size = np.zeros(n_keys, dtype=np.int64)
    if len(kc):
        np.maximum.at(key_size, kc, sizes[valid])
    known_cnt = np.bincount(kc, weights=(~size_null[valid]).astype(np.int64), minlength=n_keys)
    key_unknown = known_cnt == 0
    first_row = np.full(n_keys, -1, dtype=np.int64)
    if len(kc):
        # first row of each key (for its values)
        order = np.flatnonzero(valid)
        _, first = np.unique(kc, return_index=True)
        first_row = order[first]
    key_values = df[kcols].iloc[first_row].reset_index(drop=True) if n_keys else df[kcols].iloc[:0]

    image_rows = np.bincount(img_codes, minlength=n_img)
    image_bytes = np.bincount(img_codes, weights=sizes, minlength=n_img).round().astype(np.int64)
    image_unknown = np.bincount(img_codes, weights=(size_null | ~valid).astype(np.int64), minlength=n_img).astype(np.int64)

    # one entry per distinct (image, key)
    pair = img_codes[valid] * max(n_keys, 1) + kc
    upair = np.unique(pair)
    coded = Coded(
        image_names=names,
        img=upair // max(n_keys, 1),
        key=upair % max(n_keys, 1),
        key_size=key_size,
        key_unknown=key_unknown,
        key_values=key_values,
        image_rows=image_rows,
        image_bytes=image_bytes,
        image_unknown=image_unknown,
        row_img=img_codes,
        row_key=key_codes,
        frame=df,
    )
    return coded, kcols, size


def _int64(values: np.ndarray) -> pd.arrays.IntegerArray:
    """An Int64 (nullable) array over int64 values without a copy; no nulls."""
    return pd.arrays.IntegerArray(np.ascontiguousarray(values, dtype=np.int64), np.zeros(len(values), dtype=bool))


def _names(coded: Coded, codes: np.ndarray) -> pd.Series:
    """Image names for codes as a ``string`` Series."""
    names = np.asarray(coded.image_names.astype(str), dtype=object)
    return pd.Series(pd.array(names[codes], dtype="string"))


def _name_categories(coded: Coded, codes: np.ndarray) -> pd.Series:
    """Image names for many rows as a ``category`` Series (categories: the
    images in frame order, a ``string`` Index) — no string per row, so a
    pair frame of millions of rows stays small and quick to build."""
    cats = pd.Index(pd.array(coded.image_names.astype(str), dtype="string"))
    return pd.Series(pd.Categorical.from_codes(codes, categories=cats))


# ---------------------------------------------------------------------------
def layer_usage(
    data: Any,
    key: str | Sequence[str] = "chain_id",
    size: str | None = None,
    image: str = "image",
    images: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Per distinct layer (key value): how many images use it and what sharing saves.

    Returns one row per distinct key value, sorted by ``saved_bytes`` then
    ``size`` (descending):

    ====================  =========  =================================================
    column                dtype      meaning
    ====================  =========  =================================================
    <key column(s)>       as input   the key's value (e.g. ``chain_id``)
    size                  Int64      the layer's bytes (``size=`` column; null: unknown)
    images                Int64      distinct images that use it
    rows                  Int64      rows that carry it (> images when one image
                                     holds it twice, e.g. Docker's empty layer)
    shared                boolean    images > 1
    saved_bytes           Int64      size * (images - 1): bytes stored once instead
                                     of once per image
    first_image           string     one image that uses it (the first in the frame)
    position              Int64      its position in ``first_image`` (when the
                                     frame has ``position``)
    created_by            string     the step that made it there (when known)
    ====================  =========  =================================================
    """
    coded, kcols, _ = prepare(data, key, size, image, images, fn="layer_usage")
    n_keys = len(coded.key_size)
    n_images = np.bincount(coded.key, minlength=n_keys)
    valid = coded.row_key >= 0
    n_rows = np.bincount(coded.row_key[valid], minlength=n_keys)
    out = coded.key_values.copy()
    size_arr = pd.array(coded.key_size, dtype="Int64")
    size_arr[coded.key_unknown] = pd.NA
    out["size"] = size_arr
    out["images"] = pd.array(n_images, dtype="Int64")
    out["rows"] = pd.array(n_rows, dtype="Int64")
    out["shared"] = pd.array(n_images > 1, dtype="boolean")
    out["saved_bytes"] = out["size"] * (out["images"] - 1)
    # the first row carrying each key: its image, position, command
    rows_idx = np.flatnonzero(valid)
    _, first = np.unique(coded.row_key[valid], return_index=True)
    first_rows = coded.frame.iloc[rows_idx[first]]
    out["first_image"] = pd.array(first_rows[image].astype(str).to_numpy(), dtype="string")
    if "position" in first_rows.columns:
        out["position"] = pd.array(first_rows["position"].to_numpy(), dtype="Int64")
    if "created_by" in first_rows.columns:
        out["created_by"] = pd.array(first_rows["created_by"].to_numpy(), dtype="string")
    return out.sort_values(["saved_bytes", "size"], ascending=False, na_position="last").reset_index(drop=True)


def image_sharing(
    data: Any,
    key: str | Sequence[str] = "chain_id",
    size: str | None = None,
    image: str = "image",
    images: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Per image: bytes it shares with at least one other image and bytes only it has.

    With ``key="chain_id"`` and ``size="size"`` this is ``docker system df -v``:
    ``shared_bytes`` is the engine's SHARED SIZE (sum of the layers whose
    chain id more than one image uses) and ``unique_bytes`` its UNIQUE SIZE
    (``size - shared_bytes``).  Like the engine, give it *every* image the
    store holds: sharing is counted among the images in the frame.

    ====================  =========  =================================================
    column                dtype      meaning
    ====================  =========  =================================================
    image                 string     the image
    layers                Int64      its rows (layers)
    size                  Int64      sum of its layers' sizes
    shared_bytes          Int64      bytes in layers another image also uses
    unique_bytes          Int64      size - shared_bytes
    shared_layers         Int64      layers another image also uses
    unknown_layers        Int64      layers whose key or size is unknown (0 bytes)
    ====================  =========  =================================================
    """
    coded, kcols, _ = prepare(data, key, size, image, images, fn="image_sharing")
    n_keys = len(coded.key_size)
    users = np.bincount(coded.key, minlength=n_keys)
    row_shared = np.zeros(len(coded.row_key), dtype=bool)
    valid = coded.row_key >= 0
    row_shared[valid] = users[coded.row_key[valid]] > 1
    sizes, _ = int_sizes(coded.frame[natural_size(kcols, size)])
    n_img = len(coded.image_names)
    shared_b = np.bincount(coded.row_img, weights=np.where(row_shared, sizes, 0), minlength=n_img).round().astype(np.int64)
    shared_l = np.bincount(coded.row_img, weights=row_shared.astype(np.int64), minlength=n_img).astype(np.int64)
    return pd.DataFrame(
        {
            "image": _names(coded, np.arange(n_img)),
            "layers": pd.array(coded.image_rows, dtype="Int64"),
            "size": pd.array(coded.image_bytes, dtype="Int64"),
            "shared_bytes": pd.array(shared_b, dtype="Int64"),
            "unique_bytes": pd.array(coded.image_bytes - shared_b, dtype="Int64"),
            "shared_layers": pd.array(shared_l, dtype="Int64"),
            "unknown_layers": pd.array(coded.image_unknown, dtype="Int64"),
        }
    )


def _collapse_keys(coded: Coded):
    """Group keys used by exactly the same set of images into one "block".

    In real fleets most shared layers come in runs with the same users (all
    layers of a base image are used by the images built on it), so pairs are
    enumerated once per block instead of once per layer.  Blocks are found
    by a 128-bit set fingerprint (sums of random 64-bit values per image, mod
    2**64) and then *verified exactly*: every key of a block must list the
    same images as the block's first key; if not (a fingerprint collision,
    ~2**-64 likely), no collapsing is done.

    Returns (entry image codes, entry block codes, per block: bytes, layers, unknown layers).
    """
    n_keys = len(coded.key_size)
    n_img = max(len(coded.image_names), 1)
    order = np.lexsort((coded.img, coded.key))
    k = coded.key[order]
    im = coded.img[order]
    users = np.bincount(k, minlength=n_keys)
    rng = np.random.default_rng(0x1A7E11AB)
    r1 = rng.integers(0, 2**63, n_img, dtype=np.int64).astype(np.uint64) * np.uint64(2) + np.uint64(1)
    r2 = rng.integers(0, 2**63, n_img, dtype=np.int64).astype(np.uint64) * np.uint64(2) + np.uint64(1)
    with np.errstate(over="ignore"):
        h1 = np.zeros(n_keys, dtype=np.uint64)
        h2 = np.zeros(n_keys, dtype=np.uint64)
        np.add.at(h1, k, r1[im])
        np.add.at(h2, k, r2[im])
    sig = pd.DataFrame({"h1": h1, "h2": h2, "n": users})
    block = sig.groupby(["h1", "h2", "n"], sort=False).ngroup().to_numpy().astype(np.int64)
    n_blocks = int(block.max()) + 1 if n_keys else 0
    # exact check: each key's sorted image list equals its block's first key's
    key_start = np.r_[0, np.cumsum(users)[:-1]] if n_keys else np.zeros(0, dtype=np.int64)
    first_key = np.full(n_blocks, -1, dtype=np.int64)
    _, fk = np.unique(block, return_index=True)
    first_key[block[fk]] = fk
    rank = np.arange(len(k)) - key_start[k]
    ref = key_start[first_key[block[k]]] + rank
    if not np.array_equal(im, im[ref]):  # pragma: no cover - a 2**-64 event
        block = np.arange(n_keys, dtype=np.int64)
        n_blocks = n_keys
        first_key = np.arange(n_keys, dtype=np.int64)
    keep = k == first_key[block[k]]          # the entries of each block's first key stand for the block
    b_bytes = np.bincount(block, weights=coded.key_size, minlength=n_blocks).round().astype(np.int64)
    b_layers = np.bincount(block, minlength=n_blocks).astype(np.int64)
    b_unknown = np.bincount(block, weights=coded.key_unknown.astype(np.int64), minlength=n_blocks).astype(np.int64)
    return im[keep], block[k[keep]], b_bytes, b_layers, b_unknown


def _shared_pairs(coded: Coded, max_entries: int = MAX_PAIR_ENTRIES):
    """All unordered image pairs (a < b) sharing at least one key, with the
    bytes and number of keys they share (and how many of those have no size).

    How: keys with identical sets of images are first collapsed into blocks
    (``_collapse_keys``).  Entries (image, block) are sorted by block; within
    each block's group of n images the n*(n-1)/2 pairs are emitted with numpy
    index arithmetic (np.repeat), then summed per pair.  Work and memory are
    proportional to the pairs that really share (times the distinct blocks
    they share), never to images^2.
    """
    im_e, blk_e, b_bytes, b_layers, b_unknown = _collapse_keys(coded)
    order = np.lexsort((im_e, blk_e))
    k = blk_e[order]
    im = im_e[order]
    if len(k) == 0:
        e = np.zeros(0, dtype=np.int64)
        return e, e, e, e, e
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    counts = np.diff(np.r_[starts, len(k)])
    group_start = np.repeat(starts, counts)
    group_count = np.repeat(counts, counts)
    within = np.arange(len(k)) - group_start
    partners = group_count - within - 1          # later members of the same group
    total = int(partners.sum())
    if total > max_entries:
        raise AnalysisError(
            f"overlap(): these images share so widely that listing every sharing pair needs {total:,} "
            f"entries (limit {max_entries:,}); restrict images=..., or use image_sharing()/layer_usage() "
            "which are linear in the number of layers"
        )
    idx = np.int32 if total < 2**31 - 1 and len(k) < 2**31 - 1 else np.int64   # half the memory traffic
    left = np.repeat(np.arange(len(k), dtype=idx), partners)
    offsets = np.arange(total, dtype=idx) - np.repeat((np.cumsum(partners) - partners).astype(idx), partners)
    right = left + 1 + offsets
    blk = k[left]
    a = im[left]
    b = im[right]          # im is sorted within a block, so a < b
    del left, right, offsets
    n_img = max(len(coded.image_names), 1)
    code = a.astype(np.int64) * n_img + b
    uniq, inv = np.unique(code, return_inverse=True)
    # float64 sums of integer byte counts are exact below 2**53 (9 PB)
    shared_bytes = np.bincount(inv, weights=b_bytes[blk]).round().astype(np.int64)
    shared_layers = np.bincount(inv, weights=b_layers[blk]).round().astype(np.int64)
    unknown = np.bincount(inv, weights=b_unknown[blk]).round().astype(np.int64)
    return uniq // n_img, uniq % n_img, shared_bytes, shared_layers, unknown


def _image_key_bytes(coded: Coded) -> np.ndarray:
    """Per image: bytes of its distinct keys (what it holds once deduplicated)."""
    n_img = len(coded.image_names)
    return np.bincount(coded.img, weights=coded.key_size[coded.key], minlength=n_img).round().astype(np.int64)


def overlap(
    data: Any,
    key: str | Sequence[str] = "chain_id",
    size: str | None = None,
    image: str = "image",
    images: Sequence[str] | None = None,
    *,
    symmetric: bool = False,
    include_self: bool = False,
    max_entries: int = MAX_PAIR_ENTRIES,
) -> pd.DataFrame:
    """Pairwise overlap: for every pair of images that share at least one key,
    how many bytes and layers they share.

    ``overlap(data=fleet.layers(), key="chain_id", size="size", image="image")``.
    ``data`` may be a Fleet or Image; for ``key="content"`` a files frame
    (or a Fleet whose images have ``files()``).

    Pairs that share nothing are left out (the frame is sparse).  Each pair
    appears once (``image`` before ``other_image`` in frame order); with
    ``symmetric=True`` it appears both ways, handy for filtering by one image
    and for heatmaps; ``include_self=True`` adds each image paired with
    itself (its own bytes).

    ====================  =========  =================================================
    column                dtype      meaning
    ====================  =========  =================================================
    image                 category   one image (categories: the frame's images, in
                                     frame order, as a ``string`` Index)
    other_image           category   the other image (same categories)
    shared_bytes          Int64      bytes of the distinct keys both hold
    shared_layers         Int64      number of distinct keys both hold
    unknown_layers        Int64      of those, keys whose size is unknown (0 bytes)
    image_bytes           Int64      ``image``'s bytes over its distinct keys
    other_bytes           Int64      ``other_image``'s bytes over its distinct keys
    shared_fraction       Float64    shared_bytes / image_bytes (null when 0)
    ====================  =========  =================================================

    Rows come by ``image`` then ``other_image`` (frame order); sort as you
    like (``.sort_values("shared_bytes", ascending=False)``).  Cost is proportional to the sum
    over keys of (images using the key)^2, not to images^2; past
    ``max_entries`` an AnalysisError says to narrow ``images=``.
    """
    coded, kcols, _ = prepare(data, key, size, image, images, fn="overlap")
    a, b, sb, sl, unk = _shared_pairs(coded, max_entries)
    if symmetric:
        a, b = np.r_[a, b], np.r_[b, a]
        sb, sl, unk = np.r_[sb, sb], np.r_[sl, sl], np.r_[unk, unk]
    own = _image_key_bytes(coded)
    if include_self:
        n_img = len(coded.image_names)
        idx = np.arange(n_img)
        per_img_keys = np.bincount(coded.img, minlength=n_img)
        per_img_unk = np.bincount(coded.img, weights=coded.key_unknown[coded.key].astype(np.int64), minlength=n_img)
        a, b = np.r_[a, idx], np.r_[b, idx]
        sb, sl = np.r_[sb, own], np.r_[sl, per_img_keys]
        unk = np.r_[unk, per_img_unk.astype(np.int64)]
    if symmetric or include_self:
        order = np.argsort(a.astype(np.int64) * max(len(coded.image_names), 1) + b, kind="stable")
        a, b, sb, sl, unk = a[order], b[order], sb[order], sl[order], unk[order]
    ib = own[a]
    ob = own[b]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = pd.arrays.FloatingArray(sb / np.where(ib > 0, ib, 1), ib <= 0)
    out = pd.DataFrame(
        {
            "image": _name_categories(coded, a),
            "other_image": _name_categories(coded, b),
            "shared_bytes": _int64(sb),
            "shared_layers": _int64(sl),
            "unknown_layers": _int64(unk),
            "image_bytes": _int64(ib),
            "other_bytes": _int64(ob),
            "shared_fraction": frac,
        }
    )
    out.attrs["key"] = key_label(kcols)
    return out


def overlap_matrix(
    data: Any,
    key: str | Sequence[str] = "chain_id",
    size: str | None = None,
    image: str = "image",
    images: Sequence[str] | None = None,
    *,
    value: str = "shared_bytes",
    max_images: int = 2000,
) -> pd.DataFrame:
    """The overlap as a wide images x images matrix (a DataFrame).

    Cell [i, j] is ``value`` for the pair: ``shared_bytes`` (default),
    ``shared_layers`` or ``shared_fraction`` (row image's share held by the
    column image).  The diagonal is the image with itself (its own bytes,
    its distinct layers, 1.0).  Pairs that share nothing are 0.  Index and
    columns are the images in frame order; dtype Int64 (Float64 for the
    fraction).  A dense matrix is images^2 cells, so past ``max_images`` an
    AnalysisError asks for ``images=`` or the long ``overlap()`` frame.
    """
    if value not in {"shared_bytes", "shared_layers", "shared_fraction"}:
        raise AnalysisError(
            f"overlap_matrix(): value={value!r}; choose 'shared_bytes', 'shared_layers' or 'shared_fraction'"
        )
    coded, kcols, _ = prepare(data, key, size, image, images, fn="overlap_matrix")
    n = len(coded.image_names)
    if n > max_images:
        raise AnalysisError(
            f"overlap_matrix(): {n:,} images make a {n:,} x {n:,} matrix; pass images=[...] (at most "
            f"max_images={max_images:,}) or use overlap(), the long frame of sharing pairs"
        )
    a, b, sb, sl, _ = _shared_pairs(coded)
    own = _image_key_bytes(coded)
    if value == "shared_bytes":
        m = np.zeros((n, n), dtype=np.int64)
        m[a, b] = sb
        m[b, a] = sb
        m[np.arange(n), np.arange(n)] = own
        dtype = "Int64"
    elif value == "shared_layers":
        m = np.zeros((n, n), dtype=np.int64)
        m[a, b] = sl
        m[b, a] = sl
        m[np.arange(n), np.arange(n)] = np.bincount(coded.img, minlength=n)
        dtype = "Int64"
    else:
        s = np.zeros((n, n), dtype=np.float64)
        s[a, b] = sb
        s[b, a] = sb
        s[np.arange(n), np.arange(n)] = own
        with np.errstate(invalid="ignore", divide="ignore"):
            m = np.where(own[:, None] > 0, s / np.where(own[:, None] > 0, own[:, None], 1), np.nan)
        dtype = "Float64"
    names = pd.Index(coded.image_names.astype(str), name=image)
    out = pd.DataFrame(m, index=names, columns=pd.Index(names, name="other_image")).astype(dtype)
    out.attrs["key"] = key_label(kcols)
    return out
