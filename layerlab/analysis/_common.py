"""Helpers shared by the fleet analyses: input checks and integer coding.

The analyses take tidy frames (``layers()``, ``images()``, ``files()``) and
column names, seaborn style.  For convenience a ``Fleet`` or an ``Image`` is
accepted wherever a layers frame is, and turned into ``.layers()`` here.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from ..errors import AnalysisError

# The byte column each identity key is naturally measured in when the caller
# does not say: a digest names a compressed blob, the rest name uncompressed
# content.
NATURAL_SIZE = {
    "digest": "compressed_size",
    "chain_id": "size",
    "diff_id": "size",
    "hash": "size",
    "content": "size",
}


def as_frame(data: Any, what: str = "layers", *, fn: str = "analysis") -> pd.DataFrame:
    """Return a DataFrame for ``data``: a frame as is, a Fleet/Image via ``.layers()``
    (or ``.files()`` when ``what == "files"``)."""
    if isinstance(data, pd.DataFrame):
        return data
    from ..model import Fleet, Image

    if isinstance(data, (Fleet, Image)):
        if what == "files":
            return files_of(data, fn=fn)
        return data.layers()
    if isinstance(data, (list, tuple)) and data and all(isinstance(x, Image) for x in data):
        return Fleet(data).layers()
    raise AnalysisError(
        f"{fn}(): data is a {type(data).__name__}; pass a layers frame (fleet.layers()), "
        "a layerlab.Fleet or a layerlab.Image"
    )


def files_of(data: Any, *, fn: str) -> pd.DataFrame:
    """``data.files()`` of a Fleet or Image (needs layer contents)."""
    files = getattr(data, "files", None)
    if files is None:
        raise AnalysisError(
            f"{fn}(): content-level analysis needs file tables and {type(data).__name__} has no files(); "
            "pass a files frame (columns image, path, size, hash)"
        )
    from ..errors import LayerlabError

    try:
        return files()
    except LayerlabError:
        raise
    except Exception as e:  # report anything unexpected as what it is: a failed read of contents
        raise AnalysisError(f"{fn}(): reading the layer contents failed: {e}") from e


def require(df: pd.DataFrame, columns: Iterable[str | None], *, fn: str, hint: str = "") -> None:
    missing = [c for c in columns if c is not None and c not in df.columns]
    if missing:
        have = ", ".join(map(str, df.columns[:20]))
        raise AnalysisError(
            f"{fn}(): the frame has no column(s) {', '.join(map(repr, missing))} (it has: {have}). "
            + (hint or "Pass the column names as arguments, e.g. key='diff_id', size='size'.")
        )


def keys_list(key: str | Sequence[str]) -> list[str]:
    return [key] if isinstance(key, str) else list(key)


def natural_size(key: str | Sequence[str], size: str | None) -> str:
    if size is not None:
        return size
    k = keys_list(key)
    return NATURAL_SIZE.get(k[0], "size") if len(k) == 1 else "size"


def factorize(df: pd.DataFrame, cols: Sequence[str]) -> tuple[np.ndarray, int]:
    """Integer codes for the rows' values of ``cols`` (-1 where any is null)."""
    if len(cols) == 1:
        codes, uniques = pd.factorize(df[cols[0]], use_na_sentinel=True)
        return np.asarray(codes, dtype=np.int64), len(uniques)
    null = df[list(cols)].isna().any(axis=1).to_numpy()
    codes = df.groupby(list(cols), sort=False, dropna=False).ngroup().to_numpy().astype(np.int64)
    codes[null] = -1
    # re-number densely without the null groups
    valid = codes >= 0
    dense, uniq = pd.factorize(codes[valid])
    out = np.full(len(codes), -1, dtype=np.int64)
    out[valid] = dense
    return out, len(uniq)


def int_sizes(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(int64 values with nulls as 0, boolean mask of nulls)."""
    s = pd.to_numeric(series, errors="coerce")
    null = s.isna().to_numpy()
    vals = s.fillna(0).to_numpy().astype(np.int64)
    return vals, null


def resolve_image(name: Any, names: Sequence[str], same_repo: bool, fn: str) -> str | None:
    """The image of ``names`` that ``name`` stands for: itself, or the one with
    the same Docker reference (:func:`layerlab.reference_key`: ``busybox`` =
    ``docker.io/library/busybox:latest``; with ``same_repo`` also another
    registry's copy); None when none does.  AnalysisError when several do."""
    from ..sources._refs import match_name

    if not isinstance(name, str):
        return None
    try:
        return match_name(name, list(names), same_repo=same_repo)
    except ValueError as e:
        raise AnalysisError(f"{fn}(): {e}") from None


def select_images(df: pd.DataFrame, image: str, images: Iterable[Any], *, fn: str,
                  same_repo: bool = False, strict: bool = False) -> pd.DataFrame:
    """The rows of ``df`` whose ``image`` is one of ``images``, each named by
    any equivalent reference (:func:`resolve_image`).  ``strict``: a name that
    matches no image raises AnalysisError (else it selects nothing)."""
    names = [str(x) for x in pd.unique(df[image].dropna())]
    exact = set(names)
    wanted, missing = [], []
    for n in images:
        found = n if n in exact else resolve_image(n, names, same_repo, fn)
        (wanted if found is not None else missing).append(found if found is not None else n)
    if strict and missing:
        raise AnalysisError(f"{fn}(): images {missing[:5]!r} are not in the frame's {image!r} column; "
                            f"it has e.g. {sorted(names)[:5]!r}")
    return df[df[image].isin(wanted)]


def key_label(key: str | Sequence[str]) -> str:
    return "+".join(keys_list(key))
