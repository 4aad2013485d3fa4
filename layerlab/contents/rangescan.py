"""Scan uncompressed layers that are byte ranges of local files, with threads.

The streaming scan (:mod:`.tarscan`) decodes a blob and hashes everything in
one pass, in tar order.  A plain tar at a known offset of a file (the layers
of a ``docker save`` archive, uncompressed blobs of an OCI layout) can do
better: :func:`.tarindex.index_range` jumps from header to header without
reading file data, and the data is then hashed by byte range in a pool of
threads — :mod:`hashlib` and ``xxhash`` release the GIL while hashing, and
``os.preadv`` while reading, so one process keeps both cores busy without
the cost of worker processes or of copying tables between them.

Per layer, up to three kinds of job go to the pool:

* the layer's sha256 (its diff_id check; one sequential pass, so it is queued
  first, biggest layer first — it is the longest single job);
* batches of small files: one read of a few MB, then each file's hash from a
  slice of that buffer;
* a large file on its own, read and hashed in chunks.

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

from ..errors import FormatError
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


def _sha256(fd: int, offset: int, length: int, what: str) -> str:
    h = hashlib.sha256()
    buf = _buffer()
    done = 0
    while done < length:
        want = min(BUF, length - done)
        n = _read_into(fd, buf[:want], offset + done, what)
        if n <= 0:
            raise FormatError(f"{what}: the file ends {length - done} bytes before the end of the layer; "
                              "it is truncated")
        h.update(buf[:n])
        done += n
    return "sha256:" + h.hexdigest()


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


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def pool() -> ThreadPoolExecutor:
    """The shared hashing pool: one thread per core (at least 2)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1), thread_name_prefix="layerlab-hash")
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
    sha: Future | None = None
    hashes: list[Future] | None = None


def start_verification(job: RangeJob, verify: bool) -> None:
    """Queue the layer's sha256 (when it will be checked: ``verify``, or no
    diff_id is known and the scan must name its content)."""
    if verify or not job.expected_diff_id:
        job.sha = pool().submit(_sha256, job.fd, job.offset, job.length, job.label)


def walk(job: RangeJob, hash: str | None) -> RawColumns:
    """Index the layer (unless already indexed) and queue its content hashes."""
    algo, new_hash = hash_algorithm(hash)
    idx = job.index
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
    for size in idx.size:
        if size > (1 << 62):
            raise FormatError(f"{job.label}: an entry claims an impossible size ({size} bytes)")
    job.hashes = []
    if new_hash is None:
        return raw
    from .tarscan import _is_marker

    submit = pool().submit
    batch: list[tuple[int, int, int]] = []
    start = 0
    type_map = _TYPE_MAP
    for row, (tflag, off, size) in enumerate(zip(idx.type, idx.data_offset, idx.size)):
        if type_map.get(tflag, FILE) is not FILE or (".wh." in idx.name[row] and _is_marker(idx.name[row])):
            continue
        if size >= BATCH_BYTES:
            job.hashes.append(submit(_hash_batch, job.fd, job.offset, [(row, off, size)], new_hash, algo, job.label))
            continue
        if batch and off + size - start > BATCH_BYTES:
            job.hashes.append(submit(_hash_batch, job.fd, job.offset, batch, new_hash, algo, job.label))
            batch = []
        if not batch:
            start = off
        batch.append((row, off, size))
    if batch:
        job.hashes.append(submit(_hash_batch, job.fd, job.offset, batch, new_hash, algo, job.label))
    return raw


def finish(job: RangeJob, raw: RawColumns, hash: str | None, verify: bool) -> LayerScan:
    """Wait for the layer's jobs and build its :class:`LayerScan`."""
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
    actual = job.sha.result() if job.sha is not None else None
    verified = check_diff_id(actual, job.expected_diff_id, verify, job.label, notes)
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
    )


def cancel(jobs: list[RangeJob]) -> None:
    """Drop queued work after an error (running jobs finish on their own)."""
    for job in jobs:
        for fut in ([job.sha] if job.sha else []) + list(job.hashes or ()):
            fut.cancel()
