"""Altair charts over layerlab's frames: frames in, ``alt.Chart`` out.

Every function takes a frame (``data=``) as the analyses return it (or a
Fleet/layers frame, from which it computes that analysis), and returns an
Altair chart whose data are the frame's rows unchanged: exact bytes stay
exact; human-readable sizes are made by Vega expressions at render time
(``format(…, '.3~s') + 'B'``, decimal units like Docker's).

Interactivity is written as Vega-Lite params (point selections, legend
selections, dropdown bindings), so a chart saved to HTML or rendered in a
report stays interactive without a Python kernel.

Commands (``created_by``) are data, never markup: Vega renders text and
tooltips as text, and nothing here builds HTML by string concatenation.
Labels show a shortened command (``step``); tooltips carry it in full.

``altair`` is imported inside each function, so ``import layerlab`` never
loads it.
"""
from __future__ import annotations

import json
from typing import Any, Sequence

import pandas as pd

from .errors import AnalysisError

BYTES_LABEL = "format(datum.value, '.3~s') + 'B'"
_HUMAN = "format({field}, '.4~s') + 'B'"


def _alt():
    try:
        import altair as alt
    except ImportError as e:  # pragma: no cover - altair is a core dependency
        raise AnalysisError("layerlab.charts needs altair: pip install altair") from e
    return alt


def _bytes_axis(alt, title: str):
    return alt.Axis(title=title, labelExpr=BYTES_LABEL, format="~s")


def _human(field: str) -> str:
    """A Vega expression giving a human-readable size for ``datum[field]``
    (``?`` when unknown).  Field names are passed through JSON quoting, never
    spliced raw."""
    import json

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


# ---------------------------------------------------------------------------
def cumulative_bars(
    data: Any,
    image: str = "image",
    *,
    compressed: bool = False,
    key: str | None = None,
    width: int = 480,
    height: int = 300,
    title: str | None = None,
):
    """Stacked bar per image: its layers stacked base-first, each bar segment
    one layer.  ``data``: ``layerlab.cumulative()`` output (or a layers frame
    / Fleet, from which it is computed).

    Params: click a segment to highlight the same layer (same ``key``:
    default the first of ``diff_id``, ``digest``, ``chain_id`` the frame
    knows) in every image (``layer`` point selection); click the legend to
    highlight a position (``position_pick`` legend selection).
    """
    from .analysis.cumulative import cumulative

    df = _frame_for(data, ["start", "step", "cumulative_size"], cumulative, "cumulative_bars")
    alt = _alt()
    size = "compressed_size" if compressed else "size"
    cum = "cumulative_compressed_size" if compressed else "cumulative_size"
    share = "compressed_share" if compressed else "share"
    if key is None:
        key = next((c for c in ("diff_id", "digest", "chain_id") if c in df.columns and df[c].notna().all()), None)
    fields = [key] if key is not None and key in df.columns else [image, "position"]
    layer = alt.selection_point(name="layer", fields=fields, on="click", clear="dblclick")
    legend = alt.selection_point(name="position_pick", fields=["position"], bind="legend")
    order = _image_options(df, image)
    return (
        alt.Chart(df, title=title or ("Compressed" if compressed else "Uncompressed") + " size by layer")
        .mark_bar(stroke="white", strokeWidth=0.5)
        .transform_calculate(size_label=_human(size), cumulative_label=_human(cum))
        .encode(
            x=alt.X(f"{image}:N", sort=order, title=None, axis=alt.Axis(labelLimit=180)),
            y=alt.Y(f"{size}:Q", stack="zero", axis=_bytes_axis(alt, "bytes" + (" (compressed)" if compressed else ""))),
            order=alt.Order("position:Q", sort="ascending"),
            color=alt.Color("position:O", scale=alt.Scale(scheme="viridis"), title="layer"),
            opacity=alt.condition(layer & legend, alt.value(1.0), alt.value(0.3)),
            tooltip=[
                alt.Tooltip(f"{image}:N", title="image"),
                alt.Tooltip("position:Q", title="layer"),
                alt.Tooltip("size_label:N", title="size"),
                alt.Tooltip(f"{size}:Q", format=",", title="bytes"),
                alt.Tooltip("cumulative_label:N", title="cumulative"),
                alt.Tooltip(f"{share}:Q", format=".1%", title="share of image"),
                alt.Tooltip("created_by:N", title="command"),
            ],
        )
        .add_params(layer, legend)
        .properties(width=width, height=height)
    )


def waterfall(
    data: Any,
    image: str = "image",
    *,
    compressed: bool = False,
    initial: str | None = None,
    width: int = 520,
    height: int = 300,
    title: str | None = None,
):
    """Waterfall of one image's size: each layer a bar from the size below it
    to the size with it.  A dropdown (``waterfall_image`` param bound to a
    select) chooses the image in the rendered chart; ``initial`` picks the
    first shown (default: the first image)."""
    from .analysis.cumulative import cumulative

    df = _frame_for(data, ["start", "step", "cumulative_size"], cumulative, "waterfall")
    alt = _alt()
    names = _image_options(df, image)
    if not names:
        raise AnalysisError("charts.waterfall(): the frame has no images")
    if initial is not None and initial not in names:
        raise AnalysisError(f"charts.waterfall(): initial={initial!r} is not one of the frame's images {names[:5]!r}")
    size = "compressed_size" if compressed else "size"
    start = "compressed_start" if compressed else "start"
    cum = "cumulative_compressed_size" if compressed else "cumulative_size"
    pick = alt.param(
        name="waterfall_image",
        value=initial or names[0],
        bind=alt.binding_select(options=names, name="image "),
    )
    hover = alt.selection_point(name="waterfall_hover", on="pointerover", fields=["position"], clear="pointerout")
    return (
        alt.Chart(df, title=title or "Image size, layer by layer")
        .transform_filter(f"datum[{_q(image)}] == waterfall_image")
        .transform_calculate(size_label=_human(size), cumulative_label=_human(cum),
                             label="'#' + datum.position + ' ' + (isValid(datum.step) ? datum.step : '')")
        .mark_bar()
        .encode(
            x=alt.X("label:N", sort=alt.EncodingSortField("position", order="ascending"), title=None,
                    axis=alt.Axis(labelAngle=-40, labelLimit=220)),
            y=alt.Y(f"{start}:Q", axis=_bytes_axis(alt, "bytes" + (" (compressed)" if compressed else ""))),
            y2=alt.Y2(f"{cum}:Q"),
            color=alt.condition(hover, alt.value("#e45756"), alt.value("#4c78a8"), empty=False),
            tooltip=[
                alt.Tooltip("position:Q", title="layer"),
                alt.Tooltip("size_label:N", title="size"),
                alt.Tooltip(f"{size}:Q", format=",", title="bytes"),
                alt.Tooltip("cumulative_label:N", title="cumulative"),
                alt.Tooltip("created_by:N", title="command"),
            ],
        )
        .add_params(pick, hover)
        .properties(width=width, height=height)
    )


def _q(field: str) -> str:
    import json

    return json.dumps(field)


def overlap_heatmap(
    data: Any,
    *,
    value: str = "shared_bytes",
    width: int = 360,
    height: int = 360,
    title: str | None = None,
):
    """Heatmap of ``layerlab.overlap()`` output (pairs that share; best with
    ``symmetric=True, include_self=True`` so both triangles and the diagonal,
    each image's own bytes, are drawn).
    Colour is ``value`` (``shared_bytes``, ``shared_layers`` or
    ``shared_fraction``).  A dropdown / click (``focus`` point selection on
    ``image``) highlights one image's row."""
    from .analysis.overlap import overlap

    df = _frame_for(data, ["image", "other_image", "shared_bytes"],
                    lambda d: overlap(d, include_self=True, symmetric=True), "overlap_heatmap")
    if value not in df.columns:
        raise AnalysisError(f"charts.overlap_heatmap(): value={value!r} is not a column of the frame")
    alt = _alt()
    names = sorted(set(_image_options(df, "image")) | set(_image_options(df, "other_image")))
    focus = alt.selection_point(
        name="focus", fields=["image"], on="click", clear="dblclick",
        bind=alt.binding_select(options=[None, *names], labels=["(all)", *names], name="image "),
    )
    legend_title = {"shared_bytes": "shared bytes", "shared_layers": "shared layers",
                    "shared_fraction": "share of row image"}.get(value, value)
    color_kw = {"legend": alt.Legend(labelExpr=BYTES_LABEL)} if value == "shared_bytes" else {}
    return (
        alt.Chart(df, title=title or f"Shared between images (by {df.attrs.get('key', 'key')})")
        .mark_rect()
        .transform_calculate(shared_label=_human("shared_bytes"))
        .encode(
            x=alt.X("other_image:N", sort=names, title=None, axis=alt.Axis(labelLimit=160)),
            y=alt.Y("image:N", sort=names, title=None, axis=alt.Axis(labelLimit=160)),
            color=alt.Color(f"{value}:Q", scale=alt.Scale(scheme="blues"), title=legend_title, **color_kw),
            opacity=alt.condition(focus, alt.value(1.0), alt.value(0.25)),
            tooltip=[
                alt.Tooltip("image:N"),
                alt.Tooltip("other_image:N", title="other image"),
                alt.Tooltip("shared_label:N", title="shared"),
                alt.Tooltip("shared_bytes:Q", format=",", title="shared bytes"),
                alt.Tooltip("shared_layers:Q", title="shared layers"),
                *([alt.Tooltip("shared_fraction:Q", format=".1%", title="of image")] if "shared_fraction" in df.columns else []),
            ],
        )
        .add_params(focus)
        .properties(width=width, height=height)
    )


def sharing_tree_chart(
    data: Any,
    *,
    color: str = "size",
    width: int = 640,
    row_height: int = 22,
    title: str | None = None,
):
    """Icicle of ``layerlab.sharing_tree()``: depth goes down (base on top),
    each node spans the images that stand on it (``x0``..``x1``), coloured by
    ``color`` (``size``, ``saved_bytes``, ``count``).  A dropdown
    (``tree_image`` param: image names, valued by layout position)
    highlights one image's path; hovering a node outlines it."""
    from .analysis.sharing import sharing_tree

    df = _frame_for(data, ["node", "x0", "x1", "depth"], sharing_tree, "sharing_tree_chart")
    if color not in df.columns:
        raise AnalysisError(f"charts.sharing_tree_chart(): color={color!r} is not a column of the tree")
    alt = _alt()
    n_images = int(df["x1"].max()) if len(df) else 0
    depth = int(df["depth"].max()) + 1 if len(df) else 1
    params = []
    hover = alt.selection_point(name="tree_hover", on="pointerover", fields=["node"], clear="pointerout")
    params.append(hover)
    from .analysis.sharing import image_order

    try:
        order = image_order(df)
    except AnalysisError:
        order = [f"image #{i}" for i in range(n_images)]
    # the dropdown's values are positions in the layout; a node is on the
    # chosen image's path when its span x0..x1 covers that position
    pick = alt.param(name="tree_image", value=-1,
                     bind=alt.binding_select(options=[-1, *range(len(order))], labels=["(none)", *order],
                                             name="image "))
    params.append(pick)
    opacity = alt.condition("tree_image < 0 || (datum.x0 <= tree_image && tree_image < datum.x1)",
                            alt.value(1.0), alt.value(0.2))
    key_col = next((c for c in ("chain_id", "digest", "diff_id") if c in df.columns), None)
    calc = {"depth1": "datum.depth + 1", "size_label": _human("size"), "cum_label": _human("cumulative_size")}
    tips = [
        alt.Tooltip("depth:Q", title="layer"),
        alt.Tooltip("size_label:N", title="size"),
        alt.Tooltip("size:Q", format=",", title="bytes"),
        alt.Tooltip("cum_label:N", title="cumulative"),
        alt.Tooltip("count:Q", title="images on it"),
        alt.Tooltip("ends:Q", title="images ending here"),
        alt.Tooltip("saved_bytes:Q", format=",", title="bytes saved by sharing"),
    ]
    if key_col:
        tips.insert(0, alt.Tooltip(f"{key_col}:N", title=key_col))
    if "created_by" in df.columns:
        tips.append(alt.Tooltip("created_by:N", title="command"))
    if "images" in df.columns:
        calc["image_names"] = "join(slice(datum.images, 0, 12), ', ') + (length(datum.images) > 12 ? ', …' : '')"
        tips.append(alt.Tooltip("image_names:N", title="images"))
    color_kw = {"legend": alt.Legend(labelExpr=BYTES_LABEL)} if color in ("size", "saved_bytes", "subtree_size") else {}
    base = alt.Chart(df, title=title or f"Sharing tree ({df.attrs.get('key', 'layers')}): which images stand on which bases")
    return (
        base.mark_rect(stroke="white", strokeWidth=1)
        .transform_calculate(**calc)
        .encode(
            x=alt.X("x0:Q", scale=alt.Scale(domain=[0, max(n_images, 1)]), title="images", axis=alt.Axis(tickMinStep=1)),
            x2="x1:Q",
            y=alt.Y("depth:Q", scale=alt.Scale(domain=[0, depth], reverse=True), title="layer (base at top)",
                    axis=alt.Axis(tickMinStep=1)),
            y2="depth1:Q",
            color=alt.Color(f"{color}:Q", scale=alt.Scale(scheme="oranges"), title=color, **color_kw),
            opacity=opacity,
            strokeWidth=alt.condition(hover, alt.value(2.5), alt.value(1), empty=False),
            tooltip=tips,
        )
        .add_params(*params)
        .properties(width=width, height=max(120, row_height * depth))
    )


def layer_sizes(
    data: Any,
    image: str = "image",
    *,
    compressed: bool = False,
    initial: str | None = None,
    width: int = 480,
    title: str | None = None,
):
    """Per-layer size bars for one image at a time (a dropdown, the
    ``layer_image`` param, picks the image), labelled with the shortened
    step, full command in the tooltip.  ``data``: ``cumulative()`` output
    (or a layers frame / Fleet)."""
    from .analysis.cumulative import cumulative

    df = _frame_for(data, ["step", "share", "cumulative_size"], cumulative, "layer_sizes")
    alt = _alt()
    names = _image_options(df, image)
    if not names:
        raise AnalysisError("charts.layer_sizes(): the frame has no images")
    if initial is not None and initial not in names:
        raise AnalysisError(f"charts.layer_sizes(): initial={initial!r} is not one of the frame's images {names[:5]!r}")
    size = "compressed_size" if compressed else "size"
    pick = alt.param(name="layer_image", value=initial or names[0],
                     bind=alt.binding_select(options=names, name="image "))
    hover = alt.selection_point(name="layer_hover", on="pointerover", fields=["position"], clear="pointerout")
    return (
        alt.Chart(df, title=title or "Layer sizes")
        .transform_filter(f"datum[{_q(image)}] == layer_image")
        .transform_calculate(size_label=_human(size),
                             label="'#' + datum.position + ' ' + (isValid(datum.step) ? datum.step : '')")
        .mark_bar()
        .encode(
            y=alt.Y("label:N", sort=alt.EncodingSortField("position", order="ascending"), title=None,
                    axis=alt.Axis(labelLimit=320)),
            x=alt.X(f"{size}:Q", axis=_bytes_axis(alt, "bytes" + (" (compressed)" if compressed else ""))),
            color=alt.condition(hover, alt.value("#e45756"), alt.value("#4c78a8"), empty=False),
            tooltip=[
                alt.Tooltip("position:Q", title="layer"),
                alt.Tooltip("size_label:N", title="size"),
                alt.Tooltip(f"{size}:Q", format=",", title="bytes"),
                alt.Tooltip("share:Q", format=".1%", title="share of image"),
                alt.Tooltip("created_by:N", title="command"),
            ],
        )
        .add_params(pick, hover)
        .properties(width=width)
    )


# ---------------------------------------------------------------------------
def _script_safe(text: str) -> str:
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


class _ScriptSafeJSON(json.JSONEncoder):
    """JSON whose text cannot close a <script> element: ``<``, ``>`` and ``&``
    are written as ``\\u003c``, ``\\u003e``, ``\\u0026`` (the same JSON value)."""

    def encode(self, o):
        return _script_safe(super().encode(o))

    def iterencode(self, o, _one_shot=False):
        for chunk in super().iterencode(o, _one_shot):
            yield _script_safe(chunk)


def to_html(chart, **kwargs) -> str:
    """A standalone HTML page for ``chart`` (``chart.to_html`` with the
    spec's JSON made script-safe: a command such as ``</script><script>…``
    in the data stays data).  Altair's own ``to_html``/``save`` write the
    JSON unescaped into a ``<script>`` element; use this (or
    ``save_html``) for charts over untrusted image metadata.  ``kwargs``
    go to ``chart.to_html`` (e.g. ``inline=True`` for no CDN)."""
    json_kwds = dict(kwargs.pop("json_kwds", None) or {})
    json_kwds["cls"] = _ScriptSafeJSON
    return chart.to_html(json_kwds=json_kwds, **kwargs)


def save_html(chart, path, **kwargs) -> None:
    """Write ``to_html(chart)`` to ``path`` (only that file is written)."""
    from pathlib import Path

    Path(path).write_text(to_html(chart, **kwargs), encoding="utf-8")


__all__ = ["to_html", "save_html", "cumulative_bars", "waterfall", "overlap_heatmap", "sharing_tree_chart", "layer_sizes", "BYTES_LABEL"]
