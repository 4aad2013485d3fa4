"""Ask the kernel to read layer byte ranges ahead, when they are on disk rather than in memory."""
from __future__ import annotations

import os
from typing import Iterable


def _in_page_cache(fd: int, offset: int, length: int) -> bool:
    """True when probe reads at the start, middle and end of the range find
    it in memory (``RWF_NOWAIT`` fails rather than wait for the disk)."""
    buf = bytearray(1)
    for at in (offset, offset + length // 2, offset + max(length - 1, 0)):
        try:
            os.preadv(fd, [buf], at, os.RWF_NOWAIT)
        except BlockingIOError:
            return False
        except OSError:
            return True  # cannot tell: leave the range alone
    return True


def _memory_budget() -> int:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError):
        return 0


def read_ahead(ranges: Iterable[tuple[str, int, int]]) -> int:
    """Start the kernel reading ``(file, offset, length)`` ranges that are not
    in the page cache (``posix_fadvise(WILLNEED)``; it returns at once), up
    to half the free memory.  Returns the bytes advised.

    A header walk jumps from header to header and the hashing threads read
    files out of order; on a disk both then wait for seeks.  Advised first,
    the ranges stream in sequentially while they work.  On the 2.4 GB bench
    archive evicted from memory, advising the whole file before a scan took
    it from 4.70/4.35/3.73/3.10 s to 4.06/3.97/3.38/2.61 s (4 pairs); this
    per-range form measured 3.16/3.72/3.86 s against 3.42/3.54/4.45 s (3
    pairs; the virtual disk's speed varies by ±30% between runs).
    Nothing happens where the platform lacks these calls."""
    if not hasattr(os, "posix_fadvise") or not hasattr(os, "RWF_NOWAIT"):
        return 0
    budget = _memory_budget()
    advised = 0
    fds: dict[str, int] = {}
    try:
        for path, offset, length in sorted(set(ranges)):
            if length <= 0 or advised + length > budget:
                continue
            fd = fds.get(path)
            if fd is None:
                try:
                    fd = fds[path] = os.open(path, os.O_RDONLY)
                except OSError:
                    continue
            if _in_page_cache(fd, offset, length):
                continue
            try:
                os.posix_fadvise(fd, offset, length, os.POSIX_FADV_WILLNEED)
            except OSError:
                continue
            advised += length
    finally:
        for fd in fds.values():
            os.close(fd)
    return advised
