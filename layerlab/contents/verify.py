"""Blob digests: checking a layer's stored bytes against the digest its
manifest gives, and remembering which stored copies were verified.

**The blob's own digest.**  A layer scan checks the *uncompressed* bytes
against the diff_id (:mod:`.tarscan`).  A compressed blob has a second
digest, of its stored bytes (the manifest's ``digest``): :class:`DigestReader`
wraps the raw file object before it reaches the decoder, hashes the bytes as
they stream (in a thread beside the decoding), and :meth:`DigestReader.finish`
reads what the decoder left (trailing bytes count too) and compares.  An
uncompressed blob's stored bytes *are* its content: the diff_id's sha256 is
also the blob's, so :func:`check_plain_digest` compares it with no second
pass.  Mismatches raise :class:`~layerlab.errors.DigestMismatchError`
(``verify=False`` skips every check).

**Verified sources** (:func:`source_verified`, :func:`mark_verified`).  The
file-table cache is keyed by diff_id: its tables are the content's, whoever
stored it.  What a warm cache cannot tell is whether *this* copy of the layer
is intact.  So a verified scan of a layer stored in a local file (a ``docker
save`` archive, an OCI layout) also leaves a marker named by the file's
identity (:func:`.sizes.local_key`: real path, device, inode, size, mtime and
ctime in ns, byte range, claimed diff_id)::

    <cache_dir>/verified-v1/<hex[:2]>/<hex>

and a ``verify=True`` analysis takes a cached table (or cached results) only
for layers whose current identity has a marker; any change to the file gives
another identity, so its layers are read and checked again.  Blobs that are
not byte ranges of a local file (the engine's stream, a registry) are
checked whenever they are read; a cached table of their diff_id is used
as is (:func:`layerlab.verify` reads every blob regardless of the cache).
"""
from __future__ import annotations

import re
from pathlib import Path

from ..errors import DigestMismatchError, FormatError
from .sizes import default_cache_dir, is_local_key, local_key, write_atomically

VERIFIED_VERSION = "verified-v1"
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_CHUNK = 1 << 20


def checkable(digest: str | None) -> bool:
    """A digest this module can check (``sha256:`` + 64 hex digits)."""
    return bool(digest) and bool(_DIGEST_RE.match(digest or ""))


def mismatch(label: str, what: str, expected: str, actual: str) -> DigestMismatchError:
    return DigestMismatchError(
        f"{label}: the stored blob does not match its {what}: expected {expected}, got {actual}; "
        "it was changed or damaged after it was written: save or pull it again "
        "(or pass verify=False to read it anyway)"
    )


class DigestReader:
    """A read-only file object over ``raw`` that sha256-hashes every byte read.

    Hand it to the decoder in place of ``raw``; after the scan, :meth:`finish`
    reads the rest of ``raw`` (hashed too) and raises
    :class:`DigestMismatchError` unless the bytes hash to ``expected``."""

    def __init__(self, raw, expected: str, label: str):
        from .compression import _BackgroundSha256, _direct_reader

        self._raw = _direct_reader(raw)
        self._sha = _BackgroundSha256()
        self.expected = expected
        self.label = label
        self.length = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        b = self._raw.read(n)
        if b:
            self._sha.update(b)
            self.length += len(b)
        return b or b""

    def close(self) -> None:
        self._sha.close()

    def digest(self) -> str:
        """``sha256:<hex>`` of everything read so far, the rest of ``raw`` included."""
        try:
            while self.read(_CHUNK):
                pass
        except (OSError, ValueError) as e:
            raise FormatError(f"{self.label}: the blob could not be read ({e})") from e
        return "sha256:" + self._sha.hexdigest()

    def finish(self) -> str:
        """Read to the end and check; returns the actual digest."""
        actual = self.digest()
        if actual != self.expected:
            raise mismatch(self.label, "digest", self.expected, actual)
        return actual


def wrap(raw, digest: str | None, diff_id: str | None, label: str, verify: bool):
    """``(fileobj, reader)``: ``raw`` wrapped in a :class:`DigestReader` when its
    blob digest can be checked and is not the diff_id (which the scan checks
    already), else ``(raw, None)``."""
    if not verify or not checkable(digest) or digest == diff_id:
        return raw, None
    reader = DigestReader(raw, digest, label)  # type: ignore[arg-type]
    return reader, reader


def check_plain_digest(scan, digest: str | None, diff_id: str | None, label: str) -> None:
    """The blob-digest check of a scan made without a :class:`DigestReader`:
    an uncompressed blob's stored bytes hash to its diff_id, so its digest
    must be the sha256 the scan computed; a compressed blob whose digest is
    its diff_id cannot be intact (stored and decoded bytes differ)."""
    if not checkable(digest) or not scan.diff_id:
        return
    if scan.compression == "none":
        if scan.diff_id != digest:
            raise mismatch(label, "digest", digest, scan.diff_id)  # type: ignore[arg-type]
    elif digest == diff_id:
        raise DigestMismatchError(
            f"{label}: the blob is {scan.compression}-compressed but its digest is its diff_id {digest} "
            "(the digest of the uncompressed content); the manifest or the blob was altered"
        )


def scan_checked(fileobj, *, label: str, diff_id: str | None, digest: str | None, hash: str | None,
                 media_type: str | None, verify: bool):
    """:func:`.tarscan.scan_blob` of one stored blob, checked against its blob
    digest too (when ``verify``): the scan of every streaming path."""
    from .tarscan import scan_blob

    fobj, reader = wrap(fileobj, digest, diff_id, label, verify)
    try:
        scan = scan_blob(fobj, label=label, expected_diff_id=diff_id, hash=hash, media_type=media_type,
                         verify=verify)
        if reader is not None:
            reader.finish()
        elif verify:
            check_plain_digest(scan, digest, diff_id, label)
        return scan
    finally:
        if reader is not None:
            reader.close()


# -- verified sources ----------------------------------------------------------------------
def source_key(img, pos: int) -> str | None:
    """The identity of the stored copy of layer ``pos`` (a ``local:`` key), or
    None when it is not a byte range of a local file."""
    r = img.blobs.byte_range(pos) if img.blobs is not None else None
    if r is None:
        return None
    layer = img.layer_list[pos]
    return local_key(r[0], r[1], r[2], layer.diff_id)


def _marker(root, key: str) -> Path | None:
    if not is_local_key(key):
        return None
    base = Path(root).expanduser() if root is not None else default_cache_dir()
    hexpart = key.split(":", 1)[1]
    return base / VERIFIED_VERSION / hexpart[:2] / hexpart


def source_verified(img, pos: int, root) -> bool:
    """True unless layer ``pos`` is stored in a local file whose current
    identity was never verified (under the cache ``root``)."""
    if img.blobs is None:
        return True
    key = source_key(img, pos)
    if key is None:
        return img.blobs.byte_range(pos) is None  # a byte range that cannot be stat-ed: read it
    p = _marker(root, key)
    return p is not None and p.is_file()


def mark_verified(img, positions, root) -> None:
    """Record that the stored copies of ``positions`` were read and verified.
    Best effort: a cache that cannot be written only costs a re-read later."""
    for pos in positions:
        key = source_key(img, pos)
        p = _marker(root, key) if key else None
        if p is None:
            continue
        try:
            write_atomically(p, lambda f: f.write((img.layer_list[pos].diff_id or "") + "\n"), "", "w")
        except OSError:
            pass


__all__ = ["DigestReader", "VERIFIED_VERSION", "check_plain_digest", "checkable", "mark_verified", "mismatch",
           "scan_checked", "source_key", "source_verified", "wrap"]
