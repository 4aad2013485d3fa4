"""A bandwidth-limiting TCP proxy on 127.0.0.1: one shared link for all connections.

Used by the pull-time benchmark and its slow test to give a real ``dockerd``
a known link to a local registry::

    with Throttle("127.0.0.1", 5000, rate=4_000_000) as t:   # 4 MB/s, shared
        ...  # pull from 127.0.0.1:{t.port}
        t.set_rate(None)                                       # unlimited

Every connection's bytes in the throttled direction (by default the replies,
server -> client) draw from one token bucket: each chunk reserves the next
``len(chunk) / rate`` seconds of the link, in the order the chunks arrive,
so concurrent downloads share the rate (processor sharing at chunk
granularity, ``chunk`` bytes).  ``burst`` bytes may pass at once after an
idle spell.  The other direction is forwarded unthrottled unless
``both=True``.  ``bytes_through`` counts the throttled bytes; ``connections``
records, per connection, ``opened``, ``first_byte``, ``closed`` (monotonic
seconds) and ``bytes`` of the throttled direction.

Standard library only; threads, one pair per connection.  ``close()`` (or
leaving the ``with`` block) stops accepting and closes every connection.
"""
from __future__ import annotations

import socket
import threading
import time

__all__ = ["Throttle", "TokenBucket"]


class TokenBucket:
    """A shared link: ``take(n)`` blocks until ``n`` bytes may pass at ``rate`` B/s."""

    def __init__(self, rate: float | None, burst: int = 16384):
        self._lock = threading.Lock()
        self._rate = rate
        self._burst = burst
        self._free_at = time.monotonic()   # when the link is next idle

    def set_rate(self, rate: float | None) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be positive bytes/s or None, not {rate!r}")
        with self._lock:
            self._rate = rate
            self._free_at = time.monotonic()

    @property
    def rate(self) -> float | None:
        return self._rate

    def take(self, n: int) -> None:
        with self._lock:
            rate = self._rate
            if rate is None:
                return
            now = time.monotonic()
            start = max(self._free_at, now - self._burst / rate)
            self._free_at = start + n / rate
            wait = self._free_at - now - self._burst / rate
        if wait > 0:
            time.sleep(wait)


class Throttle:
    """Listen on ``listen:port`` (0 = a free port) and forward to ``host:target_port``
    through one shared :class:`TokenBucket` of ``rate`` bytes/s (``None``: unlimited)."""

    def __init__(self, host: str, target_port: int, rate: float | None, *, listen: str = "127.0.0.1",
                 port: int = 0, chunk: int = 65536, burst: int = 65536, both: bool = False):
        self.target = (host, target_port)
        self.bucket = TokenBucket(rate, burst)
        self.chunk = chunk
        self.both = both
        self.bytes_through = 0
        self._count_lock = threading.Lock()
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind((listen, port))
        self._server.listen(64)
        self.port = self._server.getsockname()[1]
        self.connections: list[dict] = []
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name="throttle-accept", daemon=True)
        self._thread.start()

    # -- control -----------------------------------------------------------
    def set_rate(self, rate: float | None) -> None:
        self.bucket.set_rate(rate)

    def close(self) -> None:
        self._closed.set()
        try:
            self._server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        except OSError:
            pass
        try:
            self._server.close()
        except OSError:
            pass
        with self._conns_lock:
            conns = list(self._conns)
            self._conns.clear()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "Throttle":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- forwarding --------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            record = {"opened": time.monotonic(), "first_byte": None, "closed": None, "bytes": 0}
            with self._conns_lock:
                self._conns.update((client, upstream))
                self.connections.append(record)
            for src, dst, limited in ((client, upstream, self.both), (upstream, client, True)):
                threading.Thread(target=self._pump, args=(src, dst, limited, record), daemon=True,
                                 name="throttle-pump").start()

    def _pump(self, src: socket.socket, dst: socket.socket, limited: bool, record: dict) -> None:
        try:
            while True:
                data = src.recv(self.chunk)
                if not data:
                    break
                if limited:
                    self.bucket.take(len(data))
                    with self._count_lock:
                        self.bytes_through += len(data)
                        record["bytes"] += len(data)
                        if record["first_byte"] is None:
                            record["first_byte"] = time.monotonic()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            if limited:
                record["closed"] = time.monotonic()
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            with self._conns_lock:
                for s in (src, dst):
                    if s in self._conns:
                        self._conns.discard(s)
                        s.close()
