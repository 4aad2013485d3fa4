"""``docker-archive:PATH[:REF]`` — ``docker save`` output, read in place.

Both layouts are handled:

* the legacy one (``manifest.json``, ``<id>/layer.tar``, ``<id>/json``,
  ``repositories``; configs as ``<hex>.json``), also as written by
  go-containerregistry, bazel and kaniko (which store ``.tar.gz`` layers);
* Docker 25+ saves: an OCI image layout (``index.json``, ``blobs/sha256/``)
  plus ``manifest.json`` in one tar.  The manifest digests then come from
  ``index.json``.

Nothing is extracted: the tar's member headers are indexed once, only the
small JSON members are read, and each uncompressed layer's size (Docker's
size, as ``docker history`` shows it: see ``_sizing.tar_content_size``) is read
from the layer tar's own headers by seeking past the file contents — or,
when a verified contents scan already read that diff_id (same tar length),
from the size it remembered in the cache (``layerlab.contents.sizes``;
``cache_dir=`` as for ``files()``, False to always walk the headers).
Compressed layers (gzip/zstd, told by their magic bytes) get ``size`` None
until their contents are read.  ``compressed_size`` is the blob's length
only for those: an uncompressed layer tar is not what a push sends (see
``_media.wire_size``), so its wire size is null until
``ll.estimate_wire_sizes`` estimates it (``compressed_size_estimate``).
``progress=True/False`` forces the progress bar on or off (by default it
shows for more than 2 GB of layers).

An archive may hold several images.  ``load_many`` returns them all;
``load`` needs one: skopeo's syntax ``docker-archive:PATH:REPO:TAG`` picks it
by tag, ``docker-archive:PATH:@N`` by its index in ``manifest.json``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..contents.compression import detect
from ..errors import FormatError, LayerlabError, SourceError
from ..model import Image, Layer
from ._config import config_diff_ids, history_from_config, parse_time
from ._digest import as_object, digest_in_name, sha256_bytes
from ._index import walk_index
from ._media import MEDIA_TYPE_FOR, is_estargz, layer_compression, reconcile_compression, wire_size
from ._platform import platform_of
from ._refs import normalise_tag, split_ref
from ._sizing import fill_sizes
from ._store import Blob, StoreBlobs, TarStore, clean_name

TRANSPORT = "docker-archive"


def _entries(store: TarStore) -> list[dict]:
    where = "manifest.json"
    doc, _ = store.read_json("manifest.json", where, "manifest.json")
    if not isinstance(doc, list) or not doc:
        raise FormatError(f"{store.location}: manifest.json is not a non-empty list of images")
    for i, e in enumerate(doc):
        if not isinstance(e, dict) or not isinstance(e.get("Config"), str) or not isinstance(e.get("Layers"), list):
            raise FormatError(
                f"{store.location}: manifest.json entry {i} lacks 'Config' (a string) or 'Layers' (a list)"
            )
    return doc


def _index_manifests(store: TarStore) -> dict[str, tuple[str, dict]]:
    """config digest → (manifest digest, manifest) from a Docker 25+ save's ``index.json``."""
    if not store.exists("index.json"):
        return {}
    out: dict[str, tuple[str, dict]] = {}
    for desc, manifest, _trail in walk_index(store):
        cfg = manifest.get("config") or {}
        if isinstance(cfg, dict) and isinstance(cfg.get("digest"), str):
            out.setdefault(cfg["digest"], (desc["digest"], manifest))
    return out


def _tags(entry: dict) -> list[str]:
    tags = entry.get("RepoTags")
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


def _label(path: str, entry: dict, i: int, n: int) -> str:
    tags = _tags(entry)
    if tags:
        return tags[0]
    name = Path(path).name
    return name if n == 1 else f"{name}@{i}"


def _config(store: TarStore, cfg_name: str, where: str) -> tuple[dict, str, list[str]]:
    """(config, image ID, warnings) of one ``manifest.json`` entry.

    An OCI blob path is content-addressed: a mismatch there is corruption.
    A legacy ``<hex>.json`` name is only a label (docker load, skopeo and
    go-containerregistry all take the ID from the bytes), so a mismatch
    there is a warning, and the ID is the bytes' digest."""
    loc = store.location
    clean = clean_name(cfg_name, f"{loc}: {where} config")
    stated = digest_in_name(clean)
    strict = stated if clean.startswith("blobs/") else None
    config, cfg_bytes = store.read_json(cfg_name, where, "image config", digest=strict)
    config = as_object(config, f"{loc}: config {cfg_name}", "the image config")
    image_id = sha256_bytes(cfg_bytes)
    warnings = []
    if stated and stated != image_id:
        warnings.append(f"config {cfg_name} is named {stated} but hashes to {image_id} (the ID used)")
    return config, image_id, warnings


def _image(store: TarStore, path: str, entry: dict, i: int, n: int, index: dict,
           progress: bool | None = None, cache_dir=None) -> Image:
    loc = store.location
    where = f"manifest.json entry {i}"
    cfg_name = entry["Config"]
    config, image_id, warnings = _config(store, cfg_name, where)
    diff_ids = config_diff_ids(config, f"{loc}: config {cfg_name}")
    layer_names = entry["Layers"]
    if len(layer_names) != len(diff_ids):
        raise FormatError(
            f"{loc}: {where} lists {len(layer_names)} layers but its config {cfg_name} lists "
            f"{len(diff_ids)} diff_ids; the archive is inconsistent"
        )
    manifest_digest, oci_manifest = index.get(image_id, (None, None))
    oci_layers = oci_manifest.get("layers") if isinstance(oci_manifest, dict) else None
    if not isinstance(oci_layers, list) or len(oci_layers) != len(layer_names):
        oci_layers = None
    sources = entry.get("LayerSources") if isinstance(entry.get("LayerSources"), dict) else {}

    layers: list[Layer] = []
    blobs: list[tuple[int, Blob, str | None]] = []
    pending: list[tuple[int, Blob, str]] = []
    for pos, (lname, diff_id) in enumerate(zip(layer_names, diff_ids)):
        lwhere = f"{where} layer {pos}"
        blob = store.blob(lname, lwhere, "layer")
        comp = detect(store.head(blob, 8))
        desc: dict[str, Any] = {}
        if oci_layers is not None and isinstance(oci_layers[pos], dict):
            desc = oci_layers[pos]
        elif isinstance(sources.get(diff_id), dict):
            desc = sources[diff_id]
        name_digest = digest_in_name(blob.name) if blob.name.startswith("blobs/") else None
        stored_digest = name_digest or (diff_id if comp == "none" else None)
        annotations: dict[str, str] = {}
        media_type = desc.get("mediaType") if isinstance(desc.get("mediaType"), str) else None
        if media_type is not None and desc.get("digest") != stored_digest:
            # LayerSources may describe the registry's (compressed, foreign)
            # blob rather than the one stored here: keep it as annotations only.
            media_type = None
        if media_type is not None:
            declared = layer_compression(media_type, f"{loc}: {lwhere} ({blob.name})")
            media_type = reconcile_compression(media_type, declared, comp, f"{loc}: {blob.name}",
                                                 annotations, warnings)
        elif comp in MEDIA_TYPE_FOR:
            media_type = MEDIA_TYPE_FOR[comp]
        else:
            raise FormatError(
                f"{loc}: layer {blob.name} is {comp}-compressed; layerlab reads uncompressed, gzip and zstd layers"
            )
        if isinstance(desc.get("annotations"), dict):
            annotations.update({k: v for k, v in desc["annotations"].items() if isinstance(v, str)})
        if sources.get(diff_id) and isinstance(sources[diff_id], dict):
            fd = sources[diff_id]
            for k in ("mediaType", "digest", "size"):
                if k in fd:
                    annotations[f"layerlab.layer_source.{k}"] = str(fd[k])
            if isinstance(fd.get("urls"), list):
                annotations["layerlab.layer_source.urls"] = " ".join(map(str, fd["urls"]))
        # The stored blob's digest, only where the metadata states it: the OCI
        # blob path names it; an uncompressed legacy layer.tar *is* the diff
        # (its sha256 is the config's diff_id).  A compressed legacy layer's
        # digest is not stated anywhere, so it stays unknown.
        if name_digest:
            digest = name_digest
        elif comp == "none":
            digest = diff_id
        else:
            digest = None
        if comp == "none":
            pending.append((pos, blob, f"{loc}: layer {blob.name}"))
        if is_estargz(annotations):
            annotations.setdefault("layerlab.estargz", "true")
        layers.append(
            Layer(
                position=pos,
                diff_id=diff_id,
                digest=digest,
                media_type=media_type,
                size=None,  # filled in below for uncompressed layers
                compressed_size=wire_size(media_type, blob.length),  # null for a plain tar
                annotations=annotations,
            )
        )
        blobs.append((pos, blob, media_type))

    indexes: dict = {}
    sized = fill_sizes(layers, pending, _label(path, entry, i, n), progress, cache_dir, indexes=indexes)
    history = history_from_config(config, len(layers), f"{loc}: config {cfg_name}")
    tags = _tags(entry)
    img = Image(
        reference=_label(path, entry, i, n),
        source=TRANSPORT,
        layer_list=layers,
        history_list=history,
        id=image_id,
        manifest_digest=manifest_digest,
        repo_tags=tags,
        platform=platform_of(config),
        created=parse_time(config.get("created")),
        config=config,
        location=f"{TRANSPORT}:{path}" + (f":@{i}" if n > 1 else ""),
        blobs=StoreBlobs(f"{TRANSPORT}:{path}", blobs, sized, indexes),
    )
    img.warnings.extend(warnings)
    if img.unpaired_layers:
        img.warnings.append(
            f"layers {img.unpaired_layers} have no history step (the config's history has fewer "
            "non-empty steps than there are layers)"
        )
    unpaired_steps = [s.index for s in history if s.pairing == "unpaired"]
    if unpaired_steps:
        img.warnings.append(f"history steps {unpaired_steps} claim layers the image does not have")
    return img


def _select(entries: list[dict], sel: str, location: str) -> int:
    if sel.startswith("@"):
        try:
            k = int(sel[1:])
        except ValueError:
            raise SourceError(f"{location}:{sel}: '@' must be followed by an image index (e.g. ':@0')") from None
        if not 0 <= k < len(entries):
            raise SourceError(f"{location}:{sel}: the archive holds {len(entries)} images (@0..@{len(entries) - 1})")
        return k
    want = normalise_tag(sel)
    for k, e in enumerate(entries):
        for t in _tags(e):
            if t == sel or normalise_tag(t) == want:
                return k
    raise SourceError(f"{location}: no image tagged {sel!r}; it holds: {_choices(entries)}")


def _choices(entries: list[dict]) -> str:
    out = []
    for k, e in enumerate(entries):
        tags = _tags(e)
        out.append(f"@{k}" + (f" ({', '.join(tags)})" if tags else " (untagged)"))
    return "; ".join(out)


def _open(ref: str, transport: str):
    path, sel = split_ref(ref, transport)
    if os.path.isdir(path):
        raise SourceError(f"{transport}:{path}: a directory; for an OCI layout use 'oci:{path}'")
    store = TarStore(path, label=path)
    if not store.exists("manifest.json"):
        if store.exists("index.json"):
            return path, sel, None  # an OCI archive after all: read it as oci-archive:
        raise FormatError(f"{path}: no manifest.json in the tar: not a `docker save` archive")
    return path, sel, store


def _as_oci(ref: str, options: dict):
    from . import oci

    return oci, dict(options, transport="oci-archive")


def load_many(ref: str, transport: str = TRANSPORT, **options) -> list[Image]:
    path, sel, store = _open(ref, transport)
    if store is None:
        mod, kw = _as_oci(ref, options)
        return mod.load_many(ref, **kw)
    entries = _entries(store)
    try:
        index = _index_manifests(store)
    except LayerlabError:
        index = {}  # index.json is a bonus (manifest digests); manifest.json is authoritative
    picks = range(len(entries)) if sel is None else [_select(entries, sel, f"{transport}:{path}")]
    return [_image(store, path, entries[k], k, len(entries), index, options.get("progress"),
                   options.get("cache_dir")) for k in picks]


def load(ref: str, transport: str = TRANSPORT, **options) -> Image:
    path, sel, store = _open(ref, transport)
    if store is None:
        mod, kw = _as_oci(ref, options)
        return mod.load(ref, **kw)
    entries = _entries(store)
    if sel is None:
        if len(entries) != 1:
            raise SourceError(
                f"{transport}:{path} holds {len(entries)} images; name one as "
                f"'{transport}:{path}:REPO:TAG' or ':@N' (choices: {_choices(entries)}), "
                "or use layerlab.load_many() for all"
            )
        k = 0
    else:
        k = _select(entries, sel, f"{transport}:{path}")
    try:
        index = _index_manifests(store)
    except LayerlabError:
        index = {}
    return _image(store, path, entries[k], k, len(entries), index, options.get("progress"), options.get("cache_dir"))
