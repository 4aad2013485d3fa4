"""Small helpers for the fleet-scale notebook (07): scan a fleet into a cache
and say what happened, in the shape the notebook's cells use.

Kept apart from :mod:`.queries` so that the scan engine may import the
queries (``Scan.files_sql``/``Scan.dedup``) without an import cycle.
"""
from __future__ import annotations

import os
from pathlib import Path


def scan_to_cache(sources, cache, *, workers: int | None = None, progress: bool = False) -> dict:
    """Scan ``sources`` into the scan cache at ``cache`` (each distinct layer
    read once; layers already cached are not read again) and say what
    happened: ``{"root": cache, "images": n, "without_contents": [references],
    "failures": frame or None}``.  ``root`` is what :func:`files_sql` and
    :func:`dedup` take.  Uses ``layerlab.scan`` (``workers``: its worker
    processes; None: its default)."""
    try:
        from .engine import scan
    except ImportError:  # FALLBACK: the scan engine is not merged yet
        return _fallback_scan(sources, cache, progress=progress)
    kwargs = {"workers": workers} if workers else {}
    result = scan(sources, cache=cache, progress=progress, **kwargs)
    images = result.images()
    return {"root": cache, "images": len(images), "without_contents": [], "failures": result.failures}


# --- FALLBACK (until layerlab.scan.engine exists) -----------------------------------------
# Loads the fleet in this process and writes the documented layout with plain
# pyarrow; no parallelism, no retries, no verification of existing files.
# Remove once layerlab.scan.engine.scan is merged.
def _fallback_scan(sources, cache, *, progress: bool = False) -> dict:
    import uuid
    from datetime import datetime, timezone

    import pyarrow as pa
    import pyarrow.parquet as pq
    import xxhash

    from ..contents.tarscan import LAYER_TABLE_SCHEMA
    from ..sources import load_many

    root = Path(cache)
    schema = pa.schema([pa.field("diff_id", pa.string()), *LAYER_TABLE_SCHEMA])
    scan_id = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"
    have = {p.name.split(".", 1)[0] for p in (root / "files").glob("*.parquet")}
    layer_rows, image_rows, without = [], [], []
    for src in [sources] if isinstance(sources, (str, os.PathLike)) else list(sources):
        fleet = load_many(src, progress=progress)
        for img in fleet:
            if not img.has_contents:
                without.append(img.reference)
                continue
            todo = {l.diff_id for l in img.layer_list if l.diff_id and l.diff_id.split(":")[-1] not in have}
            if todo:
                files = img.files(cache_dir=False, progress=progress)
                for diff_id, rows in files.groupby("diff_id", sort=False):
                    if diff_id not in todo:
                        continue
                    rows = rows.loc[rows["position"] == rows["position"].iloc[0]]
                    table = pa.Table.from_pandas(rows[schema.names], schema=schema, preserve_index=False)
                    sink = pa.BufferOutputStream()
                    pq.write_table(table.replace_schema_metadata({"diff_id": diff_id}), sink, compression="zstd")
                    data = sink.getvalue().to_pybytes()
                    hexpart = diff_id.split(":")[-1]
                    _atomic_write(root / "files" / f"{hexpart}.{len(rows)}.{xxhash.xxh64(data).hexdigest()}.parquet",
                                  data)
                    have.add(hexpart)
            layer_rows.append(img.layers().assign(source=str(src), scan_id=scan_id))
            image_rows.append(img.images().assign(scan_source=str(src), scan_id=scan_id))
    import pandas as pd

    for kind, rows in (("layers", layer_rows), ("images", image_rows)):
        if rows:
            sink = pa.BufferOutputStream()
            pq.write_table(pa.Table.from_pandas(pd.concat(rows, ignore_index=True), preserve_index=False), sink)
            _atomic_write(root / kind / f"{scan_id}.parquet", sink.getvalue().to_pybytes())
    return {"root": str(root), "images": len(image_rows), "without_contents": without, "failures": None}


def _atomic_write(path: Path, data: bytes) -> None:
    import uuid

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{uuid.uuid4().hex}"
    tmp.write_bytes(data)
    os.replace(tmp, path)
# --- end of FALLBACK ----------------------------------------------------------------------


__all__ = ["scan_to_cache"]
