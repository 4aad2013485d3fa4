"""The environment of layerlab's helper interpreters (``python -m layerlab.contents._worker``
and ``._indexworker``)."""
from __future__ import annotations

import os
from pathlib import Path

_SINGLE_THREADED = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def worker_env() -> dict[str, str]:
    """This environment, with this copy of layerlab importable first and the
    numerical libraries single-threaded: the workers do no linear algebra,
    and OpenBLAS's thread pool, started when numpy is imported, spins for
    about 0.08 s of a core before it sleeps — time taken from the scan on a
    two-core machine."""
    env = dict(os.environ)
    pkg_root = str(Path(__file__).resolve().parents[3])  # the directory holding this layerlab/
    env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    for var in _SINGLE_THREADED:
        env[var] = "1"
    return env
