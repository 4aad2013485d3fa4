"""Fleet totals (bytes stored with and without sharing) and pull costs.

Storage: a fleet's images hold the same layers many times over; how many
bytes a store keeps depends on what it deduplicates on — nothing (every tag
kept whole), whole images (by Image ID), Docker's chain ids (the engine's
local store), diff_ids (same content anywhere), digests (a registry), or
file content (a content-addressed file store).

Transfer: a host pulling an image downloads only the layers it lacks; the
article's layered fleets (OS -> tools -> libraries -> app) win because the
bases are already there.  ``pull_cost`` and ``pull_table`` count those bytes.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import AnalysisError
from ._common import as_frame, int_sizes, keys_list, natural_size, require
from .overlap import prepare

# accounting name -> (key columns, description)
ACCOUNTINGS: dict[str, tuple[list[str] | None, str]] = {
    "references": (None, "every image reference stores all its layers (no sharing at all)"),
    "images": (None, "each distinct image (by image id) stores all its layers"),
    "chain_id": (["chain_id"], "each distinct chain id once: the Docker Engine's local store"),
    "diff_id": (["diff_id"], "each distinct uncompressed layer once, at any position"),
    "digest": (["digest"], "each distinct blob once: a registry"),
    "content": (["hash", "size"], "each distinct file content once: a content-addressed file store"),
}
MEASURES = ("size", "compressed_size")


def _with_ids(data: Any) -> tuple[pd.DataFrame, str | None]:
    """A layers frame; for a Fleet/Image, with the image id joined in as ``image_id``."""
    from ..model import Fleet, Image

    if isinstance(data, (Fleet, Image)):
        layers = data.layers()
        ids = data.images()[["image", "id"]].rename(columns={"id": "image_id"})
        return layers.merge(ids, on="image", how="left"), "image_id"
    return as_frame(data, fn="fleet_totals"), None


def fleet_totals(
    data: Any,
    image: str = "image",
    image_id: str | None = None,
    *,
    files: pd.DataFrame | None = None,
    images: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Bytes a fleet stores with and without sharing, one row per (accounting, measure).

    ``fleet_totals(data=fleet.layers(), image_id="image_id")``; given a Fleet
    the image ids are joined in for you.  ``image_id`` names the column that
    says which rows are the same image under another name (tags of one
    Image ID); without it each ``image`` is its own image.  ``files`` (a
    files frame from ``img.files()``: ``image``, ``size``, ``hash``) adds the
    content-level row.

    Accountings (``accounting`` column), each measured in ``size``
    (uncompressed) and ``compressed_size`` (blobs), where the frame knows them:
    ``references`` (no sharing), ``images`` (distinct images), ``chain_id``,
    ``diff_id``, ``digest``, ``content`` (``size`` only; needs ``files``).

    ====================  =========  =================================================
    column                dtype      meaning
    ====================  =========  =================================================
    accounting            string     what is stored once (see above)
    measure               string     ``size`` or ``compressed_size``
    stored_bytes          Int64      bytes stored (null: no size or no key known)
    units                 Int64      things stored (layers, or files for content)
    unknown_key_rows      Int64      rows without the key: counted as distinct
    unknown_size_units    Int64      stored units of unknown size (counted 0)
    complete              boolean    every row had the key and every unit a size
    saved_bytes           Int64      the ``images`` row's stored_bytes minus these
    ratio                 Float64    stored_bytes / the ``images`` row's stored_bytes
    description           string     the accounting in words
    ====================  =========  =================================================

    On the docker-library repo-info record of 2018 (linux/amd64), the
    ``images``/``compressed_size`` row is 171.25 GB and ``digest`` 63.39 GB.
    """
    if image_id is None:
        df, image_id = _with_ids(data)
    else:
        df = as_frame(data, fn="fleet_totals")
    require(df, [image, image_id], fn="fleet_totals")
    if images is not None:
        df = df[df[image].isin(list(images))]
    df = df[df[image].notna()]
    idcol = image_id or image
    ident = df[idcol].astype("string").fillna(df[image].astype("string"))
    # rows of distinct images: the first reference of each image id
    first_ref = df[image].astype("string").groupby(ident.to_numpy(), sort=False).transform("first")
    distinct = df[(df[image].astype("string") == first_ref).to_numpy()]

    rows = []
    for acc, (kcols, desc) in ACCOUNTINGS.items():
        for measure in MEASURES:
            if acc == "content":
                if files is None or measure != "size":
                    continue
                src = as_frame(files, fn="fleet_totals")
                require(src, ["hash", "size"], fn="fleet_totals", hint="files= needs a files frame (img.files()).")
                if "type" in src.columns:
                    src = src[(src["type"] == "file") | src["type"].isna()]
            else:
                if measure not in df.columns:
                    continue
                src = df if acc == "references" else distinct
            rows.append(_total(src, acc, kcols, measure, desc))
    out = pd.DataFrame(rows)
    out = out.astype(
        {
            "accounting": "string",
            "measure": "string",
            "stored_bytes": "Int64",
            "units": "Int64",
            "unknown_key_rows": "Int64",
            "unknown_size_units": "Int64",
            "complete": "boolean",
            "description": "string",
        }
    )
    base = out[out["accounting"] == "images"].set_index("measure")["stored_bytes"]
    ref = out["measure"].map(base).astype("Int64")
    out["saved_bytes"] = ref - out["stored_bytes"]
    out["ratio"] = (out["stored_bytes"].astype("Float64") / ref.astype("Float64")).where(ref > 0)
    cols = ["accounting", "measure", "stored_bytes", "units", "unknown_key_rows", "unknown_size_units", "complete",
            "saved_bytes", "ratio", "description"]
    return out[cols].reset_index(drop=True)


def _total(src: pd.DataFrame, acc: str, kcols: list[str] | None, measure: str, desc: str) -> dict:
    sizes, null = int_sizes(src[measure])
    if kcols is None:
        n_unknown = int(null.sum())
        return {
            "accounting": acc, "measure": measure,
            "stored_bytes": None if n_unknown == len(src) and len(src) else int(sizes.sum()),
            "units": len(src), "unknown_key_rows": 0, "unknown_size_units": n_unknown,
            "complete": n_unknown == 0, "description": desc,
        }
    present = [c for c in kcols if c in src.columns]
    if len(present) < len(kcols):
        return {"accounting": acc, "measure": measure, "stored_bytes": None, "units": 0,
                "unknown_key_rows": len(src), "unknown_size_units": 0, "complete": False, "description": desc}
    keynull = src[kcols].isna().any(axis=1).to_numpy()
    if keynull.all():
        return {"accounting": acc, "measure": measure, "stored_bytes": None, "units": 0,
                "unknown_key_rows": int(keynull.sum()), "unknown_size_units": 0, "complete": False,
                "description": desc}
    known = src[~keynull]
    # per distinct key: its size (largest known among its rows)
    g = pd.DataFrame({"s": pd.to_numeric(known[measure], errors="coerce")}, index=known.index)
    keys = [known[c] for c in kcols]
    per_key = g.groupby(keys, sort=False, dropna=False)["s"].max()
    unk_units = int(per_key.isna().sum())
    n_unknown_rows = int(keynull.sum())
    extra = int(sizes[keynull].sum())
    extra_unknown = int(null[keynull].sum())
    total_unknown = unk_units + extra_unknown
    units = len(per_key) + n_unknown_rows
    return {
        "accounting": acc, "measure": measure,
        "stored_bytes": None if total_unknown == units else int(per_key.fillna(0).sum()) + extra,
        "units": units, "unknown_key_rows": n_unknown_rows, "unknown_size_units": total_unknown,
        "complete": n_unknown_rows == 0 and total_unknown == 0, "description": desc,
    }


# ---------------------------------------------------------------------------
def _key_sets(coded):
    """Per image code: the sorted array of its key codes."""
    order = np.argsort(coded.img, kind="stable")
    img_sorted = coded.img[order]
    bounds = np.searchsorted(img_sorted, np.arange(len(coded.image_names) + 1))
    keys = coded.key[order]
    return [keys[bounds[i]:bounds[i + 1]] for i in range(len(coded.image_names))]


def _code_of(coded, name: str, fn: str) -> int:
    loc = coded.image_names.get_indexer([name])[0]
    if loc < 0:
        sample = [str(x) for x in coded.image_names[:5]]
        raise AnalysisError(f"{fn}(): image {name!r} is not in the frame (it has e.g. {sample!r})")
    return int(loc)


def pull_cost(
    data: Any,
    target: str,
    *,
    present: Sequence[str] = (),
    key: str | Sequence[str] = "digest",
    size: str | None = None,
    image: str = "image",
) -> int:
    """Bytes a host must download to pull the image ``target`` when the
    images in ``present`` are already on it.

    ``pull_cost(data=fleet.layers(), target="app2", present=["app1"])``.
    ``target`` and ``present`` are values of the ``image`` column (the
    column's name, as in every other analysis).  A layer is skipped when an
    image on the host has the same ``key`` (``digest``: the blob, what
    ``docker pull`` checks; ``diff_id`` or ``chain_id`` for locally built
    fleets that have no digests).  ``size`` names the byte column and
    defaults to ``compressed_size`` for ``digest`` (bytes on the wire),
    ``size`` otherwise.  A layer whose key is unknown is always downloaded.
    Raises AnalysisError when a layer to download has no known size.
    """
    t = pull_table(data, [target], present={target: list(present)}, key=key, size=size, image=image)
    v = t["pull_bytes"].iloc[0]
    if v is pd.NA or pd.isna(v):
        raise AnalysisError(
            f"pull_cost(): {int(t['unknown_layers'].iloc[0])} layer(s) of {target!r} to download have no known "
            f"{natural_size(keys_list(key), size)!r}; choose size= (e.g. 'size' or 'compressed_size') that the frame knows"
        )
    return int(v)


def pull_table(
    data: Any,
    images: Sequence[str] | None = None,
    present: str | Sequence[str] | Mapping[str, Sequence[str]] | None = None,
    key: str | Sequence[str] = "digest",
    size: str | None = None,
    image: str = "image",
) -> pd.DataFrame:
    """What each image costs to pull, given what the host already holds.

    ``present`` says what is on the host before each pull:

    * ``None`` / ``"none"`` — an empty host (a cold pull);
    * ``"previous"`` — the images listed before it in ``images`` (pulling
      them in turn onto one host);
    * ``"others"`` — every other image in the frame;
    * a list of images — those, for every image;
    * a dict image -> list of images.

    ``data`` may be a dict of name -> frame/Fleet (e.g. ``{"naive": ...,
    "layered": ...}``) to compare fleets side by side: the rows get a
    ``fleet`` column, and ``images``/``present`` (when lists or dicts) are
    looked up per fleet, skipping names a fleet lacks.

    ====================  =========  =================================================
    column                dtype      meaning
    ====================  =========  =================================================
    fleet                 string     (only for a dict ``data``) which fleet
    image                 string     the image pulled
    present               string     the images on the host before, ", "-joined
    layers                Int64      the image's distinct layers (by key)
    pull_layers           Int64      layers to download
    image_bytes           Int64      bytes of all its distinct layers (a cold pull)
    pull_bytes            Int64      bytes to download (null if one is unknown)
    present_bytes         Int64      image_bytes - pull_bytes: found on the host
    saved_fraction        Float64    present_bytes / image_bytes
    unknown_layers        Int64      layers to download whose size is unknown
    ====================  =========  =================================================
    """
    if isinstance(data, Mapping):
        frames = []
        for name, d in data.items():
            sub_images = images
            names = set(as_frame(d, fn="pull_table")[image].dropna().astype(str))
            if images is not None:
                sub_images = [i for i in images if i in names]
            sub_present = present
            if isinstance(present, Mapping):
                sub_present = {k: [p for p in v if p in names] for k, v in present.items() if k in names}
            elif present is not None and not isinstance(present, str):
                sub_present = [p for p in present if p in names]
            t = pull_table(d, sub_images, sub_present, key=key, size=size, image=image)
            t.insert(0, "fleet", pd.array([str(name)] * len(t), dtype="string"))
            frames.append(t)
        return pd.concat(frames, ignore_index=True)

    coded, kcols, size_col = prepare(data, key, size, image, None, fn="pull_table")
    all_names = [str(x) for x in coded.image_names]
    if images is None:
        images = all_names
    images = list(images)
    sets = _key_sets(coded)
    row_sizes, row_null = int_sizes(coded.frame[size_col])
    rows = []
    for name in images:
        code = _code_of(coded, name, "pull_table")
        if present is None or present == "none":
            before: list[str] = []
        elif present == "previous":
            before = [n for n in images[: images.index(name)]]
        elif present == "others":
            before = [n for n in all_names if n != name]
        elif isinstance(present, str):
            raise AnalysisError(
                f"pull_table(): present={present!r}; use None, 'previous', 'others', a list of images or a dict"
            )
        elif isinstance(present, Mapping):
            before = list(present.get(name, ()))
        else:
            before = [p for p in present if p != name]
        have = (
            np.unique(np.concatenate([sets[_code_of(coded, p, "pull_table")] for p in before]))
            if before else np.zeros(0, dtype=np.int64)
        )
        mine = sets[code]
        need = mine[~np.isin(mine, have)]
        nk_rows = (coded.row_img == code) & (coded.row_key < 0)
        img_bytes = int(coded.key_size[mine].sum()) + int(row_sizes[nk_rows].sum())
        pull = int(coded.key_size[need].sum()) + int(row_sizes[nk_rows].sum())
        unknown = int(coded.key_unknown[need].sum()) + int(row_null[nk_rows].sum())
        mine_unknown = int(coded.key_unknown[mine].sum()) + int(row_null[nk_rows].sum())
        n_layers = len(mine) + int(nk_rows.sum())
        n_pull = len(need) + int(nk_rows.sum())
        rows.append(
            {
                "image": name,
                "present": ", ".join(before),
                "layers": n_layers,
                "pull_layers": n_pull,
                "image_bytes": None if mine_unknown else img_bytes,
                "pull_bytes": None if unknown else pull,
                "present_bytes": None if unknown else img_bytes - pull,
                "unknown_layers": unknown,
            }
        )
    out = pd.DataFrame(rows, columns=["image", "present", "layers", "pull_layers", "image_bytes", "pull_bytes",
                                      "present_bytes", "unknown_layers"])
    out = out.astype({"image": "string", "present": "string", "layers": "Int64", "pull_layers": "Int64",
                      "image_bytes": "Int64", "pull_bytes": "Int64", "present_bytes": "Int64",
                      "unknown_layers": "Int64"})
    out.insert(
        len(out.columns) - 1,
        "saved_fraction",
        (out["present_bytes"].astype("Float64") / out["image_bytes"].astype("Float64")).where(out["image_bytes"] > 0),
    )
    return out
