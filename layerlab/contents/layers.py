"""The frames of an image's layer contents: ``Image.files()`` / ``Fleet.files()``
(:func:`files_frame`) and ``Image.filesystem()`` (:func:`filesystem_frame`);
columns in :mod:`.schema`.

The engine underneath: :mod:`.scan` reads every layer (cache, else the
source) and stacks and merges them (:func:`image_contents`);
:mod:`.results` computes what the analyses share.  The names analyses use
(``ScanOptions``, ``image_contents``, ``scan_image``, ``image_table``,
``docker_size``) are importable from here too.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

import pyarrow as pa

from ..errors import LayerlabError
from .options import ScanOptions
from .scan import docker_size, empty_image_table, image_contents, image_table, scan_image

if TYPE_CHECKING:
    from ..model import Image


# -- frames -----------------------------------------------------------------------
_PD_TYPES = None


def _types_mapper():
    import pandas as pd

    global _PD_TYPES
    if _PD_TYPES is None:
        _PD_TYPES = {pa.string(): pd.StringDtype(), pa.int64(): pd.Int64Dtype()}
    return _PD_TYPES.get


def to_frame(table: pa.Table, columns: dict[str, str]):
    """``table`` as pandas, with ``columns`` in that order (strings and integers nullable)."""
    df = table.to_pandas(types_mapper=_types_mapper())
    return df[list(columns)]


def files_frame(images: Iterable[Image], **kw):
    """``Image.files()`` / ``Fleet.files()``: see :mod:`layerlab.contents.schema`."""
    from .schema import FILE_COLUMNS

    opts = ScanOptions(**kw)
    tables = [image_contents(img, merge=False, options=opts)[1] for img in images]
    if not tables:
        tables = [empty_image_table()]
    return to_frame(pa.concat_tables(tables), FILE_COLUMNS)


def filesystem_frame(img: Image, **kw):
    """``Image.filesystem()``: see :mod:`layerlab.contents.schema`."""
    from .results import image_results  # numpy and Arrow's compute kernels load on first use
    from .schema import FILESYSTEM_COLUMNS

    opts = kw.pop("options", None) or ScanOptions(**kw)
    _scans, table, _m = image_contents(img, merge=False, options=opts)
    res = image_results(img, opts, table=table)
    df = to_frame(filesystem_table(table, res), FILESYSTEM_COLUMNS)
    df = df.reset_index(drop=True)
    df.attrs["warnings"] = list(res.orphan_notes)
    return df


def filesystem_table(table: pa.Table, res) -> pa.Table:
    """The visible rows of ``table`` (sorted by path), with ``content_size`` and
    the merge's warnings; hard links carry their target's hash and size.
    (Arrow kernels over :class:`.figures.ImageResults`; :func:`.merge.filesystem_table`
    is the per-row reference.)"""
    import pyarrow.compute as pc

    rows = pa.array(res.fs_rows(), pa.int64())
    out = table.take(rows)
    kinds = out.column("type")
    lr = res.link_row.take(rows)
    via_link = pc.and_(pc.equal(kinds, "hardlink"), lr.is_valid())
    src = pc.if_else(via_link, lr, rows)
    sizes = pc.fill_null(table.column("size"), 0)
    content = pc.if_else(pc.equal(kinds, "file"), pc.fill_null(out.column("size"), 0),
                         pc.if_else(via_link, sizes.take(pc.fill_null(lr, 0)), 0))
    warn = out.column("warning")
    warn = pc.if_else(pc.equal(warn, ""), pa.scalar(None, pa.string()), warn)
    notes = res.note.take(rows)
    joined = pc.coalesce(pc.binary_join_element_wise(warn, notes, "; "), warn, notes)
    out = out.set_column(out.schema.get_field_index("hash"), "hash", table.column("hash").take(src))
    out = out.set_column(out.schema.get_field_index("warning"), "warning", joined)
    return out.append_column("content_size", content.cast(pa.int64()))


__all__ = ["ScanOptions", "docker_size", "files_frame", "filesystem_frame", "filesystem_table", "image_contents",
           "image_table", "scan_image", "to_frame", "LayerlabError"]
