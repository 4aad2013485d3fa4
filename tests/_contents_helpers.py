"""Helpers for the layer-contents tests: layer tars built by hand with tarfile,
and a tiny in-memory BlobProvider so an Image can be scanned without a source."""
from __future__ import annotations

import hashlib
import io
import tarfile

from layerlab.model import BlobProvider, Image, Layer


def entry(name: str, data: bytes | None = None, *, type=tarfile.REGTYPE, link: str = "", mode: int = 0o644,
          uid: int = 0, gid: int = 0, mtime: int = 1_700_000_000):
    return dict(name=name, data=data, type=type, link=link, mode=mode, uid=uid, gid=gid, mtime=mtime)


def d(name: str, **kw):
    kw.setdefault("mode", 0o755)
    return entry(name, type=tarfile.DIRTYPE, **kw)


def f(name: str, data: bytes = b"", **kw):
    return entry(name, data, **kw)


def sym(name: str, target: str):
    return entry(name, type=tarfile.SYMTYPE, link=target, mode=0o777)


def hard(name: str, target: str):
    return entry(name, type=tarfile.LNKTYPE, link=target)


def wh(name: str):
    """A whiteout for ``name`` (``dir/.wh.base``)."""
    parent, _, base = name.rpartition("/")
    return f((parent + "/" if parent else "") + ".wh." + base)


def opq(dirname: str):
    return f(dirname.rstrip("/") + "/.wh..wh..opq")


def layer_tar(entries, fmt=tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for e in entries:
            ti = tarfile.TarInfo(e["name"])
            ti.type = e["type"]
            ti.mode, ti.uid, ti.gid, ti.mtime = e["mode"], e["uid"], e["gid"], e["mtime"]
            ti.linkname = e["link"]
            data = e["data"]
            if data is not None and e["type"] in (tarfile.REGTYPE, tarfile.AREGTYPE):
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            else:
                tf.addfile(ti)
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class MemBlobs(BlobProvider):
    """BlobProvider over in-memory blobs; counts how often each position is read."""

    def __init__(self, blobs: list[bytes], media_types: list[str | None] | None = None):
        self.blobs = blobs
        self.media_types = media_types or [None] * len(blobs)
        self.reads: list[int] = []

    def iter_blobs(self, positions=None):
        wanted = range(len(self.blobs)) if positions is None else sorted(set(positions))
        for p in wanted:
            self.reads.append(p)
            yield [p], self.media_types[p], io.BytesIO(self.blobs[p])


def mem_image(layers: list[bytes], *, blobs: list[bytes] | None = None, name: str = "test/mem:1",
              diff_ids: list[str | None] | None = None, media_types=None, history=None) -> Image:
    """An Image whose layers are the uncompressed tars ``layers`` (stored as ``blobs``)."""
    from layerlab.model import HistoryStep, pair_by_empty_layer

    ids = diff_ids if diff_ids is not None else [sha256(t) for t in layers]
    img = Image(
        reference=name,
        source="test",
        layer_list=[Layer(position=i, diff_id=ids[i]) for i in range(len(layers))],
    )
    steps = [HistoryStep(index=i, created_by=(history[i] if history else f"RUN step {i}"), empty_layer=False)
             for i in range(len(layers))]
    pair_by_empty_layer(steps, len(layers))
    img.history_list = steps
    img.blobs = MemBlobs(blobs if blobs is not None else layers, media_types)
    return img
