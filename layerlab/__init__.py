"""layerlab: container-image layers as pandas DataFrames.

>>> import layerlab as ll
>>> img = ll.load("docker-archive:app.tar")
>>> img.layers()          # one row per layer
>>> fleet = ll.load_many(["docker-daemon:a", "docker-daemon:b"])

Every public name is the real object of the module that defines it (so
``help(ll.efficiency)`` and tab completion show its parameters), imported on
first use: ``import layerlab`` loads only ``layerlab.errors``, never pandas,
altair, ipywidgets or the docker SDK.  Charts live in ``layerlab.charts``,
widgets in ``layerlab.widgets``, the notebook report in ``layerlab.report``, the summary
report in ``layerlab.reporting.summary``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import (
    AnalysisError,
    DigestMismatchError,
    EngineError,
    FormatError,
    LayerlabError,
    LimitError,
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
    from .analysis.secrets import secrets
    from .analysis.sharing import sharing_tree
    from .analysis.hostrates import HostRates, measure_host
    from .analysis.pull import PullTime, parse_bandwidth, pull_time
    from .analysis.rollout import rollout
    from .analysis.totals import fleet_totals, pull_cost, pull_table
    from .analysis.visible_waste import VisibleWaste, visible_waste
    from .analysis.improve import Improvement, improve
    from .analysis.waste import waste
    from .charts.offline import offline_charts
    from .frames import human_bytes
    from ._limits import Limits, limits
    from .model import Fleet, HistoryStep, Image, Layer, chain_ids
    from .scan import scan
    from .sources import load, load_many
    from .sources._refs import reference_key

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
    "pull_time": ".analysis.pull",
    "PullTime": ".analysis.pull",
    "parse_bandwidth": ".analysis.pull",
    "rollout": ".analysis.rollout",
    "measure_host": ".analysis.hostrates",
    "HostRates": ".analysis.hostrates",
    "image_sharing": ".analysis.overlap",
    "layer_usage": ".analysis.overlap",
    "overlap": ".analysis.overlap",
    "overlap_matrix": ".analysis.overlap",
    "sharing_tree": ".analysis.sharing",
    "efficiency": ".analysis.efficiency",
    "waste": ".analysis.waste",
    "visible_waste": ".analysis.visible_waste",
    "VisibleWaste": ".analysis.visible_waste",
    "improve": ".analysis.improve",
    "Improvement": ".analysis.improve",
    "duplicates": ".analysis.duplicates",
    "what_if_merge": ".analysis.merge",
    "suggest_merges": ".analysis.merge",
    "plan_bases": ".analysis.plan",
    "measure_sizes": ".analysis.layersizes",
    "estimate_wire_sizes": ".analysis.layersizes",
    "registry_wire_sizes": ".sources.wire",
    "reference_key": ".sources._refs",
    "scan": ".scan",
    "Limits": "._limits",
    "limits": "._limits",
    "secrets": ".analysis.secrets",
    "verify": ".analysis.verify",
    "offline_charts": ".charts.offline",
    "human_tables": ".frames",
}

__all__ = [
    "AnalysisError",
    "DigestMismatchError",
    "EngineError",
    "FormatError",
    "LayerlabError",
    "LimitError",
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


def _keep_public_functions() -> None:
    """``layerlab.scan`` is both a public function and the subpackage defining it;
    importing the subpackage makes Python set the package attribute of the same
    name to the module.  A data descriptor on this module's class keeps the name
    meaning the function (``from layerlab.scan.cache import …`` still reaches
    the modules, through ``sys.modules``)."""
    import sys
    import types

    def getter(_mod, name="scan"):
        return __getattr__(name)

    def setter(_mod, _value):
        pass  # the import system recording the subpackage: sys.modules keeps it

    cls = type("_LayerlabPackage", (types.ModuleType,), {"scan": property(getter, setter)})
    sys.modules[__name__].__class__ = cls


_keep_public_functions()
