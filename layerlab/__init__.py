"""layerlab: container-image layers as pandas DataFrames.

>>> import layerlab as ll
>>> img = ll.load("docker-archive:app.tar")
>>> img.layers()          # one row per layer
>>> fleet = ll.load_many(["docker-daemon:a", "docker-daemon:b"])

Nothing heavy (altair, ipywidgets, the docker SDK) is imported here; charts
live in ``layerlab.charts``, widgets in ``layerlab.widgets``.
"""
from __future__ import annotations

from .errors import (
    AnalysisError,
    DigestMismatchError,
    EngineError,
    FormatError,
    LayerlabError,
    SourceError,
)
from .frames import human_bytes
from .model import Fleet, HistoryStep, Image, Layer, chain_ids
from .sources import load, load_many
from .analysis import (
    cumulative,
    fleet_totals,
    image_sharing,
    layer_usage,
    overlap,
    overlap_matrix,
    pull_cost,
    pull_table,
    sharing_tree,
)


# What-if merges and the base planner (layerlab.analysis.merge / .plan), imported on first call.
def what_if_merge(img, steps, **options):
    """Predict merging step groups of ``img``; see :func:`layerlab.analysis.merge.what_if_merge`."""
    from .analysis.merge import what_if_merge as _f

    return _f(img, steps, **options)


def suggest_merges(img, **options):
    """Merges ranked by bytes saved; see :func:`layerlab.analysis.merge.suggest_merges`."""
    from .analysis.merge import suggest_merges as _f

    return _f(img, **options)


def plan_bases(apps, **options):
    """Propose shared base images; see :func:`layerlab.analysis.plan.plan_bases`."""
    from .analysis.plan import plan_bases as _f

    return _f(apps, **options)

__version__ = "0.1.0"

__all__ = [
    "AnalysisError",
    "DigestMismatchError",
    "EngineError",
    "FormatError",
    "LayerlabError",
    "SourceError",
    "Fleet",
    "HistoryStep",
    "Image",
    "Layer",
    "chain_ids",
    "human_bytes",
    "load",
    "load_many",
    "cumulative",
    "fleet_totals",
    "image_sharing",
    "layer_usage",
    "overlap",
    "overlap_matrix",
    "pull_cost",
    "pull_table",
    "sharing_tree",
    "plan_bases",
    "suggest_merges",
    "what_if_merge",
]
