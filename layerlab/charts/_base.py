"""What every chart shares: altair imported on use, byte axes and labels as
Vega expressions, frame checks."""
from __future__ import annotations

import json
from typing import Any, Sequence

import pandas as pd

from ..errors import AnalysisError

BYTES_LABEL = "format(datum.value, '.3~s') + 'B'"
_HUMAN = "format({field}, '.4~s') + 'B'"


def _alt():
    try:
        import altair as alt
    except ImportError as e:  # pragma: no cover - altair is a core dependency
        raise AnalysisError("layerlab.charts needs altair: pip install altair") from e
    return alt


IMAGE_TIP_TITLE = "image name"
"""The tooltip title of an image-name field.  vega-tooltip renders a field
*titled* ``image`` as ``<img src=VALUE>`` (the name lost from the tooltip and,
outside a page's CSP, fetched by the browser), so no tooltip is titled that."""


def _tip(alt, shorthand: str, **kw):
    """``alt.Tooltip(shorthand, **kw)`` whose title is never ``image`` (see
    :data:`IMAGE_TIP_TITLE`): a field named ``image`` without a title, or a title
    ``image``, becomes ``image name``."""
    title = kw.get("title", shorthand.partition(":")[0])
    if isinstance(title, str) and title.strip().lower() == "image":
        kw["title"] = IMAGE_TIP_TITLE
    return alt.Tooltip(shorthand, **kw)


def _bytes_axis(alt, title: str):
    return alt.Axis(title=title, labelExpr=BYTES_LABEL, format="~s")


def _human(field: str) -> str:
    """A Vega expression giving a human-readable size for ``datum[field]``
    (``?`` when unknown).  Field names are passed through JSON quoting, never
    spliced raw."""
    ref = f"datum[{json.dumps(field)}]"
    return f"isValid({ref}) ? " + _HUMAN.format(field=ref) + " : '?'"


def _frame_for(data: Any, needed: Sequence[str], make, fn: str) -> pd.DataFrame:
    """``data`` if it is a frame with ``needed`` columns, else ``make(data)``."""
    if isinstance(data, pd.DataFrame) and all(c in data.columns for c in needed):
        return data
    try:
        return make(data)
    except AnalysisError as e:
        raise AnalysisError(f"charts.{fn}(): {e}") from e


def _image_options(df: pd.DataFrame, image: str) -> list[str]:
    return [str(x) for x in pd.unique(df[image].dropna())]



def _short_names(df: pd.DataFrame, columns: Sequence[str]) -> tuple[pd.DataFrame, dict[str, str]]:
    """``df`` with a ``<column>_label`` column beside each of ``columns``: the
    image names in their shortest unambiguous form
    (:func:`layerlab.labels.short_image_names`, one mapping across all the
    columns), for axes that show names whole instead of truncating them."""
    from ..labels import short_image_names

    names: list[str] = []
    for c in columns:
        names += _image_options(df, c)
    short = short_image_names(names)
    return df.assign(**{f"{c}_label": df[c].map(short) for c in columns}), short


def _q(field: str) -> str:
    """A field name as a JSON string, for ``datum[...]`` in Vega expressions."""
    return json.dumps(field)

