"""Cumulative sizes: where an image's bytes come from, layer by layer."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import AnalysisError
from ..labels import step_labels
from ._common import as_frame, require, select_images

def step_label(created_by: pd.Series | Sequence[str | None], width: int = 60, *,
               positions: pd.Series | Sequence[int | None] | None = None,
               bases: pd.Series | Sequence[str | None] | None = None) -> pd.Series:
    """Short one-line labels for history commands, as a Dockerfile would say them
    (:func:`layerlab.labels.step_label` of each row: the one rule).

    ``/bin/sh -c #(nop)  CMD ["sh"]`` -> ``CMD ["sh"]``; ``/bin/sh -c apt-get …``
    and BuildKit's ``RUN |1 DEBIAN_FRONTEND=noninteractive /bin/sh -c apt-get …
    # buildkit`` -> ``RUN apt-get …``; whitespace collapsed; longer than
    ``width`` characters shortened in the middle (``…``).  ``positions``
    (the layers' positions) and ``bases`` (each row's base image name, where
    known) name the base layer ``base: debian:bookworm`` or ``base layer
    (ADD file:abc… in /)``; a row with no command is ``base layer`` at
    position 0 (or an unknown position) and ``(no history step)`` elsewhere.
    Text stays text (renderers escape).  Returns a ``string`` Series, index
    reset, without nulls.
    """
    return step_labels(created_by, width, positions=positions, bases=bases)


def _running(values: pd.Series, groups: np.ndarray) -> tuple[pd.Series, pd.Series]:
    """(running sum per group, sum before the row) — null from the first unknown on."""
    v = pd.to_numeric(values, errors="coerce")
    null = v.isna()
    filled = v.fillna(0).astype("int64")
    g = pd.Series(groups, index=values.index)
    cum = filled.groupby(g, sort=False).cumsum()
    seen_null = null.astype("int64").groupby(g, sort=False).cummax().astype(bool)
    cum_a = pd.array(cum.to_numpy(), dtype="Int64")
    cum_a[seen_null.to_numpy()] = pd.NA
    start = pd.array((cum - filled).to_numpy(), dtype="Int64")
    prev_null = (seen_null.groupby(g, sort=False).shift(1, fill_value=False)).astype(bool)
    start[prev_null.to_numpy()] = pd.NA
    return pd.Series(cum_a, index=values.index), pd.Series(start, index=values.index)


def _total(values: pd.Series, g: pd.Series):
    """Per row, its group's sum; null when any value in the group is null."""
    null = values.isna()
    tot = values.fillna(0).astype("int64").groupby(g, sort=False).transform("sum")
    anynull = null.groupby(g, sort=False).transform("any")
    arr = pd.array(tot.to_numpy(), dtype="Int64")
    arr[anynull.to_numpy().astype(bool)] = pd.NA
    return arr


def cumulative(
    data: Any,
    image: str = "image",
    position: str = "position",
    size: str = "size",
    compressed_size: str | None = "compressed_size",
    created_by: str | None = "created_by",
    images: Sequence[str] | None = None,
    *,
    label_width: int = 60,
) -> pd.DataFrame:
    """Per image, the running size layer by layer, each layer's share, and the
    step that produced it.

    ``cumulative(data=fleet.layers())``; a Fleet or Image is accepted too.
    Rows come out ordered by image (frame order) and position.  Sizes stay
    exact bytes; a running total becomes null from the first layer of unknown
    size on (never guessed).  ``size``, ``compressed_size`` and
    ``cumulative_size`` are the layers frame's own columns (same names, same
    meaning); every other byte column ends in ``_bytes``.

    ============================  =========  =============================================
    column                        dtype      meaning
    ============================  =========  =============================================
    image                         string     the image
    position                      Int64      0 = base layer
    size                          Int64      the layer's bytes (uncompressed)
    start_bytes                   Int64      bytes below it (where its bar starts in a
                                             waterfall)
    cumulative_size               Int64      bytes up to and including it
    share                         Float64    size / the image's total size
    compressed_size               Int64      the blob's bytes, where known
    compressed_start_bytes        Int64      compressed bytes below it
    cumulative_compressed_bytes   Int64      compressed bytes up to and including it
    compressed_share              Float64    compressed_size / the image's compressed total
    image_bytes                   Int64      the image's total (null if any layer unknown)
    image_compressed_bytes        Int64      its compressed total (null if any unknown)
    layers                        Int64      layers in the image
    created_by                    string     the full command of the step (as recorded)
    step                          string     a one-line label: ``RUN …``/``COPY …``,
                                             ``base: debian:bookworm``, at most
                                             ``label_width`` characters (``step_label``)
    diff_id, digest, chain_id     string     passed through when present
    ============================  =========  =============================================
    """
    df = as_frame(data, fn="cumulative")
    require(df, [image, position, size], fn="cumulative", hint="Pass a layers frame (fleet.layers()).")
    if images is not None:
        df = select_images(df, image, images, fn="cumulative")
    df = df[df[image].notna()]
    img_codes, names = pd.factorize(df[image], sort=False)
    pos = pd.to_numeric(df[position], errors="coerce")
    if pos.isna().any():
        raise AnalysisError(f"cumulative(): {int(pos.isna().sum())} rows have no {position!r}")
    order = np.lexsort((pos.to_numpy(), img_codes))
    df = df.iloc[order].reset_index(drop=True)
    codes = np.asarray(img_codes)[order]

    out = pd.DataFrame(
        {
            "image": pd.array(df[image].astype(str).to_numpy(), dtype="string"),
            "position": pd.array(pd.to_numeric(df[position]).to_numpy(), dtype="Int64"),
        }
    )
    out["size"] = pd.array(pd.to_numeric(df[size], errors="coerce"), dtype="Int64")
    cum, start = _running(out["size"], codes)
    out["start_bytes"] = start
    out["cumulative_size"] = cum
    g = pd.Series(codes)
    total = _total(out["size"], g)
    out["share"] = (out["size"].astype("Float64") / pd.array(total, dtype="Float64")).where(pd.array(total) != 0)

    if compressed_size is not None and compressed_size in df.columns:
        out["compressed_size"] = pd.array(pd.to_numeric(df[compressed_size], errors="coerce"), dtype="Int64")
    else:
        out["compressed_size"] = pd.array([pd.NA] * len(df), dtype="Int64")
    ccum, cstart = _running(out["compressed_size"], codes)
    out["compressed_start_bytes"] = cstart
    out["cumulative_compressed_bytes"] = ccum
    ctotal = _total(out["compressed_size"], g)
    out["compressed_share"] = (out["compressed_size"].astype("Float64") / pd.array(ctotal, dtype="Float64")).where(
        pd.array(ctotal) != 0
    )
    out["image_bytes"] = total
    out["image_compressed_bytes"] = ctotal
    out["layers"] = pd.array(g.map(g.value_counts()).to_numpy(), dtype="Int64")
    cmd = df[created_by] if created_by is not None and created_by in df.columns else pd.Series([None] * len(df))
    out["created_by"] = pd.array(cmd.to_numpy(), dtype="string")
    base_of = dict(df.attrs.get("base_names") or {})  # layers_frame() records what each image says of its base
    out["step"] = step_label(out["created_by"], label_width, positions=out["position"],
                             bases=out["image"].map(base_of) if base_of else None)
    for c in ("diff_id", "digest", "chain_id"):
        if c in df.columns:
            out[c] = pd.array(df[c].to_numpy(), dtype="string")
    return out
