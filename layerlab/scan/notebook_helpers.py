"""Small helpers for the fleet-scale notebook (07): scan a fleet into a cache
and say what happened, in the shape the notebook's cells use.

Kept apart from :mod:`.queries` so that the scan engine may import the
queries (``Scan.files_sql``/``Scan.dedup``) without an import cycle.
"""
from __future__ import annotations



def scan_to_cache(sources, cache, *, workers: int | None = None, progress: bool = False) -> dict:
    """Scan ``sources`` into the scan cache at ``cache`` (each distinct layer
    read once; layers already cached are not read again) and say what
    happened: ``{"root": cache, "images": n, "without_contents": [references],
    "failures": frame or None}``.  ``root`` is what :func:`files_sql` and
    :func:`dedup` take.  Uses ``layerlab.scan`` (``workers``: its worker
    processes; None: its default)."""
    from .engine import scan

    kwargs = {"workers": workers} if workers else {}
    result = scan(sources, cache=cache, progress=progress, **kwargs)
    images = result.images()
    return {"root": cache, "images": len(images), "without_contents": [], "failures": result.failures}




__all__ = ["scan_to_cache"]
