"""Bar and line charts that compare byte measures side by side: layers by how
many images use them, pulls per image, grouped measures per category, bytes
rebuilt per layer.  Wide frames in (one column per measure, as the analyses
return them); the folding into long form is a Vega transform, so the chart's
data are the frame's rows."""
from __future__ import annotations

from typing import Any, Sequence

import pandas as pd

from ..errors import AnalysisError
from ._base import IMAGE_TIP_TITLE, _alt, _bytes_axis, _human, _short_names, _tip


def _need(df: Any, columns: Sequence[str], fn: str) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise AnalysisError(f"charts.{fn}(): data must be a DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise AnalysisError(f"charts.{fn}(): no column(s) {missing} in the frame; it has {list(df.columns)}")
    return df


def layer_usage_bars(
    data: Any,
    size: str = "size",
    images: str = "images",
    created_by: str = "created_by",
    *,
    key: str | None = None,
    label_width: int = 70,
    width: int = 500,
    title: str | None = None,
):
    """One bar per layer of ``layerlab.layer_usage()`` output: its ``size``,
    labelled with the shortened command (``created_by``; the base layer by
    where it came from), coloured by the number of ``images`` using it;
    largest at the top, full command in the tooltip.  Each row keeps its own
    bar: two layers whose commands read alike get their ``key`` (default the
    first of ``chain_id``, ``diff_id``, ``digest`` the frame has) after the
    label, so different layers never stack into one bar."""
    from ..labels import distinct_labels, step_labels

    df = _need(data, [size, images, created_by], "layer_usage_bars")
    alt = _alt()
    key = key or next((c for c in ("chain_id", "diff_id", "digest") if c in df.columns), None)
    labels = step_labels(df[created_by], label_width,
                         positions=df["position"] if "position" in df.columns else None)
    keys = df[key].tolist() if key else [f"#{i}" for i in range(len(df))]
    df = df.assign(command=distinct_labels(list(labels), keys))
    return (
        alt.Chart(df, title=title or "Layers by size, coloured by how many images share them")
        .mark_bar()
        .transform_calculate(size_label=_human(size))
        .encode(
            x=alt.X(f"{size}:Q", axis=_bytes_axis(alt, f"layer {size} (bytes)")),
            y=alt.Y("command:N", sort="-x", title=None, axis=alt.Axis(labelLimit=360)),
            color=alt.Color(f"{images}:O", title="images using it"),
            tooltip=[_tip(alt, f"{created_by}:N", title="command"), _tip(alt, f"{images}:Q", title="images"),
                     _tip(alt, "size_label:N", title="size"), _tip(alt, f"{size}:Q", format=",", title="bytes")],
        )
        .properties(width=width)
    )


def pull_bars(
    data: Any,
    image: str = "image",
    parts: Sequence[str] = ("pull_bytes", "present_bytes"),
    row: str | None = "variant",
    *,
    width: int = 460,
    x_title: str = "bytes",
    title: str | None = None,
):
    """Stacked bars per ``image`` of ``layerlab.pull_table()`` output: the
    ``parts`` (bytes pulled, bytes already present) side by side in one bar,
    one panel per value of ``row`` (``None``: one panel)."""
    df = _need(data, [image, *parts, *([row] if row else [])], "pull_bars")
    alt = _alt()
    df, _short = _short_names(df, [image])  # names whole, in their shortest unambiguous form
    enc = dict(
        x=alt.X("bytes:Q", axis=_bytes_axis(alt, x_title)),
        y=alt.Y(f"{image}_label:N", title=None, sort=None, axis=alt.Axis(labelLimit=400)),
        color=alt.Color("part:N", title=None, scale=alt.Scale(domain=list(parts))),
        tooltip=[_tip(alt, f"{image}:N", title=IMAGE_TIP_TITLE), "part:N", _tip(alt, "bytes_label:N", title="size"),
                 _tip(alt, "bytes:Q", format=",")],
    )
    if row:
        enc["row"] = alt.Row(f"{row}:N", title=None)
    chart = (
        alt.Chart(df, title=title or "Pulling the images in turn on one host")
        .transform_fold(list(parts), as_=["part", "bytes"])
        .transform_calculate(bytes_label=_human("bytes"))
        .mark_bar()
        .encode(**enc)
        .properties(width=width)
    )
    return chart.resolve_scale(y="independent") if row else chart


def grouped_bars(
    data: Any,
    category: str,
    values: Sequence[str],
    *,
    sort: bool = True,
    labels: bool = False,
    x_title: str = "bytes",
    width: int = 480,
    title: str | None = None,
):
    """Horizontal bars per ``category``, one per column of ``values`` side by
    side (colour = which column); ``sort`` puts the largest category first
    (``False``: the frame's order); ``labels`` writes each bar's size, human
    readable, at its end."""
    df = _need(data, [category, *values], "grouped_bars")
    alt = _alt()
    base = (
        alt.Chart(df, title=title or "")
        .transform_fold(list(values), as_=["measure", "bytes"])
        .transform_calculate(bytes_label=_human("bytes"))
        .encode(
            y=alt.Y(f"{category}:N", sort="-x" if sort else None, title=None, axis=alt.Axis(labelLimit=240)),
            x=alt.X("bytes:Q", axis=_bytes_axis(alt, x_title)),
            yOffset=alt.YOffset("measure:N", sort=list(values)),
            color=alt.Color("measure:N", title=None, sort=list(values)),
            tooltip=[_tip(alt, f"{category}:N"), "measure:N", _tip(alt, "bytes_label:N", title="size"),
                     _tip(alt, "bytes:Q", format=",")],
        )
    )
    bars = base.mark_bar()
    if labels:
        bars = bars + base.mark_text(align="left", dx=4, fontSize=10).encode(text="bytes_label:N",
                                                                            color=alt.value("#333"))
    return bars.properties(width=width)


def rebuild_lines(
    data: Any,
    position: str = "position",
    values: Sequence[str] = ("rebuilt_before_bytes", "rebuilt_after_bytes"),
    created_by: str | None = "created_by",
    *,
    width: int = 480,
    title: str | None = None,
):
    """One line per column of ``values`` over the layer ``position`` (the
    ``rebuild`` frame of ``what_if_merge``: bytes rebuilt when the step of
    layer k changes, before and after the merge).  The legend names each line
    by its column without the common prefix and suffix (``before``, ``after``)."""
    df = _need(data, [position, *values, *([created_by] if created_by else [])], "rebuild_lines")
    alt = _alt()
    prefix = _common_prefix(values)
    suffix = _common_prefix([v[::-1] for v in values])[::-1]
    tips = [_tip(alt, f"{position}:O", title="layer"), "when:N", _tip(alt, "bytes:Q", format=",")]
    if created_by:
        tips.append(_tip(alt, f"{created_by}:N", title="command"))
    return (
        alt.Chart(df, title=title or "Bytes rebuilt when the step of layer k changes")
        .transform_fold(list(values), as_=["column", "bytes"])
        .transform_calculate(when=f"slice(datum.column, {len(prefix)}, {-len(suffix) if suffix else 'datum.column.length'})")
        .mark_line(point=True)
        .encode(
            x=alt.X(f"{position}:O", title="layer k whose step changes"),
            y=alt.Y("bytes:Q", axis=_bytes_axis(alt, "bytes rebuilt")),
            color=alt.Color("when:N", title=None),
            tooltip=tips,
        )
        .properties(width=width)
    )


def _common_prefix(names: Sequence[str]) -> str:
    """The longest prefix of every name ending at ``_``, leaving each name non-empty."""
    if len(names) < 2:
        return ""
    first = names[0]
    n = 0
    for i, ch in enumerate(first):
        if any(len(x) <= i + 1 or x[i] != ch for x in names[1:]) or i + 1 >= len(first):
            break
        if ch == "_":
            n = i + 1
    return first[:n]
