"""OCI index walking (``oci:``, ``oci-archive:``, and Docker 25+ saves).

From ``index.json`` through nested indexes to the image manifests, every
index and manifest blob verified against its digest.  Artifacts that are not
images (signatures, helm charts, ...) are passed over.
"""
from __future__ import annotations

from typing import Iterator

from ..errors import FormatError
from ._digest import as_object, blob_path, check_digest
from ._media import INDEX_TYPES, MANIFEST_TYPES, media_type_of
from ._store import Store


def walk_index(store: Store, name: str = "index.json") -> Iterator[tuple[dict, dict, tuple]]:
    """Yield ``(descriptor, manifest, trail)`` for every image manifest reachable
    from ``index.json`` through nested indexes.  ``trail`` holds the descriptors
    of the enclosing indexes, outermost first (their annotations name tags).
    Index and manifest blobs are verified against their digests."""
    for _i, desc in enumerate(index_descriptors(store, name)):
        yield from walk_descriptor(store, desc, f"{name} manifests[{_i}]")


def index_descriptors(store: Store, name: str = "index.json", digest: str | None = None) -> list[dict]:
    """The descriptors ``index.json`` (or the index ``name``) lists, read and checked."""
    doc, _ = store.read_json(name, name, "index", digest=digest)
    doc = as_object(doc, f"{store.location}: {name}", "the index")
    return _descriptors(doc, f"{store.location}: {name}")


def _descriptors(doc: dict, where: str) -> list[dict]:
    """An index's ``manifests``: a list of descriptor objects (FormatError otherwise)."""
    manifests = doc.get("manifests") or []
    if not isinstance(manifests, list):
        raise FormatError(f"{where}: 'manifests' is not a list")
    for i, desc in enumerate(manifests):
        if not isinstance(desc, dict):
            raise FormatError(f"{where} manifests[{i}] is not an object")
    return manifests


def walk_descriptor(store: Store, desc: dict, where: str, _trail: tuple = ()) -> Iterator[tuple[dict, dict, tuple]]:
    """The image manifests one descriptor leads to (itself, or through nested indexes)."""
    if len(_trail) > 8:
        raise FormatError(f"{store.location}: indexes nested more than 8 deep at {where}; refusing (a loop?)")
    d = check_digest(desc.get("digest"), f"{store.location}: {where}")
    mt = media_type_of(desc, f"{store.location}: {where}")
    doc, _ = store.read_json(blob_path(d), where, "index" if mt in INDEX_TYPES else "manifest", digest=d)
    doc = as_object(doc, f"{store.location}: blob {blob_path(d)}", "the manifest")
    mmt = media_type_of(doc, f"{store.location}: blob {blob_path(d)}", mt)
    if mmt in INDEX_TYPES or (mmt is None and "manifests" in doc):
        for i, sub in enumerate(_descriptors(doc, f"{store.location}: index {d}")):
            yield from walk_descriptor(store, sub, f"index {d} manifests[{i}]", _trail + (desc,))
        return
    if mmt is not None and mmt not in MANIFEST_TYPES:
        return  # artifacts (signatures, helm charts, ...) are not images
    yield desc, doc, _trail
