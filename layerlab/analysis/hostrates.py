"""How fast this host turns layer blobs into files: decompression, hashing, writing.

``measure_host()`` times, on generated data, in this process:

* gzip and zstd decompression (bytes of *output* per second), on a mix of
  incompressible and text-like data compressed at the engines' usual levels
  (gzip 6 as Go's and skopeo's default, zstd 3);
* sha256 of the uncompressed stream (an engine checks every diff_id);
* writing files: the uncompressed bytes written into a temporary directory as
  files of 64 KiB to 4 MiB, without fsync (Docker's overlay2 applyDiff does
  not sync either), then removed.

Measure on a quiet host: on a busy one (other processes on the cores) the
rates come out lower, up to half.  It takes about a second and is cached as JSON in the layerlab cache
directory (``$LAYERLAB_CACHE``, ``$XDG_CACHE_HOME/layerlab`` or
``~/.cache/layerlab``) as ``hostrates-v1.json``; ``refresh=True`` measures
again, ``cache=False`` neither reads nor writes it.  A :class:`HostRates`
can also be built by hand (rates of another host, or ``HostRates.default()``).
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..errors import AnalysisError

__all__ = ["HostRates", "measure_host"]

_CACHE_NAME = "hostrates-v1.json"


@dataclass(frozen=True)
class HostRates:
    """A host's rates in bytes per second (of uncompressed data).

    ``gzip``/``zstd``: decompression output rate; ``plain``: reading an
    uncompressed tar (a copy); ``sha256``: hashing; ``write``: writing the
    files.  ``source`` says where the numbers come from."""

    gzip: float
    zstd: float
    write: float
    sha256: float
    plain: float = 2e9
    source: str = "given"

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name == "source":
                continue
            v = getattr(self, f.name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0:
                raise AnalysisError(f"HostRates.{f.name} must be a positive number of bytes/s, not {v!r}")

    @classmethod
    def default(cls) -> "HostRates":
        """Round figures for a modest 2020s server core (not measured here)."""
        return cls(gzip=150e6, zstd=600e6, write=400e6, sha256=400e6, plain=2e9, source="default")

    def decompress_rate(self, compression: str) -> float:
        """Output bytes/s for ``gzip``, ``zstd`` or ``plain`` (anything else: gzip)."""
        return {"zstd": self.zstd, "plain": self.plain}.get(compression, self.gzip)

    def to_dict(self) -> dict:
        return asdict(self)


def _sample(total: int, seed: int = 13) -> bytes:
    """Half incompressible bytes, half text-like lines: a layer's typical mix."""
    rnd = random.Random(seed)
    half = total // 2
    words = [rnd.randbytes(rnd.randint(2, 9)).hex() for _ in range(2000)]
    text = []
    n = 0
    while n < total - half:
        line = " ".join(rnd.choices(words, k=12)) + "\n"
        text.append(line)
        n += len(line)
    return rnd.randbytes(half) + "".join(text).encode()[: total - half]


def _rate(fn, nbytes: int, min_time: float = 0.15) -> float:
    """Bytes/s of ``fn()`` over ``nbytes``, repeated until ``min_time`` passed (best run)."""
    best = float("inf")
    spent = 0.0
    runs = 0
    while spent < min_time or runs < 2:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best = min(best, dt)
        spent += dt
        runs += 1
    return nbytes / max(best, 1e-9)


def _write_rate(data: bytes) -> float:
    sizes = [64 << 10, 256 << 10, 1 << 20, 4 << 20]

    def run() -> None:
        with tempfile.TemporaryDirectory(prefix="layerlab-hostrates-") as d:
            off = i = 0
            while off < len(data):
                n = sizes[i % len(sizes)]
                with open(os.path.join(d, f"f{i}"), "wb") as f:
                    f.write(data[off:off + n])
                off += n
                i += 1

    return _rate(run, len(data))


def _measure(nbytes: int) -> HostRates:
    import zstandard

    data = _sample(nbytes)
    gz = gzip.compress(data, compresslevel=6)
    zs = zstandard.ZstdCompressor(level=3).compress(data)
    dctx = zstandard.ZstdDecompressor()
    return HostRates(
        gzip=_rate(lambda: gzip.decompress(gz), len(data)),
        zstd=_rate(lambda: dctx.decompress(zs, max_output_size=len(data)), len(data)),
        sha256=_rate(lambda: hashlib.sha256(data).digest(), len(data)),
        write=_write_rate(data),
        plain=_rate(lambda: bytes(memoryview(data)[:]), len(data)),
        source=f"measured {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} on {os.uname().nodename}",
    )


def _cache_file(cache_dir) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser() / _CACHE_NAME
    from ..contents import default_cache_dir

    return default_cache_dir() / _CACHE_NAME


def measure_host(*, refresh: bool = False, cache: bool = True, cache_dir=None,
                 sample_bytes: int = 8 << 20) -> HostRates:
    """This host's decompression, hashing and file-writing rates (see the module doc).

    Cached in ``<cache dir>/hostrates-v1.json``; ``refresh=True`` measures
    again, ``cache=False`` skips the cache.  ``sample_bytes`` is the size of
    the generated data (8 MiB: about a second)."""
    path = _cache_file(cache_dir) if cache else None
    if path is not None and not refresh:
        try:
            return HostRates(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError, AnalysisError):
            pass
    rates = _measure(int(sample_bytes))
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(rates.to_dict(), indent=1))
            os.replace(tmp, path)
        except OSError:
            pass  # an unwritable cache only costs a new measurement next time
    return rates
