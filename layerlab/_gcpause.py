"""Pause Python's cyclic garbage collector around allocation-heavy steps."""
from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic collector for the block, then restore its state.

    Walking headers, building tables and merging layers allocate hundreds of
    thousands of small objects and no reference cycles; each allocation
    burst made the collector scan the young objects again (276 collections,
    0.21 s of a 1.7 s scan of a 66k-entry image).  Reference counting still
    frees everything; only cycles wait for the block to end."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
