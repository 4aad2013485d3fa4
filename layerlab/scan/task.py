"""The worker side of a fleet scan: one task reads one layer into the cache.

:func:`scan_layer` runs on a Dask worker or in a local pool process.  It gets
a :class:`LayerJob` (small and picklable: the cache URL, the layer's identity,
and either the image's picklable :class:`~layerlab.model.BlobProvider` or the
source string to load the image from again), streams the one blob through the
contents engine (:func:`layerlab.contents.tarscan.scan_blob`: decoding, tar
walk, content hashes, diff_id check), writes the table to the cache
(:meth:`layerlab.scan.cache.Cache.put_layer`, atomic) and returns a small dict
— never the table.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import FormatError, SourceError


@dataclass(frozen=True)
class LayerJob:
    """What a worker needs to scan one layer."""

    key: str                         # the plan's key: diff_id, else "digest:<blob digest>", else a position
    cache: str                       # the cache root (path or fsspec URL)
    source: str                      # the source string the image was loaded from
    image: str                       # the image's reference in that source's load
    position: int
    diff_id: str | None              # expected (None: unknown, computed by the scan)
    media_type: str | None
    label: str                       # for messages: "<image>: layer <pos> (<id>)"
    provider: Any = None             # a picklable BlobProvider, or None: load ``source`` again
    hash: str | None = "fast"
    storage_options: dict | None = None
    load_options: dict | None = None
    has_blobs: bool = True           # the source hands out layer contents (False: metadata only, never run)
    stale: tuple[str, ...] = ()      # files of this diff_id that failed verification: removed once rewritten


def scan_layer(job: LayerJob) -> dict:
    """Scan ``job``'s layer into the cache; returns ``{"key", "diff_id", "rows",
    "bytes", "path", "size", "read_bytes", "scanned"}`` (``size``: Docker's layer
    size; ``read_bytes``: the blob bytes read).  The worker lists nothing in the
    cache: the plan said the layer is missing (two scans planned at once both
    write it, with identical bytes under the same name)."""
    from ..contents.sizes import table_docker_size
    from ..contents.tarscan import scan_blob
    from .cache import Cache

    cache = Cache(job.cache, job.storage_options)
    provider = job.provider if job.provider is not None else _provider_from_source(job)
    scan = None
    blobs = provider.iter_blobs([job.position])
    try:
        for _poss, media_type, fileobj in blobs:
            # threads=1: a task is one unit of the scan's parallelism (a worker thread, a pool process)
            # and uses one core; a helper thread per task would oversubscribe the cores the tasks share
            scan = scan_blob(fileobj, label=job.label, expected_diff_id=job.diff_id, hash=job.hash,
                             media_type=media_type or job.media_type, verify=True, threads=1)
            break
    finally:
        blobs.close()
    if scan is None:
        raise FormatError(f"{job.label}: the source {job.source} did not provide this layer's blob; "
                          "the image is incomplete — push or save it again")
    meta = scan.metadata()
    meta["docker_size"] = str(table_docker_size(scan.table))
    written = cache.put_layer(scan.diff_id, scan.table, meta, job.stale)
    return {"key": job.key, "diff_id": written.diff_id, "rows": written.rows, "bytes": written.bytes,
            "path": written.path, "size": written.size, "read_bytes": scan.compressed_bytes, "scanned": True}


def _provider_from_source(job: LayerJob):
    """Load ``job.source`` again (on the worker) and return the image's blobs."""
    from ..sources import load_many

    for img in load_many(job.source, **(job.load_options or {})):
        if img.reference == job.image:
            if img.blobs is None:
                break
            return img.blobs
    raise SourceError(f"{job.label}: loading {job.source} again on the worker gave no image {job.image!r} "
                      "with layer contents; the source changed during the scan — scan again")


__all__ = ["LayerJob", "scan_layer"]
