"""Open a layer blob as an uncompressed byte stream, whatever its compression.

The compression is detected from the blob's first bytes (magic numbers), not
trusted from the media type: registries and tools mislabel blobs, and the
docker-archive format carries no media type at all.

=========  ===================  ============================================
kind       magic                decoder
=========  ===================  ============================================
gzip       ``1f 8b``            ISA-L (``isal``), else :mod:`zlib`; multi-member (estargz is gzip)
zstd       ``28 b5 2f fd``      the ``zstandard`` package
bzip2      ``BZh``              :mod:`bz2`  (old ``docker load`` inputs)
xz         ``fd 37 7a 58 5a``   :mod:`lzma` (old ``docker load`` inputs)
none       anything else        passed through (a plain tar)
=========  ===================  ============================================

:class:`DecodedStream` is a read-only file object over the *uncompressed*
bytes that also hashes them with sha256 as they pass (the layer's diff_id is
verified for free) and counts compressed and uncompressed bytes.  Output is
produced in bounded chunks, so memory stays flat whatever the layer's size
or compression ratio.
"""
from __future__ import annotations

import bz2
import hashlib
import io
import lzma
import queue
import threading
import zlib
from typing import BinaryIO

from ..errors import FormatError
from .._limits import current as current_limits, exceeded

try:
    # ISA-L's inflate, zlib's interface: twice zlib's speed on the fleet bench's layers (840 against 393 MB/s
    # of output, one core), and inflating is most of a layer scan's CPU.  A wheel for x86-64 and arm64
    # (pyproject.toml); elsewhere zlib does the same work.
    from isal import isal_zlib as _inflate

    _INFLATE_ERRORS: tuple = (zlib.error, _inflate.error)
except ImportError:  # pragma: no cover - platforms without an isal wheel
    _inflate = zlib
    _INFLATE_ERRORS = (zlib.error,)

GZIP = "gzip"
ZSTD = "zstd"
BZIP2 = "bzip2"
XZ = "xz"
NONE = "none"

_MAGICS = (
    (b"\x1f\x8b", GZIP),
    (b"\x28\xb5\x2f\xfd", ZSTD),
    (b"BZh", BZIP2),
    (b"\xfd7zXZ\x00", XZ),
)

CHUNK = 64 << 10         # bytes read from the blob at a time
OUT_CHUNK = 64 << 10     # most uncompressed bytes produced per decoder call
# 64 KiB, not more: every chunk is a new bytes object, and glibc's malloc serves a block of 128 KiB or
# more with a fresh mmap, whose pages fault in (zeroed) when first touched and go back when it is freed.
# Dask's worker processes set MALLOC_TRIM_THRESHOLD_, which pins that threshold at 128 KiB.  Scanning
# bench_scan's 88 gzip blobs (498 MB, from files) took 7.2-7.6 s of CPU, 2.2 s of it in the kernel, with
# 1 MiB chunks under that setting, and 5.4-5.5 s with 64 KiB; in a plain process 5.9-6.3 s against 5.3 s.

# -- layer media types (Docker image manifest v2 schema 2, OCI image spec) --------------------
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"
DOCKER_FOREIGN_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_ND_LAYER = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_ND_LAYER_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_ND_LAYER_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

LAYER_COMPRESSION: dict[str, str] = {
    DOCKER_LAYER: NONE,
    DOCKER_LAYER_GZIP: GZIP,
    DOCKER_LAYER_ZSTD: ZSTD,
    DOCKER_FOREIGN_GZIP: GZIP,
    OCI_LAYER: NONE,
    OCI_LAYER_GZIP: GZIP,
    OCI_LAYER_ZSTD: ZSTD,
    OCI_ND_LAYER: NONE,
    OCI_ND_LAYER_GZIP: GZIP,
    OCI_ND_LAYER_ZSTD: ZSTD,
}
"""Every layer media type layerlab reads -> its compression (``none``/``gzip``/``zstd``)."""

MEDIA_TYPE_FOR = {NONE: DOCKER_LAYER, GZIP: DOCKER_LAYER_GZIP, ZSTD: DOCKER_LAYER_ZSTD}
OCI_MEDIA_TYPE_FOR = {NONE: OCI_LAYER, GZIP: OCI_LAYER_GZIP, ZSTD: OCI_LAYER_ZSTD}


def detect(head: bytes) -> str:
    """The compression kind of a blob starting with ``head``: ``gzip``, ``zstd``,
    ``bzip2``, ``xz`` or ``none`` (8 bytes are enough)."""
    for magic, kind in _MAGICS:
        if head.startswith(magic):
            return kind
    return NONE


def detect_level(head: bytes) -> tuple[str, int, str]:
    """(algorithm, level, how the level was found) of a blob starting with ``head``
    (16 bytes are enough), for recompressing like its source did: gzip's level
    from the header's XFL byte (2: 9, 4: 1, else the default 6), zstd's default 3
    (its frames record no level); anything else ``("none", 6, …)``, gzip level 6
    being what ``docker push`` uses."""
    kind = detect(head)
    if kind == GZIP:
        xfl = head[8] if len(head) > 8 else 0
        if xfl == 2:
            return GZIP, 9, "gzip header XFL=2 (maximum compression)"
        if xfl == 4:
            return GZIP, 1, "gzip header XFL=4 (fastest)"
        return GZIP, 6, f"gzip header XFL={xfl} (default level 6 assumed)"
    if kind == ZSTD:
        return ZSTD, 3, "zstd (the frame records no level; zstd's default 3 assumed)"
    return NONE, 6, "uncompressed source blob; compressed with gzip level 6, what docker push uses"


def kind_from_media_type(media_type: str | None) -> str | None:
    """What a media type claims (None when it does not say): the
    :data:`LAYER_COMPRESSION` entry of a known layer type, else read from the
    suffix (``…zstd``, ``…gzip``, ``….tar`` / ``…+tar``)."""
    if not media_type:
        return None
    known = LAYER_COMPRESSION.get(media_type)
    if known is not None:
        return known
    mt = media_type.lower()
    if mt.endswith("zstd"):
        return ZSTD
    if mt.endswith("gzip"):
        return GZIP
    if mt.endswith(".tar") or mt.endswith("+tar"):
        return NONE
    return None


DOCKER_PUSH_GZIP_LEVEL = 6
"""The gzip level ``docker push`` compresses an uncompressed layer with: moby's
``distribution`` ``compress()`` uses Go's ``gzip.NewWriter``, i.e.
``DefaultCompression``, which Go's ``compress/flate`` runs as level 6."""


def gzip_compressobj(level: int = DOCKER_PUSH_GZIP_LEVEL):
    """A zlib compressor writing a gzip stream (RFC 1952) at ``level``: a 10-byte
    header (no file name, mtime 0), raw deflate, an 8-byte CRC/length trailer.
    Its output is exactly as long as Python's ``gzip.compress(data, level)``
    (same header length, same zlib deflate), whatever mtime either writes."""
    return zlib.compressobj(level, zlib.DEFLATED, 31)


def gzip_length(fileobj: BinaryIO, level: int = DOCKER_PUSH_GZIP_LEVEL, on_read=None) -> int:
    """Bytes of :func:`gzip_compressobj`'s stream over everything ``fileobj``
    yields, read in bounded chunks (memory stays flat); ``on_read(n)`` is told
    each chunk's length (a progress bar).  This is the estimate of an
    uncompressed layer's wire size: zlib's level 6 standing in for Go's
    ``compress/flate`` level 6, a different implementation of the same
    format, so the real blob's length differs by a little (the tests and the
    README give a measured gap)."""
    z = gzip_compressobj(level)
    n = 0
    while True:
        chunk = fileobj.read(CHUNK)
        if not chunk:
            break
        n += len(z.compress(chunk))
        if on_read is not None:
            on_read(len(chunk))
    return n + len(z.flush())


def layer_media_type(kind: str, oci: bool = False) -> str | None:
    """The Docker (or, with ``oci``, OCI) layer media type for a compression kind;
    None for one no layer media type allows (bzip2, xz)."""
    return (OCI_MEDIA_TYPE_FOR if oci else MEDIA_TYPE_FOR).get(kind)


class _InlineSha256:
    """sha256 in the calling thread, with :class:`_BackgroundSha256`'s interface."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()

    def update(self, b: bytes) -> None:
        self._h.update(b)

    def hexdigest(self) -> str:
        return self._h.hexdigest()

    def close(self) -> None:
        pass


class _BackgroundSha256:
    """sha256 fed from a queue by one thread: :mod:`hashlib` releases the GIL
    while hashing, so the diff_id check runs beside the tar parsing instead of
    after it.  Chunks are handed over in batches of about :data:`BATCH` bytes
    (a hand-over per small chunk costs more than it saves); the queue is
    bounded (memory stays flat)."""

    BATCH = 1 << 20

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self._q: queue.Queue = queue.Queue(maxsize=8)
        self._digest: str | None = None
        self._batch: list[bytes] = []
        self._batched = 0
        self._t = threading.Thread(target=self._run, name="layerlab-sha256", daemon=True)
        self._t.start()

    def _run(self) -> None:
        while True:
            batch = self._q.get()
            if batch is None:
                return
            for b in batch:
                self._h.update(b)

    def update(self, b: bytes) -> None:
        self._batch.append(b)
        self._batched += len(b)
        if self._batched >= self.BATCH:
            self._q.put(self._batch)
            self._batch, self._batched = [], 0

    def hexdigest(self) -> str:
        if self._digest is None:
            if self._batch:
                self._q.put(self._batch)
                self._batch, self._batched = [], 0
            self._q.put(None)
            self._t.join()
            self._digest = self._h.hexdigest()
        return self._digest

    def close(self) -> None:
        if self._digest is None and self._t.is_alive():
            self._q.put(None)


def _direct_reader(raw):
    """Skip a BufferedReader's extra copy when nothing is buffered yet: read its raw stream."""
    if isinstance(raw, io.BufferedReader):
        try:
            inner = raw.raw
            if raw.tell() == inner.tell():
                return inner
        except (OSError, ValueError, AttributeError):
            pass
    return raw


def _check_gzip_flags(member: bytes, label: str) -> None:
    """RFC 1952 (2.3.1.2): a member whose reserved FLG bits are set must be
    refused.  zlib refuses it and ISA-L does not; checked here, so both give
    the same verdict."""
    if len(member) > 3 and member[3] & 0xE0:
        raise FormatError(f"{label}: corrupt gzip compression (unknown header flags set); the blob is damaged, "
                          "fetch or save it again")


class DecodedStream:
    """Read-only, forward-only file object over a blob's uncompressed bytes.

    ``raw`` is the blob as stored.  Attributes after (or during) reading:
    ``kind`` (compression), ``compressed_bytes``, ``uncompressed_bytes``,
    ``sha256`` (hex digest so far; call after :meth:`drain` for the whole).
    ``label`` names the input in error messages.  ``max_bytes``: decoding past
    this many uncompressed bytes raises :class:`~layerlab.errors.LimitError`
    (default: the ``layer_bytes`` limit in force, :func:`layerlab.limits`), so a
    small blob that expands without end (a decompression bomb) stops there.
    ``threads``: 2 (the default) hashes in a helper thread beside the reader
    (:mod:`hashlib` releases the GIL, so one read of a layer uses a little
    more than one core); 1 hashes in the reading thread, for callers that run
    one stream per core (a fleet scan's task on a one-thread worker).
    """

    def __init__(self, raw: BinaryIO, *, label: str = "layer", media_type: str | None = None,
                 max_bytes: int | None = None, threads: int = 2):
        self.raw = _direct_reader(raw)
        self.label = label
        self.max_bytes = current_limits().layer_bytes if max_bytes is None else max_bytes
        self.compressed_bytes = 0
        self.uncompressed_bytes = 0
        self._sha = _BackgroundSha256() if threads > 1 else _InlineSha256()
        self._buf = b""          # decoded bytes not yet handed out
        self._pos = 0            # read position inside _buf
        self._eof = False
        self.notes: list[str] = []
        head = self._raw_read(CHUNK)
        self.kind = detect(head)
        claimed = kind_from_media_type(media_type)
        if claimed is not None and claimed != self.kind:
            self.notes.append(
                f"media type {media_type!r} says {claimed} but the blob's bytes are {self.kind}; read as {self.kind}"
            )
        self._pending = head     # compressed bytes not yet given to the decoder
        self._dec = self._new_decoder()
        self._zstd_reader = None
        if self.kind == ZSTD:
            import zstandard

            # zstandard's stream reader gives bounded output; it reports a
            # truncated frame as a short stream, which the tar reader and the
            # diff_id check then catch.
            self._zstd_reader = zstandard.ZstdDecompressor().stream_reader(
                _Prepend(head, self), read_across_frames=True, read_size=CHUNK
            )

    # -- plumbing -----------------------------------------------------------
    def _raw_read(self, n: int) -> bytes:
        try:
            b = self.raw.read(n)
        except (OSError, ValueError) as e:
            raise FormatError(f"{self.label}: the blob could not be read ({e})") from e
        if b is None:
            b = b""
        self.compressed_bytes += len(b)
        return b

    def _new_decoder(self):
        if self.kind == GZIP:
            self._member_start = True
            return _inflate.decompressobj(wbits=31)
        if self.kind == BZIP2:
            return bz2.BZ2Decompressor()
        if self.kind == XZ:
            return lzma.LZMADecompressor()
        return None

    def _produce(self) -> bytes:
        """Next chunk of uncompressed bytes; b"" at the end."""
        if self.kind == NONE:
            if self._pending:
                out, self._pending = self._pending, b""
                return out
            return self._raw_read(CHUNK)
        if self.kind == ZSTD:
            try:
                return self._zstd_reader.read(OUT_CHUNK)
            except Exception as e:  # zstandard.ZstdError and friends
                raise FormatError(
                    f"{self.label}: corrupt zstd compression ({e}); the blob is damaged, fetch or save it again"
                ) from e
        return self._produce_stdlib()

    def _produce_stdlib(self) -> bytes:
        while True:
            dec = self._dec
            if dec.eof:
                rest, self._pending = dec.unused_data + self._pending, b""
                if not self._start_next_member(rest):
                    return b""
                continue
            if self.kind == GZIP:
                data = dec.unconsumed_tail
                if not data:
                    data, self._pending = self._pending or self._raw_read(CHUNK), b""
                if self._member_start and data:
                    self._member_start = False
                    _check_gzip_flags(data, self.label)
            elif dec.needs_input:
                data, self._pending = self._pending or self._raw_read(CHUNK), b""
            else:
                data = b""
            at_end = not data and (self.kind == GZIP or dec.needs_input)
            try:
                out = dec.decompress(data, OUT_CHUNK)
            except (*_INFLATE_ERRORS, OSError, EOFError, lzma.LZMAError, ValueError) as e:
                raise FormatError(
                    f"{self.label}: corrupt {self.kind} compression ({e}); the blob is damaged, fetch or save it again"
                ) from e
            if out:
                return out
            if at_end and not dec.eof:
                raise FormatError(
                    f"{self.label}: the {self.kind} stream ends early (truncated after "
                    f"{self.compressed_bytes} bytes); the blob is incomplete, fetch or save it again"
                )

    def _start_next_member(self, rest: bytes) -> bool:
        """After one gzip member / bz2 / xz stream another may follow (estargz,
        pigz, concatenated streams).  True when a new one was started."""
        while len(rest) < 6:
            more = self._raw_read(CHUNK)
            if not more:
                break
            rest += more
        if not rest:
            return False
        if detect(rest) == self.kind:
            self._pending = rest
            self._dec = self._new_decoder()
            return True
        # trailing bytes that are not another member: tolerate zero padding only
        while rest:
            if rest.strip(b"\0"):
                raise FormatError(
                    f"{self.label}: garbage after the end of the {self.kind} stream "
                    f"(at compressed byte {self.compressed_bytes - len(rest)}); the blob is damaged"
                )
            rest = self._raw_read(CHUNK)
        return False

    # -- file-object API ---------------------------------------------------
    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = [self._buf[self._pos:]]
            self._buf, self._pos = b"", 0
            while not self._eof:
                chunk = self._fill()
                if not chunk:
                    break
                parts.append(chunk)
                self._buf, self._pos = b"", 0
            return b"".join(parts)
        avail = len(self._buf) - self._pos
        if avail >= n:
            out = self._buf[self._pos:self._pos + n]
            self._pos += n
            return out
        parts = [self._buf[self._pos:]] if avail else []
        need = n - avail
        self._buf, self._pos = b"", 0
        while need > 0 and not self._eof:
            chunk = self._fill()
            if not chunk:
                break
            if len(chunk) <= need:
                parts.append(chunk)
                need -= len(chunk)
            else:
                parts.append(chunk[:need])
                self._buf, self._pos = chunk, need
                need = 0
        return b"".join(parts)

    def _fill(self) -> bytes:
        while True:
            chunk = self._produce()
            if not chunk:
                self._eof = True
                return b""
            self.uncompressed_bytes += len(chunk)
            if self.uncompressed_bytes > self.max_bytes:
                raise exceeded(f"{self.label}: uncompressed bytes ({self.kind} blob of {self.compressed_bytes:,} "
                               "bytes read so far)", "layer_bytes", self.max_bytes, "bytes",
                               amount=self.uncompressed_bytes)
            self._sha.update(chunk)
            return chunk

    def skip(self, n: int) -> int:
        """Discard ``n`` bytes (still hashed).  Returns how many were skipped."""
        done = 0
        avail = len(self._buf) - self._pos
        if avail:
            take = min(avail, n)
            self._pos += take
            done += take
        while done < n and not self._eof:
            chunk = self._fill()
            if not chunk:
                break
            take = min(len(chunk), n - done)
            if take < len(chunk):
                self._buf, self._pos = chunk, take
            done += take
        return done

    def drain(self) -> int:
        """Read (and hash) everything left; returns the number of bytes drained."""
        n = len(self._buf) - self._pos
        self._buf, self._pos = b"", 0
        while not self._eof:
            chunk = self._fill()
            n += len(chunk)
        return n

    def tell(self) -> int:
        """Position in the uncompressed stream."""
        return self.uncompressed_bytes - (len(self._buf) - self._pos)

    def seek(self, pos: int, whence: int = 0) -> int:
        """Forward-only seek (what :mod:`tarfile` needs to skip file data)."""
        if whence == 1:
            pos = self.tell() + pos
        elif whence != 0:
            raise OSError(f"{self.label}: the decoded layer stream cannot seek from its end")
        here = self.tell()
        if pos < here:
            raise OSError(f"{self.label}: the decoded layer stream cannot seek backwards ({pos} < {here})")
        self.skip(pos - here)
        return self.tell()

    def seekable(self) -> bool:  # pragma: no cover - io protocol
        return True

    @property
    def sha256(self) -> str:
        """sha256 of everything read so far (call after :meth:`drain` for the whole stream)."""
        return "sha256:" + self._sha.hexdigest()

    def close(self) -> None:
        """Stop the hashing thread (when abandoning the stream early)."""
        self._sha.close()

    def readable(self) -> bool:  # pragma: no cover - io protocol
        return True


class _Prepend:
    """A raw reader that first returns ``head`` then continues from the owner's blob."""

    def __init__(self, head: bytes, owner: DecodedStream):
        self._head = head
        self._owner = owner

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n is None or n < 0 or n >= len(self._head):
                out, self._head = self._head, b""
                return out
            out, self._head = self._head[:n], self._head[n:]
            return out
        return self._owner._raw_read(n if n and n > 0 else CHUNK)
