"""The pull timeline as a Gantt chart: ``timeline_chart(pull.timeline)``.

One row per layer (position 0, the base, at the top), a bar for its download
and a bar for its extraction, in seconds from the start of the pull; a layer
already on the host shows a grey square at 0 s.  The chart's data are the
timeline frame's rows, unchanged: each kind of bar is a layer of the chart
that reads its own start and end columns (Vega filters and calculations, no
reshaping in pandas).  Several pulls in one frame (timelines concatenated,
told apart by ``image``) draw as one panel each with ``row="image"``.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from ..errors import AnalysisError
from ._base import _alt, _q

STEP_COLORS = {"download": "#4c78a8", "extract": "#f58518", "on the host": "#bab0ac"}


def timeline_chart(
    data: Any,
    position: str = "position",
    download: tuple[str, str] = ("download_start", "download_end"),
    extract: tuple[str, str] = ("extract_start", "extract_end"),
    skipped: str = "skipped",
    bytes: str = "bytes",
    row: str | None = None,
    *,
    width: int = 520,
    title: str | None = None,
):
    """A Gantt chart of a pull (see the module doc).

    ``data``: a timeline frame (``layerlab.pull_time(...).timeline``, one row
    per layer) or the :class:`~layerlab.analysis.pull.PullTime` itself (its
    ``seconds`` then go into the default title).  ``download`` and
    ``extract`` name each step's start and end columns (seconds; null where
    the step does not happen), ``skipped`` the boolean column of layers
    already on the host, ``bytes`` the bytes downloaded (tooltip), ``row`` a
    column to draw one panel per value of (e.g. ``"image"``)."""
    frame = getattr(data, "timeline", data)
    if not isinstance(frame, pd.DataFrame):
        raise AnalysisError(f"charts.timeline_chart(): pass a PullTime or its .timeline frame, not {type(data).__name__}")
    needed = [position, *download, *extract, skipped, bytes, *([row] if row else [])]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise AnalysisError(f"charts.timeline_chart(): no column(s) {missing} in the frame; it has {list(frame.columns)}")
    alt = _alt()
    seconds = getattr(data, "seconds", None)
    if title is None:
        title = "Pull timeline" + (f": {seconds:.1f} s" if isinstance(seconds, (int, float)) else "")
    color = alt.Color("step:N", title=None, scale=alt.Scale(domain=list(STEP_COLORS), range=list(STEP_COLORS.values())))
    y = alt.Y(f"{position}:O", title="layer", sort="ascending")
    tips = [alt.Tooltip(f"{position}:O", title="layer"), alt.Tooltip("step:N"),
            alt.Tooltip(f"{bytes}:Q", format=",", title="bytes downloaded")]
    if "digest" in frame.columns:
        tips.append(alt.Tooltip("digest:N"))
    base = alt.Chart(frame) if row is None else alt.Chart()

    def bars(step: str, start: str, end: str):
        return (base.transform_filter(f"isValid(datum[{_q(start)}]) && isValid(datum[{_q(end)}])")
                .transform_calculate(step=f"'{step}'")
                .mark_bar()
                .encode(y=y, x=alt.X(f"{start}:Q", title="seconds from the start of the pull"), x2=f"{end}:Q",
                        color=color, tooltip=[*tips, alt.Tooltip(f"{start}:Q", format=".2f", title="start"),
                                              alt.Tooltip(f"{end}:Q", format=".2f", title="end")]))

    held = (base.transform_filter(f"datum[{_q(skipped)}] == true")
            .transform_calculate(step="'on the host'", zero="0")
            .mark_square(size=60)
            .encode(y=y, x="zero:Q", color=color, tooltip=tips))
    layers = [bars("download", *download), bars("extract", *extract), held]
    if row is None:
        return alt.layer(*layers, title=title).properties(width=width)
    return (alt.layer(*layers, data=frame).properties(width=width)
            .facet(row=alt.Row(f"{row}:N", title=None), title=title))
