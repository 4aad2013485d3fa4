"""layerlab.contents.recompress: the level a source blob was compressed with, and the compressor."""
from __future__ import annotations

import gzip
import io
import tarfile
import zlib

import pytest

from layerlab.contents.compression import detect_level
from layerlab.contents.recompress import Compressor, recompression_of


def plain_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo("f")
        ti.size = 3
        tf.addfile(ti, io.BytesIO(b"abc"))
    return buf.getvalue()


@pytest.mark.parametrize("level, expected", [(1, 1), (6, 6), (9, 9)])
def test_gzip_level_from_the_header(level, expected):
    # RFC 1952: XFL = 4 for the fastest level, 2 for the slowest, 0 otherwise
    head = gzip.compress(plain_tar(), compresslevel=level)[:16]
    algo, got, how = detect_level(head)
    assert (algo, got) == ("gzip", expected) and "XFL" in how


def test_zstd_and_plain_sources():
    zstandard = pytest.importorskip("zstandard")
    assert detect_level(zstandard.ZstdCompressor(level=19).compress(plain_tar())[:16])[:2] == ("zstd", 3)
    assert detect_level(plain_tar()[:16])[:2] == ("none", 6)
    r = recompression_of(plain_tar()[:16])
    assert (r.source, r.algorithm, r.level) == ("none", "gzip", 6)


def test_compressor_counts_what_it_writes():
    data = plain_tar() * 50
    sink = io.BytesIO()
    c = Compressor("gzip", 9, sink)
    c.write(data[:1000])
    c.write(data[1000:])
    n = c.close()
    assert n == len(sink.getvalue()) and c.raw == len(data)
    assert zlib.decompress(sink.getvalue(), 31) == data
    assert sink.getvalue()[8] == 2   # written at level 9
