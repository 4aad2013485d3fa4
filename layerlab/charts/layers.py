"""Charts of one image's layers: stacked sizes, waterfall, per-layer bars
(all over ``layerlab.cumulative()`` output)."""
from __future__ import annotations

from typing import Any

from ..errors import AnalysisError
from ._base import IMAGE_TIP_TITLE, _alt, _bytes_axis, _frame_for, _human, _image_options, _q, _short_names, _tip


def _image_pick(alt, df, image: str, initial: str | None, name: str, fn: str):
    """The dropdown param choosing which of the frame's images a chart shows
    (``initial``, default the first)."""
    names = _image_options(df, image)
    if not names:
        raise AnalysisError(f"charts.{fn}(): the frame has no images")
    if initial is not None and initial not in names:
        raise AnalysisError(f"charts.{fn}(): initial={initial!r} is not one of the frame's images {names[:5]!r}")
    return alt.param(name=name, value=initial or names[0], bind=alt.binding_select(options=names, name="image "))


def _layer_label(position: str, step: str) -> str:
    """A Vega expression: ``#<position> <step>`` (the step left out when null)."""
    pos, st = f"datum[{_q(position)}]", f"datum[{_q(step)}]"
    return f"'#' + {pos} + ' ' + (isValid({st}) ? {st} : '')"


def cumulative_bars(
    data: Any,
    image: str = "image",
    position: str = "position",
    created_by: str = "created_by",
    step: str = "step",
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

    ``image``, ``position``, ``created_by`` and ``step`` name the frame's
    columns (the image, the layer position, the full and the shortened
    command); sizes are ``cumulative()``'s columns.

    Params: click a segment to highlight the same layer (same ``key``:
    default the first of ``diff_id``, ``digest``, ``chain_id`` the frame
    knows) in every image (``layer`` point selection); click the legend to
    highlight a position (``position_pick`` legend selection).
    """
    from ..analysis.cumulative import cumulative

    df = _frame_for(data, ["start_bytes", step, "cumulative_size"], cumulative, "cumulative_bars")
    alt = _alt()
    size = "compressed_size" if compressed else "size"
    cum = "cumulative_compressed_bytes" if compressed else "cumulative_size"
    share = "compressed_share" if compressed else "share"
    if key is None:
        key = next((c for c in ("diff_id", "digest", "chain_id") if c in df.columns and df[c].notna().all()), None)
    fields = [key] if key is not None and key in df.columns else [image, position]
    layer = alt.selection_point(name="layer", fields=fields, on="click", clear="dblclick")
    legend = alt.selection_point(name="position_pick", fields=[position], bind="legend")
    order = _image_options(df, image)
    df, short = _short_names(df, [image])
    return (
        alt.Chart(df, title=title or ("Compressed" if compressed else "Uncompressed") + " size by layer")
        .mark_bar(stroke="white", strokeWidth=0.5)
        .transform_calculate(size_label=_human(size), cumulative_label=_human(cum))
        .encode(
            x=alt.X(f"{image}_label:N", sort=[short[n] for n in order], title=None, axis=alt.Axis(labelLimit=400)),
            y=alt.Y(f"{size}:Q", stack="zero", axis=_bytes_axis(alt, "bytes" + (" (compressed)" if compressed else ""))),
            order=alt.Order(f"{position}:Q", sort="ascending"),
            color=alt.Color(f"{position}:O", scale=alt.Scale(scheme="viridis"), title="layer"),
            opacity=alt.condition(layer & legend, alt.value(1.0), alt.value(0.3)),
            tooltip=[
                _tip(alt, f"{image}:N", title=IMAGE_TIP_TITLE),
                _tip(alt, f"{position}:Q", title="layer"),
                _tip(alt, "size_label:N", title="size"),
                _tip(alt, f"{size}:Q", format=",", title="bytes"),
                _tip(alt, "cumulative_label:N", title="cumulative"),
                _tip(alt, f"{share}:Q", format=".1%", title="share of image"),
                _tip(alt, f"{created_by}:N", title="command"),
            ],
        )
        .add_params(layer, legend)
        .properties(width=width, height=height)
    )


def waterfall(
    data: Any,
    image: str = "image",
    position: str = "position",
    created_by: str = "created_by",
    step: str = "step",
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
    from ..analysis.cumulative import cumulative

    df = _frame_for(data, ["start_bytes", step, "cumulative_size"], cumulative, "waterfall")
    alt = _alt()
    pick = _image_pick(alt, df, image, initial, "waterfall_image", "waterfall")
    size = "compressed_size" if compressed else "size"
    start = "compressed_start_bytes" if compressed else "start_bytes"
    cum = "cumulative_compressed_bytes" if compressed else "cumulative_size"
    hover = alt.selection_point(name="waterfall_hover", on="pointerover", fields=[position], clear="pointerout")
    return (
        alt.Chart(df, title=title or "Image size, layer by layer")
        .transform_filter(f"datum[{_q(image)}] == waterfall_image")
        .transform_calculate(size_label=_human(size), cumulative_label=_human(cum),
                             label=_layer_label(position, step))
        .mark_bar()
        .encode(
            x=alt.X("label:N", sort=alt.EncodingSortField(position, order="ascending"), title=None,
                    axis=alt.Axis(labelAngle=-40, labelLimit=220)),
            y=alt.Y(f"{start}:Q", axis=_bytes_axis(alt, "bytes" + (" (compressed)" if compressed else ""))),
            y2=alt.Y2(f"{cum}:Q"),
            color=alt.condition(hover, alt.value("#e45756"), alt.value("#4c78a8"), empty=False),
            tooltip=[
                _tip(alt, f"{position}:Q", title="layer"),
                _tip(alt, "size_label:N", title="size"),
                _tip(alt, f"{size}:Q", format=",", title="bytes"),
                _tip(alt, "cumulative_label:N", title="cumulative"),
                _tip(alt, f"{created_by}:N", title="command"),
            ],
        )
        .add_params(pick, hover)
        .properties(width=width, height=height)
    )


def layer_sizes(
    data: Any,
    image: str = "image",
    position: str = "position",
    created_by: str = "created_by",
    step: str = "step",
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
    from ..analysis.cumulative import cumulative

    df = _frame_for(data, [step, "share", "cumulative_size"], cumulative, "layer_sizes")
    alt = _alt()
    pick = _image_pick(alt, df, image, initial, "layer_image", "layer_sizes")
    size = "compressed_size" if compressed else "size"
    hover = alt.selection_point(name="layer_hover", on="pointerover", fields=[position], clear="pointerout")
    return (
        alt.Chart(df, title=title or "Layer sizes")
        .transform_filter(f"datum[{_q(image)}] == layer_image")
        .transform_calculate(size_label=_human(size),
                             label=_layer_label(position, step))
        .mark_bar()
        .encode(
            y=alt.Y("label:N", sort=alt.EncodingSortField(position, order="ascending"), title=None,
                    axis=alt.Axis(labelLimit=320)),
            x=alt.X(f"{size}:Q", axis=_bytes_axis(alt, "bytes" + (" (compressed)" if compressed else ""))),
            color=alt.condition(hover, alt.value("#e45756"), alt.value("#4c78a8"), empty=False),
            tooltip=[
                _tip(alt, f"{position}:Q", title="layer"),
                _tip(alt, "size_label:N", title="size"),
                _tip(alt, f"{size}:Q", format=",", title="bytes"),
                _tip(alt, "share:Q", format=".1%", title="share of image"),
                _tip(alt, f"{created_by}:N", title="command"),
            ],
        )
        .add_params(pick, hover)
        .properties(width=width)
    )
