"""A Dask worker preload for fleet scans: ``dask worker --preload layerlab.scan.preload``.

A scan task (:func:`layerlab.scan.task.scan_layer`) imports what it needs on
its worker when the first task arrives: the registry client (requests), the
layer decoders and hashes, pyarrow and pandas (``pa.array`` imports it).
That costs each worker process about 0.3 CPU-seconds, once (0.30–0.33 s
measured here).  A long-lived cluster pays it on its first scan; with this
preload each worker pays it when it starts, so the first scan runs at the
rate of the later ones.  For a local cluster:
``LocalCluster(preload=["layerlab.scan.preload"])``.

Dask imports this module on each worker and calls :func:`dask_setup`.
Importing the module itself imports nothing more.
"""
from __future__ import annotations

import importlib

#: What a scan task imports on its worker (tests/test_scan.py checks that a task
#: on a preloaded worker imports nothing new from these packages).
MODULES = (
    "layerlab.scan.task",
    "layerlab.scan.cache",
    "layerlab.contents.tarscan",
    "layerlab.contents.sizes",
    "layerlab.sources",
    "layerlab.sources.remote",
    "layerlab.sources.oci",
    "layerlab.sources.archive",
    "requests",
    "xxhash",
    "zstandard",
    "numpy",
    "pandas",                 # pyarrow imports it on its first pa.array()
    "pyarrow.compute",
    "pyarrow.parquet",
    "pyarrow.pandas_compat",
    "pyarrow.vendored.version",
    "fsspec.implementations.local",
    "fsspec.implementations.chained",
)


def dask_setup(worker=None) -> None:
    """Import :data:`MODULES` (Dask's preload hook; ``worker`` is unused)."""
    for name in MODULES:
        importlib.import_module(name)


__all__ = ["MODULES", "dask_setup"]
