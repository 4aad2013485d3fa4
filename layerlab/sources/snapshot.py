"""``snapshot:DIR`` — a Parquet directory written by ``Fleet.save``.

The format (file names, version) and the writer are :mod:`layerlab.snapshot`;
this module reads it back.  Loading rebuilds the same model, so
every analysis runs on a snapshot as on the original source, without the
engine.  Layer blobs are not stored; per-layer file tables may be, in
``files/`` (the layout of the ``layerlab.contents`` cache, keyed by diff_id):
``Image.files()``, ``efficiency``, ``waste`` and ``what_if_merge`` then work
on the snapshot too (``scripts/save-sample-data`` writes them for ``data/``).
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..errors import FormatError, SourceError
from ..model import HistoryStep, Image, Layer
from ..snapshot import CONFIGS_FILE, FILES_DIR, FORMAT, HISTORY_FILE, IMAGES_FILE, LAYERS_FILE, META_FILE


def _v(x):
    """pandas NA/NaT → None, numpy scalars → Python."""
    if x is None or x is pd.NA or x is pd.NaT:
        return None
    try:
        if pd.isna(x):
            return None
    except (TypeError, ValueError):
        pass
    if hasattr(x, "item"):
        return x.item()
    return x


def _ts(x):
    x = _v(x)
    return None if x is None else pd.Timestamp(x).to_pydatetime()


def _check_format(d: Path, ref: str) -> None:
    """A snapshot of a newer format than this layerlab writes is refused (one
    without ``snapshot.json``, or an unreadable one, is read as format 1)."""
    try:
        version = json.loads((d / META_FILE).read_text()).get("format", FORMAT)
    except (OSError, ValueError, AttributeError):
        return
    if isinstance(version, int) and version > FORMAT:
        raise FormatError(f"snapshot:{ref}: format {version} is newer than this layerlab reads ({FORMAT}); "
                          "upgrade layerlab")


def load_many(ref: str, **_options):
    d = Path(ref)
    if not (d / IMAGES_FILE).exists():
        raise SourceError(f"snapshot:{ref}: no images.parquet there; write one with Fleet.save(DIR)")
    _check_format(d, ref)
    try:
        images = pd.read_parquet(d / IMAGES_FILE)
        layers = pd.read_parquet(d / LAYERS_FILE)
        history = pd.read_parquet(d / HISTORY_FILE)
        extra = pd.read_parquet(d / CONFIGS_FILE) if (d / CONFIGS_FILE).exists() else None
    except Exception as e:  # pyarrow raises several unrelated types
        raise FormatError(f"snapshot:{ref}: cannot read the Parquet files ({e}); re-create it with Fleet.save") from e
    extras = {r["image"]: r for r in extra.to_dict("records")} if extra is not None else {}
    lay_groups = {k: g.sort_values("position") for k, g in layers.groupby("image", sort=False)}
    his_groups = {k: g.sort_values("index") for k, g in history.groupby("image", sort=False)}
    out = []
    for row in images.to_dict("records"):
        key = row["image"]
        ex = extras.get(key, {})
        anns = json.loads(ex["annotations"]) if ex.get("annotations") else []
        lay = []
        g = lay_groups.get(key)
        if g is not None:
            for i, r in enumerate(g.to_dict("records")):
                lay.append(
                    Layer(
                        position=int(r["position"]),
                        diff_id=_v(r["diff_id"]),
                        digest=_v(r["digest"]),
                        media_type=_v(r["media_type"]),
                        size=_v(r["size"]),
                        compressed_size=_v(r["compressed_size"]),
                        annotations=anns[i] if i < len(anns) else {},
                    )
                )
        steps = []
        g = his_groups.get(key)
        if g is not None:
            for r in g.to_dict("records"):
                steps.append(
                    HistoryStep(
                        index=int(r["index"]),
                        created_by=_v(r["created_by"]),
                        created=_ts(r["created"]),
                        author=_v(r["author"]),
                        comment=_v(r["comment"]),
                        empty_layer=_v(r["empty_layer"]),
                        layer_position=_v(r["layer_position"]),
                        pairing=_v(r["pairing"]) or "unpaired",
                        truncated=bool(_v(r["truncated"])),
                        size=_v(r["size"]),
                        id=_v(r["step_id"]),
                    )
                )
        cfg = ex.get("config")
        img = Image(
            reference=key,
            source=_v(row["source"]) or "snapshot",
            layer_list=lay,
            history_list=steps,
            id=_v(row["id"]),
            manifest_digest=_v(row["manifest_digest"]),
            platform=_v(row["platform"]),
            created=_ts(row["created"]),
            config=json.loads(cfg) if cfg else None,
            repo_tags=json.loads(ex["repo_tags"]) if ex.get("repo_tags") else [],
            repo_digests=json.loads(ex["repo_digests"]) if ex.get("repo_digests") else [],
            reported_size=_v(ex.get("reported_size")),
            location=_v(row["location"]),
            warnings=json.loads(ex["warnings"]) if ex.get("warnings") else [],
            files_dir=str(d / FILES_DIR) if (d / FILES_DIR).is_dir() else None,
        )
        out.append(img)
    return out
