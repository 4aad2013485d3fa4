"""Analyses: pure functions, frames in, frames out (pandas and numpy only).

Fleet analyses (issue 4): ``overlap``, ``overlap_matrix``, ``layer_usage``,
``image_sharing`` (``docker system df -v``), ``sharing_tree``, ``cumulative``,
``fleet_totals``, ``pull_cost``, ``pull_table``.  Each takes ``data=`` (a
layers frame, or a Fleet/Image for convenience) and column names, and
documents its output columns and dtypes.  Nothing here imports altair,
ipywidgets or the docker SDK.
"""
from __future__ import annotations

from .cumulative import cumulative, step_label
from .overlap import image_sharing, layer_usage, overlap, overlap_matrix
from .sharing import image_order, sharing_tree
from .totals import fleet_totals, pull_cost, pull_table

__all__ = [
    "cumulative",
    "fleet_totals",
    "image_order",
    "image_sharing",
    "layer_usage",
    "overlap",
    "overlap_matrix",
    "pull_cost",
    "pull_table",
    "sharing_tree",
    "step_label",
]
