"""HTTP plumbing of the ``docker://`` source: a deadline per request, retry waits, capped bodies.

Written here because ``requests`` has a timeout per socket read but nothing
that bounds a whole request: a server that sends one byte every few seconds
never trips a read timeout and would hold a caller forever.  Three pieces:

:class:`Deadline`
    a timer started before a request is sent; when it fires it shuts the
    request's socket down (headers or body, whichever is being read), so the
    blocked read returns at once and the caller sees :attr:`Deadline.expired`.
    The socket is found through :class:`TimedAdapter`, a ``requests``
    adapter whose connections register their socket with the deadline of the
    request running on the current thread just before reading the answer.
:func:`retry_wait`
    how long to wait before the next attempt: the server's ``Retry-After``
    (seconds or an HTTP date) when it sends one, else exponential backoff
    (``BACKOFF`` s, doubled each attempt).
:func:`read_capped`
    a response body read to at most ``limit`` bytes, every transport error
    (``ChunkedEncodingError``, ``ContentDecodingError``, a broken
    connection) and an expired deadline turned into :class:`SourceError`.
"""
from __future__ import annotations

import email.utils
import socket
import threading
import time
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ..errors import FormatError, SourceError
from ._stream import short_error

RETRY_STATUS = frozenset({429, 502, 503, 504})
BACKOFF = 0.25          # seconds before the second attempt; doubled for each further one
MAX_WAIT = 60.0         # a Retry-After longer than this is not waited for
ERROR_BODY_LIMIT = 64 << 10

_current = threading.local()


class Deadline:
    """Cut one request off ``seconds`` after it starts, however slowly its bytes arrive.

    Use as a context manager around sending the request (so the adapter's
    connection can register its socket), keep it until the body is read, and
    :meth:`cancel` it when the response is closed — a cancelled deadline never
    touches the socket, which may by then serve another request.
    """

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self.expired = False
        self._socks: list[Any] = []
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        if seconds is not None:
            self._timer = threading.Timer(seconds, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def __enter__(self) -> "Deadline":
        _current.deadline = self
        return self

    def __exit__(self, *exc) -> None:
        _current.deadline = None

    def watch(self, sock: Any) -> None:
        with self._lock:
            if self.expired:
                _shutdown(sock)
            else:
                self._socks.append(sock)

    def _fire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._socks:
                _shutdown(sock)
            self._socks.clear()

    def cancel(self) -> None:
        with self._lock:
            self._socks.clear()
            if self._timer is not None:
                self._timer.cancel()


def _shutdown(sock: Any) -> None:
    try:
        # the plain socket's shutdown: the blocked reader (maybe inside TLS) sees EOF at once
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except (OSError, TypeError):
        pass


def _watched(connection_cls):
    class Watched(connection_cls):
        def getresponse(self, *args, **kwargs):
            deadline = getattr(_current, "deadline", None)
            if deadline is not None and getattr(self, "sock", None) is not None:
                deadline.watch(self.sock)
            return super().getresponse(*args, **kwargs)

    Watched.__name__ = f"Watched{connection_cls.__name__}"
    return Watched


class _Pool(HTTPConnectionPool):
    ConnectionCls = _watched(HTTPConnectionPool.ConnectionCls)


class _TLSPool(HTTPSConnectionPool):
    ConnectionCls = _watched(HTTPSConnectionPool.ConnectionCls)


class TimedAdapter(HTTPAdapter):
    """A ``requests`` adapter whose connections report their socket to the current :class:`Deadline`."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def retry_wait(attempt: int, header: str | None) -> float:
    """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 0)."""
    asked = retry_after(header)
    if asked is not None:
        return asked
    return BACKOFF * (2 ** attempt)


def read_capped(resp, limit: int, what: str, deadline: Deadline | None = None, *, too_big: str = "") -> bytes:
    """Up to ``limit`` bytes of a streamed response's body; FormatError past it (``too_big`` says why)."""
    data = bytearray()
    url = getattr(resp, "url", None)
    try:
        for chunk in resp.iter_content(1 << 16):
            data.extend(chunk)
            if len(data) > limit:
                resp.close()
                raise FormatError(f"{what}: larger than {limit} bytes{too_big}")
    except requests.exceptions.RequestException as e:
        _raise_deadline(deadline, what, url)
        raise SourceError(f"{what}: the answer from {url} broke off after {len(data)} bytes: {short_error(e)}") from e
    except (OSError, ValueError) as e:  # urllib3/http.client errors that escape requests' wrapping
        _raise_deadline(deadline, what, url)
        raise SourceError(f"{what}: the answer from {url} broke off after {len(data)} bytes: {short_error(e)}") from e
    _raise_deadline(deadline, what, url)
    return bytes(data)


def deadline_error(what: str, url: str | None, seconds: float | None) -> SourceError:
    return SourceError(
        f"{what}: {url or 'the registry'} gave no complete answer within the {seconds:g} s deadline "
        "(the server is too slow or trickles bytes); pass a larger deadline= if it is just slow"
    )


def _raise_deadline(deadline: Deadline | None, what: str, url: str | None = None) -> None:
    if deadline is not None and deadline.expired:
        raise deadline_error(what, url, deadline.seconds)


def error_body(resp, deadline: Deadline | None = None) -> str:
    """The start of an error response's body for a message (read to at most 64 KiB, never raises)."""
    try:
        raw = read_capped(resp, ERROR_BODY_LIMIT, "error body", deadline)
    except Exception:  # noqa: BLE001 - the status is the message; the body only decorates it
        return ""
    text = raw.decode("utf-8", "replace").strip()
    return text[:300]


class DeadlineRaw:
    """A blob's raw stream that turns an expired :class:`Deadline` into SourceError and cancels it at EOF."""

    def __init__(self, raw, deadline: Deadline, what: str):
        self._raw = raw
        self._deadline = deadline
        self._what = what

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._raw.read(n)
        except Exception:
            _raise_deadline(self._deadline, self._what)
            raise
        _raise_deadline(self._deadline, self._what)
        if not data:
            self._deadline.cancel()
        return data
