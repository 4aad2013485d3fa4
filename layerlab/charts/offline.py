"""Charts that draw in Jupyter without network.

Altair's default renderer writes HTML that loads Vega, Vega-Lite and
vega-embed from a CDN: on an air-gapped host every chart shows "Error loading
script".  Altair's own offline renderer (``alt.renderers.enable("jupyter",
offline=True)``) shows each chart as an anywidget ``JupyterChart`` whose
JavaScript, Vega included, is bundled by vl-convert in the kernel and sent to
the page over the widget's comm: nothing is fetched.  ``offline_charts()``
switches to it; the bundled notebooks call it in their first code cell.
"""
from __future__ import annotations

from ..errors import AnalysisError
from ._base import _alt

REPORT_RENDERER = "layerlab-report"
"""The renderer ``layerlab.report`` enables while executing a notebook for an
HTML report (charts stored as Vega-Lite JSON, drawn by the report's inlined
Vega); ``offline_charts()`` leaves it active."""


def offline_charts(enable: bool = True) -> None:
    """Make altair charts draw in JupyterLab, Notebook 7 and VS Code with no
    network: ``enable=True`` enables altair's ``jupyter`` renderer with
    ``offline=True`` (each chart an anywidget ``JupyterChart``, Vega bundled by
    vl-convert and sent through the kernel; drawn as SVG); ``enable=False``
    goes back to altair's ``default`` renderer (HTML loading Vega from a CDN).

    This changes altair's global renderer (``alt.renderers``) for the whole
    kernel, and nothing else: charts shown afterwards, made by layerlab or
    not, use it.  One exception: while ``layerlab.report`` executes a
    notebook (renderer ``layerlab-report`` active) the call changes nothing,
    so the report still stores charts as Vega-Lite JSON and draws them itself.

    Like every widget, a chart drawn this way needs its kernel: a notebook
    saved and reopened shows it again once its cell is rerun.
    Raises ``AnalysisError`` when anywidget or vl-convert-python is missing.
    """
    alt = _alt()
    if alt.renderers.active == REPORT_RENDERER:
        return
    if not enable:
        alt.renderers.enable("default")
        return
    try:
        import anywidget  # noqa: F401 - altair's JupyterChart is an anywidget
        import vl_convert  # noqa: F401 - bundles Vega into the widget's JavaScript
    except ImportError as e:
        raise AnalysisError(
            f"offline_charts(): {e.name} is missing; install it (pip install anywidget vl-convert-python) "
            "or call offline_charts(False) to load Vega from a CDN"
        ) from e
    # svg: marks are elements (selectable text, crisp when zoomed), as in the HTML report
    alt.renderers.enable("jupyter", offline=True, embed_options={"renderer": "svg"})
