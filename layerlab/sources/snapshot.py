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

import os
import stat
from pathlib import Path

import pandas as pd

from ..errors import FormatError, SourceError
from ..model import PAIRING_RENAMED, PAIRING_UNPAIRED, HistoryStep, Image, Layer
from ..snapshot import (CHECKSUMS, CONFIGS_FILE, FILES_DIR, FORMAT, HISTORY_FILE, IMAGES_FILE, LAYERS_FILE,
                        META_FILE, file_sha256)
from ._digest import parse_json
from ._snapshot_schema import check_tables


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


def _json(text, where: str, kind: type):
    """A JSON cell of configs.parquet: None when empty, else a ``kind`` (size
    and nesting bounded: FormatError naming the file, column and image)."""
    text = _v(text)
    if not text:
        return None
    if not isinstance(text, str) or len(text) > _CONFIG_LIMIT:
        raise FormatError(f"{where} is not JSON text of at most {_CONFIG_LIMIT} bytes; the snapshot is damaged")
    doc = parse_json(text.encode("utf-8", "surrogatepass"), where)
    if not isinstance(doc, kind):
        raise FormatError(f"{where} is not a JSON {'object' if kind is dict else 'array'}; the snapshot is damaged")
    return doc


def _pairing(x) -> str:
    """A history row's pairing; snapshots written before the rename keep the
    old values (``empty_layer`` → ``config``, ``empty`` → ``no_layer``)."""
    x = _v(x) or PAIRING_UNPAIRED
    return PAIRING_RENAMED.get(x, x)


def _ts(x):
    x = _v(x)
    return None if x is None else pd.Timestamp(x).to_pydatetime()


_META_LIMIT = 16 << 20      # snapshot.json (checksums of every file table included)
_CONFIG_LIMIT = 64 << 20    # one image config, as the archive sources allow


def _check_meta(d: Path, ref: str) -> list[str]:
    """Check ``snapshot.json``: a newer format is refused; the listed checksums
    must match the files (FormatError naming the file).  Returns the warnings
    for a snapshot written without checksums (older layerlab)."""
    meta = d / META_FILE
    unverified = [f"snapshot:{ref} carries no checksums (written by an older layerlab): its files are not "
                  "verified; Fleet.save it again to add them"]
    try:
        if meta.stat().st_size > _META_LIMIT:
            raise FormatError(f"snapshot:{ref}: {META_FILE} is larger than {_META_LIMIT} bytes; it is not a snapshot's")
        raw = meta.read_bytes()
    except FileNotFoundError:
        return unverified
    except OSError as e:
        raise FormatError(f"snapshot:{ref}: cannot read {META_FILE} ({e.strerror or e})") from e
    doc = parse_json(raw, f"snapshot:{ref}: {META_FILE}")
    if not isinstance(doc, dict):
        raise FormatError(f"snapshot:{ref}: {META_FILE} is not a JSON object; the snapshot is damaged")
    version = doc.get("format", FORMAT)
    if isinstance(version, int) and version > FORMAT:
        raise FormatError(f"snapshot:{ref}: format {version} is newer than this layerlab reads ({FORMAT}); "
                          "upgrade layerlab")
    sums = doc.get(CHECKSUMS)
    if sums is None:
        return unverified
    tables = [n for n in (IMAGES_FILE, LAYERS_FILE, HISTORY_FILE, CONFIGS_FILE) if (d / n).exists()]
    if not isinstance(sums, dict) or any(n not in sums for n in tables):
        raise FormatError(f"snapshot:{ref}: {META_FILE} does not list the checksums of every table; "
                          "the snapshot is damaged")
    real = os.path.realpath(d)
    for name, want in sums.items():
        path = d / str(name)
        if str(name).startswith(FILES_DIR + "/") and not path.exists():
            continue  # file tables are optional (a copy without files/ reads metadata only)
        try:
            inside = os.path.realpath(path).startswith(real + os.sep)
            if not inside or not stat.S_ISREG(os.stat(path).st_mode):
                raise FormatError(f"snapshot:{ref}: {META_FILE} names {str(name)[:200]!r}, which is not a file "
                                  "inside the snapshot; refusing it")
            got = file_sha256(path)
        except OSError as e:
            raise FormatError(f"snapshot:{ref}: {name} is listed in {META_FILE} but cannot be read "
                              f"({e.strerror or e}); the snapshot is incomplete") from e
        if got != want:
            raise FormatError(f"snapshot:{ref}: {name} does not match its checksum in {META_FILE} "
                              f"(expected {want}, got {got}); the file was damaged or changed after it was saved")
    return []


def load_many(ref: str, **_options):
    d = Path(ref)
    if not (d / IMAGES_FILE).exists():
        raise SourceError(f"snapshot:{ref}: no images.parquet there; write one with Fleet.save(DIR)")
    notes = _check_meta(d, ref)
    tables: dict = {}
    for name in (IMAGES_FILE, LAYERS_FILE, HISTORY_FILE, CONFIGS_FILE):
        if name == CONFIGS_FILE and not (d / name).exists():
            tables[name] = None
            continue
        try:
            tables[name] = pd.read_parquet(d / name)
        except Exception as e:  # pyarrow raises several unrelated types
            raise FormatError(f"snapshot:{ref}: cannot read {name} ({e}); re-create it with Fleet.save") from e
    check_tables(tables, f"snapshot:{ref}")
    images, layers, history, extra = (tables[n] for n in (IMAGES_FILE, LAYERS_FILE, HISTORY_FILE, CONFIGS_FILE))
    extras = {r["image"]: r for r in extra.to_dict("records")} if extra is not None else {}
    lay_groups = {k: g.sort_values("position") for k, g in layers.groupby("image", sort=False)}
    his_groups = {k: g.sort_values("index") for k, g in history.groupby("image", sort=False)}
    out = []
    for row in images.to_dict("records"):
        key = row["image"]
        ex = extras.get(key, {})
        where = f"snapshot:{ref}: {CONFIGS_FILE} ({key})"
        anns = _json(ex.get("annotations"), f"{where} annotations", list) or []
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
                        compressed_size_estimate=_v(r.get("compressed_size_estimate")),
                        annotations=anns[i] if i < len(anns) and isinstance(anns[i], dict) else {},
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
                        pairing=_pairing(r["pairing"]),
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
            config=_json(cfg, f"{where} config", dict),
            repo_tags=_json(ex.get("repo_tags"), f"{where} repo_tags", list) or [],
            repo_digests=_json(ex.get("repo_digests"), f"{where} repo_digests", list) or [],
            reported_size=_v(ex.get("reported_size")),
            location=_v(row["location"]),
            warnings=(_json(ex.get("warnings"), f"{where} warnings", list) or []) + notes,
            files_dir=str(d / FILES_DIR) if (d / FILES_DIR).is_dir() else None,
        )
        out.append(img)
    return out
