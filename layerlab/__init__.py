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
]
