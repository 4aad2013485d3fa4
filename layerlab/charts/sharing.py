"""Charts of what images share: the pairwise heatmap and the sharing tree."""
from __future__ import annotations

import json
from typing import Any

from ..errors import AnalysisError
from ..labels import short_image_names
from ._base import BYTES_LABEL, IMAGE_TIP_TITLE, _alt, _frame_for, _human, _image_options, _short_names, _tip


def overlap_heatmap(
    data: Any,
    image: str = "image",
    other_image: str = "other_image",
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
    ``image``) highlights one image's row.  ``image`` and ``other_image``
    name the frame's two image columns; the axes show each name whole, in
    its shortest unambiguous form (``docker.io/library/``, a shared registry
    and ``:latest`` dropped where no two images would look alike)."""
    from ..analysis.overlap import overlap

    df = _frame_for(data, [image, other_image, "shared_bytes"],
                    lambda d: overlap(d, include_self=True, symmetric=True), "overlap_heatmap")
    if value not in df.columns:
        raise AnalysisError(f"charts.overlap_heatmap(): value={value!r} is not a column of the frame")
    alt = _alt()
    names = sorted(set(_image_options(df, image)) | set(_image_options(df, other_image)))
    df, short = _short_names(df, [image, other_image])
    labels = [short[n] for n in names]
    focus = alt.selection_point(
        name="focus", fields=[image], on="click", clear="dblclick",
        bind=alt.binding_select(options=[None, *names], labels=["(all)", *labels], name="image "),
    )
    legend_title = {"shared_bytes": "shared bytes", "shared_layers": "shared layers",
                    "shared_fraction": "share of row image"}.get(value, value)
    color_kw = {"legend": alt.Legend(labelExpr=BYTES_LABEL)} if value == "shared_bytes" else {}
    return (
        alt.Chart(df, title=title or f"Shared between images (by {df.attrs.get('key', 'key')})")
        .mark_rect()
        .transform_calculate(shared_label=_human("shared_bytes"))
        .encode(
            x=alt.X(f"{other_image}_label:N", sort=labels, title=None, axis=alt.Axis(labelLimit=400)),
            y=alt.Y(f"{image}_label:N", sort=labels, title=None, axis=alt.Axis(labelLimit=400)),
            color=alt.Color(f"{value}:Q", scale=alt.Scale(scheme="blues"), title=legend_title, **color_kw),
            opacity=alt.condition(focus, alt.value(1.0), alt.value(0.25)),
            tooltip=[
                _tip(alt, f"{image}:N", title=IMAGE_TIP_TITLE),
                _tip(alt, f"{other_image}:N", title="other image"),
                _tip(alt, "shared_label:N", title="shared"),
                _tip(alt, "shared_bytes:Q", format=",", title="shared bytes"),
                _tip(alt, "shared_layers:Q", title="shared layers"),
                *([_tip(alt, "shared_fraction:Q", format=".1%", title="of image")] if "shared_fraction" in df.columns else []),
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
    from ..analysis.sharing import sharing_tree

    df = _frame_for(data, ["node", "x0", "x1", "depth"], sharing_tree, "sharing_tree_chart")
    if color not in df.columns:
        raise AnalysisError(f"charts.sharing_tree_chart(): color={color!r} is not a column of the tree")
    alt = _alt()
    n_images = int(df["x1"].max()) if len(df) else 0
    depth = int(df["depth"].max()) + 1 if len(df) else 1
    params = []
    hover = alt.selection_point(name="tree_hover", on="pointerover", fields=["node"], clear="pointerout")
    params.append(hover)
    from ..analysis.sharing import image_order

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
    # each image spans [i, i+1): its name (shortest unambiguous form) under the middle of its column
    shown = short_image_names(order) if len(order) == n_images else {}
    if shown:
        names_js = json.dumps([shown[n] for n in order])
        x_axis = alt.Axis(values=[i + 0.5 for i in range(n_images)], labelExpr=f"{names_js}[floor(datum.value)]",
                          labelAngle=-40, labelLimit=240, grid=False)
    else:
        x_axis = alt.Axis(tickMinStep=1)
    opacity = alt.condition("tree_image < 0 || (datum.x0 <= tree_image && tree_image < datum.x1)",
                            alt.value(1.0), alt.value(0.2))
    key_col = next((c for c in ("chain_id", "digest", "diff_id") if c in df.columns), None)
    calc = {"depth1": "datum.depth + 1", "size_label": _human("size"), "cum_label": _human("cumulative_size")}
    tips = [
        _tip(alt, "depth:Q", title="layer"),
        _tip(alt, "size_label:N", title="size"),
        _tip(alt, "size:Q", format=",", title="bytes"),
        _tip(alt, "cum_label:N", title="cumulative"),
        _tip(alt, "count:Q", title="images on it"),
        _tip(alt, "ends:Q", title="images ending here"),
        _tip(alt, "saved_bytes:Q", format=",", title="bytes saved by sharing"),
    ]
    if key_col:
        tips.insert(0, _tip(alt, f"{key_col}:N", title=key_col))
    if "created_by" in df.columns:
        tips.append(_tip(alt, "created_by:N", title="command"))
    if "images" in df.columns:
        calc["image_names"] = "join(slice(datum.images, 0, 12), ', ') + (length(datum.images) > 12 ? ', …' : '')"
        tips.append(_tip(alt, "image_names:N", title="images"))
    color_kw = {"legend": alt.Legend(labelExpr=BYTES_LABEL)} if color in ("size", "saved_bytes", "subtree_bytes") else {}
    base = alt.Chart(df, title=title or f"Sharing tree ({df.attrs.get('key', 'layers')}): which images stand on which bases")
    return (
        base.mark_rect(stroke="white", strokeWidth=1)
        .transform_calculate(**calc)
        .encode(
            x=alt.X("x0:Q", scale=alt.Scale(domain=[0, max(n_images, 1)]), title="images", axis=x_axis),
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
