"""The documented limits on what one input may make layerlab do: :func:`limits`.

Images come from strangers, so every reader bounds its work: a layer may hold
at most so many tar entries and so many bytes of paths, decode to at most so
many bytes, an image may list at most so many layers and decode to at most so
many bytes, and a manifest, index or config document may be at most so large.
Exceeding a limit raises :class:`~layerlab.errors.LimitError` (a
``FormatError``) naming the input, the limit, its value and how to raise it.

The defaults let every ordinary image through with a wide margin (the largest
image the benchmarks read has 66,113 entries and 2.4 GB in 11 layers; Docker
refuses to build more than 127 layers; Linux paths stop at 4,096 bytes):

=======================  ===============  ==========================================
limit                    default          what it bounds
=======================  ===============  ==========================================
``entries_per_layer``    2,000,000        tar entries in one layer (about 1.2 KB of memory each)
``path_bytes_per_layer`` 1 GiB            bytes of all entry paths of one layer
``path_bytes``           4,096            bytes of one entry's path (Linux's PATH_MAX)
``layer_bytes``          64 GiB           uncompressed bytes of one layer
``image_bytes``          256 GiB          uncompressed bytes of one image's layers
``layers_per_image``     1,000            layers one image lists
``document_bytes``       64 MiB           one manifest, index or config document
=======================  ===============  ==========================================

Raise one for the whole process with ``ll.limits(layer_bytes=200 << 30)``, or
for a block of code::

    with ll.limits(entries_per_layer=50_000_000):
        img.files()

``ll.limits()`` without arguments returns the limits in force (a frozen
:class:`Limits`).  Limits are process-wide (the scanning threads and worker
processes of one call see the same values).

This module sits at the floor of the package: it imports only
:mod:`layerlab.errors`.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, fields, replace

from .errors import LimitError

__all__ = ["Limits", "LimitError", "current", "exceeded", "limits", "set_current"]


@dataclass(frozen=True)
class Limits:
    """The limits in force (see the module documentation for each one).

    Returned by :func:`limits`; also a context manager: leaving a ``with
    ll.limits(...)`` block restores the limits that were in force before it."""

    entries_per_layer: int = 2_000_000
    path_bytes_per_layer: int = 1 << 30
    path_bytes: int = 4096
    layer_bytes: int = 64 << 30
    image_bytes: int = 256 << 30
    layers_per_image: int = 1000
    document_bytes: int = 64 << 20

    def __enter__(self) -> "Limits":
        return self

    def __exit__(self, *exc) -> None:
        prev = _PREVIOUS.pop(id(self), None)
        if prev is not None:
            set_current(prev)


_LOCK = threading.Lock()
_CURRENT = Limits()
_PREVIOUS: dict[int, Limits] = {}


def current() -> Limits:
    """The limits in force (cheap: read on every layer scan)."""
    return _CURRENT


def set_current(value: Limits) -> None:
    """Put ``value`` in force (used by :func:`limits` and by worker processes,
    which receive their parent's limits)."""
    global _CURRENT
    with _LOCK:
        _CURRENT = value


def limits(
    *,
    entries_per_layer: int | None = None,
    path_bytes_per_layer: int | None = None,
    path_bytes: int | None = None,
    layer_bytes: int | None = None,
    image_bytes: int | None = None,
    layers_per_image: int | None = None,
    document_bytes: int | None = None,
) -> Limits:
    """Change limits (each keyword a field of :class:`Limits`, a positive
    integer; None leaves it as it is) and return the limits now in force; with
    no arguments, just return them.  Usable as a context manager that restores the previous
    limits on exit::

        ll.limits(layer_bytes=128 << 30)          # from now on
        with ll.limits(entries_per_layer=10**8):  # inside the block only
            ...

    A name that is not a limit, or a value that is not a positive integer,
    raises :class:`~layerlab.errors.LimitError`."""
    changes = {k: v for k, v in locals().items() if v is not None}
    names = {f.name for f in fields(Limits)}
    for k, v in changes.items():
        if k not in names:
            raise LimitError(f"ll.limits: {k!r} is not a limit; the limits are {', '.join(sorted(names))}")
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise LimitError(f"ll.limits: {k}={v!r} must be a positive integer")
    prev = current()
    if not changes:
        return prev
    new = replace(prev, **changes)
    _PREVIOUS[id(new)] = prev
    set_current(new)
    return new


def exceeded(what: str, name: str, value: int, unit: str = "", *, amount: int | None = None) -> LimitError:
    """The :class:`LimitError` for ``what`` (the input, e.g. a layer's label)
    going past limit ``name`` (whose value is ``value``); ``amount``: how much
    it holds (or reached), when known."""
    unit = f" {unit}" if unit else ""
    held = f" (reached {amount:,}{unit})" if amount is not None else ""
    return LimitError(
        f"{what}: more than {value:,}{unit} — the {name} limit{held}; the input is hostile or unusually "
        f"large. If you trust it, raise the limit: ll.limits({name}={value * 4}) or "
        f"`with ll.limits({name}=...):` around the call"
    )
