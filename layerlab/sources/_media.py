"""Media types: which documents and layers the file and registry sources read,
and what a layer's media type says about its compression.

The compression rules themselves live in :mod:`layerlab.contents.compression`
(``detect`` reads the magic bytes, ``kind_from_media_type`` reads a media
type); this module lists the layer media types layerlab accepts and decides
what to do when a blob's bytes disagree with its declared type.
"""
from __future__ import annotations

from ..contents.compression import (  # noqa: F401 - the layer media types are part of this module's interface
    DOCKER_FOREIGN_GZIP,
    DOCKER_LAYER,
    DOCKER_LAYER_GZIP,
    DOCKER_LAYER_ZSTD,
    GZIP,
    LAYER_COMPRESSION,
    MEDIA_TYPE_FOR,
    NONE,
    OCI_MEDIA_TYPE_FOR,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_ND_LAYER,
    OCI_ND_LAYER_GZIP,
    OCI_ND_LAYER_ZSTD,
    ZSTD,
    kind_from_media_type,
)
from ..errors import FormatError

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST_V1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_MANIFEST_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"

MANIFEST_TYPES = {DOCKER_MANIFEST, OCI_MANIFEST}
INDEX_TYPES = {DOCKER_MANIFEST_LIST, OCI_INDEX}

LAYER_MEDIA_TYPES = frozenset(LAYER_COMPRESSION)
"""The layer media types layerlab reads: Docker and OCI tar, tar+gzip and tar+zstd."""

# the annotations eStargz (stargz-snapshotter) puts on a gzip layer descriptor
ESTARGZ_ANNOTATIONS = (
    "containerd.io/snapshot/stargz/toc.digest",
    "io.containers.estargz.uncompressed-size",
)



def media_type_of(doc: dict, where: str, default: str | None = None) -> str | None:
    """A descriptor's or document's ``mediaType``: a string, or None when absent."""
    mt = doc.get("mediaType", default)
    if mt is not None and not isinstance(mt, str):
        raise FormatError(f"{where}: mediaType {mt!r} is not a string")
    return mt


def layer_compression(media_type: str | None, where: str) -> str:
    """``none``/``gzip``/``zstd`` for a layer media type; FormatError for an unknown one."""
    if isinstance(media_type, str) and media_type in LAYER_MEDIA_TYPES:
        return kind_from_media_type(media_type)  # type: ignore[return-value]
    raise FormatError(
        f"{where}: unknown layer media type {media_type!r}; layerlab reads Docker and OCI "
        "tar, tar+gzip and tar+zstd layers (an image of another artifact type is not a container image)"
    )


def wire_size(media_type: str | None, length: int | None) -> int | None:
    """A layer's ``compressed_size`` in a file source (``docker-archive:``,
    ``oci:``, ``oci-archive:``): the blob's ``length`` when its (reconciled)
    media type says it is compressed, else None.

    ``compressed_size`` is the length of the blob a registry serves, never an
    uncompressed tar length.  A gzip or zstd blob crosses the wire as it is
    stored: every pusher sends it unchanged.  An uncompressed layer blob (a
    legacy ``docker save`` layer.tar, Docker 25+'s saves, whose OCI manifests
    declare ``…layer.v1.tar``, or an OCI layout written with uncompressed
    layers) is what a push *starts from*, not what it sends: ``docker push``
    (moby ``distribution``'s ``compress``: Go ``gzip.NewWriter``, the default
    level) and skopeo/containers-image copying to a registry gzip it; only
    tools that keep the manifest byte for byte (crane, oras, ``skopeo
    --preserve-digests``) push the tar itself.  So the media type decides —
    even where an OCI manifest declares the tar — and an uncompressed blob's
    wire size is unknown (null).  :func:`layerlab.estimate_wire_sizes` fills
    ``compressed_size_estimate`` for such layers instead.  Registry sources
    (``docker://``, ``manifest:``) state the size of the blob they serve and
    do not use this rule."""
    if length is None or kind_from_media_type(media_type) in (None, NONE):
        return None
    return length


def is_estargz(annotations: dict[str, str] | None) -> bool:
    """Whether a layer descriptor's annotations mark an eStargz layer."""
    return bool(annotations) and any(k in annotations for k in ESTARGZ_ANNOTATIONS)  # type: ignore[operator]


def reconcile_compression(declared_type: str, declared: str, actual: str, where: str,
                          annotations: dict[str, str], warnings: list[str]) -> str:
    """The media type to use when a blob's bytes disagree with its declared type.

    The bytes win, as they do for containerd and ``docker load`` (both sniff
    the magic number): skopeo 1.9, for one, writes uncompressed layers declared
    ``tar+gzip`` when asked to accept uncompressed layers.  The declared type
    is kept in the ``layerlab.declared_media_type`` annotation and a warning
    is recorded.  Compressions with no layer media type (bzip2, xz) are errors.
    """
    if actual == declared:
        return declared_type
    table = OCI_MEDIA_TYPE_FOR if declared_type.startswith("application/vnd.oci.") else MEDIA_TYPE_FOR
    if actual not in table:
        raise FormatError(
            f"{where}: declared {declared_type} but its bytes are {actual}-compressed, which no layer "
            "media type allows; layerlab reads uncompressed, gzip and zstd layers"
        )
    annotations["layerlab.declared_media_type"] = declared_type
    warnings.append(f"{where}: declared {declared_type} but its bytes are {actual}-compressed; read as {table[actual]}")
    return table[actual]
