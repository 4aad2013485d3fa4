"""Rolling a new image (say, a new version of a base) out to many hosts: bytes and seconds.

Built on :func:`layerlab.analysis.pull.pull_time`: every host pulls as it
says, on its own link, with the registry's egress shared by the hosts
pulling at once.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from ..errors import AnalysisError
from ._result import Result
from .hostrates import HostRates
from .pull import PullTime, parse_bandwidth, pull_time

__all__ = ["Rollout", "rollout"]


class Rollout(Result):
    """Rolling ``image`` out to ``hosts`` hosts: bytes over the network and seconds.

    ``per_host`` is the one-host :class:`PullTime`; ``bytes`` = hosts × its
    bytes; ``seconds``: every host pulls at once on its own ``bandwidth`` link,
    the registry's egress (``registry_bandwidth``, unlimited when None) shared
    by all of them, in ``waves`` of at most ``parallel`` hosts."""

    _frame_names = ("table",)

    def __init__(self, per_host: PullTime, hosts: int, parallel: int, registry_bandwidth: float | None,
                 seconds: float, notes: list[str]):
        self.per_host = per_host
        self.hosts = hosts
        self.parallel = parallel
        self.registry_bandwidth = registry_bandwidth
        self.bytes = hosts * per_host.bytes
        self.seconds = seconds
        self.notes = notes

    @property
    def table(self) -> pd.DataFrame:
        return pd.DataFrame([{"image": self.per_host.image, "hosts": self.hosts, "parallel": self.parallel,
                              "bytes_per_host": self.per_host.bytes, "bytes": self.bytes,
                              "seconds_per_host": self.per_host.seconds, "seconds": self.seconds}])

    def _summary(self) -> str:
        return f"{self.per_host.image} to {self.hosts} hosts: {self.bytes:,} bytes, {self.seconds:.1f} s"


def rollout(data: Any, target: str, hosts: int, *, present: Any = (), bandwidth: Any,
            registry_bandwidth: Any = None, parallel: int | None = None, engine: str = "moby",
            rtt: float = 0.05, host: HostRates | str | None = None, key: str = "auto",
            max_concurrent_downloads: int | None = None, max_concurrent_extractions: int | None = None,
            setup: float | None = None, handshake_rtts: int | None = None,
            extract_overhead: float | None = None, inflate_speed: float | None = None,
            extract_rate: Any = None, config_bytes: int = 4096, unknown_wire: str = "refuse",
            same_repo: bool = False) -> Rollout:
    """Bytes and seconds to roll ``target`` (e.g. a new version of a base) out to ``hosts``
    hosts that each hold ``present``.

    Each host pulls as :func:`pull_time` says on its own ``bandwidth`` link.
    ``parallel`` hosts (all by default) pull at once; when ``registry_bandwidth``
    is given, a wave of ``k`` hosts gets at most ``registry_bandwidth / k``
    each (the registry's egress shared).  Waves run one after another.

    ``engine``, ``rtt``, ``host``, ``key``, ``max_concurrent_downloads``,
    ``max_concurrent_extractions``, ``setup``, ``handshake_rtts``,
    ``extract_overhead``, ``inflate_speed``, ``extract_rate``,
    ``config_bytes``, ``unknown_wire`` and ``same_repo`` are the pull model's options, passed to
    :func:`~layerlab.analysis.pull.pull_time` (same meaning and defaults).
    Returns a :class:`Rollout` (``bytes``, ``seconds``, ``per_host``, ``table``)."""
    options = dict(engine=engine, rtt=rtt, host=host, key=key, max_concurrent_downloads=max_concurrent_downloads,
                   max_concurrent_extractions=max_concurrent_extractions, setup=setup,
                   handshake_rtts=handshake_rtts, extract_overhead=extract_overhead,
                   inflate_speed=inflate_speed, extract_rate=extract_rate, config_bytes=config_bytes,
                   unknown_wire=unknown_wire, same_repo=same_repo)
    if isinstance(hosts, bool) or not isinstance(hosts, int) or hosts < 1:
        raise AnalysisError(f"rollout(): hosts={hosts!r}; give a whole number of hosts >= 1")
    parallel = hosts if parallel is None else parallel
    if isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1:
        raise AnalysisError(f"rollout(): parallel={parallel!r}; give a whole number >= 1")
    link = parse_bandwidth(bandwidth)
    egress = None if registry_bandwidth is None else parse_bandwidth(registry_bandwidth, what="registry_bandwidth")
    one = pull_time(data, target, present=present, bandwidth=link, **options)
    seconds = 0.0
    left = hosts
    while left > 0:
        k = min(parallel, left)
        rate = link if egress is None else min(link, egress / k)
        seconds += one.seconds if rate == link else pull_time(data, target, present=present, bandwidth=rate,
                                                              **options).seconds
        left -= k
    return Rollout(one, hosts, parallel, egress, seconds, list(one.notes))

