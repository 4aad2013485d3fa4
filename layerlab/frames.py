"""The one place the model becomes DataFrames.  The schema is written here.

All byte counts are exact integers (nullable ``Int64``: null means *unknown*,
never a guess).  Strings use pandas' ``string`` dtype, timestamps are UTC.

``images()`` — one row per image
    ========================  ==================  =================================================
    column                    dtype               meaning
    ========================  ==================  =================================================
    image                     string              the image's key in the fleet (its reference)
    id                        string              config digest (``sha256:…``), the engine's image ID
    manifest_digest           string              digest of the manifest, where known
    platform                  string              ``os/arch[/variant]``
    created                   datetime64[ns,UTC]  the config's ``created``
    layer_count               Int64               number of layers (not history steps)
    size                      Int64               sum of the layers' sizes (Docker's accounting)
    compressed_size           Int64               sum of the layers' blob lengths, where known
    source                    string              transport: docker-daemon, docker-archive, oci, …
    location                  string              the path or reference read
    ========================  ==================  =================================================

``layers()`` — one row per (image, position); position 0 is the base
    ========================  ==================  =================================================
    image                     string              as in ``images()``
    position                  Int64               0 = base layer
    diff_id                   string              sha256 of the uncompressed tar
    digest                    string              sha256 of the stored blob, where known
    chain_id                  string              OCI ChainID (what Docker shares on)
    media_type                string              the blob's media type, where known
    size                      Int64               Docker's layer size (``docker history`` SIZE): regular
                                                  files' bytes + symlink target lengths, as the engine
                                                  counts a layer applied from a tar
    compressed_size           Int64               the length of the blob a registry serves (bytes on the
                                                  wire), where known; null for an uncompressed tar in a
                                                  file source, whose push would compress it
    compressed_size_estimate  Int64               an *estimate* of that length, only where filled by
                                                  ``ll.estimate_wire_sizes``: the layer tar gzipped at
                                                  Docker's level (6); null otherwise
    cumulative_size           Int64               size of this layer and all below it
    created_by                string              the history step that made the layer
    created                   datetime64[ns,UTC]  that step's time
    history_index             Int64               that step's row in ``history()``
    pairing                   string              how the step was paired (see ``layerlab.model``)
    ========================  ==================  =================================================

Integers that do not fit a 64-bit signed integer (a hostile or damaged input
claiming a size of 2**63 bytes or more) are refused, not wrapped or guessed:
the builders raise :class:`~layerlab.errors.FormatError` naming the image's
location, the column and the value.

``history()`` — one row per history step, including those that made no layer
    ========================  ==================  =================================================
    image                     string
    index                     Int64               0 = oldest step
    created_by                string              the command (possibly truncated: see ``truncated``)
    created                   datetime64[ns,UTC]
    author                    string
    comment                   string
    empty_layer               boolean             as the source says (null: the source does not say)
    layer_position            Int64               the layer it made (null: none, or unpaired)
    pairing                   string              how the step was paired: config, layer_id, size, alignment, no_layer, unpaired
    truncated                 boolean             the command text was cut by the source
    size                      Int64               the step size the source reported
    step_id                   string              the engine's per-step image id, where known
    ========================  ==================  =================================================
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

import pandas as pd

from .errors import FormatError

if TYPE_CHECKING:
    from .model import Image

IMAGE_COLUMNS: dict[str, str] = {
    "image": "string",
    "id": "string",
    "manifest_digest": "string",
    "platform": "string",
    "created": "datetime64[ns, UTC]",
    "layer_count": "Int64",
    "size": "Int64",
    "compressed_size": "Int64",
    "source": "string",
    "location": "string",
}

LAYER_COLUMNS: dict[str, str] = {
    "image": "string",
    "position": "Int64",
    "diff_id": "string",
    "digest": "string",
    "chain_id": "string",
    "media_type": "string",
    "size": "Int64",
    "compressed_size": "Int64",
    "compressed_size_estimate": "Int64",
    "cumulative_size": "Int64",
    "created_by": "string",
    "created": "datetime64[ns, UTC]",
    "history_index": "Int64",
    "pairing": "string",
}

HISTORY_COLUMNS: dict[str, str] = {
    "image": "string",
    "index": "Int64",
    "created_by": "string",
    "created": "datetime64[ns, UTC]",
    "author": "string",
    "comment": "string",
    "empty_layer": "boolean",
    "layer_position": "Int64",
    "pairing": "string",
    "truncated": "boolean",
    "size": "Int64",
    "step_id": "string",
}


_NS_MIN = pd.Timestamp.min.tz_localize("UTC")
_NS_MAX = pd.Timestamp.max.tz_localize("UTC")


def _in_ns_range(times: pd.Series) -> pd.Series:
    """Times outside what a ``datetime64[ns]`` column holds (before 1677-09-21,
    after 2262-04-11: no real image was built then) become unknown (NaT)."""
    if times.dtype == "datetime64[ns, UTC]":
        return times
    return times.where((times >= _NS_MIN) & (times <= _NS_MAX))


def typed_frame(rows: list[dict], schema: dict[str, str], origins: list[str] | None = None) -> pd.DataFrame:
    """Build a frame with exactly ``schema``'s columns and dtypes.

    A value an integer column cannot hold (beyond 64 bits, a fraction, text)
    raises :class:`FormatError` naming ``origins[row]`` (where that row came
    from; else its ``image``), the column and the value.  A time outside the
    nanosecond range of a datetime column is unknown (NaT)."""
    df = pd.DataFrame.from_records(rows, columns=list(schema))
    for col, dtype in schema.items():
        if dtype.startswith("datetime64"):
            df[col] = _in_ns_range(pd.to_datetime(df[col], utc=True, errors="coerce")).astype(dtype)
        elif dtype == "boolean":
            df[col] = df[col].astype("object").where(df[col].notna(), None).astype("boolean")
        else:
            try:
                df[col] = df[col].astype(dtype)
            except (OverflowError, TypeError, ValueError) as e:
                raise _bad_value(df, col, dtype, origins) from e
    return df


def _bad_value(df: pd.DataFrame, col: str, dtype: str, origins: list[str] | None) -> FormatError:
    """The error for the first value of ``col`` that ``dtype`` cannot hold."""
    for i, v in enumerate(df[col].tolist()):
        try:
            pd.Series([v], dtype=object).astype(dtype)
            continue
        except (OverflowError, TypeError, ValueError):
            pass
        where = origins[i] if origins and i < len(origins) else (df["image"].iloc[i] if "image" in df else "?")
        limit = " (the limit is 2**63-1)" if isinstance(v, int) else ""
        return FormatError(
            f"{where}: {col} {str(v)[:80]!r} (row {i}) is not a 64-bit integer{limit}; "
            "the input is damaged or was written to mislead: re-create it from the image"
        )
    return FormatError(f"{col}: values cannot be stored as {dtype}")  # pragma: no cover - per-value casts passed


def _origin(img) -> str:
    return img.location or img.reference


def images_frame(images: Iterable[Image]) -> pd.DataFrame:
    images = list(images)
    rows = [
        {
            "image": img.reference,
            "id": img.id,
            "manifest_digest": img.manifest_digest,
            "platform": img.platform,
            "created": img.created,
            "layer_count": len(img.layer_list),
            "size": img.size,
            "compressed_size": img.compressed_size,
            "source": img.source,
            "location": img.location,
        }
        for img in images
    ]
    return typed_frame(rows, IMAGE_COLUMNS, [_origin(img) for img in images])


def layers_frame(images: Iterable[Image]) -> pd.DataFrame:
    """The layers frame; ``frame.attrs["base_names"]`` maps each image that
    says where its base came from (:func:`layerlab.labels.base_name`) to that
    name, for the step labels of ``cumulative()``."""
    from .labels import base_name

    rows = []
    origins: list[str] = []
    bases: dict[str, str] = {}
    for img in images:
        named = base_name(img.config)
        if named:
            bases[img.reference] = named
        by_layer = {s.layer_position: s for s in img.history_list if s.layer_position is not None}
        cum: int | None = 0
        for layer in img.layer_list:
            if cum is not None and layer.size is not None:
                cum += layer.size
            else:
                cum = None
            step = by_layer.get(layer.position)
            origins.append(_origin(img))
            rows.append(
                {
                    "image": img.reference,
                    "position": layer.position,
                    "diff_id": layer.diff_id,
                    "digest": layer.digest,
                    "chain_id": layer.chain_id,
                    "media_type": layer.media_type,
                    "size": layer.size,
                    "compressed_size": layer.compressed_size,
                    "compressed_size_estimate": layer.compressed_size_estimate,
                    "cumulative_size": cum,
                    "created_by": step.created_by if step else None,
                    "created": step.created if step else None,
                    "history_index": step.index if step else None,
                    "pairing": step.pairing if step else "unpaired",
                }
            )
    df = typed_frame(rows, LAYER_COLUMNS, origins)
    if bases:
        df.attrs["base_names"] = bases
    return df


def history_frame(images: Iterable[Image]) -> pd.DataFrame:
    images = list(images)
    rows = [
        {
            "image": img.reference,
            "index": s.index,
            "created_by": s.created_by,
            "created": s.created,
            "author": s.author,
            "comment": s.comment,
            "empty_layer": s.empty_layer,
            "layer_position": s.layer_position,
            "pairing": s.pairing,
            "truncated": s.truncated,
            "size": s.size,
            "step_id": s.id,
        }
        for img in images
        for s in img.history_list
    ]
    origins = [_origin(img) for img in images for _s in img.history_list]
    return typed_frame(rows, HISTORY_COLUMNS, origins)


_UNITS = ["B", "kB", "MB", "GB", "TB", "PB"]


def human_bytes(n: int | float | None, *, binary: bool = False) -> str:
    """Human-readable size, Docker's style (decimal units: ``1.98MB`` is shown ``1.98 MB``)."""
    if n is None or (isinstance(n, float) and n != n):
        return "?"
    try:
        if n is pd.NA:  # type: ignore[comparison-overlap]
            return "?"
    except TypeError:
        pass
    step = 1024.0 if binary else 1000.0
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"] if binary else _UNITS
    v = float(n)
    for unit in units:
        if abs(v) < step or unit == units[-1]:
            return f"{int(v)} {unit}" if unit == "B" else f"{v:.3g} {unit}"
        v /= step
    return f"{v} {units[-1]}"  # pragma: no cover


# columns that hold byte counts: the frames' sizes and the analyses' ``*_bytes``
BYTE_COLUMNS = frozenset({"size", "compressed_size", "cumulative_size", "compressed_size_estimate"})


def is_byte_column(name: str) -> bool:
    """Whether a column of layerlab's frames or analyses holds byte counts (shown in human units)."""
    return name in BYTE_COLUMNS or str(name).endswith("_bytes")


def bytes_html(n: int) -> str:
    """A byte count as HTML people read: the human size, the exact bytes one
    hover away (``title``) and in ``data-bytes``."""
    n = int(n)
    return (f"<span class='bytes' title='{n:,} bytes' data-bytes='{n}'>"
            f"{human_bytes(n)}</span>")  # digits and a unit: nothing to escape


def missing(v) -> bool:
    """Whether ``v`` is an unknown value: None, ``pd.NA``, ``pd.NaT`` or NaN (the one rule
    of the frames, the report's cells and the widgets)."""
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    return isinstance(v, float) and v != v


def human_tables(enable: bool = True) -> bool:
    """Show DataFrames in this Jupyter kernel as the reports show tables
    (:func:`frame_html`: sizes in human units with the exact bytes a hover
    away, "unknown" for missing values, escaped text); ``enable=False`` gives
    pandas' own display back.  Only the HTML display changes: the frames, and
    ``print(df)``, keep their exact values.  Returns whether a kernel was
    there to change (False outside IPython).  The bundled notebooks call it
    first, and the notebook report's setup cell does too."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    if ip is None:
        return False
    html = ip.display_formatter.formatters["text/html"]
    if enable:
        html.for_type(pd.DataFrame, frame_html)
    else:
        html.type_printers.pop(pd.DataFrame, None)
    return True


def frame_html(frame: pd.DataFrame, max_rows: int = 60) -> str:
    """Any DataFrame as the reports show tables: byte columns (:func:`layerlab.frames.is_byte_column`)
    in human units with the exact bytes a hover away, other numbers with thousands separators,
    missing values as "unknown", every text escaped, in a box that scrolls sideways.  At most
    ``max_rows`` rows (the rest counted below).  The notebook report installs it as pandas'
    HTML display in the kernel it runs (``layerlab.report``'s setup cell); result objects'
    ``_repr_html_`` use it too."""
    import html
    import numbers

    import numpy as np

    unknown = "<span class='unknown' title='not recorded by the source'>unknown</span>"

    def cell(col: Any, v: Any) -> str:
        if isinstance(v, (list, tuple, set, dict)):
            return html.escape(str(v))
        if missing(v):
            return unknown
        if isinstance(v, (bool, np.bool_)):
            return str(bool(v))
        if col is not None and is_byte_column(str(col)) and isinstance(v, numbers.Real) and float(v).is_integer():
            return bytes_html(int(v))
        if isinstance(v, numbers.Integral):
            return f"{int(v):,}"
        if isinstance(v, numbers.Real):
            return f"{float(v):,.4g}" if abs(float(v)) < 1e6 else f"{float(v):,.0f}"
        return html.escape(str(v))

    shown = frame.head(max_rows)
    show_index = not isinstance(frame.index, pd.RangeIndex)
    names = [str(n) for n in (frame.index.names if show_index else [])]
    head = "".join(f"<th>{html.escape(n if n != 'None' else '')}</th>" for n in names)
    head += "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for idx, rec in zip(shown.index, shown.itertuples(index=False, name=None)):
        keys = (idx if isinstance(idx, tuple) else (idx,)) if show_index else ()
        cells = "".join(f"<th>{cell(None, k)}</th>" for k in keys)
        cells += "".join(f"<td>{cell(c, v)}</td>" for c, v in zip(frame.columns, rec))
        rows.append(f"<tr>{cells}</tr>")
    more = f"<p class='more'>{len(frame) - max_rows:,} more rows not shown.</p>" if len(frame) > max_rows else ""
    return (f"<div class='layerlab-table-wrap' style='overflow-x:auto'><table class='dataframe layerlab-table'>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>{more}")
