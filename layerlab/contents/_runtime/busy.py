"""Interpreter settings for layerlab's allocation- and thread-heavy steps."""
from __future__ import annotations

import gc
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

SWITCH_INTERVAL = 0.001
"""Seconds a thread may hold the GIL while another waits for it, inside :func:`busy` (Python's default: 0.005)."""


_lock = threading.Lock()
_holders: set[object] = set()   # one token per block running now, in any thread
_saved: tuple | None = None     # (gc enabled, switch interval, Arrow pool or None) found by the first block


def _arrow_pool_to_replace():
    """Arrow's default pool, when pyarrow is loaded and that pool is not the C
    allocator's (None otherwise): what :func:`busy` switches away from.

    Arrow's default, mimalloc, gives freed pages back to the kernel within
    milliseconds and takes fresh (huge) ones for the next table, which the
    kernel must zero.  With ``ARROW_DEFAULT_MEMORY_POOL=system`` a scan of
    the bench image spent 0.63-0.70 s in the kernel against 0.82-1.01 s;
    this switch covers only what pyarrow's Python layer allocates (Arrow's
    C++ internals keep their own default), and measured a median of 1.39 s
    against 1.58 s (6 pairs).  A buffer remembers its pool, so switching
    back later is safe."""
    pa = sys.modules.get("pyarrow")
    if pa is None or not hasattr(pa, "system_memory_pool"):
        return None
    try:
        old = pa.default_memory_pool()
        return None if old.backend_name == "system" else old
    except Exception:  # noqa: BLE001 - an optimisation only
        return None


def _apply(saved: tuple) -> None:
    gc.disable()
    sys.setswitchinterval(min(saved[1], SWITCH_INTERVAL))
    if saved[2] is not None:
        try:
            sys.modules["pyarrow"].set_memory_pool(sys.modules["pyarrow"].system_memory_pool())
        except Exception:  # noqa: BLE001 - an optimisation only
            pass


def _restore(saved: tuple) -> None:
    was_enabled, interval, pool = saved
    sys.setswitchinterval(interval)
    if pool is not None:
        sys.modules["pyarrow"].set_memory_pool(pool)
    if was_enabled:
        gc.enable()


@contextmanager
def busy() -> Iterator[None]:
    """For the block: pause the cyclic garbage collector, hand the GIL over
    sooner and let pyarrow allocate from the C allocator
    (:func:`_arrow_pool_to_replace`); all three are interpreter-wide, and
    all are put back as they were when the block ends, on every path: a
    return, an exception, ``KeyboardInterrupt`` (even one arriving while the
    settings are being applied), the end of a generator.

    Blocks nest and overlap across threads: the first to start records the
    settings it found, the last to end (in whichever thread) restores them.
    A setting the caller had already chosen (the collector off, a shorter
    switch interval, the system pool) is kept.

    * Walking headers, building tables and merging layers allocate hundreds
      of thousands of small objects and no reference cycles: each burst made
      the collector scan the young objects again (276 collections, 0.21 s of
      a 1.7 s scan of a 66k-entry image).  Reference counting still frees
      everything; only cycles wait for the block to end.
    * The hashing threads drop the GIL for every read and must then wait for
      the thread stacking tables (or importing pandas) to yield it: up to the
      switch interval each time, hundreds of times per image.  1 ms instead
      of 5 ms measured 0.1 s less on that image (median of 5)."""
    global _saved
    token = object()
    try:
        with _lock:
            if not _holders:
                # recorded before anything changes: an interruption from here on is undone below
                _saved = (gc.isenabled(), sys.getswitchinterval(), _arrow_pool_to_replace())
                _apply(_saved)
            _holders.add(token)
        yield
    finally:
        with _lock:
            _holders.discard(token)
            if not _holders and _saved is not None:  # the last block to end restores what the first found
                saved, _saved = _saved, None
                _restore(saved)
