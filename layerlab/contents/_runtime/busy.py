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
_depth = 0
_saved: tuple = (True, 0.005, None)


def _use_system_pool():
    """Make the C allocator Arrow's default pool, if pyarrow is loaded; returns the pool it replaced (or None).

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
        if old.backend_name == "system":
            return None
        pa.set_memory_pool(pa.system_memory_pool())
        return old
    except Exception:  # noqa: BLE001 - an optimisation only
        return None


@contextmanager
def busy() -> Iterator[None]:
    """For the block: pause the cyclic garbage collector, hand the GIL over
    sooner and let pyarrow allocate from the C allocator
    (:func:`_use_system_pool`); all restored afterwards.

    * Walking headers, building tables and merging layers allocate hundreds
      of thousands of small objects and no reference cycles: each burst made
      the collector scan the young objects again (276 collections, 0.21 s of
      a 1.7 s scan of a 66k-entry image).  Reference counting still frees
      everything; only cycles wait for the block to end.
    * The hashing threads drop the GIL for every read and must then wait for
      the thread stacking tables (or importing pandas) to yield it: up to the
      switch interval each time, hundreds of times per image.  1 ms instead
      of 5 ms measured 0.1 s less on that image (median of 5)."""
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = (gc.isenabled(), sys.getswitchinterval(), _use_system_pool())
            gc.disable()
            sys.setswitchinterval(min(_saved[1], SWITCH_INTERVAL))
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:  # the last block to end (of any thread's) restores what the first found
                was_enabled, interval, pool = _saved
                sys.setswitchinterval(interval)
                if pool is not None:
                    sys.modules["pyarrow"].set_memory_pool(pool)
                if was_enabled:
                    gc.enable()
