"""verify=False scans of local files are cached under the file's identity,
never under the diff_id they only claim."""
from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile

import pytest

import layerlab as ll
from layerlab.contents import rangescan

from _contents_helpers import d, f, layer_tar, sha256


def _archive(path, layer: bytes, diff_id: str):
    config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]},
              "history": [{"created_by": "ADD x /"}]}
    cfg = json.dumps(config).encode()
    cfg_name = hashlib.sha256(cfg).hexdigest() + ".json"
    manifest = json.dumps([{"Config": cfg_name, "RepoTags": ["t/local:1"], "Layers": ["l/layer.tar"]}]).encode()
    with tarfile.open(path, "w") as tf:
        for name, data in ((cfg_name, cfg), ("l/layer.tar", layer), ("manifest.json", manifest)):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return path


def _two_layer_archive(path, l0: bytes, l1: bytes, tag: str):
    config = {"architecture": "amd64", "os": "linux",
              "rootfs": {"type": "layers", "diff_ids": [sha256(l0), sha256(l1)]},
              "history": [{"created_by": "ADD a /"}, {"created_by": "RUN change a"}]}
    cfg = json.dumps(config).encode()
    cfg_name = hashlib.sha256(cfg).hexdigest() + ".json"
    manifest = json.dumps([{"Config": cfg_name, "RepoTags": [tag], "Layers": ["0/layer.tar", "1/layer.tar"]}])
    with tarfile.open(path, "w") as tf:
        for name, data in ((cfg_name, cfg), ("0/layer.tar", l0), ("1/layer.tar", l1),
                           ("manifest.json", manifest.encode())):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return path


@pytest.fixture
def walks(monkeypatch):
    calls = []
    real = rangescan.walk

    def spy(job, *a, **k):
        calls.append(job.label)
        return real(job, *a, **k)

    monkeypatch.setattr(rangescan, "walk", spy)
    return calls


def _files(path, cache, verify):
    img = ll.load(f"docker-archive:{path}", cache_dir=cache, progress=False)
    return img, img.files(cache_dir=cache, progress=False, verify=verify)


def test_unverified_scans_are_reused_only_unverified(tmp_path, walks):
    layer = layer_tar([d("etc/"), f("etc/a", b"hello"), f("b", b"x" * 3000)])
    path = _archive(tmp_path / "img.tar", layer, sha256(layer))
    cache = tmp_path / "cache"
    _img, first = _files(path, cache, verify=False)
    assert len(walks) == 1
    local = list((cache / "files-v1" / "local").rglob("*.parquet"))
    assert len(local) == 1
    assert not [p for p in (cache / "files-v1").rglob("*.parquet") if "local" not in p.parts]
    _img, again = _files(path, cache, verify=False)
    assert len(walks) == 1  # served from the local entry
    assert again.equals(first)
    # a verified request does not trust it: it reads (and verifies) the layer, then files it by diff_id
    _img, verified = _files(path, cache, verify=True)
    assert len(walks) == 2
    assert verified.equals(first)
    assert [p for p in (cache / "files-v1").rglob("*.parquet") if "local" not in p.parts]


def test_a_changed_file_is_read_again(tmp_path, walks):
    layer = layer_tar([f("a", b"hello")])
    path = _archive(tmp_path / "img.tar", layer, sha256(layer))
    cache = tmp_path / "cache"
    _files(path, cache, verify=False)
    st = os.stat(path)
    data = path.read_bytes()
    at = data.index(b"hello")
    path.write_bytes(data[:at] + b"HELLO" + data[at + 5:])   # same size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))      # same mtime: only ctime (and content) moved
    _img, files = _files(path, cache, verify=False)
    assert len(walks) == 2
    import xxhash

    assert files.loc[files["path"] == "a", "hash"].item() == "xxh128:" + xxhash.xxh3_128(b"HELLO").hexdigest()


def test_a_forged_layer_never_reaches_the_diff_id_entry(tmp_path, walks):
    genuine = layer_tar([f("a", b"genuine")])
    forged = layer_tar([f("a", b"FORGED!")])
    cache = tmp_path / "cache"
    bad = _archive(tmp_path / "bad.tar", forged, sha256(genuine))  # claims the genuine layer's diff_id
    _img, files = _files(bad, cache, verify=False)
    import xxhash

    assert files["hash"].iloc[0] == "xxh128:" + xxhash.xxh3_128(b"FORGED!").hexdigest()
    with pytest.raises(ll.DigestMismatchError):  # the local entry does not serve a verified request
        _files(bad, cache, verify=True)
    good = _archive(tmp_path / "good.tar", genuine, sha256(genuine))
    for verify in (False, True):  # neither mode of the genuine image sees the forged table
        _img, files = _files(good, cache, verify=verify)
        assert files["hash"].iloc[0] == "xxh128:" + xxhash.xxh3_128(b"genuine").hexdigest()


def test_unverified_results_are_cached_under_local_keys(tmp_path, monkeypatch):
    from layerlab.contents import figures

    l0 = layer_tar([d("etc/"), f("etc/a", b"one" * 100), f("etc/b", b"b")])
    l1 = layer_tar([f("etc/a", b"two" * 200)])
    path = _two_layer_archive(tmp_path / "two.tar", l0, l1, "t/two:1")
    cache = tmp_path / "cache"
    computed = []
    real = figures.compute
    monkeypatch.setattr(figures, "compute", lambda *a, **k: computed.append(1) or real(*a, **k))

    def run(verify):
        img = ll.load(f"docker-archive:{path}", cache_dir=cache, progress=False)
        return ll.efficiency(img, cache_dir=cache, progress=False, verify=verify)

    first = run(False)
    assert len(computed) == 1
    entries = list((cache / "results-v1").rglob("*.parquet"))
    assert len(entries) == 1
    meta = __import__("pyarrow.parquet", fromlist=["x"]).read_schema(entries[0]).metadata
    assert b"local:" in b"".join(meta.values()) and sha256(l0).encode() not in b"".join(meta.values())
    again = run(False)
    assert len(computed) == 1  # read back
    assert (again.score, again.inefficient_bytes) == (first.score, first.inefficient_bytes)
    assert first.inefficient_bytes == 300 + 600  # dive's rule: every copy of etc/a, the kept one included
    verified = run(True)  # a verified request computes (and files under the diff_ids) for itself
    assert len(computed) == 2
    assert (verified.score, verified.inefficient_bytes) == (first.score, first.inefficient_bytes)


def test_results_computed_while_hashing_equal_the_ordinary_ones(tmp_path, monkeypatch):
    """A verified byte-range scan stacks the layers while the sha256 runs; what efficiency(), waste()
    and filesystem() then report equals what they compute with that shortcut turned off."""
    from layerlab.contents import figures, scan

    l0 = layer_tar([d("etc/"), f("etc/a", b"one" * 100), f("etc/b", b"b"), d("opt/"), f("opt/x", b"x" * 50)])
    l1 = layer_tar([f("etc/a", b"two" * 200), f("opt/.wh.x", b""), f("etc/c", b"c" * 7)])
    path = _two_layer_archive(tmp_path / "early.tar", l0, l1, "t/early:1")
    computed = []
    real = figures.compute
    monkeypatch.setattr(figures, "compute", lambda *a, **k: computed.append(1) or real(*a, **k))

    def analyse(cache):
        img = ll.load(f"docker-archive:{path}", cache_dir=cache, progress=False)
        files = img.files(cache_dir=cache, progress=False)
        early = img._memo.early is not None  # left by the scan for efficiency() to take
        eff = ll.efficiency(img, cache_dir=cache, progress=False)
        w = ll.waste(img, cache_dir=cache, progress=False)
        fs = img.filesystem(cache_dir=cache, progress=False)
        return early, files, eff, w, fs

    early, files, eff, w, fs = analyse(tmp_path / "c1")
    assert early and len(computed) == 1  # computed once, during the scan, and taken by efficiency()
    monkeypatch.setattr(scan, "_early_results", lambda *a, **k: None)
    early2, files2, eff2, w2, fs2 = analyse(tmp_path / "c2")
    assert not early2 and len(computed) == 2
    assert files.equals(files2)
    assert (eff.score, eff.size_bytes, eff.inefficient_bytes, eff.reclaimable_bytes) == (
        eff2.score, eff2.size_bytes, eff2.inefficient_bytes, eff2.reclaimable_bytes)
    assert w.equals(w2) and fs.equals(fs2)
    # by hand: dive counts every copy of etc/a (300 + 600) and the deleted opt/x (50; its whiteout 0);
    # reclaimable is what no final path reaches: the old etc/a and opt/x
    assert eff.inefficient_bytes == 300 + 600 + 50 and eff.reclaimable_bytes == 300 + 50
