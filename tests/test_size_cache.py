"""Layer sizes remembered after a verified scan (layerlab.contents.sizes):
a warm load of a docker-archive takes them instead of walking the tar headers,
with the same value; anything unverified or of another length is walked."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

import layerlab as ll
from layerlab.sources import _sizing as _blobs


def _layer() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in [("etc/a", b"x" * 3000), ("etc/b", b"hello\n")]:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
        ti = tarfile.TarInfo("etc/link")
        ti.type, ti.linkname = tarfile.SYMTYPE, "a-target-of-18-bytes"[:18]
        tf.addfile(ti)
    return buf.getvalue()


def _archive(path, layer: bytes, diff_id: str) -> str:
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                         "history": [{"created_by": "ADD x /"}]}).encode()
    cfg_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": cfg_name, "RepoTags": ["t/x:1"], "Layers": ["l0/layer.tar"]}]).encode()
    with tarfile.open(path, "w") as tf:
        for name, data in [("manifest.json", manifest), (cfg_name, config), ("l0/layer.tar", layer)]:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return str(path)


def _expected(layer: bytes) -> int:
    # independent reading: regular files' sizes plus symlink target lengths (the engine's rule)
    with tarfile.open(fileobj=io.BytesIO(layer)) as tf:
        return sum(m.size if m.isfile() else len(m.linkname.encode()) if m.issym() else 0 for m in tf)


@pytest.fixture
def walks(monkeypatch):
    calls = []
    real = _blobs._size_and_index  # the load-time header walk

    def spy(blob, where, *rest):
        calls.append(blob.length)
        return real(blob, where, *rest)

    monkeypatch.setattr(_blobs, "_size_and_index", spy)
    return calls


def test_warm_load_takes_the_verified_size(tmp_path, walks):
    layer = _layer()
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    path = _archive(tmp_path / "img.tar", layer, diff_id)
    cache = tmp_path / "cache"
    img = ll.load(f"docker-archive:{path}", cache_dir=cache, progress=False)
    assert img.layer_list[0].size == _expected(layer) == 3000 + 6 + 18
    assert len(walks) == 1
    img.files(cache_dir=cache, progress=False)
    assert list((cache / "sizes-v1").rglob("*.json"))
    again = ll.load(f"docker-archive:{path}", cache_dir=cache, progress=False)
    assert again.layer_list[0].size == _expected(layer)
    assert len(walks) == 1  # no second header walk
    # cache_dir=False (or another cache) walks again
    ll.load(f"docker-archive:{path}", cache_dir=False, progress=False)
    ll.load(f"docker-archive:{path}", cache_dir=tmp_path / "other", progress=False)
    assert len(walks) == 3


def test_other_length_or_unverified_content_is_walked(tmp_path, walks):
    layer = _layer()
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    cache = tmp_path / "cache"
    good = _archive(tmp_path / "good.tar", layer, diff_id)
    ll.load(f"docker-archive:{good}", cache_dir=cache, progress=False).files(cache_dir=cache, progress=False)
    # a longer layer claiming the same diff_id (trailing zero blocks): walked, not taken from the cache
    longer = _archive(tmp_path / "longer.tar", layer + bytes(1024), diff_id)
    n = len(walks)
    ll.load(f"docker-archive:{longer}", cache_dir=cache, progress=False)
    assert len(walks) == n + 1
    # a layer whose bytes do not match its diff_id never stores a size, even with verify=False
    other = _layer().replace(b"hello\n", b"HELLO\n")
    wrong_id = "sha256:" + "0" * 64
    bad = _archive(tmp_path / "bad.tar", other, wrong_id)
    img = ll.load(f"docker-archive:{bad}", cache_dir=cache, progress=False)
    img.files(cache_dir=cache, progress=False, verify=False)
    assert not (cache / "sizes-v1" / "00").exists()
