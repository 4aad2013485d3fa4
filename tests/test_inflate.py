"""gzip layers are inflated by ISA-L (``isal``) where it is installed: the same
bytes, notes and verdicts as zlib, on intact, truncated, bit-flipped,
multi-member and trailing-junk streams (the inputs are written here with
Python's ``gzip``; the reference is the same decoder with :mod:`zlib`)."""
from __future__ import annotations

import gzip
import importlib
import io
import random
import zlib

import pytest

from layerlab.errors import LayerlabError

isal_zlib = pytest.importorskip("isal.isal_zlib")
C = importlib.import_module("layerlab.contents.compression")


def test_isal_is_the_gzip_decoder_when_installed():
    assert C._inflate is isal_zlib


def _decode(data: bytes, inflate, monkeypatch):
    monkeypatch.setattr(C, "_inflate", inflate)
    try:
        s = C.DecodedStream(io.BytesIO(data), label="t")
        out = []
        while chunk := s.read(65536):
            out.append(chunk)
        s.drain()
        return "ok", b"".join(out), s.sha256, s.compressed_bytes, tuple(s.notes)
    except LayerlabError as e:
        return "error", type(e).__name__


def _streams(n: int):
    rnd = random.Random(15)
    for i in range(n):
        payload = rnd.randbytes(rnd.randint(0, 3000)) + b"a" * rnd.randint(0, 150_000)
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb", filename="layer.tar" if i % 2 else "", mtime=0) as g:
            g.write(payload)
        data = buf.getvalue()
        if i % 5 == 0:
            data += gzip.compress(b"second member" * rnd.randint(0, 100))
        kind = i % 4
        if kind == 1:
            data = data[:rnd.randint(1, len(data))]
        elif kind == 2:
            b = bytearray(data)
            b[rnd.randrange(len(b))] ^= 1 << rnd.randrange(8)
            data = bytes(b)
        elif kind == 3:
            data += b"\0" * rnd.randint(1, 1024) if i % 8 == 3 else rnd.randbytes(rnd.randint(1, 64))
        yield data


def test_isal_and_zlib_agree_on_intact_and_damaged_streams(monkeypatch):
    outcomes = set()
    for data in _streams(400):
        want = _decode(data, zlib, monkeypatch)
        got = _decode(data, isal_zlib, monkeypatch)
        assert got == want
        outcomes.add(want[0])
    assert outcomes == {"ok", "error"}   # both kinds of verdict were compared


def test_isal_and_zlib_agree_on_the_real_images_gzip_layers(real_images, monkeypatch):
    """Every gzip layer of ``../shared/data/real-images`` (docker, kaniko, OCI, estargz: other
    people's writers): the same bytes and diff_id from both decoders, and that diff_id is the
    one the image's config names."""
    import layerlab as ll

    seen = 0
    for tar in sorted(real_images.glob("*.tar")):
        for img in ll.load_many(str(tar)):   # the archive's format detected, as `layerlab` does
            if img.blobs is None:
                continue
            diff_ids = {l.position: l.diff_id for l in img.layer_list}
            for positions, _media_type, blob in img.blobs.iter_blobs():
                data = blob.read()
                if data[:2] != b"\x1f\x8b":
                    continue
                want = _decode(data, zlib, monkeypatch)
                got = _decode(data, isal_zlib, monkeypatch)
                assert got == want, f"{tar.name}: layer {positions}"
                assert got[0] == "ok" and got[2] == diff_ids[positions[0]], f"{tar.name}: layer {positions}"
                seen += 1
    assert seen >= 10, f"only {seen} gzip layers were compared"
