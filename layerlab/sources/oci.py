"""``oci:DIR[:REF]`` and ``oci-archive:TAR[:REF]`` — OCI image layouts.

``index.json`` is walked through nested indexes to the image manifests.
``REF`` (skopeo's syntax) picks an image by its
``org.opencontainers.image.ref.name`` annotation (the tag; containerd's
``io.containerd.image.name`` is matched too) or by its position in
``index.json`` as ``@N``.  Images are named after the layout: a ref.name
that is a bare tag (skopeo's and BuildKit's ``latest``) joins the layout's
folder name (``/x/app1`` -> ``app1:latest``; an ``oci-archive`` tar's file
name less ``.tar``), a full reference is used as is, containerd's name
first; without either, the folder name (``@N`` when it holds several).  Where one reference leads to several platforms
(a multi-platform index), ``platform="os/arch[/variant]"`` chooses, by default
the host's (``linux/amd64`` on x86_64); ``platform="all"`` keeps every one
(``load_many``).  Platforms are matched, and attestation manifests skipped, by
the rule every source shares (:mod:`layerlab.sources._platform`:
``linux/arm64`` is ``linux/arm64/v8``, ``linux/arm`` is ``linux/arm/v7``).

Layer media types: OCI and Docker tar, tar+gzip, tar+zstd (and their
non-distributable variants); eStargz layers (gzip with the stargz TOC
annotations) are flagged ``layerlab.estargz`` in the layer's annotations.
An unknown layer media type is a :class:`~layerlab.errors.FormatError`
naming the blob and the type.  The small JSON blobs (index, manifests,
config) are verified against their digests; layer blobs are not hashed at
metadata time (their length is checked against the descriptor).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from ..contents.compression import detect
from ..errors import FormatError, SourceError
from ..model import Image, Layer
from ._config import config_diff_ids, history_from_config, parse_time
from ._digest import as_object, blob_path, check_digest
from ._index import index_descriptors, walk_descriptor
from ._media import is_estargz, layer_compression, reconcile_compression, wire_size
from ._platform import choose, descriptor_platform, host_platform, is_attestation, platform_of
from ._refs import normalise_tag, split_ref
from ._sizing import fill_sizes
from ._store import Blob, DirStore, Store, StoreBlobs, TarStore

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"


def _split(ref: str, transport: str) -> tuple[str, str | None]:
    what = "OCI layout directory" if transport == "oci" else "OCI archive (tar)"
    return split_ref(ref, transport, what)


def _store(path: str, transport: str) -> Store:
    if transport == "oci":
        if os.path.isfile(path):
            raise SourceError(f"oci:{path}: a file, not a directory; for a tar use 'oci-archive:{path}'")
        store: Store = DirStore(path, label=path)
    else:
        if os.path.isdir(path):
            raise SourceError(f"oci-archive:{path}: a directory; for a layout use 'oci:{path}'")
        store = TarStore(path, label=path)
    if not store.exists("index.json"):
        raise FormatError(
            f"{path}: no index.json: not an OCI image layout"
            + (" (a `docker save` without it? use 'docker-archive:')" if store.exists("manifest.json") else "")
        )
    return store


_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_ARCHIVE_SUFFIXES = (".tar.gz", ".tar.zst", ".tgz", ".tar")


def layout_name(path: str) -> str:
    """The name a layout's folder (or an archive's file, less ``.tar``) gives its images."""
    name = Path(os.path.abspath(path)).name
    for suffix in _ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def layout_image_name(path: str, ref_name: str) -> str:
    """An image's name from its ``org.opencontainers.image.ref.name``: a bare tag
    (what skopeo and BuildKit write: ``latest``) is joined to the layout's
    folder name (``/x/app1`` + ``latest`` -> ``app1:latest``); a full reference
    (``ghcr.io/x/app:1``) is the name as is (Docker Hub's spelling shortened)."""
    if _TAG.match(ref_name):
        return f"{layout_name(path)}:{ref_name}"
    return normalise_tag(ref_name)


def _names(desc: dict) -> list[str]:
    ann = desc.get("annotations") if isinstance(desc.get("annotations"), dict) else {}
    return [ann[k] for k in (REF_NAME, CONTAINERD_NAME) if isinstance(ann.get(k), str)]


def _candidates(store: Store) -> list[tuple[int, dict, dict, dict]]:
    """(top-level index position, top descriptor, manifest descriptor, manifest) for every image."""
    out = []
    for k, top in enumerate(index_descriptors(store)):
        for desc, man, _trail in walk_descriptor(store, top, f"index.json manifests[{k}]"):
            if not is_attestation(descriptor_platform(desc), desc.get("annotations")):
                out.append((k, top, desc, man))
    return out


def _choose(cands, sel: str | None, location: str) -> list:
    if sel is None:
        return cands
    if sel.startswith("@"):
        try:
            k = int(sel[1:])
        except ValueError:
            raise SourceError(f"{location}:{sel}: '@' must be followed by an index into index.json") from None
        got = [c for c in cands if c[0] == k]
        if not got:
            raise SourceError(f"{location}:{sel}: index.json has no image at that position; choices: {_listing(cands)}")
        return got
    got = [c for c in cands if sel in _names(c[1]) or any(normalise_tag(n) == normalise_tag(sel) for n in _names(c[1]))]
    if not got:
        raise SourceError(f"{location}: no image named {sel!r}; choices: {_listing(cands)}")
    return got


def _listing(cands) -> str:
    seen = []
    for k, outer, desc, _m in cands:
        names = _names(outer)
        item = f"@{k}" + (f" ({names[0]})" if names else "") + (f" [{descriptor_platform(desc)}]" if descriptor_platform(desc) else "")
        if item not in seen:
            seen.append(item)
    return "; ".join(seen) or "none"


def _by_platform(cands, platform: str | None, location: str) -> list:
    """Within each top-level entry holding several platforms, keep the wanted one."""
    if platform in ("all", "*"):
        return cands
    want = platform or host_platform()
    groups: dict[int, list] = {}
    for c in cands:
        groups.setdefault(c[0], []).append(c)
    out = []
    for k, group in groups.items():
        if len(group) == 1 and platform is None:
            out.extend(group)
            continue
        pick = choose([descriptor_platform(c[2]) for c in group], want)
        if pick is None:
            avail = sorted({descriptor_platform(c[2]) or "?" for c in group})
            raise SourceError(
                f"{location}: no image for platform {want} (available: {', '.join(avail)}); "
                "pass platform='os/arch' or platform='all'"
            )
        out.append(group[pick])
    return out


def _image(store: Store, path: str, transport: str, cand, n_total: int, label_suffix: str,
           progress: bool | None = None, cache_dir=None) -> Image:
    k, outer, desc, man = cand
    loc = store.location
    mdigest = desc["digest"]
    where = f"manifest {mdigest}"
    cfg_desc = man.get("config")
    if not isinstance(cfg_desc, dict):
        raise FormatError(f"{loc}: {where} has no config descriptor")
    cfg_digest = check_digest(cfg_desc.get("digest"), f"{loc}: {where} config")
    config, _ = store.read_json(blob_path(cfg_digest), where, "image config", digest=cfg_digest)
    config = as_object(config, f"{loc}: config {cfg_digest}", "the image config")
    diff_ids = config_diff_ids(config, f"{loc}: config {cfg_digest}")
    ldescs = man.get("layers") or []
    if not isinstance(ldescs, list):
        raise FormatError(f"{loc}: {where}: 'layers' is not a list")
    if len(ldescs) != len(diff_ids):
        raise FormatError(
            f"{loc}: {where} lists {len(ldescs)} layers but its config lists {len(diff_ids)} diff_ids"
        )
    layers: list[Layer] = []
    blobs: list[tuple[int, Blob, str | None]] = []
    pending: list[tuple[int, Blob, str]] = []
    warnings: list[str] = []
    for pos, (ld, diff_id) in enumerate(zip(ldescs, diff_ids)):
        lwhere = f"{where} layer {pos}"
        if not isinstance(ld, dict):
            raise FormatError(f"{loc}: {lwhere} is not a descriptor object")
        digest = check_digest(ld.get("digest"), f"{loc}: {lwhere}")
        mt = ld.get("mediaType")
        comp = layer_compression(mt, f"{loc}: {lwhere} (blob {blob_path(digest)})")
        annotations = {k2: v for k2, v in (ld.get("annotations") or {}).items() if isinstance(v, str)} \
            if isinstance(ld.get("annotations"), dict) else {}
        if comp == "gzip" and is_estargz(annotations):
            annotations["layerlab.estargz"] = "true"
        declared = ld.get("size") if isinstance(ld.get("size"), int) else None
        blob = store.find(blob_path(digest), lwhere)
        size = None
        if blob is None:
            if "nondistributable" in mt or "foreign" in mt or ld.get("urls"):
                warnings.append(f"layer {pos} ({digest}) is a foreign layer not stored in the layout")
                compressed = declared
            else:
                raise FormatError(
                    f"{loc}: {lwhere} names blob {blob_path(digest)} ({mt}), which is missing "
                    "(missing blob); the layout was copied incompletely"
                )
        else:
            compressed = blob.length
            if declared is not None and declared != blob.length:
                raise FormatError(
                    f"{loc}: blob {blob.name} is {blob.length} bytes but {where} says {declared}; "
                    "it is truncated or not the blob the manifest names"
                )
            actual = detect(store.head(blob, 8))
            if actual != comp:
                mt = reconcile_compression(mt, comp, actual, f"{loc}: blob {blob.name}", annotations, warnings)
                comp = actual
            if comp == "none":
                pending.append((pos, blob, f"{loc}: layer blob {blob.name}"))
            blobs.append((pos, blob, mt))
        layers.append(
            Layer(position=pos, diff_id=diff_id, digest=digest, media_type=mt, size=size,
                  compressed_size=wire_size(mt, compressed), annotations=annotations)
        )
    indexes: dict = {}
    sized = fill_sizes(layers, pending, f"{transport}:{path}", progress, cache_dir, indexes=indexes)
    ann = outer.get("annotations") if isinstance(outer.get("annotations"), dict) else {}
    full = ann.get(CONTAINERD_NAME) if isinstance(ann.get(CONTAINERD_NAME), str) else None
    ref_name = ann.get(REF_NAME) if isinstance(ann.get(REF_NAME), str) and ann.get(REF_NAME) else None
    if full:  # Docker 25+ / containerd: "docker.io/library/busybox:latest" beside ref.name "latest"
        base = normalise_tag(full)
        names = [full]
    elif ref_name:
        base = layout_image_name(path, ref_name)
        names = [base]
    else:
        base = layout_name(path) + (f"@{k}" if n_total > 1 else "")
        names = []
    plat = platform_of(config) or descriptor_platform(desc)
    sel = f":{ann[REF_NAME]}" if isinstance(ann.get(REF_NAME), str) else f":@{k}"
    img = Image(
        reference=base + label_suffix,
        source=transport,
        layer_list=layers,
        history_list=history_from_config(config, len(layers), f"{loc}: config {cfg_digest}"),
        id=cfg_digest,
        manifest_digest=mdigest,
        repo_tags=names,
        platform=plat,
        created=parse_time(config.get("created")),
        config=config,
        location=f"{transport}:{path}{sel}",
        blobs=StoreBlobs(f"{transport}:{path}", blobs, sized, indexes) if blobs else None,
        warnings=warnings,
    )
    if img.unpaired_layers:
        img.warnings.append(f"layers {img.unpaired_layers} have no history step")
    return img


def _images(ref: str, transport: str, platform: str | None, want_one: bool,
            progress: bool | None = None, cache_dir=None) -> list[Image]:
    path, sel = _split(ref, transport)
    store = _store(path, transport)
    location = f"{transport}:{path}"
    cands = _candidates(store)
    if not cands:
        raise SourceError(f"{location}: index.json lists no image manifests")
    cands = _by_platform(_choose(cands, sel, location), platform, location)
    if want_one and len(cands) != 1:
        raise SourceError(
            f"{location} holds {len(cands)} images; name one as '{location}:TAG' or ':@N' "
            f"(choices: {_listing(cands)}), or use layerlab.load_many() for all"
        )
    multi_plat = len({c[0] for c in cands}) < len(cands)
    n_top = len({c[0] for c in cands})
    out = []
    for c in cands:
        suffix = f"[{descriptor_platform(c[2])}]" if multi_plat else ""
        out.append(_image(store, path, transport, c, n_top, suffix, progress, cache_dir))
    return out


def load_many(ref: str, transport: str = "oci", platform: str | None = None, **options) -> list[Image]:
    return _images(ref, transport, platform, want_one=False, progress=options.get("progress"),
                   cache_dir=options.get("cache_dir"))


def load(ref: str, transport: str = "oci", platform: str | None = None, **options) -> Image:
    return _images(ref, transport, platform, want_one=True, progress=options.get("progress"),
                   cache_dir=options.get("cache_dir"))[0]

