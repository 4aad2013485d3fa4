"""Fleet scans: every distinct layer of many images read once (in parallel, on a
local process pool or a Dask cluster) into a shared content-addressed cache.

``layerlab.scan(...)`` is :func:`layerlab.scan.engine.scan`; the cache layout
and the DuckDB views over it are in :mod:`layerlab.scan.cache`; the worker side
in :mod:`layerlab.scan.task`.  Import the modules with
``from layerlab.scan.cache import register_views`` (``layerlab.scan`` as an
attribute of the ``layerlab`` package is the function).

``scan`` and ``Scan`` are imported on first use, so a worker process that runs
only :func:`layerlab.scan.task.scan_layer` never imports pandas.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .engine import Scan, scan

__all__ = ["Scan", "scan"]


def __getattr__(name: str):
    if name in __all__:
        from . import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'layerlab.scan' has no attribute {name!r}")
