"""Write layer tars again and compress them the way their source did.

What a merged layer would weigh as a pushed blob cannot be derived from the
file table: it is measured.  :func:`write_merged_layers` streams the layer
blobs of each group once, copies the tar members that survive into one new
tar per group (``tarfile``, PAX format), and compresses it on the fly with
the algorithm and level the source used:

* gzip: the level is read from the blob header's XFL byte (2 -> 9, 4 -> 1,
  otherwise the default 6, what Docker pushes with);
* zstd: level 3 (a zstd frame records no level; zstd's default);
* anything else (plain tars of ``docker save``): gzip level 6, as a push would.

The kind of compression is told by :func:`layerlab.contents.compression.detect`
(the one place with magic bytes); only the gzip *level* is read here
(:func:`detect_level`).  While a
group's original layers stream past they are recompressed the same way
(calibration: how close this compressor comes to the one that made the real
blobs).
"""
from __future__ import annotations

import os
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterable

from ..errors import FormatError
from .compression import GZIP, ZSTD, DecodedStream, detect_level, gzip_compressobj
from .tarscan import OPAQUE
from .whiteouts import WHITEOUT_PREFIX, normalise_path, opaque_name, whiteout_name
_HEAD = 16           # bytes of a blob needed to tell its compression and gzip level
_COPY = 1 << 20      # bytes copied at a time
_SPOOL = 1 << 22     # hard-link contents up to this size stay in memory


@dataclass(frozen=True)
class Recompression:
    """How a source blob is compressed, and how we compress in its place."""

    source: str       # gzip, zstd, or none (anything else: compressed with gzip)
    algorithm: str    # what we compress with: gzip or zstd
    level: int
    how: str          # how the level was found, in words


def recompression_of(head: bytes) -> Recompression:
    """:func:`detect_level` of a blob starting with ``head`` as a :class:`Recompression`."""
    source, level, how = detect_level(head)
    return Recompression(source, ZSTD if source == ZSTD else GZIP, level, how)


class Compressor:
    """A write-only file object that compresses what is written to it and counts
    the compressed bytes (``count``) and the bytes written (``raw``); the
    compressed bytes also go to ``sink`` when one is given."""

    def __init__(self, algorithm: str, level: int, sink: BinaryIO | None = None):
        self.algorithm = algorithm
        self.level = level
        self.sink = sink
        self.count = 0
        self.raw = 0
        if algorithm == ZSTD:
            import zstandard

            self._z = zstandard.ZstdCompressor(level=level).compressobj()
        else:
            self._z = gzip_compressobj(level)

    def _out(self, b: bytes) -> None:
        if b:
            self.count += len(b)
            if self.sink is not None:
                self.sink.write(b)

    def write(self, data) -> int:
        self.raw += len(data)
        self._out(self._z.compress(bytes(data)))
        return len(data)

    def close(self) -> int:
        """Finish the stream; returns the compressed length."""
        self._out(self._z.flush())
        return self.count

    def flush(self) -> None:  # tarfile calls it
        pass


class Tee:
    """A read-only file object that copies every byte read into ``sink``."""

    def __init__(self, src: BinaryIO, sink: Compressor):
        self.src, self.sink = src, sink

    def read(self, n: int = -1) -> bytes:
        b = self.src.read(n)
        if b:
            self.sink.write(b)
        return b

    def drain(self) -> None:
        while self.read(_COPY):
            pass


class _Prefixed:
    """A raw reader giving ``head`` (already read from ``raw``) first, then the rest of ``raw``."""

    def __init__(self, head: bytes, raw: BinaryIO):
        self._head, self._raw = head, raw

    def read(self, n: int = -1) -> bytes:
        if self._head:
            head, self._head = self._head, b""
            if n is None or n < 0:
                return head + self._raw.read()
            return head + (self._raw.read(n - len(head)) if n > len(head) else b"")
        return self._raw.read(n)


def _peek(fobj: BinaryIO) -> tuple[bytes, BinaryIO]:
    head = b""
    while len(head) < _HEAD:
        more = fobj.read(_HEAD - len(head))
        if not more:
            break
        head += more
    return head, _Prefixed(head, fobj)


def _spool(src: BinaryIO | None):
    sp = tempfile.SpooledTemporaryFile(max_size=_SPOOL)
    while src is not None:
        chunk = src.read(_COPY)
        if not chunk:
            break
        sp.write(chunk)
    return sp


def _marker_name(kind: str, path: str) -> str:
    """The tar name of the whiteout deleting ``path``, or of the marker making it opaque."""
    p = path.rstrip("/")
    return opaque_name(p) if kind == OPAQUE else whiteout_name(p)


@dataclass
class MergedBlob:
    """The measurement of one merged layer."""

    compressed_bytes: int            # the merged tar, compressed like the source
    tar_bytes: int                   # the merged tar, uncompressed
    recompressed_before_bytes: int   # the group's original layers compressed the same way
    compression: Recompression       # of the group's first layer

    @property
    def method(self) -> str:
        c = self.compression
        return f"merged tar written and compressed with {c.algorithm} level {c.level} ({c.how})"


class _MergedWriter:
    """State of one :func:`write_merged_layers` call (see there)."""

    def __init__(self, groups, keep, markers, materialise, output_dir, label):
        self.groups, self.keep, self.markers, self.label = groups, keep, markers, label
        self.materialise = materialise or {}
        self.output_dir = output_dir
        self.pos_group = {p: gi for gi, g in enumerate(groups) for p in g}
        self.link_of = {(p, link): key for key, links in self.materialise.items() for (p, link) in links}
        self.sinks: dict[int, Any] = {}
        self.tars: dict[int, tarfile.TarFile] = {}
        self.comps: dict[int, Compressor] = {}
        self.recomp: dict[int, int] = {gi: 0 for gi in range(len(groups))}
        self.info: dict[int, Recompression] = {}
        # (target layer, target path) -> its content, spooled, for hard links that become files
        self.spool: dict[tuple[int, str], Any] = {}
        self.deferred: list[tuple[int, tarfile.TarInfo, tuple[int, str]]] = []

    def wanted(self) -> list[int]:
        return sorted(set(self.pos_group) | {k[0] for k in self.materialise})

    def _open(self, gi: int) -> None:
        c = self.info[gi]
        if self.output_dir is not None:
            d = Path(self.output_dir)
            d.mkdir(parents=True, exist_ok=True)
            ext = "tar.zst" if c.algorithm == ZSTD else "tar.gz"
            sink = open(d / f"merged-{self.groups[gi][0]}-{self.groups[gi][-1]}.{ext}", "wb")
        else:
            sink = tempfile.TemporaryFile(prefix="layerlab-merge-")
        self.sinks[gi] = sink
        self.comps[gi] = Compressor(c.algorithm, c.level, sink)
        self.tars[gi] = tarfile.open(fileobj=self.comps[gi], mode="w|", format=tarfile.PAX_FORMAT)

    def read_lower(self, positions: list[int], mt: str | None, fobj: BinaryIO) -> None:
        """A layer below every group, read only for the content of hard-link targets."""
        need = {k[1]: k for k in self.materialise if k[0] in positions}
        stream = DecodedStream(fobj, label=f"{self.label} layer {positions}", media_type=mt)
        try:
            tf = tarfile.open(fileobj=stream, mode="r|", encoding="utf-8", errors="surrogateescape")
            for ti in tf:
                path, _ = normalise_path(ti.name)
                if path in need and ti.isfile():
                    self.spool[need[path]] = _spool(tf.extractfile(ti))
        except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
            raise FormatError(f"{self.label} layer {positions}: cannot read the layer tar ({e})") from e

    def read_group_layer(self, positions: list[int], mt: str | None, fobj: BinaryIO) -> None:
        """A layer of one or more groups: copy its surviving members, recompress it whole."""
        in_groups = sorted({self.pos_group[p] for p in positions if p in self.pos_group})
        head, raw = _peek(fobj)
        comp = recompression_of(head)
        stream = DecodedStream(raw, label=f"{self.label} layer {positions}", media_type=mt)
        for gi in in_groups:
            self.info.setdefault(gi, comp)
            if gi not in self.tars:
                self._open(gi)
        c0 = self.info[in_groups[0]]
        cal = Compressor(c0.algorithm, c0.level)
        tee = Tee(stream, cal)
        try:
            tf = tarfile.open(fileobj=tee, mode="r|", encoding="utf-8", errors="surrogateescape")
            for ti in tf:
                self._copy_member(tf, ti, positions)
            tee.drain()
        except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
            raise FormatError(f"{self.label} layer {positions}: cannot read the layer tar to merge it ({e})") from e
        for gi in in_groups:
            self.recomp[gi] += cal.close() * sum(1 for p in positions if self.pos_group.get(p) == gi)

    def _copy_member(self, tf: tarfile.TarFile, ti: tarfile.TarInfo, positions: list[int]) -> None:
        path, _ = normalise_path(ti.name)
        if path.rsplit("/", 1)[-1].startswith(WHITEOUT_PREFIX):
            return  # whiteouts/opaques of the merged layer are written by finish()
        for p in positions:
            if (p, path) in self.materialise and ti.isfile() and (p, path) not in self.spool:
                sp = self.spool[(p, path)] = _spool(tf.extractfile(ti))
                if path in self.keep.get(p, ()):
                    sp.seek(0)
                    self.tars[self.pos_group[p]].addfile(ti, sp)
                    return
            gi = self.pos_group.get(p)
            if gi is None or path not in self.keep.get(p, ()):
                continue
            if (p, path) in self.link_of:
                self.deferred.append((gi, ti, self.link_of[(p, path)]))
            elif ti.isfile():
                self.tars[gi].addfile(ti, tf.extractfile(ti))
            else:
                self.tars[gi].addfile(ti)
            return

    def finish(self) -> dict[int, MergedBlob]:
        """Hard links that became files, then the markers; close and measure every tar."""
        for gi, ti, key in self.deferred:
            sp = self.spool.get(key)
            if sp is None:
                raise FormatError(
                    f"{self.label}: the content of {key[1]} (layer {key[0]}), which a hardlink of the merged layer "
                    "needs, was not found in the layer blobs"
                )
            sp.seek(0, 2)
            ti.type, ti.linkname, ti.size = tarfile.REGTYPE, "", sp.tell()
            sp.seek(0)
            self.tars[gi].addfile(ti, sp)
        for gi, marks in self.markers.items():
            if gi in self.tars:
                for kind, path in marks:
                    self.tars[gi].addfile(tarfile.TarInfo(_marker_name(kind, path)))
        out = {}
        for gi, tf in self.tars.items():
            tf.close()
            out[gi] = MergedBlob(self.comps[gi].close(), self.comps[gi].raw, self.recomp[gi], self.info[gi])
        return out

    def close(self) -> None:
        for sp in self.spool.values():
            sp.close()
        for s in self.sinks.values():
            try:
                s.close()
            except OSError:
                pass


def write_merged_layers(
    blobs,
    groups: list[list[int]],
    keep: dict[int, set[str]],
    markers: dict[int, list[tuple[str, str]]],
    materialise: dict[tuple[int, str], list[tuple[int, str]]] | None = None,
    *,
    output_dir: str | os.PathLike | None = None,
    label: str = "image",
    progress: bool = False,
) -> dict[int, MergedBlob]:
    """Write each group's merged layer tar, compressed like the source, and measure it.

    ``blobs`` is the image's :class:`~layerlab.model.BlobProvider`; ``groups``
    lists the layer positions of each merged layer.  ``keep[pos]``: the paths
    whose entry from layer ``pos`` survives in its group's merged layer (copied
    in blob order); ``markers[g]``: the ``(kind, path)`` whiteouts
    (``"whiteout"``) and opaque directories (``"opaque"``) group ``g`` writes
    after its members; ``materialise[(layer, path)]``: the ``(layer, link
    path)`` hard links that become regular files with the content of ``path``
    in ``layer`` (which may lie below the group: that blob is read too).  The
    merged tars are written to temporary files, or kept in ``output_dir`` as
    ``merged-<first>-<last>.tar.gz`` (``.tar.zst`` for zstd sources).

    Returns a :class:`MergedBlob` per group index.  Raises
    :class:`~layerlab.errors.FormatError` when a layer tar cannot be read.
    """
    w = _MergedWriter(groups, keep, markers, materialise, output_dir, label)
    wanted = w.wanted()
    wanted_set = set(wanted)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(wanted), desc=f"writing merged layers of {label}", unit="layer",
               disable=not progress, leave=False)
    try:
        for positions, mt, fobj in _iter(blobs, wanted):
            bar.update(len([p for p in positions if p in wanted_set]))
            if any(p in w.pos_group for p in positions):
                w.read_group_layer(positions, mt, fobj)
            else:
                w.read_lower(positions, mt, fobj)
        return w.finish()
    finally:
        bar.close()
        w.close()


def _iter(blobs, wanted: Iterable[int]):
    if blobs is None:
        raise FormatError("the image carries no layer blobs to write a merged layer from")
    return blobs.iter_blobs(list(wanted))
