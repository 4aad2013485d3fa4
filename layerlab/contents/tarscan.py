"""Read one layer blob into its file table, streaming, verifying its diff_id.

:func:`scan_blob` decodes the blob (:mod:`.compression`), walks the tar
headers with :class:`~layerlab.contents.tar.TarReader` (a small
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
from .tar import BLOCK as TAR_BLOCK, Header, TarReader
from .whiteouts import META, OPAQUE as _OPQ, WHITEOUT as _WHT, WHITEOUT_PREFIX, classify, is_marker
from .whiteouts import normalise_path, shown_utf8

# Entry types in the ``type`` column.
FILE, DIR, SYMLINK, HARDLINK, CHAR, BLOCK, FIFO, WHITEOUT, OPAQUE = (
    "file", "dir", "symlink", "hardlink", "char", "block", "fifo", "whiteout", "opaque",
)
ENTRY_TYPES = (FILE, DIR, SYMLINK, HARDLINK, CHAR, BLOCK, FIFO, WHITEOUT, OPAQUE)

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
_READ = 64 << 10   # a file's bytes are hashed in pieces of this size (see compression.CHUNK for why)
_NS_MAX = (1 << 63) - 1
_S_MAX = _NS_MAX // 1_000_000_000


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
    local_key: str | None = None    # unverified scans of a local file: "local:<hex>" (see cache.local_key)

    @property
    def cache_key(self) -> str | None:
        """What the cache files this scan under: its diff_id once verified, else
        the local file's identity (None: not cacheable)."""
        return self.diff_id if self.verified else self.local_key

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
    threads: int = 2,
) -> LayerScan:
    """Read a layer blob (compressed or not) into a :class:`LayerScan`.

    ``threads``: 2 hashes the diff_id in a helper thread beside the tar walk
    (faster for one process reading one layer); 1 keeps all the work in the
    calling thread (one core), for callers that run one scan per core.

    Raises :class:`~layerlab.FormatError` for corrupt or truncated
    compression or tar data, and :class:`~layerlab.DigestMismatchError` when
    ``verify`` and the uncompressed bytes do not hash to ``expected_diff_id``.
    Recoverable oddities (absolute names, ``..``, duplicate entries, bad
    UTF-8, out-of-range times) go to the ``warning`` column instead.
    """
    algo, new_hash = hash_algorithm(hash)
    stream = DecodedStream(raw, label=label, media_type=media_type, threads=threads)
    notes = list(stream.notes)
    try:
        return _scan(stream, label, expected_diff_id, algo, new_hash, verify, notes)
    finally:
        stream.close()


def _scan(stream, label, expected_diff_id, algo, new_hash, verify, notes) -> LayerScan:
    cols = RawColumns()
    reader = TarReader(stream, label)
    while True:
        try:
            ti = next(reader)
        except StopIteration:
            break
        except FormatError as e:
            if not cols.name and reader.s.tell() <= TAR_BLOCK and "checksum" in str(e):
                raise FormatError(f"{label}: not a tar archive (no valid header at its start); "
                                  "the blob is damaged or not a layer") from e
            raise
        if ti.size > (1 << 62):
            raise FormatError(f"{label}: entry {ti.name!r} claims an impossible size ({ti.size} bytes)")
        digest = None
        if _TYPE_MAP.get(ti.type, FILE) == FILE and not is_marker(ti.name):
            digest = _read_content(reader, ti, ti.size, new_hash, algo, label)
        cols.add(ti.name, ti.type, ti.size, ti.mode, ti.uid, ti.gid, ti.mtime, ti.linkname,
                 ti.notes or None, digest)

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
    verified = check_diff_id(actual, expected_diff_id, verify, label, notes)
    table, total = build_table(cols)
    return LayerScan(
        table=table,
        diff_id=actual,
        size=total,
        entries=table.num_rows,
        compression=stream.kind,
        compressed_bytes=stream.compressed_bytes,
        uncompressed_bytes=stream.uncompressed_bytes,
        hash_algorithm=algo,
        notes=notes,
        verified=verified,
    )


def check_diff_id(actual: str | None, expected: str | None, verify: bool, label: str, notes: list[str]) -> bool:
    """True when the bytes hashed to ``expected``; a mismatch raises when
    ``verify`` (else becomes a layer note)."""
    if not expected or actual is None:
        return False
    if actual == expected:
        return True
    if verify:
        raise DigestMismatchError(
            f"{label}: content does not match its diff_id: expected {expected}, "
            f"the uncompressed bytes hash to {actual}. The image is corrupt or was modified; "
            "save or pull it again (or pass verify=False to read it anyway)"
        )
    notes.append(f"content hashes to {actual}, not its diff_id {expected}")
    return False


class RawColumns:
    """Tar entries as read (before path normalisation and whiteout decoding)."""

    __slots__ = ("name", "type", "size", "mode", "uid", "gid", "mtime", "link", "notes", "digest")

    def __init__(self) -> None:
        for k in self.__slots__:
            setattr(self, k, [])

    def add(self, name, tflag, size, mode, uid, gid, mtime, link, notes, digest) -> None:
        self.name.append(name)
        self.type.append(tflag)
        self.size.append(size)
        self.mode.append(mode)
        self.uid.append(uid)
        self.gid.append(gid)
        self.mtime.append(mtime)
        self.link.append(link)
        self.notes.append(notes)
        self.digest.append(digest)


_KINDS = {k: k for k in ENTRY_TYPES}


_HASH_COLUMN = "hash"
_SPECIAL_NAME = r"^$|^[/.]|/\.|//|[^ -~]"
"""A name the row-wise rules must see (RE2, as Arrow uses): empty, absolute or
dot-led, with a dot-led or empty component, or with a character outside
printable ASCII (the same test as the Python one in :func:`_special_rows`)."""
_PLAIN_FLAGS = [b"0", b"7", b"2", b"3", b"4", b"5", b"6"]   # typeflags of plain kinds (not GNU sparse "S")


def _special_rows(stripped: list[str], kinds: list, raw: RawColumns) -> set[int]:
    """Rows of a layer that :func:`build_table` leaves to the row-wise rules.

    Vectorised (Arrow's regex kernel on the names, numpy on the flags and
    times) where the columns allow it; names Arrow cannot take (lone
    surrogates from undecodable bytes) and non-integer times go through the
    equivalent Python tests."""
    import numpy as np
    import pyarrow.compute as pc

    try:
        mask = pc.match_substring_regex(pa.array(stripped, pa.string()), _SPECIAL_NAME)
        special = set(np.flatnonzero(mask.to_numpy(zero_copy_only=False)).tolist())
    except (pa.ArrowException, UnicodeError):
        special = {i for i, nm in enumerate(stripped)
                   if not nm or nm[0] in "/." or "/." in nm or "//" in nm or not (nm.isascii() and nm.isprintable())}
    flags = np.array(raw.type)
    special.update(np.flatnonzero(~np.isin(flags, _PLAIN_FLAGS)).tolist())  # hard links, GNU sparse, unknown
    if any(raw.notes):
        special.update(i for i, x in enumerate(raw.notes) if x)
    mt = raw.mtime
    times = np.array(mt)
    if times.dtype == np.int64:
        special.update(np.flatnonzero((times < -_S_MAX) | (times > _S_MAX)).tolist())
    else:  # floats (PAX sub-second times) or integers past int64
        special.update(i for i, m in enumerate(mt) if type(m) is not int or not -_S_MAX <= m <= _S_MAX)
    special.update(i for i, (k, ln) in enumerate(zip(kinds, raw.link)) if k is SYMLINK and not ln.isascii())
    return special


def build_table(raw: RawColumns) -> tuple[pa.Table, int]:
    """The layer table (:data:`LAYER_TABLE_SCHEMA`) from raw tar entries, and
    the sum of their sizes.  Shared by the streaming scan and the byte-range
    scan (:mod:`.rangescan`), so both give the same rows.

    Most entries of a real layer are plain (ASCII names without ``.``-led
    components, a known type, whole-second times, no notes): those are done
    with list comprehensions and numpy; the rest go through the full per-row
    rules of :func:`build_table_rowwise` (the reference, which the tests
    compare this with)."""
    table, total, _plan = _build_table(raw)
    return table, total


def build_table_deferred(raw: RawColumns):
    """``(table, total, attach)``: the layer table before the content hashes are
    known (its ``hash`` column null), and ``attach()``, which returns the
    table :func:`build_table` gives once ``raw.digest`` holds them.  Lets a
    scan stack the layers (their merge does not look at hashes) while the
    hashing still runs."""
    digests = raw.digest
    raw.digest = [None] * len(raw.name)
    try:
        table, total, plan = _build_table(raw)
    finally:
        raw.digest = digests

    def attach() -> pa.Table:
        if plan is None:  # built by the row-wise rules: build again, with the hashes
            return build_table(raw)[0]
        is_file, keep = plan
        col = pa.array([d if f else None for d, f in zip(raw.digest, is_file)], pa.string())
        if keep is not None and not keep.all():
            col = col.filter(pa.array(keep))
        at = LAYER_TABLE_SCHEMA.get_field_index(_HASH_COLUMN)
        return table.set_column(at, LAYER_TABLE_SCHEMA.field(at), col)

    return table, total, attach


def _build_table(raw: RawColumns):
    """:func:`build_table`, plus what :func:`build_table_deferred` needs to add the hashes later
    (None when the row-wise rules built the table)."""
    import numpy as np

    names = raw.name
    n = len(names)
    stripped = [nm[2:] if nm[:2] == "./" else nm for nm in names]
    kinds = list(map(_TYPE_MAP.get, raw.type))
    mt = raw.mtime
    special = _special_rows(stripped, kinds, raw) if n else set()
    if len(special) * 4 > n:  # mostly unusual: the row-wise rules are as fast
        return (*build_table_rowwise(raw), None)
    paths = [nm[:-1] if nm[-1:] == "/" else nm for nm in stripped]
    paths = [p.rstrip("/") if p[-1:] == "/" else p for p in paths]
    links: list[str | None] = [ln if k is SYMLINK else None for k, ln in zip(kinds, raw.link)]
    warns: list[str | None] = [None] * n
    keep = None
    if special:
        one = RawColumns()
        for i in sorted(special):
            one.add(names[i], raw.type[i], raw.size[i], raw.mode[i], raw.uid[i], raw.gid[i], mt[i], raw.link[i],
                    raw.notes[i], raw.digest[i])
        t, _total = build_table_rowwise(one, check_duplicates=False)
        sp = sorted(special)
        got = t.to_pydict()
        # rows the rules drop (the root directory) are missing from ``t``: match by position
        kept_rows = _rowwise_kept(one)
        keep = np.ones(n, bool)
        j = 0
        for local, i in enumerate(sp):
            if not kept_rows[local]:
                keep[i] = False
                continue
            paths[i] = got["path"][j]
            kinds[i] = _KINDS[got["type"][j]]  # the module's constants (compared by identity below)
            links[i] = got["link_target"][j]
            warns[i] = got["warning"][j]
            j += 1
    mtimes = np.array([m if type(m) is int and -_S_MAX <= m <= _S_MAX else 0 for m in mt], np.int64)
    mtimes *= 1_000_000_000
    mvalid = None
    if special:
        mvalid = np.ones(n, bool)
        for i in special:
            m = mt[i]
            if type(m) is int and -_S_MAX <= m <= _S_MAX:
                continue
            try:
                ns = int(m * 1_000_000_000)
                if not (-_NS_MAX <= ns <= _NS_MAX):
                    raise OverflowError
                mtimes[i] = ns
            except (OverflowError, ValueError, TypeError):
                mvalid[i] = False
    sizes = np.array(raw.size, np.int64) if n else np.zeros(0, np.int64)
    # a path listed twice in one layer: note it on every later listing (deletion markers aside)
    markers = (WHITEOUT, OPAQUE)
    live = [p for i, (p, k) in enumerate(zip(paths, kinds)) if k not in markers and (keep is None or keep[i])]
    if len(set(live)) != len(live):
        seen: set[str] = set()
        for i, (p, k) in enumerate(zip(paths, kinds)):
            if k in markers or (keep is not None and not keep[i]):
                continue
            if p in seen:
                note = "path appears more than once in this layer; the last entry wins"
                warns[i] = note if warns[i] is None else _insert_dup_note(warns[i], note)
            seen.add(p)
    is_file = [k is FILE for k in kinds]
    hashes = [d if f else None for d, f in zip(raw.digest, is_file)]
    modes = np.array(raw.mode, np.int64) & 0o7777 if n else np.zeros(0, np.int64)
    arrays = [
        pa.array(paths, pa.string()),
        pa.array(kinds, pa.string()),
        pa.array(sizes, pa.int64()),
        pa.array(modes, pa.int64()),
        pa.array(np.array(raw.uid, np.int64) if n else [], pa.int64()),
        pa.array(np.array(raw.gid, np.int64) if n else [], pa.int64()),
        pa.array(links, pa.string()),
        pa.array(mtimes, pa.int64(), mask=None if mvalid is None else ~mvalid).cast(pa.timestamp("ns", tz="UTC")),
        pa.array(hashes, pa.string()),
        pa.array(warns, pa.string()),
    ]
    table = pa.Table.from_arrays(arrays, schema=LAYER_TABLE_SCHEMA)
    total = int(sizes.sum())
    if keep is not None and not keep.all():
        table = table.filter(pa.array(keep))
        total = int(sizes[keep].sum())
    return table, total, (is_file, keep)


def _insert_dup_note(warn: str, note: str) -> str:
    # the row-wise rules put the duplicate note after path / type notes and before the mtime note
    parts = warn.split("; ")
    at = len(parts)
    for k, part in enumerate(parts):
        if part.startswith("modification time "):
            at = k
            break
    parts.insert(at, note)
    return "; ".join(parts)


def _rowwise_kept(raw: RawColumns) -> list[bool]:
    """Which rows :func:`build_table_rowwise` keeps (it drops the root directory)."""
    out = []
    for name in raw.name:
        path, _ = normalise_path(name)
        base = path.rsplit("/", 1)[-1]
        out.append(bool(path) or base.startswith(WHITEOUT_PREFIX))
    return out


def build_table_rowwise(raw: RawColumns, check_duplicates: bool = True) -> tuple[pa.Table, int]:
    """:func:`build_table` one row at a time: the reference rules."""
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
    type_map = _TYPE_MAP
    for name, tflag, size, mode, uid, gid, mt, linkname, tnotes, digest in zip(
        raw.name, raw.type, raw.size, raw.mode, raw.uid, raw.gid, raw.mtime, raw.link, raw.notes, raw.digest
    ):
        row_notes: list[str] = list(tnotes) if tnotes else []
        path, pnotes = normalise_path(name)
        if pnotes:
            row_notes.extend(pnotes)
        kind = type_map.get(tflag)
        if kind is None:
            kind = FILE
            row_notes.append(f"unknown tar type flag {tflag!r}; treated as a regular file")
        elif tflag == b"S":
            row_notes.append("GNU sparse file: the hash covers the stored data only")

        base = path.rsplit("/", 1)[-1]
        marker = classify(base)
        if marker is not None:
            parent = path[: -len(base)].rstrip("/")
            if marker == _OPQ:
                kind, path = OPAQUE, parent
            elif marker == META:
                row_notes.append("AUFS metadata entry (.wh..wh.*): not a whiteout, ignored by runtimes")
            elif marker == _WHT:
                name = base[len(WHITEOUT_PREFIX):]
                kind, path = WHITEOUT, (f"{parent}/{name}" if parent else name)
            else:
                row_notes.append("whiteout with an empty name: deletes nothing")
        elif not path:
            # the root directory itself ("./" or "/"): no row and no size, as in dive
            continue

        link = None
        if kind is SYMLINK or kind is HARDLINK:
            link = linkname
            if kind is HARDLINK:
                link, lnotes = normalise_path(link)
                row_notes.extend("link target: " + n for n in lnotes)
            elif not link.isascii():
                link, ok = shown_utf8(link)
                if not ok:
                    row_notes.append("link target is not valid UTF-8")

        if check_duplicates and kind is not WHITEOUT and kind is not OPAQUE:
            if path in seen:
                row_notes.append("path appears more than once in this layer; the last entry wins")
            seen.add(path)

        if type(mt) is int and -_S_MAX <= mt <= _S_MAX:
            ns = mt * 1_000_000_000
        else:
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
        modes.append(mode & 0o7777)
        uids.append(uid)
        gids.append(gid)
        targets.append(link)
        mtimes.append(ns)
        hashes.append(digest if kind is FILE else None)
        warns.append("; ".join(row_notes) if row_notes else None)
        total += size

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
    return table, total


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
