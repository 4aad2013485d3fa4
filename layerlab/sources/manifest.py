"""``manifest:MANIFEST.json+CONFIG.json`` — a registry manifest and its config blob.

As a registry serves them (``GET /v2/<name>/manifests/<ref>`` and the config
blob): Docker schema 2 and OCI image manifests.  The config's sha256 must
equal the manifest's config digest (a :class:`DigestMismatchError` says so
when it does not).  Layers get ``digest``, ``media_type`` and
``compressed_size`` from the manifest, ``diff_id`` from the config, and
``size`` None (registries never state it).  ``manifest_digest`` is the sha256
of the manifest bytes as given.

``manifest:MANIFEST.json`` alone reads an old schema 1 (signed) manifest:
``fsLayers`` + ``history[].v1Compatibility`` (newest first), where
``throwaway`` marks steps without a layer.  Schema 1 states no diff_ids, no
layer sizes and no config digest, so those stay unknown.
"""
from __future__ import annotations

import base64
import os
from pathlib import Path

from ..errors import DigestMismatchError, FormatError, SourceError
from ..model import HistoryStep, Image, Layer, pair_by_empty_layer
from ._config import config_diff_ids, history_from_config, parse_time
from ._digest import as_object, check_digest, parse_json, sha256_bytes
from ._media import (
    DOCKER_LAYER_GZIP,
    INDEX_TYPES,
    MANIFEST_TYPES,
    is_estargz,
    layer_compression,
    media_type_of,
)
from ._platform import platform_of

TRANSPORT = "manifest"
_MAX = 64 << 20


def _split(ref: str) -> tuple[str, str | None]:
    ref = os.fspath(ref)
    if os.path.isfile(ref):
        return ref, None
    i = -1
    while True:
        i = ref.find("+", i + 1)
        if i < 0:
            break
        a, b = ref[:i], ref[i + 1:]
        if os.path.isfile(a) and os.path.isfile(b):
            return a, b
    parts = ref.split("+")
    missing = [p for p in parts if not os.path.isfile(p)]
    raise SourceError(
        f"manifest:{ref}: no such file {missing[0] if missing else ref!r}; give "
        "'manifest:MANIFEST.json+CONFIG.json' (or a schema 1 manifest alone)"
    )


def _read(path: str, what: str) -> bytes:
    try:
        size = os.path.getsize(path)
        if size > _MAX:
            raise FormatError(f"{path}: {size} bytes is too large for a {what}")
        return Path(path).read_bytes()
    except OSError as e:
        raise SourceError(f"{path}: cannot read the {what} ({e.strerror or e})") from e


def schema1_payload(raw: bytes) -> bytes:
    """The bytes a signed schema 1 manifest's digest is computed over (the JWS payload)."""
    doc = parse_json(raw, "the schema 1 manifest")
    sigs = doc.get("signatures")
    if not sigs:
        return raw
    protected = sigs[0]["protected"]
    hdr = parse_json(base64.urlsafe_b64decode(protected + "=" * (-len(protected) % 4)), "its protected header")
    tail = hdr["formatTail"]
    return raw[: hdr["formatLength"]] + base64.urlsafe_b64decode(tail + "=" * (-len(tail) % 4))


def _schema1(path: str, raw: bytes, doc: dict) -> Image:
    where = f"{path} (schema 1 manifest)"
    fs = doc.get("fsLayers")
    hist = doc.get("history")
    if not isinstance(fs, list) or not isinstance(hist, list) or len(fs) != len(hist):
        raise FormatError(f"{where}: 'fsLayers' and 'history' must be lists of the same length")
    steps: list[HistoryStep] = []
    layers: list[Layer] = []
    newest: dict = {}
    # both lists are newest first; the model is base first
    for i, (f, h) in enumerate(zip(reversed(fs), reversed(hist))):
        if not isinstance(f, dict) or not isinstance(h, dict) or not isinstance(h.get("v1Compatibility"), str):
            raise FormatError(f"{where}: fsLayers/history entry {len(fs) - 1 - i} is malformed")
        v1 = parse_json(h["v1Compatibility"].encode(), f"{where}: history[{len(fs) - 1 - i}].v1Compatibility")
        v1 = as_object(v1, where, "v1Compatibility")
        newest = v1
        cc = v1.get("container_config") if isinstance(v1.get("container_config"), dict) else {}
        cmd = cc.get("Cmd")
        created_by = " ".join(c for c in cmd if isinstance(c, str)) if isinstance(cmd, list) else None
        throwaway = bool(v1.get("throwaway", False))
        steps.append(
            HistoryStep(
                index=i,
                created_by=created_by,
                created=parse_time(v1.get("created")),
                author=v1.get("author") if isinstance(v1.get("author"), str) else None,
                comment=v1.get("comment") if isinstance(v1.get("comment"), str) else None,
                empty_layer=throwaway,
                id=v1.get("id") if isinstance(v1.get("id"), str) else None,
            )
        )
        if not throwaway:
            digest = check_digest(f.get("blobSum"), f"{where}: fsLayers[{len(fs) - 1 - i}].blobSum")
            layers.append(Layer(position=len(layers), diff_id=None, digest=digest, media_type=DOCKER_LAYER_GZIP))
    pair_by_empty_layer(steps, len(layers))
    try:
        mdigest = sha256_bytes(schema1_payload(raw))
    except (FormatError, ValueError, KeyError, IndexError, TypeError):  # no readable signature: no digest
        mdigest = None
    name, tag = doc.get("name"), doc.get("tag")
    ref = f"{name}:{tag}" if isinstance(name, str) and isinstance(tag, str) else Path(path).name
    arch = doc.get("architecture") if isinstance(doc.get("architecture"), str) else newest.get("architecture")
    os_ = newest.get("os") if isinstance(newest.get("os"), str) else "linux"
    return Image(
        reference=ref,
        source=TRANSPORT,
        layer_list=layers,
        history_list=steps,
        id=None,
        manifest_digest=mdigest,
        repo_tags=[ref] if ref != Path(path).name else [],
        platform=f"{os_}/{arch}" if isinstance(arch, str) else None,
        created=parse_time(newest.get("created")),
        config=newest or None,
        location=f"{TRANSPORT}:{path}",
        warnings=["schema 1 manifest: diff_ids, layer sizes and the config digest are not stated"],
    )


_NAME_KEYS = ("io.containerd.image.name", "org.opencontainers.image.ref.name")
_GENERIC_STEMS = {"manifest", "index", "image", "m"}


def _name(mpath: str, doc: dict, config: dict) -> tuple[str, list[str]]:
    """(the image's name, its repo tags): the repository the manifest's
    annotations (containerd's image name, a full ``ref.name``) or the config's
    labels say, else the file's name less ``.json`` — its folder's name when
    the file is called just ``manifest.json`` (or ``m``, ``index``, ``image``)."""
    from ._refs import normalise_tag

    ann = doc.get("annotations") if isinstance(doc.get("annotations"), dict) else {}
    labels = (config.get("config") or {}).get("Labels") if isinstance(config.get("config"), dict) else None
    for where in (ann, labels if isinstance(labels, dict) else {}):
        for key in _NAME_KEYS:
            v = where.get(key)
            if isinstance(v, str) and ("/" in v or ":" in v) and " " not in v:
                full = normalise_tag(v)
                return full, [full]
    p = Path(os.path.abspath(mpath))
    stem = p.name[:-5] if p.name.lower().endswith(".json") else p.name
    if (stem.lower() in _GENERIC_STEMS or len(stem) <= 2) and p.parent.name:
        return p.parent.name, []
    return stem, []


def load(ref: str, transport: str = TRANSPORT, **options) -> Image:
    mpath, cpath = _split(ref)
    raw = _read(mpath, "manifest")
    doc = as_object(parse_json(raw, f"{mpath}: the manifest"), mpath, "the manifest")
    mt = media_type_of(doc, mpath)
    if doc.get("schemaVersion") == 1:
        if cpath is not None:
            raise SourceError(f"{mpath}: a schema 1 manifest carries its own history; give it alone, without '+{cpath}'")
        return _schema1(mpath, raw, doc)
    if mt in INDEX_TYPES or "manifests" in doc:
        plats = [
            f"{platform_of(d.get('platform')) or '?'} {d.get('digest')}"
            for d in doc.get("manifests") or [] if isinstance(d, dict)
        ]
        raise SourceError(
            f"{mpath}: an index (manifest list), not an image manifest; fetch the manifest of one "
            f"platform ({'; '.join(plats)}) and its config"
        )
    if mt is not None and mt not in MANIFEST_TYPES:
        raise FormatError(f"{mpath}: unknown manifest media type {mt!r}; expected Docker schema 2 or OCI")
    cfg_desc = doc.get("config")
    if not isinstance(cfg_desc, dict):
        raise FormatError(f"{mpath}: the manifest has no 'config' descriptor")
    cfg_digest = check_digest(cfg_desc.get("digest"), f"{mpath}: config.digest")
    if cpath is None:
        raise SourceError(
            f"{mpath}: a schema 2 / OCI manifest needs its config blob ({cfg_digest}); "
            f"give 'manifest:{mpath}+CONFIG.json'"
        )
    cfg_raw = _read(cpath, "config")
    got = sha256_bytes(cfg_raw)
    if got != cfg_digest:
        raise DigestMismatchError(
            f"{cpath}: the config hashes to {got}, but the manifest {mpath} says its config is {cfg_digest}; "
            "this is not the config of that manifest (or it was altered) — fetch the blob the manifest names"
        )
    config = as_object(parse_json(cfg_raw, f"{cpath}: the config"), cpath, "the config")
    diff_ids = config_diff_ids(config, cpath)
    ldescs = doc.get("layers")
    if not isinstance(ldescs, list):
        raise FormatError(f"{mpath}: 'layers' is not a list")
    if len(ldescs) != len(diff_ids):
        raise FormatError(f"{mpath} lists {len(ldescs)} layers but the config {cpath} lists {len(diff_ids)} diff_ids")
    layers = []
    for pos, (ld, diff_id) in enumerate(zip(ldescs, diff_ids)):
        if not isinstance(ld, dict):
            raise FormatError(f"{mpath}: layers[{pos}] is not a descriptor object")
        digest = check_digest(ld.get("digest"), f"{mpath}: layers[{pos}].digest")
        lmt = ld.get("mediaType")
        layer_compression(lmt, f"{mpath}: layers[{pos}] ({digest})")
        ann = {k: v for k, v in ld["annotations"].items() if isinstance(v, str)} \
            if isinstance(ld.get("annotations"), dict) else {}
        if is_estargz(ann):
            ann["layerlab.estargz"] = "true"
        size = ld.get("size")
        comp = ld.get("size") if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None
        layers.append(Layer(position=pos, diff_id=diff_id, digest=digest, media_type=lmt, size=None,
                            compressed_size=comp, annotations=ann))
    name, repo_tags = _name(mpath, doc, config)
    return Image(
        reference=name,
        repo_tags=repo_tags,
        source=TRANSPORT,
        layer_list=layers,
        history_list=history_from_config(config, len(layers), cpath),
        id=cfg_digest,
        manifest_digest=sha256_bytes(raw),
        platform=platform_of(config),
        created=parse_time(config.get("created")),
        config=config,
        location=f"{TRANSPORT}:{mpath}+{cpath}",
    )
