"""The bytes of chosen files of one layer, streamed from its blob.

``read_members(img, position, wanted)`` reads the regular files of layer
``position`` whose normalised path ``wanted`` accepts (package databases,
``dpkg`` file lists, ``RECORD`` files…), one layer tar pass, at most
``max_bytes`` in all; the rest of the tar is only skipped over.
"""
from __future__ import annotations

from typing import Callable

from ..errors import LimitError, SourceError
from ..model import Image


def read_members(img: Image, position: int, wanted: Callable[[str], bool], *,
                 max_bytes: int = 64 << 20) -> dict[str, bytes]:
    """``{path: bytes}`` of the regular files of layer ``position`` of ``img``
    whose path (normalised as in the file table: no leading ``/``) ``wanted``
    accepts; the last entry wins for a path listed twice.  Raises
    :class:`~layerlab.errors.SourceError` when the image has no blobs and
    :class:`~layerlab.errors.LimitError` when the files together exceed
    ``max_bytes``."""
    from .compression import DecodedStream
    from .options import layer_label
    from .tar import TarReader
    from .whiteouts import normalise_path

    if img.blobs is None:
        raise SourceError(f"{img.reference}: no layer blobs ({img.source}); its files cannot be read "
                            "(load the image from a source that has them: docker-daemon:, docker-archive:, oci:)")
    label = layer_label(img, position)
    out: dict[str, bytes] = {}
    budget = max_bytes
    blobs = img.blobs.iter_blobs([position])
    try:
        for poss, media_type, fileobj in blobs:
            if position not in poss:
                continue
            stream = DecodedStream(fileobj, label=label, media_type=media_type or img.layer_list[position].media_type)
            try:
                reader = TarReader(stream, label)
                for head in reader:
                    if head.type not in (b"0", b"7"):
                        continue
                    path = normalise_path(head.name)[0]
                    if not wanted(path):
                        continue
                    budget -= head.size
                    if budget < 0:
                        raise LimitError(f"{label}: the files asked for exceed max_bytes={max_bytes}; "
                                            "ask for fewer files or raise max_bytes=")
                    parts, got = [], 0
                    while got < head.size:
                        chunk = reader.read_data(min(head.size - got, 1 << 16))
                        if not chunk:
                            break
                        parts.append(chunk)
                        got += len(chunk)
                    out[path] = b"".join(parts)
            finally:
                stream.close()
            break
    finally:
        blobs.close()
    return out
