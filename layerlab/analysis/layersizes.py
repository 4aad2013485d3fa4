"""Uncompressed layer sizes for images whose source does not state them.

A registry manifest gives each layer's compressed length only; the pull-time
model (:mod:`.pull`) and the size analyses need the uncompressed size too.
:func:`measure_sizes` streams each layer blob once through the contents
engine (``Image.files(hash=None)``): the engine fills ``Layer.size`` with
Docker's size of the layer and caches the layer's file table by diff_id, so
the next call — in this process or another, for any image sharing the layer
— reads the cached table instead of the registry.
"""
from __future__ import annotations

from typing import Any

from ..errors import AnalysisError


def measure_sizes(data: Any, *, cache_dir: Any = None, progress: bool = True, verify: bool = True,
                  workers: int | None = None) -> list[str]:
    """Fill every unknown ``Layer.size`` of ``data`` (an Image, a Fleet or a list
    of Images) by streaming the layer blobs once (see the module doc).

    Images whose sizes are all known are left alone; images without layer
    contents (saved history, repo-info, manifests) and no cached tables raise
    AnalysisError naming the image.  ``cache_dir``, ``progress``, ``verify``
    and ``workers`` are ``Image.files()``'s.  Returns the references of the
    images that were measured.  Call it before :func:`~layerlab.pull_time` or
    ``fleet.layers()`` on a registry fleet.
    """
    from ..model import Fleet, Image

    if isinstance(data, Image):
        images = [data]
    elif isinstance(data, Fleet) or (isinstance(data, (list, tuple)) and all(isinstance(i, Image) for i in data)):
        images = list(data)
    else:
        raise AnalysisError(f"measure_sizes(): data is a {type(data).__name__}; pass an Image, a Fleet "
                            "or a list of Images (a frame holds no blobs to stream)")
    measured = []
    for img in images:
        if all(layer.size is not None for layer in img.layer_list):
            continue
        if not img.has_file_tables:
            raise AnalysisError(f"measure_sizes(): {img.reference} comes from a {img.source!r} source without "
                                "layer contents; load it from docker://, oci:, docker-archive: or docker-daemon:")
        img.files(hash=None, cache_dir=cache_dir, progress=progress, verify=verify, workers=workers)
        measured.append(img.reference)
    return measured
