"""Wire sizes of engine images from the registries their ``RepoDigests`` name
(:func:`registry_wire_sizes`; ``layerlab.load("docker-daemon:…",
fill_wire_sizes=True)`` calls it)."""
from __future__ import annotations

from typing import Any

from ..errors import LayerlabError, SourceError
from ..model import Image, images_in


def _images_of(data: Any) -> list[Image]:
    images = images_in(data)
    if images is None:
        raise SourceError(f"registry_wire_sizes(): data is a {type(data).__name__}; pass an Image, a Fleet "
                          "or a list of Images")
    return images


def registry_wire_sizes(data: Any, *, tls_verify: bool | str | None = None, insecure: bool | None = None,
                        auth: tuple[str, str] | None = None, timeout: float = 30.0, retries: int = 4,
                        certs_dir: Any = None, docker_config: Any = None) -> list[str]:
    """Fill the unknown ``compressed_size`` (and ``digest``, ``media_type``)
    of the layers of ``data`` (an Image, a Fleet or a list of Images) from the
    registries their ``repo_digests`` name.

    An engine image (``docker-daemon:``) states no wire sizes, but once it was
    pushed or pulled the engine records ``RepoDigests``
    (``127.0.0.1:5000/team/app@sha256:…``): the manifest there lists the very
    blobs a pull downloads.  Each repo digest is read as
    ``docker://REPO@DIGEST`` (for the image's platform) until one answers
    with the same diff_ids; its layers' sizes, digests and media types fill
    the ones this image lacks (known values are kept).  A registry that does
    not answer, or whose manifest describes other layers, is noted in the
    image's ``warnings`` and the next repo digest is tried.  The connection
    options are :func:`layerlab.load`'s for ``docker://``.  Returns the
    references of the images that got wire sizes."""
    from .remote import load

    options = {"tls_verify": tls_verify, "insecure": insecure, "auth": auth, "timeout": timeout,
               "retries": retries, "certs_dir": certs_dir, "docker_config": docker_config}
    options = {k: v for k, v in options.items() if v is not None}
    out = []
    for img in _images_of(data):
        if all(layer.compressed_size is not None for layer in img.layer_list):
            continue
        for repo_digest in img.repo_digests:
            try:
                remote = load(repo_digest, **options,
                              **({"platform": img.platform} if img.platform else {}))
            except LayerlabError as e:
                img.warnings.append(f"registry_wire_sizes: {repo_digest} could not be read: {e}")
                continue
            if [l.diff_id for l in remote.layer_list] != [l.diff_id for l in img.layer_list]:
                img.warnings.append(f"registry_wire_sizes: {repo_digest} describes other layers (its diff_ids "
                                    "differ); not used")
                continue
            for mine, theirs in zip(img.layer_list, remote.layer_list):
                if mine.compressed_size is None:
                    mine.compressed_size = theirs.compressed_size
                mine.digest = mine.digest or theirs.digest
                mine.media_type = mine.media_type or theirs.media_type
            out.append(img.reference)
            break
    return out


__all__ = ["registry_wire_sizes"]
