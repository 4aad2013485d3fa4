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
from .model import Fleet, HistoryStep, Image, Layer, chain_ids
from .sources import load, load_many

# pandas is imported when a frame is first needed, not here: a script that
# loads an image and scans its layers starts the import in the background
# (see layerlab.contents._runtime.preload) while the layers are hashed.
_LAZY = {
    "human_bytes": ".frames",
    "cumulative": ".analysis",
    "fleet_totals": ".analysis",
    "image_sharing": ".analysis",
    "layer_usage": ".analysis",
    "overlap": ".analysis",
    "overlap_matrix": ".analysis",
    "pull_cost": ".analysis",
    "pull_table": ".analysis",
    "sharing_tree": ".analysis",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'layerlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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


# Layer-contents analyses (layerlab.analysis.efficiency / .waste / .duplicates), imported on first call.
def efficiency(img, **options):
    """dive's efficiency figures, exactly, plus the corrected waste; see :func:`layerlab.analysis.efficiency.efficiency`."""
    from .analysis.efficiency import efficiency as _f

    return _f(img, **options)


def waste(img, **options):
    """Wasted bytes per entry (or per step pair, ``by="step"``); see :func:`layerlab.analysis.waste.waste`."""
    from .analysis.waste import waste as _f

    return _f(img, **options)


def duplicates(data, **options):
    """Identical content stored more than once; see :func:`layerlab.analysis.duplicates.duplicates`."""
    from .analysis.duplicates import duplicates as _f

    return _f(data, **options)

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
    "efficiency",
    "waste",
    "duplicates",
]
