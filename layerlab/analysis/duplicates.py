"""Identical file content stored more than once, across layers and images.

Docker and registries store each distinct layer (diff_id) once, however many
images use it; inside those layers, the same file content is often stored again
and again — at other paths, in other layers, in other images (the Docker Hub
study found only ~3% of files unique).  A content-addressed *file* store keeps
each content once; ``duplicates()`` measures what that would save.

A stored copy is a regular file (type ``file``, size > 0) in a distinct layer;
two copies are identical when their content hash *and* size match (hard links
are not copies: a tar stores their content once).

``duplicates(x)`` — one row per content stored 2+ times, most bytes saved first
    ==============  =======  ========================================================
    column          dtype    meaning
    ==============  =======  ========================================================
    hash            string   the content hash (``xxh128:…`` / ``sha256:…``)
    size            Int64    bytes of one copy
    copies          Int64    stored copies (rows over distinct layers)
    layers          Int64    distinct layers holding a copy
    images          Int64    images that contain one of those layers
    paths           Int64    distinct paths the content appears at
    example_path    string   one of them (the shortest)
    scope           string   ``same layer``, ``same image`` or ``across images``
    saved_bytes     Int64    (copies - 1) × size: what a content-addressed store saves
    ==============  =======  ========================================================

``frame.attrs["summary"]``: ``layers`` (distinct), ``files`` (stored copies),
``unique_contents``, ``unique_files`` (contents stored exactly once),
``unique_files_fraction``, ``stored_bytes``, ``content_addressed_bytes``,
``saved_bytes``, ``saved_fraction``, ``hash_algorithm``.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from ..errors import AnalysisError

DUPLICATE_COLUMNS: dict[str, str] = {
    "hash": "string",
    "size": "Int64",
    "copies": "Int64",
    "layers": "Int64",
    "images": "Int64",
    "paths": "Int64",
    "example_path": "string",
    "scope": "string",
    "saved_bytes": "Int64",
}


def _files(data: Any, scan: dict) -> pd.DataFrame:
    from ..model import Fleet, Image

    if isinstance(data, pd.DataFrame):
        return data
    if scan["hash"] is None:
        raise AnalysisError("duplicates(): needs content hashes; pass hash='fast' or 'sha256', not None")
    if isinstance(data, Image):
        return data.files(**scan)
    if isinstance(data, Fleet):
        return data.files(**scan)
    if isinstance(data, (list, tuple)) and all(isinstance(x, Image) for x in data):
        return Fleet(list(data)).files(**scan)
    raise AnalysisError(
        f"duplicates(): data is a {type(data).__name__}; pass a layerlab.Image, a Fleet, a list of "
        "Images, or a files frame (Image.files()/Fleet.files())"
    )


def duplicates(
    data: Any,
    *,
    hash: str | None = "fast",
    cache_dir=None,
    progress: bool = True,
    verify: bool = True,
    workers: int | None = None,
) -> pd.DataFrame:
    """Identical content (same hash and size) stored more than once; see the module doc.

    ``data``: an Image, a Fleet, a list of Images, or a files frame
    (``Image.files()``/``Fleet.files()``, columns ``image``, ``diff_id``,
    ``position``, ``path``, ``type``, ``size``, ``hash``).  The other
    parameters are those of :meth:`layerlab.Image.files`, used when the files
    are read here (ignored for a frame): ``hash`` the content hash (``"fast"``
    or ``"sha256"``; ``None`` is refused, copies are found by hash),
    ``cache_dir`` the per-layer Parquet cache (``False``: none), ``progress``
    a progress bar, ``verify`` check each layer against its diff_id,
    ``workers`` reader processes (``None``: automatic).
    """
    scan = dict(hash=hash, cache_dir=cache_dir, progress=progress, verify=verify, workers=workers)
    files = _files(data, scan)
    need = {"image", "diff_id", "position", "path", "type", "size", "hash"}
    missing = need - set(files.columns)
    if missing:
        raise AnalysisError(f"duplicates(): the files frame lacks column(s) {sorted(missing)}")
    # images per layer (all rows), then one copy of each distinct layer
    key = files["diff_id"].fillna(files["image"] + "#" + files["position"].astype("string"))
    images_per_layer = (
        pd.DataFrame({"layer": key, "image": files["image"]}).drop_duplicates().groupby("layer")["image"].agg(set)
    )
    first = pd.DataFrame({"layer": key, "image": files["image"], "position": files["position"]}).drop_duplicates(
        "layer"
    ).set_index("layer")
    keep = (files["image"] == key.map(first["image"])) & (files["position"] == key.map(first["position"]))
    keep = keep.fillna(False).astype(bool)
    f = files.loc[keep & (files["type"] == "file") & (files["size"] > 0)]
    if f["hash"].isna().any():
        raise AnalysisError("duplicates(): some regular files have no hash; read the files with hash='fast' or 'sha256'")
    f = f.assign(layer=key[f.index])
    algos = sorted({h.split(":", 1)[0] for h in f["hash"].dropna().unique()[:1000]})
    if len(algos) > 1:
        raise AnalysisError(f"duplicates(): the frame mixes hash algorithms {algos}; read all with the same hash=")

    g = f.groupby(["hash", "size"], sort=False)
    agg = g.agg(
        copies=("path", "size"),
        layers=("layer", "nunique"),
        paths=("path", "nunique"),
        example_path=("path", lambda s: min(s, key=lambda p: (len(p), p))),
    ).reset_index()

    stored = int(f["size"].sum())
    n_files = int(len(f))
    unique_contents = int(len(agg))
    unique_files = int((agg["copies"] == 1).sum())
    dup = agg.loc[agg["copies"] > 1].copy()
    content_addressed = int(agg["size"].sum())

    if len(dup):
        sub = f.loc[f.set_index(["hash", "size"]).index.isin(dup.set_index(["hash", "size"]).index)]
        img_sets = sub.groupby(["hash", "size"], sort=False)["layer"].agg(
            lambda ls: len(set().union(*(images_per_layer[x] for x in set(ls))))
        )
        dup["images"] = [int(img_sets.loc[(h, s)]) for h, s in zip(dup["hash"], dup["size"])]
        dup["scope"] = [
            "same layer" if ly == 1 else ("same image" if im == 1 else "across images")
            for ly, im in zip(dup["layers"], dup["images"])
        ]
    else:
        dup["images"] = pd.Series(dtype="Int64")
        dup["scope"] = pd.Series(dtype="string")
    dup["saved_bytes"] = (dup["copies"] - 1) * dup["size"]
    dup = dup.sort_values(["saved_bytes", "hash"], ascending=[False, True]).reset_index(drop=True)
    out = pd.DataFrame({c: dup[c] for c in DUPLICATE_COLUMNS}) if len(dup) else pd.DataFrame(
        {c: [] for c in DUPLICATE_COLUMNS}
    )
    for c, t in DUPLICATE_COLUMNS.items():
        out[c] = out[c].astype(t)
    saved = stored - content_addressed
    out.attrs["summary"] = {
        "layers": int(len(first)),
        "files": n_files,
        "unique_contents": unique_contents,
        "unique_files": unique_files,
        "unique_files_fraction": unique_files / n_files if n_files else 1.0,
        "stored_bytes": stored,
        "content_addressed_bytes": content_addressed,
        "saved_bytes": saved,
        "saved_fraction": saved / stored if stored else 0.0,
        "hash_algorithm": algos[0] if algos else None,
    }
    return out
