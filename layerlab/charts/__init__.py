"""Altair charts over layerlab's frames: frames in, ``alt.Chart`` out.

Every function takes a tidy frame (``data=``, as the analyses return it) and
the names of the columns to draw, seaborn style, and returns an Altair chart
whose data are the frame's rows (plus, where a layout needs them, computed
columns): exact bytes stay exact; human-readable sizes are made by Vega
expressions at render time (``format(…, '.3~s') + 'B'``, decimal units like
Docker's).  The layer charts also accept a layers frame or a Fleet and
compute ``cumulative()`` / ``overlap()`` / ``sharing_tree()`` themselves.

Interactivity is written as Vega-Lite params (point selections, legend
selections, dropdown bindings), so a chart saved to HTML or rendered in a
report stays interactive without a Python kernel.

Commands (``created_by``) are data, never markup: Vega renders text and
tooltips as text, and nothing here builds HTML by string concatenation.
Labels show a shortened command (``step``); tooltips carry it in full.

``altair`` is imported inside each function, so ``import layerlab`` never
loads it.  The modules: ``layers`` (one image's layers), ``sharing`` (what
images share), ``compare`` (measures side by side), ``pull`` (a pull's timeline), ``trie`` (a tree of
steps), ``html`` (script-safe standalone pages), ``offline`` (``offline_charts()``:
charts drawn in Jupyter with no network).
"""
from __future__ import annotations

from ._base import BYTES_LABEL
from .compare import grouped_bars, layer_usage_bars, pull_bars, rebuild_lines
from .html import save_html, to_html
from .layers import cumulative_bars, layer_sizes, waterfall
from .offline import offline_charts
from .pull import timeline_chart
from .sharing import overlap_heatmap, sharing_tree_chart
from .trie import tree_layout, trie_chart

__all__ = [
    "BYTES_LABEL",
    "cumulative_bars",
    "grouped_bars",
    "layer_sizes",
    "layer_usage_bars",
    "offline_charts",
    "overlap_heatmap",
    "pull_bars",
    "rebuild_lines",
    "save_html",
    "sharing_tree_chart",
    "timeline_chart",
    "to_html",
    "tree_layout",
    "trie_chart",
    "waterfall",
]
