"""Layer sizes a source does not state: uncompressed sizes (:func:`measure_sizes`)
and estimated wire sizes (:func:`estimate_wire_sizes`).

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


def _images_of(data: Any, fn: str) -> list:
    from ..model import images_in

    images = images_in(data)
    if images is None:
        raise AnalysisError(f"{fn}(): data is a {type(data).__name__}; pass an Image, a Fleet "
                            "or a list of Images (a frame holds no blobs to stream)")
    return images


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
    images = _images_of(data, "measure_sizes")
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


def estimate_wire_sizes(data: Any, *, progress: bool | None = None) -> list[str]:
    """Fill ``Layer.compressed_size_estimate`` (the layers frame's
    ``compressed_size_estimate`` column) for every layer of ``data`` (an Image,
    a Fleet or a list of Images) whose wire size is unknown.

    The estimate is what ``docker push`` would send for the layer: the length
    of the layer's uncompressed tar (its diff, as the source stores it: a
    ``docker save`` layer.tar, an OCI layout's plain blob, the engine's
    export) compressed to a gzip stream at level 6, Docker's level
    (:data:`layerlab.contents.compression.DOCKER_PUSH_GZIP_LEVEL`).  It is
    defined so anyone can recompute it: ``len(gzip.compress(tar, 6))`` in
    Python (zlib's deflate; the gzip header is 10 bytes whatever its mtime,
    no file name, and an 8-byte trailer).  moby compresses with Go's
    ``compress/flate`` instead, so the real blob differs by a few percent
    (measured against ``docker push``: the estimate 1.9% under on a 371 MB
    Debian + Python image, 3.1% under on a small busybox one).
    It stays an estimate: ``compressed_size`` is left null, and the pull
    analyses say when they used an estimate.

    Slow: it reads and compresses every such layer (a progress bar shows for
    it; ``progress=False`` hides it, None shows it on a terminal or notebook).
    Each distinct diff_id is compressed once, also across images; the stream
    is checked against the diff_id.  Layers whose ``compressed_size`` (or an
    earlier estimate) is known are skipped.  An image with such layers but no layer contents (saved
    history, repo-info, a snapshot) raises AnalysisError naming it.  Returns
    the references of the images that got estimates."""
    from ..contents.compression import DecodedStream, gzip_length
    from ..errors import LayerlabError

    images = _images_of(data, "estimate_wire_sizes")
    done: dict[str, int] = {}
    todo = []
    for img in images:
        want = [layer.position for layer in img.layer_list
                if layer.compressed_size is None and layer.compressed_size_estimate is None]
        if not want:
            continue
        if img.blobs is None:
            raise AnalysisError(
                f"estimate_wire_sizes(): {img.reference} comes from a {img.source!r} source without layer "
                "contents; load it from docker-archive:, oci:, oci-archive: or docker-daemon: (or from a "
                "registry, docker://, which states the wire sizes)")
        todo.append((img, want))
    total = sum(_stored_bytes(img, p) for img, want in todo for p in want)
    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="B", unit_scale=True, desc="estimating wire sizes (gzip -6)", leave=False,
               disable=(not progress) if progress is not None else None)
    out = []
    try:
        for img, want in todo:
            missing = [p for p in want if img.layer_list[p].diff_id not in done]
            if missing:
                for positions, media_type, fobj in img.blobs.iter_blobs(missing):
                    diff_id = img.layer_list[positions[0]].diff_id
                    label = f"{img.reference}: layer {positions[0]}"
                    stream = DecodedStream(fobj, label=label, media_type=media_type)
                    try:
                        n = gzip_length(stream, on_read=bar.update)
                        got = stream.sha256
                    finally:
                        stream.close()
                    if diff_id and got != diff_id:
                        raise AnalysisError(f"estimate_wire_sizes(): {label} hashes to {got}, not its "
                                            f"diff_id {diff_id}; the source changed or is damaged: load it again")
                    for p in positions:
                        img.layer_list[p].compressed_size_estimate = n
                    if diff_id:
                        done[diff_id] = n
            for p in want:
                layer = img.layer_list[p]
                if layer.compressed_size_estimate is None and layer.diff_id in done:
                    layer.compressed_size_estimate = done[layer.diff_id]
            out.append(img.reference)
    except LayerlabError as e:
        if isinstance(e, AnalysisError):
            raise
        raise AnalysisError(f"estimate_wire_sizes(): {e}") from e
    finally:
        bar.close()
        for img, _want in todo:
            img.blobs.close()
    return out


def _stored_bytes(img, pos: int) -> int:
    rng = img.blobs.byte_range(pos)
    if rng is not None:
        return int(rng[2])
    return int(img.layer_list[pos].size or 0)


