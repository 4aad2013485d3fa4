"""The Parquet snapshot format and its writer (``Fleet.save``); the reader is
the ``snapshot:DIR`` source, :mod:`layerlab.sources.snapshot`.

A snapshot is a directory holding ``images.parquet``, ``layers.parquet`` and
``history.parquet`` (the frames of :mod:`layerlab.frames`), ``configs.parquet``
(one row per image: the image config JSON as text, repo tags/digests, the
reported size, warnings, per-layer annotations, all JSON text) and
``snapshot.json`` (``{"format": FORMAT, "images": n, "checksums": {relative
path: "sha256:…"}}``: the sha256 of every Parquet file of the snapshot, so a
damaged or altered file is refused on load instead of giving different
frames; snapshots written before checksums load with a warning that they are
unverified).  Layer blobs are not stored; per-layer file tables may be, in
``files/`` (the layout of the :mod:`layerlab.contents` cache, keyed by
diff_id; their checksums are listed too).  :func:`seal` (re)writes the
checksums of a snapshot directory.

This module sits at the frames' floor: it sees images only through their
attributes and the frame builders.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import pandas as pd

from . import frames

if TYPE_CHECKING:
    from .model import Image

FORMAT = 1
"""The format version written to ``snapshot.json``."""

IMAGES_FILE = "images.parquet"
LAYERS_FILE = "layers.parquet"
HISTORY_FILE = "history.parquet"
CONFIGS_FILE = "configs.parquet"
META_FILE = "snapshot.json"
FILES_DIR = "files"
CHECKSUMS = "checksums"


def save(images: Iterable[Image], directory) -> None:
    """Write ``images`` (a Fleet or any iterable of Images) as a snapshot in
    ``directory`` (created if missing; existing files of a snapshot are replaced)."""
    images = list(images)
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    frames.images_frame(images).to_parquet(d / IMAGES_FILE, index=False)
    frames.layers_frame(images).to_parquet(d / LAYERS_FILE, index=False)
    frames.history_frame(images).to_parquet(d / HISTORY_FILE, index=False)
    extra = pd.DataFrame(
        {
            "image": [i.reference for i in images],
            "config": [json.dumps(i.config, sort_keys=True) if i.config is not None else None for i in images],
            "repo_tags": [json.dumps(i.repo_tags) for i in images],
            "repo_digests": [json.dumps(i.repo_digests) for i in images],
            "reported_size": pd.array([i.reported_size for i in images], dtype="Int64"),
            "warnings": [json.dumps(i.warnings) for i in images],
            "annotations": [json.dumps([l.annotations for l in i.layer_list]) for i in images],
        }
    )
    extra.to_parquet(d / CONFIGS_FILE, index=False)
    seal(d, len(images))


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def checksums(directory) -> dict[str, str]:
    """relative path -> sha256 of every Parquet file of the snapshot in ``directory``."""
    d = Path(directory)
    names = [n for n in (IMAGES_FILE, LAYERS_FILE, HISTORY_FILE, CONFIGS_FILE) if (d / n).is_file()]
    if (d / FILES_DIR).is_dir():
        names += sorted(p.relative_to(d).as_posix() for p in (d / FILES_DIR).rglob("*.parquet") if p.is_file())
    return {n: file_sha256(d / n) for n in names}


def seal(directory, n_images: int | None = None) -> None:
    """Write ``snapshot.json`` with the format and the checksums of the snapshot's
    files as they are now (``n_images``: else counted from images.parquet)."""
    d = Path(directory)
    if n_images is None:
        import pyarrow.parquet as pq

        n_images = pq.ParquetFile(d / IMAGES_FILE).metadata.num_rows
    meta = {"format": FORMAT, "images": n_images, CHECKSUMS: checksums(d)}
    (d / META_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
