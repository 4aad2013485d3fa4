"""Fleet scans: every distinct layer of many images read once (in parallel, on a
local process pool or a Dask cluster) into a shared content-addressed cache.

``layerlab.scan(...)`` is :func:`layerlab.scan.engine.scan`; the cache layout
and the DuckDB views over it are in :mod:`layerlab.scan.cache`.  Import the
modules with ``from layerlab.scan.cache import register_views`` (``layerlab.scan``
as an attribute of the package is the function).
"""
from __future__ import annotations

from .engine import Scan, scan

__all__ = ["Scan", "scan"]
