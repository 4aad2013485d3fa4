"""Analyses: pure functions, frames in, frames out (pandas and numpy only).

Fleet analyses (issue 4): ``overlap``, ``overlap_matrix``, ``layer_usage``,
``image_sharing`` (``docker system df -v``), ``sharing_tree``, ``cumulative``,
``fleet_totals``, ``pull_cost``, ``pull_table``.  Each takes ``data=`` (a
layers frame, or a Fleet/Image for convenience) and column names (``image=``,
``key=``, ``size=``…, seaborn style), and documents its output columns and
dtypes.  Content: ``duplicates`` (a files frame, or images to read).  The
base planner: ``plan_bases`` returns a :class:`BasePlan`.  Pull time:
``pull_time`` (a :class:`PullTime`), ``pull_table(..., bandwidth=)``,
``rollout``, ``measure_host`` (:class:`HostRates`), ``parse_bandwidth``.
Likely credentials in history, config and files of every layer: ``secrets``
(a :class:`Secrets`).

One vocabulary in every output: the image column is ``image``, the other
image of a pair ``other_image``; byte columns end in ``_bytes``, except the
model's own ``size``, ``compressed_size`` and ``cumulative_size`` (a layer's,
a file's or an image's, as ``layerlab.frames`` defines them).  Result objects
(not plain frames) are :class:`~layerlab.analysis._result.Result`: frames,
``notes``, a short ``repr`` and ``_repr_html_``.  Nothing here imports
altair, ipywidgets or the docker SDK.
"""
from __future__ import annotations

from .cumulative import cumulative, step_label
from .duplicates import duplicates
from .hostrates import HostRates, measure_host
from .overlap import image_sharing, layer_usage, overlap, overlap_matrix
from .plan import BasePlan, plan_bases
from .pull import PullTime, parse_bandwidth, pull_time
from .rollout import Rollout, rollout
from .secrets import Secrets, secrets
from .sharing import image_order, sharing_tree
from .totals import fleet_totals, pull_cost, pull_table

__all__ = [
    "BasePlan",
    "HostRates",
    "PullTime",
    "Rollout",
    "cumulative",
    "duplicates",
    "fleet_totals",
    "image_order",
    "image_sharing",
    "measure_host",
    "layer_usage",
    "overlap",
    "overlap_matrix",
    "parse_bandwidth",
    "plan_bases",
    "Secrets",
    "secrets",
    "pull_cost",
    "pull_table",
    "pull_time",
    "rollout",
    "sharing_tree",
    "step_label",
]
