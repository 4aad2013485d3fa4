"""layerlab: container-image layers as pandas DataFrames.

>>> import layerlab as ll
>>> img = ll.load("docker-archive:app.tar")
>>> img.layers()          # one row per layer
>>> fleet = ll.load_many(["docker-daemon:a", "docker-daemon:b"])

Every public name is the real object of the module that defines it (so
``help(ll.efficiency)`` and tab completion show its parameters), imported on
first use: ``import layerlab`` loads only ``layerlab.errors``, never pandas,
altair, ipywidgets or the docker SDK.  Charts live in ``layerlab.charts``,
widgets in ``layerlab.widgets``, the HTML report in ``layerlab.report``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import (
    AnalysisError,
    DigestMismatchError,
    EngineError,
    FormatError,
    LayerlabError,
    SourceError,
)

__version__ = "0.1.0"

if TYPE_CHECKING:  # for type checkers and editors; at run time, __getattr__ below imports on first use
    from .analysis.cumulative import cumulative
    from .analysis.duplicates import duplicates
    from .analysis.efficiency import efficiency
    from .analysis.merge import suggest_merges, what_if_merge
    from .analysis.overlap import image_sharing, layer_usage, overlap, overlap_matrix
    from .analysis.plan import plan_bases
    from .analysis.sharing import sharing_tree
    from .analysis.totals import fleet_totals, pull_cost, pull_table
    from .analysis.waste import waste
    from .frames import human_bytes
    from .model import Fleet, HistoryStep, Image, Layer, chain_ids
    from .sources import load, load_many

# public name -> the module (relative to this package) that defines it
_WHERE = {
    "Fleet": ".model",
    "HistoryStep": ".model",
    "Image": ".model",
    "Layer": ".model",
    "chain_ids": ".model",
    "human_bytes": ".frames",
    "load": ".sources",
    "load_many": ".sources",
    "cumulative": ".analysis.cumulative",
    "fleet_totals": ".analysis.totals",
    "pull_cost": ".analysis.totals",
    "pull_table": ".analysis.totals",
    "image_sharing": ".analysis.overlap",
    "layer_usage": ".analysis.overlap",
    "overlap": ".analysis.overlap",
    "overlap_matrix": ".analysis.overlap",
    "sharing_tree": ".analysis.sharing",
    "efficiency": ".analysis.efficiency",
    "waste": ".analysis.waste",
    "duplicates": ".analysis.duplicates",
    "what_if_merge": ".analysis.merge",
    "suggest_merges": ".analysis.merge",
    "plan_bases": ".analysis.plan",
    "verify": ".analysis.verify",
}

__all__ = [
    "AnalysisError",
    "DigestMismatchError",
    "EngineError",
    "FormatError",
    "LayerlabError",
    "SourceError",
    *_WHERE,
]


def __getattr__(name: str):
    """Import a public name's module on first use and keep the real object here."""
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'layerlab' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(where, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public API only (what ``__all__`` lists, plus ``__version__``)."""
    return sorted([*__all__, "__version__"])
