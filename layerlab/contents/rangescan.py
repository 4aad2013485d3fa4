"""Scan uncompressed layers that are byte ranges of local files, with threads.

The streaming scan (:mod:`.tarscan`) decodes a blob and hashes everything in
one pass, in tar order.  A plain tar at a known offset of a file (the layers
of a ``docker save`` archive, uncompressed blobs of an OCI layout) can do
better: :func:`.tarindex.index_range` jumps from header to header without
reading file data, and the data is then hashed by byte range in a pool of
threads — :mod:`hashlib` and ``xxhash`` release the GIL while hashing, and
``os.preadv`` while reading, so one process keeps both cores busy without
the cost of worker processes or of copying tables between them.

When the layer's sha256 is wanted (its diff_id check), one job per layer
reads it once and feeds the same buffer to the sha256 and to each file's
hash: the sha256 is by far the costlier (~1.3 GB/s here against ~6 GB/s for
XXH3), and a second read of the bytes would cost more than the file hashes.
Layers are queued biggest first, since a layer's sha256 is one sequential
pass.  Without the sha256 (``verify=False``), files are hashed in jobs the
threads share: batches of small files (one read of a few MB, each file's hash
from a slice of it) and each large file on its own, read in chunks.

Memory stays bounded by one buffer per thread (:data:`BUF` bytes) plus the
tables.
"""
from __future__ import annotations

import hashlib
import os
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .._limits import current as current_limits, exceeded
from ..errors import FormatError
from .tar import EntryBudget
from .tarindex import TarIndex, index_range
from .tarscan import FILE, LayerScan, RawColumns, _TYPE_MAP, build_table, check_diff_id, hash_algorithm

BUF = 8 << 20                # bytes per read (and per thread buffer)
BATCH_BYTES = 4 << 20        # small files are hashed in batches spanning about this much

_local = threading.local()


def _buffer() -> memoryview:
    mv = getattr(_local, "buf", None)
    if mv is None:
        mv = _local.buf = memoryview(bytearray(BUF))
    return mv


def _read_into(fd: int, mv: memoryview, offset: int, what: str) -> int:
    try:
        n = os.preadv(fd, [mv], offset)
    except OSError as e:
        raise FormatError(f"{what}: cannot read ({e.strerror or e})") from e
    return n


def _hash_batch(fd: int, base: int, items: list[tuple[int, int, int]], new_hash, algo: str, what: str):
    """Hash files [(row, offset, size)] lying within one span of the tar; returns [(row, digest)]."""
    out = []
    first = items[0][1]
    last = items[-1][1] + items[-1][2]
    if last - first <= BUF:
        buf = _buffer()
        n = _read_into(fd, buf[:last - first], base + first, what)
        if n < last - first:
            raise FormatError(f"{what}: the file ends inside the layer; it is truncated")
        for row, off, size in items:
            h = new_hash()
            h.update(buf[off - first:off - first + size])
            out.append((row, f"{algo}:{h.hexdigest()}"))
        return out
    for row, off, size in items:  # one big file
        h = new_hash()
        buf = _buffer()
        done = 0
        while done < size:
            want = min(BUF, size - done)
            n = _read_into(fd, buf[:want], base + off + done, what)
            if n <= 0:
                raise FormatError(f"{what}: the file ends inside the layer; it is truncated")
            h.update(buf[:n])
            done += n
        out.append((row, f"{algo}:{h.hexdigest()}"))
    return out


def _fused(fd: int, base: int, length: int, items: list[tuple[int, int, int]], new_hash, algo, what: str):
    """One pass over the whole layer: its sha256 and, from the same buffer, the
    content hash of each file [(row, offset, size)] (sorted by offset).  Reading
    once costs about the sha256 alone (the file hashes run on cache-hot bytes).
    Returns (sha256 digest, [(row, digest)])."""
    h = hashlib.sha256()
    out = []
    buf = _buffer()
    pos = 0
    fi = 0
    nfiles = len(items)
    cur = None
    while pos < length:
        n = _read_into(fd, buf[:min(BUF, length - pos)], base + pos, what)
        if n <= 0:
            raise FormatError(f"{what}: the file ends {length - pos} bytes before the end of the layer; "
                              "it is truncated")
        chunk = buf[:n]
        h.update(chunk)
        if new_hash is not None:
            end_chunk = pos + n
            while fi < nfiles:
                row, off, size = items[fi]
                if off >= end_chunk and size:
                    break
                if cur is None:
                    cur = new_hash()
                lo = off - pos if off > pos else 0
                hi = off + size - pos
                if hi <= n:
                    cur.update(chunk[lo:hi])
                    out.append((row, f"{algo}:{cur.hexdigest()}"))
                    cur = None
                    fi += 1
                else:
                    cur.update(chunk[lo:])
                    break
        pos += n
    if new_hash is not None:
        for row, off, size in items[fi:]:
            if size or off > length:
                raise FormatError(f"{what}: the file ends inside the layer; it is truncated")
            out.append((row, f"{algo}:{new_hash().hexdigest()}"))
    return "sha256:" + h.hexdigest(), out


_POOL: ThreadPoolExecutor | None = None
_POOL_PID = 0
_POOL_LOCK = threading.Lock()


def pool() -> ThreadPoolExecutor:
    """The shared hashing pool: one thread per core (at least 2).  A forked
    child (multiprocessing's fork start method) gets a pool of its own: the
    parent's threads do not exist there."""
    global _POOL, _POOL_PID
    with _POOL_LOCK:
        if _POOL is None or _POOL_PID != os.getpid():
            _POOL = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1), thread_name_prefix="layerlab-hash")
            _POOL_PID = os.getpid()
        return _POOL


@dataclass
class RangeJob:
    """One layer to scan: ``length`` bytes at ``offset`` of the open file ``fd``."""

    fd: int
    offset: int
    length: int
    label: str
    expected_diff_id: str | None
    index: TarIndex | None = None      # from the load-time size walk, if it kept one
    local_key: str | None = None       # cache key for an unverified scan (verify=False)
    sha: Future | None = None
    hashes: list[Future] | None = None


_NOT_FILE_FLAGS = [flag for flag, kind in _TYPE_MAP.items() if kind is not FILE]


def needs_sha(job: RangeJob, verify: bool) -> bool:
    """The layer's sha256 is computed when it will be checked (``verify``), or
    when no diff_id is known and the scan must name its content."""
    return verify or not job.expected_diff_id


def walk(job: RangeJob, hash: str | None, verify: bool = True) -> RawColumns:
    """Index the layer (unless already indexed) and queue its hashing.

    With the sha256 to compute, one job reads the layer once for both it and
    the file hashes (:func:`_fused`); without, the files are hashed in
    batches that the pool's threads share (:func:`_hash_batch`)."""
    algo, new_hash = hash_algorithm(hash)
    lim = current_limits()
    if job.length > lim.layer_bytes:
        raise exceeded(f"{job.label}: uncompressed bytes", "layer_bytes", lim.layer_bytes, "bytes", amount=job.length)
    idx = job.index
    if idx is not None:  # walked at load, maybe under other limits: count it under these
        EntryBudget(job.label).add_many(idx.name)
    if idx is None:
        try:
            idx = index_range(job.fd, job.offset, job.length, job.label)
        except FormatError as e:
            if "checksum" in str(e) and re.search(r"at byte 0\b", str(e)):
                raise FormatError(f"{job.label}: not a tar archive (no valid header at its start); "
                                  "the blob is damaged or not a layer") from e
            raise
    job.index = idx
    raw = RawColumns()
    raw.name, raw.type, raw.size, raw.mode = idx.name, idx.type, idx.size, idx.mode
    raw.uid, raw.gid, raw.mtime, raw.link, raw.notes = idx.uid, idx.gid, idx.mtime, idx.linkname, idx.notes
    raw.digest = [None] * len(idx)
    biggest = max(idx.size, default=0)
    if biggest > (1 << 62):
        raise FormatError(f"{job.label}: an entry claims an impossible size ({biggest} bytes)")
    job.hashes = []
    files: list[tuple[int, int, int]] = []
    if new_hash is not None:
        from .whiteouts import WHITEOUT_PREFIX, is_marker

        names, offs, sizes = idx.name, idx.data_offset, idx.size
        if names:  # regular files (unknown flags included, as the row-wise rules read them): not the other kinds
            rows = np.flatnonzero(~np.isin(np.array(idx.type), _NOT_FILE_FLAGS)).tolist()
            files = [(row, offs[row], sizes[row]) for row in rows
                     if not (WHITEOUT_PREFIX in names[row] and is_marker(names[row]))]
    submit = pool().submit
    if needs_sha(job, verify):
        job.sha = submit(_fused, job.fd, job.offset, job.length, files, new_hash, algo, job.label)
        return raw
    batch: list[tuple[int, int, int]] = []
    start = 0
    for item in files:
        _row, off, size = item
        if size >= BATCH_BYTES:
            job.hashes.append(submit(_hash_batch, job.fd, job.offset, [item], new_hash, algo, job.label))
            continue
        if batch and off + size - start > BATCH_BYTES:
            job.hashes.append(submit(_hash_batch, job.fd, job.offset, batch, new_hash, algo, job.label))
            batch = []
        if not batch:
            start = off
        batch.append(item)
    if batch:
        job.hashes.append(submit(_hash_batch, job.fd, job.offset, batch, new_hash, algo, job.label))
    return raw


def finish(job: RangeJob, raw: RawColumns, hash: str | None, verify: bool, prebuilt=None) -> LayerScan:
    """Wait for the layer's jobs and build its :class:`LayerScan` (``prebuilt``: what
    :func:`.tarscan.build_table_deferred` returned for ``raw``, to finish instead)."""
    algo, _ = hash_algorithm(hash)
    for fut in job.hashes or ():
        for row, digest in fut.result():
            raw.digest[row] = digest
    notes: list[str] = []
    idx = job.index
    if idx is not None and idx.end == "eof":
        if job.length == 0:
            notes.append("the layer blob is empty (no tar at all); read as a layer with no entries")
        else:
            notes.append("the tar has no end-of-archive marker (two zero blocks)")
    actual = None
    if job.sha is not None:
        actual, digests = job.sha.result()
        for row, digest in digests:
            raw.digest[row] = digest
    verified = check_diff_id(actual, job.expected_diff_id, verify, job.label, notes)
    if prebuilt is not None:
        _table, total, attach = prebuilt
        table = attach()
    else:
        table, total = build_table(raw)
    return LayerScan(
        table=table,
        diff_id=actual if actual is not None else (job.expected_diff_id or ""),
        size=total,
        entries=table.num_rows,
        compression="none",
        compressed_bytes=job.length,
        uncompressed_bytes=job.length,
        hash_algorithm=algo,
        notes=notes,
        verified=verified,
        local_key=None if verified else job.local_key,
    )


def futures(job: RangeJob) -> list[Future]:
    """The pool jobs of one layer."""
    return ([job.sha] if job.sha else []) + list(job.hashes or ())


def cancel(jobs: list[RangeJob]) -> None:
    """Drop queued work after an error (running jobs finish on their own)."""
    for job in jobs:
        for fut in futures(job):
            fut.cancel()
