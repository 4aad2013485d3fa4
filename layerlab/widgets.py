"""ipywidgets explorers: inputs wired to the analyses and charts, nothing more.

>>> from layerlab.widgets import FleetExplorer, LayerExplorer
>>> FleetExplorer(fleet)        # choose images, overlap key, compressed or not
>>> LayerExplorer(fleet)        # pick an image, click a layer: its command and files
>>> MergeExplorer(fleet)        # pick an image and a span of layers: what merging them predicts
>>> PullExplorer(fleet)         # pick an image, what the host holds, the bandwidth: the pull's timeline

Both are plain ipywidgets (``VBox`` of standard controls, ``HTML`` and
``Output``), so they work in Jupyter Notebook 7 and JupyterLab with no extra
front-end extension.  Charts are drawn to SVG in Python by vl-convert
(``chart_mode="svg"``, the default) so they show with no network — altair's
own notebook renderer fetches Vega from a CDN; ``chart_mode="altair"``
displays the live altair chart instead (through its active renderer).  Each explorer keeps what it shows as attributes
(``overlap``, ``usage``, ``chart``, ``files`` …) so a script or a test can
read them after setting a control's ``value``.

Every piece of text from an image (commands, paths) reaches the page through
pandas' escaping ``to_html`` or ``html.escape``; none is markup.
``ipywidgets`` and ``altair`` are imported inside, never at ``import layerlab``.
"""
from __future__ import annotations

import html
from typing import Any, Sequence

import pandas as pd

from .errors import LayerlabError
from .labels import mode_texts

KEYS = [
    ("chain_id: what Docker shares", "chain_id"),
    ("diff_id: same content anywhere", "diff_id"),
    ("digest: registry blobs", "digest"),
]


def _w():
    try:
        import ipywidgets
    except ImportError as e:  # pragma: no cover - a core dependency
        raise LayerlabError("layerlab.widgets needs ipywidgets: pip install ipywidgets") from e
    return ipywidgets


def _svg(chart) -> str:
    """The chart as an SVG string (vl-convert renders it in-process; text is escaped)."""
    import vl_convert

    return vl_convert.vegalite_to_svg(chart.to_dict())


class _ChartView:
    """Where an explorer's chart goes: an HTML widget holding SVG, or an Output."""

    def __init__(self, w, mode: str):
        if mode not in ("svg", "altair"):
            raise LayerlabError(f"chart_mode={mode!r}; use 'svg' (static, offline) or 'altair' (live chart)")
        self.mode = mode
        self.widget = w.HTML() if mode == "svg" else w.Output()

    def show(self, chart) -> None:
        if self.mode == "svg":
            self.widget.value = "" if chart is None else _svg(chart)
        else:
            _show(self.widget, chart)


def _show(out, obj) -> None:
    """Replace an Output widget's content with ``obj`` (inside a kernel; in a
    plain interpreter there is no front end to send it to)."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover
        return
    if get_ipython() is None:
        return
    out.clear_output(wait=True)
    if obj is not None:
        with out:
            display(obj)


UNKNOWN_NOTE = "unknown: the source does not record this value (layerlab never guesses it)"


def _cell_html(column: str, v) -> str:
    """One cell as people read it: byte counts in human units (exact bytes on hover),
    fractions to three figures, text escaped, unknown values as "unknown"."""
    from .frames import bytes_html, is_byte_column, missing

    if missing(v):
        return "<span class='unknown' title='not recorded by the source'>unknown*</span>"
    if is_byte_column(column) and not isinstance(v, bool):
        return bytes_html(v)
    if isinstance(v, float):
        return f"{v:.3g}"
    return html.escape(str(v))


def _size_text(v) -> str:
    """A size as plain text: human units, or "unknown size" when the source does not record it."""
    from .frames import human_bytes, missing

    return "unknown size" if missing(v) else human_bytes(int(v))


def _table_html(df: pd.DataFrame, max_rows: int = 25) -> str:
    """``df``'s first rows as an HTML table in a box that scrolls sideways when wide; a footnote when a
    value is unknown."""
    from .frames import missing

    shown = df.head(max_rows)
    cells = pd.DataFrame({html.escape(str(c)): [_cell_html(str(c), v) for v in shown[c]] for c in shown.columns})
    unknown = bool(shown.map(missing).to_numpy().any()) if len(shown.columns) else False
    table = cells.to_html(index=False, escape=False, border=0)
    return (f"<div style='overflow-x:auto;max-width:100%'>{table}</div>"
            + (_note("* " + UNKNOWN_NOTE) if unknown else ""))


def _note(text: str, kind: str = "info") -> str:
    color = {"info": "#555", "error": "#b00020"}[kind]
    return f"<div style='color:{color};font-size:90%'>{html.escape(text)}</div>"


class _Explorer:
    widget: Any

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def _ipython_display_(self):  # older IPython front ends
        from IPython.display import display

        display(self.widget)


class FleetExplorer(_Explorer):
    """What a fleet shares: pick images, the overlap key and the byte measure;
    see the overlap heatmap, the pairwise table and the most shared layers.

    Attributes after each update: ``overlap`` (``layerlab.overlap``, both
    directions and each image with itself), ``usage`` (``layerlab.layer_usage``), ``chart``
    (``layerlab.charts.overlap_heatmap``), ``error`` (a message, or None).
    """

    def __init__(self, fleet, images: Sequence[str] | None = None, key: str = "chain_id", compressed: bool = False,
                 chart_mode: str = "svg"):
        w = _w()
        self.chart_view = _ChartView(w, chart_mode)
        self.layers = fleet.layers() if not isinstance(fleet, pd.DataFrame) else fleet
        names = [str(x) for x in pd.unique(self.layers["image"].dropna())]
        chosen = tuple(images) if images is not None else tuple(names)
        self.images = w.SelectMultiple(options=names, value=chosen, description="images",
                                       rows=min(10, max(3, len(names))), layout=w.Layout(width="420px"))
        self.key = w.Dropdown(options=KEYS, value=key, description="shared by")
        self.compressed = w.Checkbox(value=compressed, description="compressed bytes", indent=False)
        self.message = w.HTML()
        self.pairs_table = w.HTML()
        self.usage_table = w.HTML()
        tabs = w.Tab(children=[self.chart_view.widget, self.pairs_table, self.usage_table])
        for i, title in enumerate(["heatmap", "pairs", "layers by sharing"]):
            tabs.set_title(i, title)
        self.widget = w.VBox([w.HBox([self.images, w.VBox([self.key, self.compressed])]), self.message, tabs])
        self.overlap = self.usage = self.chart = self.error = None
        for control in (self.images, self.key, self.compressed):
            control.observe(self.update, names="value")
        self.update()

    @property
    def size_column(self) -> str:
        return "compressed_size" if self.compressed.value else "size"

    def update(self, change=None) -> None:
        from . import charts
        from .analysis import layer_usage, overlap

        chosen = list(self.images.value)
        key, size = self.key.value, self.size_column
        self.error = None
        try:
            if not chosen:
                raise LayerlabError("choose at least one image")
            self.overlap = overlap(data=self.layers, key=key, size=size, images=chosen, symmetric=True, include_self=True)
            self.usage = layer_usage(data=self.layers, key=key, size=size, images=chosen)
            self.chart = charts.overlap_heatmap(self.overlap, title=f"shared {size} by {key}")
        except LayerlabError as e:
            self.error = str(e)
            self.overlap = self.usage = self.chart = None
        notes = []
        if self.error:
            notes.append(_note(self.error, "error"))
        else:
            sub = self.layers[self.layers["image"].isin(chosen)]
            unknown = int(sub[key].isna().sum())
            if unknown:
                notes.append(_note(f"{unknown} of {len(sub)} layers have no {key}: they are never counted as shared"))
            if sub[size].isna().any():
                notes.append(_note(f"{int(sub[size].isna().sum())} layers have no known {size}: they add 0 bytes"))
        self.message.value = "".join(notes)
        if self.overlap is None:
            self.pairs_table.value = ""
        else:
            pairs = self.overlap[self.overlap["image"] != self.overlap["other_image"]]
            self.pairs_table.value = _table_html(
                pairs[["image", "other_image", "shared_bytes", "shared_layers", "shared_fraction"]], max_rows=60)
        cols = [c for c in (key, "size", "images", "saved_bytes", "created_by") if self.usage is not None and c in self.usage]
        self.usage_table.value = "" if self.usage is None else _table_html(self.usage[cols])
        self.chart_view.show(self.chart)


class LayerExplorer(_Explorer):
    """One image at a time: pick it, click a layer in the list to see the
    command that made it and (when the source has layer contents) its files.

    Attributes: ``image_layers`` (the image's rows of ``cumulative()``),
    ``chart`` (``charts.waterfall``), ``selected`` (the layer's row, a
    Series), ``files`` (that layer's rows of ``img.files()``, or None).
    """

    def __init__(self, fleet, image: str | None = None, compressed: bool = False, files: bool = True,
                 max_files: int = 200, chart_mode: str = "svg"):
        w = _w()
        self.chart_view = _ChartView(w, chart_mode)
        from .model import Fleet, Image

        self.fleet = Fleet([fleet]) if isinstance(fleet, Image) else fleet
        self.show_files = files
        self.max_files = max_files
        self._files_cache: dict[str, pd.DataFrame] = {}
        names = [img.reference for img in self.fleet]
        if not names:
            raise LayerlabError("LayerExplorer: the fleet has no images")
        self.image = w.Dropdown(options=names, value=image or names[0], description="image",
                                layout=w.Layout(width="420px"))
        self.compressed = w.Checkbox(value=compressed, description="compressed bytes", indent=False)
        self.layer = w.Select(options=[], description="layer", rows=8, layout=w.Layout(width="100%"))
        self.command = w.HTML()
        self.files_table = w.HTML()
        self.widget = w.VBox([w.HBox([self.image, self.compressed]), self.chart_view.widget, self.layer,
                              self.command, self.files_table])
        self.image_layers = self.chart = self.selected = self.files = None
        self.image.observe(self._image_changed, names="value")
        self.compressed.observe(self._image_changed, names="value")
        self.layer.observe(self._layer_changed, names="value")
        self._image_changed()

    def _image_changed(self, change=None) -> None:
        from . import charts
        from .analysis import cumulative

        img = self.fleet[self.image.value]
        self.image_layers = cumulative(data=img.layers())
        size = "compressed_size" if self.compressed.value else "size"
        try:
            self.chart = charts.waterfall(self.image_layers, compressed=self.compressed.value,
                                          title=f"{img.reference}: {size} layer by layer")
        except LayerlabError as e:
            self.chart = None
            self.command.value = _note(str(e), "error")
        self.chart_view.show(self.chart)
        options = [
            (f"{int(r.position)}: {_size_text(getattr(r, size))}  {r.step}", int(r.position))
            for r in self.image_layers.itertuples()
        ]
        # setting options resets the value; pick the largest layer as a start
        self.layer.options = options
        if options:
            biggest = self.image_layers.sort_values(size, ascending=False, na_position="last")["position"].iloc[0]
            self.layer.value = int(biggest)
        self._layer_changed()

    def select_layer(self, position: int) -> None:
        """Programmatic click on a layer."""
        self.layer.value = int(position)

    def _layer_changed(self, change=None) -> None:
        img = self.fleet[self.image.value]
        pos = self.layer.value
        if pos is None:
            self.selected = self.files = None
            self.command.value = self.files_table.value = ""
            return
        row = self.image_layers[self.image_layers["position"] == pos].iloc[0]
        self.selected = row
        cmd = row.get("created_by")
        cmd = "(no history step recorded for this layer)" if cmd is None or pd.isna(cmd) else str(cmd)
        size = row.get("size")
        self.command.value = (
            f"<div><b>layer {int(pos)}</b> · {html.escape(_size_text(size))}"
            f" · <code>{html.escape(str(row.get('diff_id') or ''))}</code></div>"
            f"<pre style='white-space:pre-wrap'>{html.escape(cmd)}</pre>"
        )
        self.files = None
        if not self.show_files:
            self.files_table.value = ""
        elif not img.has_file_tables:
            self.files_table.value = _note(
                f"{img.reference} came from a {img.source} source without layer contents; load it from "
                "docker-daemon:, docker-archive: or oci: to list files")
        else:
            try:
                all_files = self._files_cache.get(img.reference)
                if all_files is None:
                    all_files = img.files(progress=False)
                    self._files_cache[img.reference] = all_files
                self.files = all_files[all_files["position"] == pos].reset_index(drop=True)
                cols = [c for c in ("path", "type", "size", "mode", "link_target") if c in self.files.columns]
                shown = self.files.sort_values("size", ascending=False, na_position="last")[cols]
                if "mode" in shown.columns:  # as ls -l and dive show them (-rwxr-xr-x), not the integer
                    shown = shown.assign(mode=mode_texts(shown["mode"], shown.get("type")).to_numpy())
                more = len(self.files) - min(len(self.files), self.max_files)
                self.files_table.value = (
                    _table_html(shown, self.max_files)
                    + (_note(f"… and {more} more entries") if more > 0 else "")
                )
            except LayerlabError as e:
                self.files_table.value = _note(str(e), "error")


class MergeExplorer(_Explorer):
    """What-if merges, one span at a time: pick an image and the first and last
    layer to merge; see ``layerlab.what_if_merge``'s summary and group rows.

    Attributes after each update: ``prediction`` (the ``what_if_merge``
    result, or None) and ``error`` (a message, or None).  ``options`` go to
    ``what_if_merge`` (default: ``compressed=True, progress=False``).
    """

    GROUP_COLUMNS = ("first", "last", "size_before_bytes", "size_after_bytes", "compressed_after_bytes", "status")

    def __init__(self, fleet, image: str | None = None, span: tuple[int, int] = (0, 1), **options):
        w = _w()
        self.fleet = fleet
        self.options = {"compressed": True, "progress": False, **options}
        names = [img.reference for img in fleet]
        if not names:
            raise LayerlabError("MergeExplorer: the fleet has no images")
        self.image = w.Dropdown(options=names, value=image or names[0], description="image",
                                layout=w.Layout(width="420px"))
        self.span = w.IntRangeSlider(description="merge layers", min=0, max=1, value=(0, 1))
        self.message = w.HTML()
        self.summary_table = w.HTML()
        self.groups_table = w.HTML()
        self.widget = w.VBox([self.image, self.span, self.message, self.summary_table, self.groups_table])
        self.prediction = self.error = None
        self._set_range()
        self.span.value = (int(span[0]), int(span[1]))
        self.image.observe(self._image_changed, names="value")
        self.span.observe(self.update, names="value")
        self.update()

    def _set_range(self) -> None:
        n = len(self.fleet[self.image.value].layer_list)
        self.span.max = max(n - 1, 1)

    def _image_changed(self, change=None) -> None:
        self._set_range()
        self.update()

    def update(self, change=None) -> None:
        from .analysis.merge import what_if_merge

        a, b = self.span.value
        self.prediction = self.error = None
        try:
            if a == b:
                raise LayerlabError("choose at least two layers")
            self.prediction = what_if_merge(self.fleet[self.image.value], (a, b), fleet=self.fleet, **self.options)
        except LayerlabError as e:
            self.error = str(e)
        self.message.value = _note(self.error, "error") if self.error else ""
        p = self.prediction
        self.summary_table.value = "" if p is None else _table_html(p.summary)
        cols = [c for c in self.GROUP_COLUMNS if p is not None and c in p.groups.columns]
        self.groups_table.value = "" if p is None else _table_html(p.groups[cols])


class PullExplorer(_Explorer):
    """How long a pull takes: pick the image, the images already on the host,
    the bandwidth (a slider, MB/s) and the engine; see ``layerlab.pull_time``'s
    prediction and its timeline (``charts.timeline_chart``).

    Attributes after each update: ``pull`` (the :class:`~layerlab.analysis.pull.PullTime`,
    or None), ``chart`` and ``error`` (a message, or None).  ``host``: host
    rates for the model (a ``HostRates``, ``"measure"`` or None, as in
    ``pull_time``); ``unknown_wire``: as in ``pull_time`` (``"refuse"``, or
    ``"uncompressed"`` for fleets whose sources state no wire sizes)."""

    def __init__(self, fleet, image: str | None = None, present: Sequence[str] = (), bandwidth: Any = "20MB/s",
                 engine: str = "moby", host: Any = None, chart_mode: str = "svg", unknown_wire: str = "refuse"):
        from .analysis.pull import ENGINES, parse_bandwidth

        w = _w()
        self.chart_view = _ChartView(w, chart_mode)
        self.layers = fleet if isinstance(fleet, pd.DataFrame) else fleet.layers()
        self.host = host
        self.unknown_wire = unknown_wire
        names = [str(x) for x in pd.unique(self.layers["image"].dropna())]
        if not names:
            raise LayerlabError("PullExplorer: the fleet has no images")
        self.image = w.Dropdown(options=names, value=image or names[-1], description="pull",
                                layout=w.Layout(width="420px"))
        self.present = w.SelectMultiple(options=names, value=tuple(present), description="on the host",
                                        rows=min(8, max(3, len(names))), layout=w.Layout(width="420px"))
        mb = parse_bandwidth(bandwidth) / 1e6
        self.bandwidth = w.FloatLogSlider(value=mb, base=10, min=-1, max=3, step=0.05, description="MB/s",
                                          readout_format=".3g", continuous_update=False)
        self.engine = w.Dropdown(options=list(ENGINES), value=engine, description="engine")
        self.message = w.HTML()
        self.widget = w.VBox([w.HBox([w.VBox([self.image, self.present]), w.VBox([self.bandwidth, self.engine])]),
                              self.message, self.chart_view.widget])
        self.pull = self.chart = self.error = None
        for control in (self.image, self.present, self.bandwidth, self.engine):
            control.observe(self.update, names="value")
        self.update()

    def update(self, change=None) -> None:
        from . import charts
        from .analysis.pull import pull_time

        self.pull = self.chart = self.error = None
        try:
            self.pull = pull_time(self.layers, self.image.value, present=list(self.present.value),
                                  bandwidth=self.bandwidth.value * 1e6, engine=self.engine.value, host=self.host,
                                  unknown_wire=self.unknown_wire)
            self.chart = charts.timeline_chart(self.pull)
        except LayerlabError as e:
            self.error = str(e)
        if self.pull is None:
            self.message.value = _note(self.error or "", "error")
        else:
            self.message.value = _note(self.pull._summary()) + "".join(_note(n) for n in self.pull.notes)
        self.chart_view.show(self.chart)


def fleet_explorer(fleet, **kwargs) -> FleetExplorer:
    """``FleetExplorer(fleet, **kwargs)``."""
    return FleetExplorer(fleet, **kwargs)


def layer_explorer(fleet, **kwargs) -> LayerExplorer:
    """``LayerExplorer(fleet, **kwargs)``."""
    return LayerExplorer(fleet, **kwargs)


__all__ = ["FleetExplorer", "LayerExplorer", "MergeExplorer", "PullExplorer", "fleet_explorer", "layer_explorer"]
