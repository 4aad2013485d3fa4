"""The Parquet snapshot format and its writer (``Fleet.save``); the reader is
the ``snapshot:DIR`` source, :mod:`layerlab.sources.snapshot`.

A snapshot is a directory holding ``images.parquet``, ``layers.parquet`` and
``history.parquet`` (the frames of :mod:`layerlab.frames`), ``configs.parquet``
(one row per image: the image config JSON as text, repo tags/digests, the
reported size, warnings, per-layer annotations, all JSON text) and
``snapshot.json`` (``{"format": FORMAT, "images": n}``).  Layer blobs are not
stored; per-layer file tables may be, in ``files/`` (the layout of the
:mod:`layerlab.contents` cache, keyed by diff_id).

This module sits at the frames' floor: it sees images only through their
attributes and the frame builders.
"""
from __future__ import annotations

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
    (d / META_FILE).write_text(json.dumps({"format": FORMAT, "images": len(images)}) + "\n")
