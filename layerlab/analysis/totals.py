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
from ._common import as_frame, int_sizes, keys_list, natural_size, require, resolve_image, select_images
from .overlap import prepare
from .pull import pull_time

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
        df = select_images(df, image, images, fn="fleet_totals")
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


def _code_of(coded, name: str, fn: str, same_repo: bool = False) -> int:
    loc = coded.image_names.get_indexer([name])[0]
    if loc < 0:  # not the frame's own name: an equivalent reference?
        found = resolve_image(name, [str(x) for x in coded.image_names], same_repo, fn)
        loc = coded.image_names.get_indexer([found])[0] if found is not None else -1
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
    same_repo: bool = False,
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
    ``target`` and ``present`` may name an image by any equivalent Docker
    reference; ``same_repo=True`` also joins a registry mirror's name with
    the engine's (:func:`layerlab.reference_key`).

    Wire sizes are never guessed: a layer to download without a known size
    raises AnalysisError naming its positions and what to do (load the image
    from its registry, ``ll.estimate_wire_sizes``, or ``size="size"``).  When
    ``compressed_size`` is counted and some layers only have
    ``compressed_size_estimate`` (:func:`layerlab.estimate_wire_sizes`), the
    estimates count and a ``UserWarning`` says how many.
    """
    t = pull_table(data, [target], present={target: list(present)}, key=key, size=size, image=image,
                   same_repo=same_repo)
    v = t["pull_bytes"].iloc[0]
    col = natural_size(keys_list(key), size)
    if v is pd.NA or pd.isna(v):
        frame = as_frame(data, fn="pull_cost")
        name = str(t["image"].iloc[0])
        rows = frame[(frame[image].astype(str) == name) & frame[col].isna()] if col in frame else frame.iloc[:0]
        est = rows["compressed_size_estimate"].isna() if "compressed_size_estimate" in rows else True
        pos = [int(x) for x in rows.loc[est, "position"]][:10] if "position" in rows else []
        todo = ("load the image from its registry (docker://…), which states them, or run "
                "ll.estimate_wire_sizes(fleet) for estimates, or pass size='size' to count uncompressed bytes"
                if col == "compressed_size" else "choose size= (e.g. 'size' or 'compressed_size') that the frame knows")
        raise AnalysisError(
            f"pull_cost(): {int(t['unknown_layers'].iloc[0])} layer(s) of {name!r} to download have no known "
            f"{col!r} (positions {pos}); {todo}"
        )
    n_est = int(t["estimated_layers"].iloc[0])
    if n_est:
        import warnings

        warnings.warn(f"pull_cost(): {n_est} layer(s) of {target!r} count their compressed_size_estimate "
                      "(gzip level 6 of the layer tar), not a stated wire size", UserWarning, stacklevel=2)
    return int(v)


def pull_table(
    data: Any,
    images: Sequence[str] | None = None,
    present: str | Sequence[str] | Mapping[str, Sequence[str]] | None = None,
    key: str | Sequence[str] = "digest",
    size: str | None = None,
    image: str = "image",
    *,
    hosts: Mapping[str, Sequence[str]] | None = None,
    bandwidth: Any = None,
    engine: str = "moby",
    engine_key: str = "auto",
    rtt: float = 0.05,
    host: Any = None,
    max_concurrent_downloads: int | None = None,
    max_concurrent_extractions: int | None = None,
    setup: float | None = None,
    handshake_rtts: int | None = None,
    extract_overhead: float | None = None,
    inflate_speed: float | None = None,
    extract_rate: Any = None,
    config_bytes: int = 4096,
    unknown_wire: str = "refuse",
    same_repo: bool = False,
) -> pd.DataFrame:
    """What each image costs to pull, given what the host already holds: bytes,
    and with ``bandwidth=`` seconds.

    ``present`` says what is on the host before each pull:

    * ``None`` / ``"none"`` — an empty host (a cold pull);
    * ``"previous"`` — the images listed before it in ``images`` (pulling
      them in turn onto one host);
    * ``"others"`` — every other image in the frame;
    * a list of images — those, for every image;
    * a dict image -> list of images (what is there before *that* image's pull).

    ``hosts`` (placement, "which hosts already have most of this image"): a
    dict host name -> images on that host.  Every image is priced on every
    host: one row per (host, image), a ``host`` column first; sort by
    ``pull_bytes`` or ``seconds`` to find where an image is cheapest.  It is
    a parameter of its own, not a dict ``present``, because a dict
    ``present`` already means image -> images (``pull_cost`` and existing
    callers rely on it) and the two cannot be told apart from the keys (a
    host may be named like an image); give one of ``present`` and ``hosts``.

    ``data`` may be a dict of name -> frame/Fleet (e.g. ``{"naive": ...,
    "layered": ...}``) to compare fleets side by side: the rows get a
    ``fleet`` column, and ``images``/``present``/``hosts`` (when lists or
    dicts) are looked up per fleet, skipping names a fleet lacks.

    **Seconds.**  With ``bandwidth`` (bytes/s or a string such as
    ``"20MB/s"``), each row is also priced by the pull-time model,
    :func:`layerlab.analysis.pull.pull_time` (one implementation: it is
    called per row with the row's image and the images present before it).
    The model's options are its parameters here, with its defaults:
    ``engine`` (``"moby"``, ``"containerd"``, ``"podman"``), ``engine_key``
    (pull_time's ``key``: what the engine matches presence on; ``"auto"`` =
    the engine's own rule), ``rtt``, ``host`` (a ``HostRates``,
    ``"measure"`` or None), ``max_concurrent_downloads``,
    ``max_concurrent_extractions``, ``setup``, ``handshake_rtts``,
    ``extract_overhead``, ``inflate_speed``, ``extract_rate``,
    ``config_bytes``, ``unknown_wire`` — see :func:`~layerlab.analysis.pull.pull_time`.

    **Names.**  ``images``, ``present`` and ``hosts`` may name an image by
    any equivalent Docker reference (``busybox``, ``library/busybox``,
    ``docker.io/library/busybox:latest``); ``same_repo=True`` also joins a
    registry mirror's ``127.0.0.1:5000/team/app:1`` with ``team/app:1``
    (:func:`layerlab.reference_key`).  The ``image`` column shows the
    frame's own name.

    **Wire sizes.**  Counting ``compressed_size``, a layer that has only
    ``compressed_size_estimate`` (:func:`layerlab.estimate_wire_sizes`)
    counts its estimate and is counted in ``estimated_layers``; a layer with
    neither leaves ``pull_bytes`` null (``unknown_layers``) — never an
    uncompressed size in its place.
    ``key`` and ``size`` count ``pull_bytes`` only; the engine downloads what
    its own rule says (``model_bytes``): moby skips only a bottom run of
    layers already present by chain id, so ``model_bytes`` can exceed
    ``pull_bytes`` counted by digest.

    ====================  =========  =================================================
    column                dtype      meaning
    ====================  =========  =================================================
    host                  string     (only with ``hosts``) the host pulled onto
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
    estimated_layers      Int64      layers to download counted by their compressed_size_estimate
    seconds               Float64    (with ``bandwidth``) predicted wall time of the pull
    download_seconds      Float64    (with ``bandwidth``) when its last layer byte arrives
    model_bytes           Int64      (with ``bandwidth``) bytes the engine downloads (model)
    ====================  =========  =================================================

    Raises AnalysisError for an unknown image, a bad ``present``/``hosts``,
    a bad rate or model option.
    """
    model = None
    if bandwidth is not None:
        model = dict(bandwidth=bandwidth, engine=engine, key=engine_key, rtt=rtt, host=host,
                     max_concurrent_downloads=max_concurrent_downloads,
                     max_concurrent_extractions=max_concurrent_extractions, setup=setup,
                     handshake_rtts=handshake_rtts, extract_overhead=extract_overhead,
                     inflate_speed=inflate_speed, extract_rate=extract_rate, config_bytes=config_bytes,
                     unknown_wire=unknown_wire, same_repo=same_repo)
    if hosts is not None:
        return _on_hosts(data, images, hosts, present, key, size, image, model, same_repo)
    if isinstance(data, Mapping):
        return _on_fleets(data, images, present, key, size, image, model, same_repo)
    return _pull_rows(data, images, present, key, size, image, model, same_repo)


def _on_fleets(data, images, present, key, size, image, model, same_repo) -> pd.DataFrame:
    """pull_table over a dict of fleets: a ``fleet`` column first; names a fleet lacks are skipped."""
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
        t = _pull_rows(d, sub_images, sub_present, key, size, image, model, same_repo)
        t.insert(0, "fleet", pd.array([str(name)] * len(t), dtype="string"))
        frames.append(t)
    return pd.concat(frames, ignore_index=True)


def _on_hosts(data, images, hosts, present, key, size, image, model, same_repo=False) -> pd.DataFrame:
    """pull_table(hosts=...): every image on every host, a ``host`` column first."""
    if present is not None:
        raise AnalysisError("pull_table(): give either present= (what is on the host before each pull) or "
                            "hosts= (host -> images, for placement), not both")
    if not isinstance(hosts, Mapping) or not hosts:
        raise AnalysisError(f"pull_table(): hosts={hosts!r}; give a dict host name -> images on that host")
    frames = []
    for name, held in hosts.items():
        if isinstance(held, str):
            raise AnalysisError(f"pull_table(): hosts[{name!r}]={held!r}; give a list of images")
        t = pull_table(data, images, list(held), key, size, image, **_model_kwargs(model), same_repo=same_repo)
        t.insert(0, "host", pd.array([str(name)] * len(t), dtype="string"))
        frames.append(t)
    return pd.concat(frames, ignore_index=True)


def _model_kwargs(model: dict | None) -> dict:
    """pull_table's keyword arguments for the model options (``engine_key`` is pull_time's ``key``)."""
    if model is None:
        return {}
    out = {k: v for k, v in model.items() if k not in ("key", "same_repo")}
    out["engine_key"] = model["key"]
    return out


def _befores(name: str, images: list[str], all_names: list[str], present: Any) -> list[str]:
    """The images on the host before ``name`` is pulled (see pull_table's ``present``)."""
    if present is None or present == "none":
        return []
    if present == "previous":
        return list(images[: images.index(name)])
    if present == "others":
        return [n for n in all_names if n != name]
    if isinstance(present, str):
        raise AnalysisError(
            f"pull_table(): present={present!r}; use None, 'previous', 'others', a list of images or a dict"
        )
    if isinstance(present, Mapping):
        return list(present.get(name, ()))
    return [p for p in present if p != name]


def _with_estimates(frame: pd.DataFrame, size_col: str) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Counting ``compressed_size``: rows that have only ``compressed_size_estimate``
    count it; returns the frame and a per-row mask of those rows (None when none)."""
    if size_col != "compressed_size" or "compressed_size_estimate" not in frame or size_col not in frame:
        return frame, None
    est = (frame[size_col].isna() & frame["compressed_size_estimate"].notna()).to_numpy()
    if not est.any():
        return frame, None
    frame = frame.copy()
    frame[size_col] = frame[size_col].astype("Int64").fillna(frame["compressed_size_estimate"].astype("Int64"))
    return frame, est


def _pull_rows(data, images, present, key, size, image, model, same_repo=False) -> pd.DataFrame:
    """pull_table for one fleet (see there)."""
    frame = as_frame(data, fn="pull_table")
    frame, est_rows = _with_estimates(frame, natural_size(keys_list(key), size))
    coded, kcols, size_col = prepare(frame, key, size, image, None, fn="pull_table")
    all_names = [str(x) for x in coded.image_names]
    images = all_names if images is None else list(images)
    if present is not None and not isinstance(present, str):
        present = _resolve_present(present, all_names, same_repo)
    images = [all_names[_code_of(coded, n, "pull_table", same_repo)] for n in images]
    sets = _key_sets(coded)
    row_sizes, row_null = int_sizes(coded.frame[size_col])
    key_est = np.zeros(len(coded.key_size), dtype=bool)
    if est_rows is not None:
        est_rows = est_rows[frame[image].notna().to_numpy()]
        valid = coded.row_key >= 0
        np.logical_or.at(key_est, coded.row_key[valid], est_rows[valid])
    else:
        est_rows = np.zeros(len(coded.frame), dtype=bool)
    rows, befores = [], []
    for name in images:
        code = _code_of(coded, name, "pull_table", same_repo)
        before = _befores(name, images, all_names, present)
        befores.append(before)
        have = (
            np.unique(np.concatenate([sets[_code_of(coded, p, "pull_table", same_repo)] for p in before]))
            if before else np.zeros(0, dtype=np.int64)
        )
        mine = sets[code]
        need = mine[~np.isin(mine, have)]
        nk_rows = (coded.row_img == code) & (coded.row_key < 0)
        img_bytes = int(coded.key_size[mine].sum()) + int(row_sizes[nk_rows].sum())
        pull = int(coded.key_size[need].sum()) + int(row_sizes[nk_rows].sum())
        unknown = int(coded.key_unknown[need].sum()) + int(row_null[nk_rows].sum())
        mine_unknown = int(coded.key_unknown[mine].sum()) + int(row_null[nk_rows].sum())
        estimated = int(key_est[need].sum()) + int(est_rows[nk_rows].sum())
        rows.append(
            {
                "image": name,
                "present": ", ".join(before),
                "layers": len(mine) + int(nk_rows.sum()),
                "pull_layers": len(need) + int(nk_rows.sum()),
                "image_bytes": None if mine_unknown else img_bytes,
                "pull_bytes": None if unknown else pull,
                "present_bytes": None if unknown else img_bytes - pull,
                "unknown_layers": unknown,
                "estimated_layers": estimated,
            }
        )
    out = pd.DataFrame(rows, columns=["image", "present", "layers", "pull_layers", "image_bytes", "pull_bytes",
                                      "present_bytes", "unknown_layers", "estimated_layers"])
    out = out.astype({"image": "string", "present": "string", "layers": "Int64", "pull_layers": "Int64",
                      "image_bytes": "Int64", "pull_bytes": "Int64", "present_bytes": "Int64",
                      "unknown_layers": "Int64", "estimated_layers": "Int64"})
    out.insert(
        len(out.columns) - 2,
        "saved_fraction",
        (out["present_bytes"].astype("Float64") / out["image_bytes"].astype("Float64")).where(out["image_bytes"] > 0),
    )
    if model is not None:
        _add_seconds(out, frame, image, befores, model)
    return out


def _resolve_present(present: Any, names: list[str], same_repo: bool) -> Any:
    """``present`` (a list, or a dict image -> list) with every name the frame's own."""
    exact = set(names)

    def one(p):
        return p if p in exact else resolve_image(p, names, same_repo, "pull_table") or p

    if isinstance(present, Mapping):
        return {one(k): [one(p) for p in v] for k, v in present.items()}
    return [one(p) for p in present]


def _add_seconds(out: pd.DataFrame, frame: pd.DataFrame, image: str, befores: list[list[str]], model: dict) -> None:
    """The pull-time model's columns, one pull_time() call per row."""
    if image != "image":
        frame = frame.drop(columns="image", errors="ignore").rename(columns={image: "image"})
    got = [pull_time(frame, name, present=before, **model) for name, before in zip(out["image"], befores)]
    out["seconds"] = pd.array([p.seconds for p in got], dtype="Float64")
    out["download_seconds"] = pd.array([p.download_seconds for p in got], dtype="Float64")
    out["model_bytes"] = pd.array([p.bytes for p in got], dtype="Int64")
