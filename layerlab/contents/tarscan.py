"""Read one layer blob into its file table, streaming, verifying its diff_id.

:func:`scan_blob` decodes the blob (:mod:`.compression`), walks the tar
headers with :class:`~layerlab.contents.tarread.TarReader` (a small
hand-written reader: :mod:`tarfile`'s header parsing made scans slower than
dive; see that module), hashes each regular file's content as it streams past,
and hashes the whole uncompressed stream with sha256 to check it against the
layer's diff_id.  Memory is bounded by one decoder chunk plus the table itself.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import BinaryIO, Callable

import pyarrow as pa

from ..errors import DigestMismatchError, FormatError
from .compression import DecodedStream
from .tarread import BLOCK as TAR_BLOCK, Header, TarReader

# Entry types in the ``type`` column.
FILE, DIR, SYMLINK, HARDLINK, CHAR, BLOCK, FIFO, WHITEOUT, OPAQUE = (
    "file", "dir", "symlink", "hardlink", "char", "block", "fifo", "whiteout", "opaque",
)
ENTRY_TYPES = (FILE, DIR, SYMLINK, HARDLINK, CHAR, BLOCK, FIFO, WHITEOUT, OPAQUE)

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
META_PREFIX = ".wh..wh."          # AUFS bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not whiteouts

_TYPE_MAP = {
    b"0": FILE,
    b"7": FILE,          # contiguous file
    b"S": FILE,          # GNU sparse
    b"1": HARDLINK,
    b"2": SYMLINK,
    b"3": CHAR,
    b"4": BLOCK,
    b"5": DIR,
    b"6": FIFO,
}

LAYER_TABLE_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("type", pa.string()),
        ("size", pa.int64()),
        ("mode", pa.int64()),
        ("uid", pa.int64()),
        ("gid", pa.int64()),
        ("link_target", pa.string()),
        ("mtime", pa.timestamp("ns", tz="UTC")),
        ("hash", pa.string()),
        ("warning", pa.string()),
    ]
)

_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_READ = 1 << 20
_NS_MAX = (1 << 63) - 1


# -- content hashes --------------------------------------------------------------
def hash_algorithm(hash: str | None) -> tuple[str | None, Callable | None]:
    """Resolve ``hash=`` to (algorithm name, constructor).

    ``"fast"`` is xxHash's XXH3-128 when the ``xxhash`` package is installed
    (about 8 GB/s here), else BLAKE2b-128 from :mod:`hashlib`; ``"sha256"``
    is SHA-256; ``None`` hashes nothing.  Values in the ``hash`` column carry
    the algorithm as a prefix (``xxh128:…``, ``blake2b:…``, ``sha256:…``).
    """
    if hash is None or hash is False:
        return None, None
    if hash in ("fast", "xxh128"):
        try:
            import xxhash

            return "xxh128", xxhash.xxh3_128
        except ImportError:
            if hash == "xxh128":
                raise FormatError("hash='xxh128' needs the xxhash package: pip install xxhash") from None
            hash = "blake2b"
    if hash == "blake2b":
        return "blake2b", lambda: hashlib.blake2b(digest_size=16)
    if hash == "sha256":
        return "sha256", hashlib.sha256
    raise ValueError(f"hash={hash!r}: use 'fast' (xxh128, else blake2b), 'sha256' or None")


# -- path handling ---------------------------------------------------------------
def normalise_path(name: str) -> tuple[str, list[str]]:
    """Tar member name -> (path without leading ``/`` or ``./``, warnings).

    ``..`` components are resolved lexically and never climb above the root
    (as Docker's layer applier requires); a name that tried to is flagged.
    """
    if name.isascii() and "/." not in name and "//" not in name and not name.startswith(("/", ".")):
        return name.rstrip("/"), []  # the common case: already clean
    notes: list[str] = []
    if not name.isascii():
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            name = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            notes.append("name is not valid UTF-8 (undecodable bytes shown as \\x escapes)")
    if name.startswith("/"):
        notes.append("absolute path in the tar (leading '/' removed)")
    parts: list[str] = []
    dotdot = False
    escaped = False
    for part in name.split("/"):
        if part == "" or part == ".":
            continue
        if part == "..":
            dotdot = True
            if parts:
                parts.pop()
            else:
                escaped = True
            continue
        parts.append(part)
    path = "/".join(parts)
    if escaped:
        notes.append(f"'..' climbs above the root; clamped to /{path}")
    elif dotdot:
        notes.append("name contains '..' components (resolved lexically)")
    return path, notes


# -- the scan ---------------------------------------------------------------------
@dataclass
class LayerScan:
    """One layer's file table plus what the scan learned about the blob."""

    table: pa.Table
    diff_id: str                    # sha256 of the uncompressed stream, as read
    size: int                       # sum of the entries' sizes (Docker's and dive's layer size)
    entries: int
    compression: str
    compressed_bytes: int
    uncompressed_bytes: int
    hash_algorithm: str | None
    notes: list[str] = field(default_factory=list)   # layer-level warnings
    verified: bool = False          # diff_id matched the expected one

    def metadata(self) -> dict[str, str]:
        return {
            "diff_id": self.diff_id,
            "size": str(self.size),
            "entries": str(self.entries),
            "compression": self.compression,
            "compressed_bytes": str(self.compressed_bytes),
            "uncompressed_bytes": str(self.uncompressed_bytes),
            "hash_algorithm": self.hash_algorithm or "",
            "notes": "\n".join(self.notes),
        }


def valid_diff_id(diff_id: str | None) -> bool:
    return bool(diff_id) and bool(_DIGEST_RE.match(diff_id or ""))


def scan_blob(
    raw: BinaryIO,
    *,
    label: str = "layer",
    expected_diff_id: str | None = None,
    hash: str | None = "fast",
    media_type: str | None = None,
    verify: bool = True,
) -> LayerScan:
    """Read a layer blob (compressed or not) into a :class:`LayerScan`.

    Raises :class:`~layerlab.FormatError` for corrupt or truncated
    compression or tar data, and :class:`~layerlab.DigestMismatchError` when
    ``verify`` and the uncompressed bytes do not hash to ``expected_diff_id``.
    Recoverable oddities (absolute names, ``..``, duplicate entries, bad
    UTF-8, out-of-range times) go to the ``warning`` column instead.
    """
    algo, new_hash = hash_algorithm(hash)
    stream = DecodedStream(raw, label=label, media_type=media_type)
    notes = list(stream.notes)
    try:
        return _scan(stream, label, expected_diff_id, algo, new_hash, verify, notes)
    finally:
        stream.close()


def _scan(stream, label, expected_diff_id, algo, new_hash, verify, notes) -> LayerScan:
    paths: list[str] = []
    types: list[str] = []
    sizes: list[int] = []
    modes: list[int] = []
    uids: list[int] = []
    gids: list[int] = []
    targets: list[str | None] = []
    mtimes: list[int | None] = []
    hashes: list[str | None] = []
    warns: list[str | None] = []
    seen: set[str] = set()
    total = 0
    reader = TarReader(stream, label)
    while True:
        try:
            ti = next(reader)
        except StopIteration:
            break
        except FormatError as e:
            if not paths and reader.s.tell() <= TAR_BLOCK and "checksum" in str(e):
                raise FormatError(f"{label}: not a tar archive (no valid header at its start); "
                                  "the blob is damaged or not a layer") from e
            raise
        row_notes: list[str] = list(ti.notes)
        path, pnotes = normalise_path(ti.name)
        row_notes.extend(pnotes)
        size = ti.size
        if size > (1 << 62):
            raise FormatError(f"{label}: entry {ti.name!r} claims an impossible size ({size} bytes)")
        kind = _TYPE_MAP.get(ti.type)
        if kind is None:
            kind = FILE
            row_notes.append(f"unknown tar type flag {ti.type!r}; treated as a regular file")
        elif ti.type == b"S":
            row_notes.append("GNU sparse file: the hash covers the stored data only")

        base = path.rsplit("/", 1)[-1]
        if base.startswith(WHITEOUT_PREFIX):
            parent = path[: -len(base)].rstrip("/")
            if base == OPAQUE_MARKER:
                kind, path = OPAQUE, parent
            elif base.startswith(META_PREFIX):
                row_notes.append("AUFS metadata entry (.wh..wh.*): not a whiteout, ignored by runtimes")
            elif base == WHITEOUT_PREFIX:
                row_notes.append("whiteout with an empty name: deletes nothing")
            else:
                name = base[len(WHITEOUT_PREFIX):]
                kind, path = WHITEOUT, (f"{parent}/{name}" if parent else name)
        elif not path:
            # the root directory itself ("./" or "/"): no row and no size, as in dive
            continue

        link = None
        if kind in (SYMLINK, HARDLINK):
            link = ti.linkname
            if kind == HARDLINK:
                link, lnotes = normalise_path(link)
                row_notes.extend("link target: " + n for n in lnotes)
            elif not link.isascii():
                try:
                    link.encode("utf-8")
                except UnicodeEncodeError:
                    link = link.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                    row_notes.append("link target is not valid UTF-8")

        digest = None
        if kind == FILE:
            digest = _read_content(reader, ti, size, new_hash, algo, label)

        if kind not in (WHITEOUT, OPAQUE):
            if path in seen:
                row_notes.append("path appears more than once in this layer; the last entry wins")
            seen.add(path)

        mt = ti.mtime
        try:
            ns = int(mt * 1_000_000_000)
            if not (-_NS_MAX <= ns <= _NS_MAX):
                raise OverflowError
        except (OverflowError, ValueError, TypeError):
            ns = None
            row_notes.append(f"modification time {mt!r} is out of range")

        paths.append(path)
        types.append(kind)
        sizes.append(size)
        modes.append(ti.mode & 0o7777)
        uids.append(ti.uid)
        gids.append(ti.gid)
        targets.append(link)
        mtimes.append(ns)
        hashes.append(digest)
        warns.append("; ".join(row_notes) if row_notes else None)
        total += size

    if reader.end == "eof":
        if stream.uncompressed_bytes == 0:
            notes.append("the layer blob is empty (no tar at all); read as a layer with no entries")
        else:
            notes.append("the tar has no end-of-archive marker (two zero blocks)")

    # hash whatever follows the end-of-archive marker too: the diff_id covers it
    try:
        stream.drain()
    except FormatError:
        raise
    except (OSError, EOFError, ValueError) as e:  # pragma: no cover - defensive
        raise FormatError(f"{label}: cannot read the layer's end ({e})") from e

    actual = stream.sha256
    verified = False
    if expected_diff_id:
        if actual == expected_diff_id:
            verified = True
        elif verify:
            raise DigestMismatchError(
                f"{label}: content does not match its diff_id: expected {expected_diff_id}, "
                f"the uncompressed bytes hash to {actual}. The image is corrupt or was modified; "
                "save or pull it again (or pass verify=False to read it anyway)"
            )
        else:
            notes.append(f"content hashes to {actual}, not its diff_id {expected_diff_id}")

    table = pa.Table.from_arrays(
        [
            pa.array(paths, pa.string()),
            pa.array(types, pa.string()),
            pa.array(sizes, pa.int64()),
            pa.array(modes, pa.int64()),
            pa.array(uids, pa.int64()),
            pa.array(gids, pa.int64()),
            pa.array(targets, pa.string()),
            pa.array(mtimes, pa.int64()).cast(pa.timestamp("ns", tz="UTC")),
            pa.array(hashes, pa.string()),
            pa.array(warns, pa.string()),
        ],
        schema=LAYER_TABLE_SCHEMA,
    )
    return LayerScan(
        table=table,
        diff_id=actual,
        size=total,
        entries=len(paths),
        compression=stream.kind,
        compressed_bytes=stream.compressed_bytes,
        uncompressed_bytes=stream.uncompressed_bytes,
        hash_algorithm=algo,
        notes=notes,
        verified=verified,
    )


def _read_content(reader: TarReader, ti: Header, size: int, new_hash, algo, label) -> str | None:
    """Stream one regular file's bytes through the content hash."""
    if new_hash is None:
        return None  # the reader skips the data (still hashed for the diff_id)
    h = new_hash()
    left = size
    while left > 0:
        chunk = reader.read_data(min(left, _READ))
        if not chunk:
            raise _short(label, ti, size, size - left)
        h.update(chunk)
        left -= len(chunk)
    return f"{algo}:{h.hexdigest()}"


def _short(label: str, ti: Header, size: int, got: int) -> FormatError:
    return FormatError(
        f"{label}: entry {ti.name!r} claims {size} bytes but the layer ends after {got}; "
        "the layer is truncated (or the header lies about the size)"
    )
