"""Wasted bytes traced to the pair of build steps responsible.

Every entry that a layer stores but the final filesystem does not show is
waste: a later layer overwrote it (``chmod``/``chown``/re-installing touches a
file and the whole file is stored again), deleted it (``rm`` leaves a
whiteout, the bytes stay below), or hid it with an opaque directory.  The OCI
merge (:mod:`layerlab.contents.merge`) knows, per entry, which layer hid it
and how; the image history knows which step made each layer.

``waste(img)`` — one row per wasted entry (bytes > 0), largest first
    ====================  ========  ====================================================
    column                dtype     meaning
    ====================  ========  ====================================================
    image                 string    the image's key
    path                  string    the entry's path
    type                  string    its type (``file`` for nearly all wasted bytes)
    wasted_bytes          Int64     bytes stored and unreachable
    position              Int64     the layer that wrote it
    step                  Int64     that layer's history step (``history()`` index)
    created_by            string    that step's command
    hidden_by_position    Int64     the layer that hid it
    hidden_by_step        Int64     that layer's history step
    hidden_by_created_by  string    that step's command
    how                   string    overwritten, deleted, deleted with its directory,
                                    hidden by an opaque directory, replaced …
    above_base            boolean   hidden by a layer above the base image (fixable in
                                    this Dockerfile); see ``base=``
    ====================  ========  ====================================================

``waste(img, by="step")`` — one row per (writer, hider) pair, largest first:
``position``, ``step``, ``created_by``, ``hidden_by_position``,
``hidden_by_step``, ``hidden_by_created_by``, ``files`` (Int64),
``wasted_bytes`` (Int64), ``above_base``, ``how`` and ``message`` — e.g. "RUN apt-get update (layer 3)
left 41.2 MB that RUN rm -rf /var/lib/apt/lists/* (layer 5) hid (1,234 files,
deleted)".
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import AnalysisError
from ..frames import typed_frame

WASTE_COLUMNS: dict[str, str] = {
    "image": "string",
    "path": "string",
    "type": "string",
    "wasted_bytes": "Int64",
    "position": "Int64",
    "step": "Int64",
    "created_by": "string",
    "hidden_by_position": "Int64",
    "hidden_by_step": "Int64",
    "hidden_by_created_by": "string",
    "how": "string",
    "above_base": "boolean",
}

_PAIR = ("image", "position", "step", "created_by", "hidden_by_position", "hidden_by_step", "hidden_by_created_by")
WASTE_BY_STEP_COLUMNS: dict[str, str] = {
    **{c: WASTE_COLUMNS[c] for c in _PAIR},
    "files": "Int64",
    "wasted_bytes": "Int64",
    "above_base": "boolean",
    "how": "string",
    "message": "string",
}


def waste(
    img,
    *,
    by: str | None = None,
    base: Any = None,
    cache_dir: Any = None,
    progress: bool = True,
    verify: bool = True,
    workers: int | None = None,
    hash: str | None = None,
) -> pd.DataFrame:
    """Per wasted entry (or per step pair with ``by="step"``): who wrote it, who hid it.

    ``base`` is as for :func:`layerlab.efficiency` (default: the first layer is
    the base).  The layers are read as ``img.files()`` reads them:
    ``cache_dir`` (None: the default cache, False: none, or a path),
    ``progress``, ``verify`` (check each layer against its diff_id),
    ``workers`` (None: two processes when it helps, 1: this process) and
    ``hash`` (content hashes to compute while reading; waste needs none).
    """
    from ..contents.layers import ScanOptions, image_contents
    from ..contents.results import image_results
    from ..model import Image
    from .efficiency import base_layer_count

    if not isinstance(img, Image):
        raise AnalysisError(f"waste(): pass a layerlab.Image, not {type(img).__name__}")
    if by not in (None, "step"):
        raise AnalysisError(f"waste(): by={by!r}; use None (one row per entry) or 'step'")
    nb = base_layer_count(img, base)
    opts = ScanOptions(hash=hash, cache_dir=cache_dir, progress=progress, verify=verify, workers=workers)
    _scans, table, _m = image_contents(img, merge=False, options=opts)
    res = image_results(img, opts, table=table)
    frame = waste_from_results(img, table, res, base_layers=nb)
    return waste_by_step(frame) if by == "step" else frame


def _step_columns(img, positions):
    """(history index, command) of the step that made each layer position, as Arrow."""
    import pyarrow as pa

    n = len(img.layer_list)
    idx: list[int | None] = [None] * (n + 1)
    cmd: list[str | None] = [None] * (n + 1)
    for s in img.history_list:
        p = s.layer_position
        if p is None or not 0 <= p < n:
            continue
        idx[p] = s.index
        # an imported layer has no command, only a comment ("Imported from -")
        cmd[p] = s.created_by or (f"({s.comment})" if s.comment else None)
    safe = pa.array(np.where((positions >= 0) & (positions < n), positions, n), pa.int64())
    return pa.array(idx, pa.int64()).take(safe), pa.array(cmd, pa.string()).take(safe)


def waste_from_results(img, table, res, *, base_layers: int = 1) -> pd.DataFrame:
    """:func:`waste` from an image table and its :class:`~layerlab.contents.results.ImageResults`
    (Arrow kernels; ``tests/_waste_reference.py`` holds the per-row reference)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    sizes = pc.fill_null(table.column("size"), 0).to_numpy()
    rows = np.flatnonzero(res.wasted_mask() & (sizes > 0))
    take = pa.array(rows, pa.int64())
    sub = pa.table({
        "size": pa.array(sizes[rows], pa.int64()),
        "path": table.column("path").take(take),
        "position": table.column("position").take(take),
        "row": take,
    })
    order = pc.sort_indices(sub, sort_keys=[("size", "descending"), ("path", "ascending"),
                                            ("position", "ascending"), ("row", "ascending")])
    sub = sub.take(order)
    take = sub.column("row").combine_chunks()
    pos = sub.column("position").to_numpy()
    hpos = res.hidden_by.take(take).cast(pa.int64())
    hpos_np = hpos.to_numpy(zero_copy_only=False)
    step, created = _step_columns(img, pos)
    hstep, hcreated = _step_columns(img, hpos_np)
    out = pa.table({
        "image": pa.repeat(pa.scalar(img.reference, pa.string()), len(take)),
        "path": sub.column("path"),
        "type": table.column("type").take(take),
        "wasted_bytes": sub.column("size"),
        "position": sub.column("position"),
        "step": step,
        "created_by": created,
        "hidden_by_position": hpos,
        "hidden_by_step": hstep,
        "hidden_by_created_by": hcreated,
        "how": res.how.take(take),
        "above_base": pa.array(hpos_np >= base_layers, pa.bool_()),
    })
    if not _ARROW_TO_PANDAS:
        _init_types()
    return out.to_pandas(types_mapper=_ARROW_TO_PANDAS.get)


_ARROW_TO_PANDAS: dict = {}


def _init_types() -> None:
    import pyarrow as pa

    _ARROW_TO_PANDAS.update({pa.string(): pd.StringDtype(), pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()})


def waste_by_step(frame: pd.DataFrame) -> pd.DataFrame:
    """Aggregate a :func:`waste` frame per (writer layer, hider layer), with a sentence."""
    from ..frames import human_bytes
    from .cumulative import step_label

    if frame.empty:
        return typed_frame([], WASTE_BY_STEP_COLUMNS)
    keys = ["image", "position", "hidden_by_position"]
    g = frame.groupby(keys, sort=False, dropna=False)
    agg = g.agg(
        step=("step", "first"),
        created_by=("created_by", "first"),
        hidden_by_step=("hidden_by_step", "first"),
        hidden_by_created_by=("hidden_by_created_by", "first"),
        files=("path", "size"),
        wasted_bytes=("wasted_bytes", "sum"),
        above_base=("above_base", "first"),
        how=("how", lambda s: ", ".join(sorted(set(s.dropna())))),
    ).reset_index()
    agg = agg.sort_values(["wasted_bytes", "position", "hidden_by_position"], ascending=[False, True, True])
    wl = step_label(agg["created_by"], positions=agg["position"])
    hl = step_label(agg["hidden_by_created_by"], positions=agg["hidden_by_position"])
    agg["message"] = [
        f"{w} (layer {int(p)}) left {human_bytes(int(b))} that {h} (layer {int(hp)}) hid "
        f"({int(n):,} file{'s' if n != 1 else ''}, {how})"
        for w, p, b, h, hp, n, how in zip(wl, agg["position"], agg["wasted_bytes"], hl, agg["hidden_by_position"],
                                          agg["files"], agg["how"])
    ]
    return typed_frame(agg[list(WASTE_BY_STEP_COLUMNS)].to_dict("records"), WASTE_BY_STEP_COLUMNS)
