"""Hostile and broken archives, layouts and manifests: always a LayerlabError
naming the file and the problem, never a raw exception, never a write.

Every bad input is generated here in tmp_path from a good one.
"""
from __future__ import annotations

import gzip
import json
import random
import tarfile
from pathlib import Path

import pytest

import layerlab as ll
from layerlab.errors import DigestMismatchError, FormatError, LayerlabError, SourceError
from layerlab.sources import _media as _blobs

from _archive_helpers import add_bytes, config_for, layer_tar, sha, tar_dir, write_legacy_archive, write_oci_layout


def _listing(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*")}


@pytest.fixture
def good_archive(tmp_path) -> Path:
    p = tmp_path / "good.tar"
    write_legacy_archive(p, [layer_tar({"etc/": b"", "etc/a": b"a" * 3000}), layer_tar({"b": b"b" * 700})])
    assert len(ll.load(p).layer_list) == 2  # the unbroken original loads
    return p


def _load_error(source) -> LayerlabError:
    with pytest.raises(LayerlabError) as ei:
        ll.load_many(source)
    return ei.value


def _data_end(path: Path) -> int:
    """Where the last member's data ends (python tarfile, by hand); zeros follow."""
    with tarfile.open(path) as tf:
        return max(m.offset_data + m.size for m in tf.getmembers())


@pytest.mark.parametrize("cut", [100, 512, 700, 1536, 3000, 5000, 9000, "end-1", "end-600", "padding"])
def test_truncated_docker_archive(good_archive, tmp_path, cut):
    data = good_archive.read_bytes()
    end = _data_end(good_archive)
    bad = tmp_path / "cut.tar"
    if cut == "padding":
        # only end-of-archive zeros are lost: GNU tar and Docker accept this too, as do we
        bad.write_bytes(data[: end + (-end % 512)])
        assert len(ll.load(bad).layer_list) == 2
        return
    n = {"end-1": end - 1, "end-600": end - 600}.get(cut, cut)
    assert n < end
    bad.write_bytes(data[:n])
    err = _load_error(f"docker-archive:{bad}")
    assert isinstance(err, FormatError)
    assert str(bad) in str(err)
    assert any(w in str(err) for w in ("truncated", "corrupt", "missing", "not a readable tar", "no manifest.json"))


def test_truncation_sweep_never_crashes(good_archive, tmp_path):
    """Cut the archive every 128 bytes: a LayerlabError naming it for every cut
    into the members, a good load for cuts into the trailing zeros."""
    data = good_archive.read_bytes()
    end = _data_end(good_archive)
    end += -end % 512  # the last member's block padding belongs to it
    bad = tmp_path / "sweep.tar"
    for cut in range(0, len(data), 128):
        bad.write_bytes(data[:cut])
        if cut < end:
            with pytest.raises(LayerlabError) as ei:
                ll.load(f"docker-archive:{bad}")
            assert str(bad) in str(ei.value)
        else:
            assert len(ll.load(f"docker-archive:{bad}").layer_list) == 2


def test_random_corruption_never_crashes(good_archive, tmp_path):
    data = bytearray(good_archive.read_bytes())
    rng = random.Random(1234)
    bad = tmp_path / "flip.tar"
    for _ in range(150):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        bad.write_bytes(bytes(mutated))
        try:
            ll.load(f"docker-archive:{bad}")
        except LayerlabError:
            pass


def test_truncated_oci_archive(tmp_path):
    write_oci_layout(tmp_path / "l", [(layer_tar({"a": b"x" * 5000}), _blobs.OCI_LAYER)], ref_name="t")
    tar_dir(tmp_path / "l", tmp_path / "o.tar")
    data = (tmp_path / "o.tar").read_bytes()
    (tmp_path / "o.tar").write_bytes(data[: len(data) // 2])
    err = _load_error(f"oci-archive:{tmp_path / 'o.tar'}")
    assert str(tmp_path / "o.tar") in str(err)


def test_non_json_config(tmp_path):
    p = tmp_path / "a.tar"
    write_legacy_archive(p, [layer_tar({"a": b"1"})], config_bytes=b"{this is not json")
    err = _load_error(p)
    assert isinstance(err, FormatError)
    assert "not valid JSON" in str(err) and ".json" in str(err) and str(p) in str(err)


def test_config_not_an_image_config(tmp_path):
    p = tmp_path / "a.tar"
    write_legacy_archive(p, [layer_tar({"a": b"1"})], config_bytes=b'["a list"]')
    assert "not a JSON object" in str(_load_error(p))
    write_legacy_archive(p, [layer_tar({"a": b"1"})], config_bytes=b'{"os": "linux"}')
    assert "rootfs" in str(_load_error(p))


def test_non_json_manifest_and_wrong_shapes(tmp_path):
    for content, expect in [(b"nope", "not valid JSON"), (b"{}", "non-empty list"), (b"[]", "non-empty list"),
                            (b'[{"Config": 3, "Layers": []}]', "lacks 'Config'")]:
        p = tmp_path / "m.tar"
        with tarfile.open(p, "w") as tf:
            add_bytes(tf, "manifest.json", content)
        err = _load_error(f"docker-archive:{p}")
        assert expect in str(err) and str(p) in str(err)


def test_missing_layer_blob(tmp_path):
    p = tmp_path / "a.tar"
    info = write_legacy_archive(p, [layer_tar({"a": b"1"})],
                                manifest_override=[{"Config": "x", "Layers": ["gone/layer.tar"]}])
    # point Config at the real config but keep the missing layer
    m = [{"Config": info["config_name"], "Layers": ["gone/layer.tar"]}]
    _rewrite_member(p, "manifest.json", json.dumps(m).encode())
    err = _load_error(p)
    assert "gone/layer.tar" in str(err) and "missing blob" in str(err)


def test_missing_config(tmp_path):
    p = tmp_path / "a.tar"
    write_legacy_archive(p, [layer_tar({"a": b"1"})], manifest_override=[{"Config": "nothere.json", "Layers": []}])
    err = _load_error(p)
    assert "nothere.json" in str(err) and "missing" in str(err)


def test_missing_oci_blobs(tmp_path):
    root = tmp_path / "l"
    info = write_oci_layout(root, [(layer_tar({"a": b"1"}), _blobs.OCI_LAYER_GZIP)], ref_name="t")
    layer_path = root / "blobs" / "sha256" / info["layer_descs"][0]["digest"].split(":")[1]
    layer_path.unlink()
    err = _load_error(f"oci:{root}")
    assert "missing blob" in str(err) and info["layer_descs"][0]["digest"].split(":")[1] in str(err)
    (root / "blobs" / "sha256" / info["config_digest"].split(":")[1]).unlink()
    err = _load_error(f"oci:{root}")
    assert info["config_digest"].split(":")[1] in str(err) and "missing" in str(err)


def test_unknown_media_type(tmp_path):
    root = tmp_path / "l"
    write_oci_layout(root, [(layer_tar({"a": b"1"}), "application/vnd.example.helm.chart.content.v1.tar+gzip")],
                     ref_name="t")
    err = _load_error(f"oci:{root}")
    assert isinstance(err, FormatError)
    assert "unknown layer media type 'application/vnd.example.helm.chart.content.v1.tar+gzip'" in str(err)
    assert "blobs/sha256/" in str(err) and str(root) in str(err)


def test_declared_compression_disagrees_with_bytes(tmp_path):
    """The bytes win (as for containerd and docker load), with a warning; the declared type is kept."""
    root = tmp_path / "l"
    info = write_oci_layout(root, [(layer_tar({"a": b"1"}), _blobs.OCI_LAYER_GZIP)], ref_name="t")
    man = json.loads(info["manifest"])
    man["layers"][0]["mediaType"] = _blobs.OCI_LAYER  # claims the gzip blob is a plain tar
    _replace_manifest(root, info, man)
    img = ll.load(f"oci:{root}")
    (layer,) = img.layer_list
    assert layer.media_type == _blobs.OCI_LAYER_GZIP and layer.size is None
    assert layer.annotations["layerlab.declared_media_type"] == _blobs.OCI_LAYER
    assert any("gzip-compressed" in w for w in img.warnings)


def test_compression_without_a_media_type(tmp_path):
    import bz2

    root = tmp_path / "l"
    info = write_oci_layout(root, [(layer_tar({"a": b"1"}), _blobs.OCI_LAYER_GZIP)], ref_name="t")
    d = info["layer_descs"][0]["digest"].split(":")[1]
    data = bz2.compress(layer_tar({"a": b"1"}))
    (root / "blobs" / "sha256" / d).unlink()
    (root / "blobs" / "sha256" / sha(data).split(":")[1]).write_bytes(data)
    man = json.loads(info["manifest"])
    man["layers"][0].update(digest=sha(data), size=len(data))
    _replace_manifest(root, info, man)
    err = _load_error(f"oci:{root}")
    assert "bzip2-compressed" in str(err) and sha(data).split(":")[1] in str(err)


def test_digest_mismatch_config_blob(tmp_path):
    root = tmp_path / "l"
    info = write_oci_layout(root, [(layer_tar({"a": b"1"}), _blobs.OCI_LAYER)], ref_name="t")
    cfg_path = root / "blobs" / "sha256" / info["config_digest"].split(":")[1]
    cfg = json.loads(cfg_path.read_bytes())
    cfg["author"] = "tampered"
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(DigestMismatchError) as ei:
        ll.load(f"oci:{root}")
    msg = str(ei.value)
    assert info["config_digest"] in msg and "hashes to " + sha(cfg_path.read_bytes()) in msg and str(root) in msg
    # the same layout packed as an OCI archive
    tar_dir(root, tmp_path / "o.tar")
    with pytest.raises(DigestMismatchError, match=info["config_digest"]):
        ll.load(f"oci-archive:{tmp_path / 'o.tar'}")


def test_digest_mismatch_manifest_blob(tmp_path):
    root = tmp_path / "l"
    info = write_oci_layout(root, [(layer_tar({"a": b"1"}), _blobs.OCI_LAYER)], ref_name="t")
    mpath = root / "blobs" / "sha256" / info["manifest_digest"].split(":")[1]
    mpath.write_bytes(mpath.read_bytes().replace(b'"schemaVersion": 2', b'"schemaVersion":  2'))
    with pytest.raises(DigestMismatchError, match=info["manifest_digest"]):
        ll.load(f"oci:{root}")


def test_digest_mismatch_in_docker25_style_archive(tmp_path):
    """A docker save with OCI blob paths: the config's path is its digest, so tampering shows."""
    layer = layer_tar({"a": b"1"})
    cfg = json.dumps(config_for([sha(layer)])).encode()
    cfg_d = sha(cfg)
    tampered = cfg.replace(b'"linux"', b'"LINUX"')
    p = tmp_path / "d25.tar"
    with tarfile.open(p, "w") as tf:
        add_bytes(tf, "blobs/sha256/" + sha(layer).split(":")[1], layer)
        add_bytes(tf, "blobs/sha256/" + cfg_d.split(":")[1], tampered)
        add_bytes(tf, "manifest.json", json.dumps([{"Config": "blobs/sha256/" + cfg_d.split(":")[1],
                                                    "Layers": ["blobs/sha256/" + sha(layer).split(":")[1]]}]).encode())
    with pytest.raises(DigestMismatchError) as ei:
        ll.load(p)
    assert cfg_d in str(ei.value) and str(p) in str(ei.value)


def test_layer_blob_size_mismatch(tmp_path):
    root = tmp_path / "l"
    info = write_oci_layout(root, [(layer_tar({"a": b"1"}), _blobs.OCI_LAYER)], ref_name="t")
    man = json.loads(info["manifest"])
    man["layers"][0]["size"] += 1
    _replace_manifest(root, info, man)
    err = _load_error(f"oci:{root}")
    assert "bytes but" in str(err)


@pytest.mark.parametrize("evil", ["../x", "../../etc/passwd", "/etc/passwd", "a/../../x"])
def test_manifest_json_pointing_outside(tmp_path, evil):
    p = tmp_path / "a.tar"
    info = write_legacy_archive(p, [layer_tar({"a": b"1"})])
    (tmp_path / "x").write_bytes(layer_tar({"outside": b"1"}))  # would be found if we followed it
    before = _listing(tmp_path)
    for m in ([{"Config": info["config_name"], "Layers": [evil]}], [{"Config": evil, "Layers": []}]):
        _rewrite_member(p, "manifest.json", json.dumps(m).encode())
        err = _load_error(p)
        assert isinstance(err, FormatError)
        assert evil in str(err) and ("outside the archive" in str(err)) and str(p) in str(err)
    assert _listing(tmp_path) == before  # nothing written anywhere


def test_symlink_member_pointing_outside(tmp_path):
    p = tmp_path / "a.tar"
    info = write_legacy_archive(p, [layer_tar({"a": b"1"})])
    with tarfile.open(p, "a") as tf:
        ti = tarfile.TarInfo("evil/layer.tar")
        ti.type = tarfile.SYMTYPE
        ti.linkname = "../../../../etc/hostname"
        tf.addfile(ti)
    _rewrite_member(p, "manifest.json", json.dumps([{"Config": info["config_name"], "Layers": ["evil/layer.tar"]}]).encode())
    err = _load_error(p)
    assert "outside the archive" in str(err)


def test_symlink_loop_member(tmp_path):
    p = tmp_path / "a.tar"
    info = write_legacy_archive(p, [layer_tar({"a": b"1"})])
    with tarfile.open(p, "a") as tf:
        for a, b in (("l1/layer.tar", "../l2/layer.tar"), ("l2/layer.tar", "../l1/layer.tar")):
            ti = tarfile.TarInfo(a)
            ti.type = tarfile.SYMTYPE
            ti.linkname = b
            tf.addfile(ti)
    _rewrite_member(p, "manifest.json", json.dumps([{"Config": info["config_name"], "Layers": ["l1/layer.tar"]}]).encode())
    assert "link loop" in str(_load_error(p))


def test_oci_blob_symlink_outside_layout(tmp_path):
    root = tmp_path / "l"
    info = write_oci_layout(root, [(layer_tar({"a": b"1"}), _blobs.OCI_LAYER)], ref_name="t")
    target = root / "blobs" / "sha256" / info["layer_descs"][0]["digest"].split(":")[1]
    outside = tmp_path / "outside.tar"
    outside.write_bytes(target.read_bytes())
    target.unlink()
    target.symlink_to(outside)
    err = _load_error(f"oci:{root}")
    assert "outside the directory" in str(err)


def test_layer_count_mismatch(tmp_path):
    p = tmp_path / "a.tar"
    info = write_legacy_archive(p, [layer_tar({"a": b"1"}), layer_tar({"b": b"2"})])
    _rewrite_member(p, "manifest.json", json.dumps([{"Config": info["config_name"], "Layers": info["layer_names"][:1]}]).encode())
    err = _load_error(p)
    assert "1 layers" in str(err) and "2 diff_ids" in str(err)


def test_corrupt_inner_layer_tar(tmp_path):
    good = layer_tar({"a": b"1" * 2000, "b": b"2"})
    # the header after the 2000-byte file (at 512 + 2048) replaced by garbage
    broken = good[:2560] + b"garbage-header" + b"\x01" * 498 + good[3072:]
    p = tmp_path / "a.tar"
    write_legacy_archive(p, [broken])
    err = _load_error(p)
    assert "layer" in str(err) and ("corrupt" in str(err) or "truncated" in str(err))


def test_not_a_tar_and_empty_and_gzipped(tmp_path):
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"hello, not a tar at all" * 100)
    assert str(junk) in str(_load_error(f"docker-archive:{junk}"))
    empty = tmp_path / "empty.tar"
    empty.write_bytes(b"")
    assert str(empty) in str(_load_error(f"docker-archive:{empty}"))
    good = tmp_path / "g.tar"
    write_legacy_archive(good, [layer_tar({"a": b"1"})])
    gz = tmp_path / "g.tar.gz"
    gz.write_bytes(gzip.compress(good.read_bytes()))
    err = _load_error(f"docker-archive:{gz}")
    assert "compressed" in str(err) and str(gz) in str(err)
    assert isinstance(_load_error(f"docker-archive:{tmp_path / 'absent.tar'}"), SourceError)


def test_oci_index_garbage(tmp_path):
    root = tmp_path / "l"
    write_oci_layout(root, [(layer_tar({"a": b"1"}), _blobs.OCI_LAYER)], ref_name="t")
    for content, expect in [("{oops", "not valid JSON"), ("[]", "not a JSON object"),
                            ('{"manifests": {"a": 1}}', "not a list"),
                            ('{"manifests": [{"digest": "md5:abc"}]}', "not a sha256 digest"),
                            ('{"manifests": [{"digest": "sha256:' + "0" * 64 + '"}]}', "missing")]:
        (root / "index.json").write_text(content)
        err = _load_error(f"oci:{root}")
        assert expect in str(err) and str(root) in str(err), (content, str(err))


# -- helpers -------------------------------------------------------------------
def _rewrite_member(path: Path, name: str, data: bytes) -> None:
    """Rewrite a tar with one member replaced (python tarfile, by hand)."""
    with tarfile.open(path) as tf:
        members = [(m, tf.extractfile(m).read() if m.isfile() else None) for m in tf.getmembers()]
    with tarfile.open(path, "w") as tf:
        for m, content in members:
            if m.name == name:
                m.size = len(data)
                content = data
            if content is None:
                tf.addfile(m)
            else:
                import io

                tf.addfile(m, io.BytesIO(content))


def _replace_manifest(root: Path, info: dict, man: dict) -> None:
    mb = json.dumps(man).encode()
    (root / "blobs" / "sha256" / sha(mb).split(":")[1]).write_bytes(mb)
    index = json.loads((root / "index.json").read_text())
    index["manifests"][0]["digest"] = sha(mb)
    index["manifests"][0]["size"] = len(mb)
    (root / "index.json").write_text(json.dumps(index))


# -- every JSON value replaced by every wrong type -------------------------------
WRONG = [None, 7, -1, True, "x", "../x", [], {}, [None], {"a": None}]


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


def _replaced(doc, path, value):
    doc = json.loads(json.dumps(doc))
    if not path:
        return value
    cur = doc
    for k in path[:-1]:
        cur = cur[k]
    cur[path[-1]] = value
    return doc


def _must_not_crash(source):
    try:
        ll.load(source)
    except LayerlabError:
        pass


def test_docker_archive_json_type_confusion(tmp_path):
    good = tmp_path / "good.tar"
    info = write_legacy_archive(good, [layer_tar({"a": b"1"})], tags=("t:1",))
    manifest = [{"Config": info["config_name"], "RepoTags": ["t:1"], "Layers": info["layer_names"],
                 "LayerSources": {info["diff_ids"][0]: {"mediaType": _blobs.DOCKER_LAYER, "size": 1, "digest": info["diff_ids"][0]}}}]
    config = json.loads(info["config"])
    bad = tmp_path / "bad.tar"
    n = 0
    for path in _paths(manifest):
        for value in WRONG:
            data = good.read_bytes()
            bad.write_bytes(data)
            _rewrite_member(bad, "manifest.json", json.dumps(_replaced(manifest, path, value)).encode())
            _must_not_crash(f"docker-archive:{bad}")
            n += 1
    for path in _paths(config):
        for value in WRONG:
            write_legacy_archive(bad, [layer_tar({"a": b"1"})],
                                 config_bytes=json.dumps(_replaced(config, path, value)).encode())
            _must_not_crash(f"docker-archive:{bad}")
            n += 1
    assert n > 200


def test_oci_json_type_confusion(tmp_path):
    """Mutated index, manifest and config, re-addressed so that digests still match."""
    root = tmp_path / "l"
    info = write_oci_layout(root, [(layer_tar({"a": b"1"}), _blobs.OCI_LAYER)], ref_name="t")
    index = json.loads((root / "index.json").read_text())
    manifest = json.loads(info["manifest"])
    config = json.loads(info["config"])
    blobs = root / "blobs" / "sha256"

    def put(doc) -> tuple[str, int]:
        b = json.dumps(doc).encode()
        (blobs / sha(b).split(":")[1]).write_bytes(b)
        return sha(b), len(b)

    def write(idx, man, cfg):
        if isinstance(man, dict) and isinstance(man.get("config"), dict) and cfg is not None:
            man = dict(man, config=dict(man["config"], digest=put(cfg)[0]))
        if isinstance(idx, dict) and isinstance(idx.get("manifests"), list) and idx["manifests"] \
                and isinstance(idx["manifests"][0], dict):
            d, _n = put(man)
            idx = dict(idx, manifests=[dict(idx["manifests"][0], digest=d)] + idx["manifests"][1:])
        (root / "index.json").write_text(json.dumps(idx))

    n = 0
    for which, doc in (("index", index), ("manifest", manifest), ("config", config)):
        for path in _paths(doc):
            for value in WRONG:
                docs = {"index": index, "manifest": manifest, "config": config}
                docs[which] = _replaced(doc, path, value)
                write(docs["index"], docs["manifest"], docs["config"])
                _must_not_crash(f"oci:{root}")
                n += 1
    assert n > 300


def test_deeply_nested_json(tmp_path):
    p = tmp_path / "deep.tar"
    with tarfile.open(p, "w") as tf:
        add_bytes(tf, "manifest.json", b"[" * 100000 + b"]" * 100000)
    err = _load_error(f"docker-archive:{p}")
    assert "nests too deeply" in str(err) and str(p) in str(err)


def test_manifest_source_json_type_confusion(tmp_path):
    layer = layer_tar({"a": b"1"})
    config = config_for([sha(layer)])
    cfg_b = json.dumps(config).encode()
    manifest = {"schemaVersion": 2, "mediaType": _blobs.DOCKER_MANIFEST,
                "config": {"mediaType": _blobs.DOCKER_CONFIG, "digest": sha(cfg_b), "size": len(cfg_b)},
                "layers": [{"mediaType": _blobs.DOCKER_LAYER_GZIP, "digest": sha(gzip.compress(layer)), "size": 10}]}
    m, c = tmp_path / "m.json", tmp_path / "c.json"
    n = 0
    for path in _paths(manifest):
        for value in WRONG:
            m.write_text(json.dumps(_replaced(manifest, path, value)))
            c.write_bytes(cfg_b)
            _must_not_crash(f"manifest:{m}+{c}")
            n += 1
    for path in _paths(config):
        for value in WRONG:
            cb = json.dumps(_replaced(config, path, value)).encode()
            c.write_bytes(cb)
            m.write_text(json.dumps(_replaced(manifest, ("config", "digest"), sha(cb))))
            _must_not_crash(f"manifest:{m}+{c}")
            n += 1
    v1 = {"schemaVersion": 1, "name": "x", "tag": "1", "architecture": "amd64",
          "fsLayers": [{"blobSum": "sha256:" + "1" * 64}],
          "history": [{"v1Compatibility": json.dumps({"id": "a", "created": "2020-01-01T00:00:00Z",
                                                      "container_config": {"Cmd": ["/bin/sh", "-c", "x"]}})}]}
    for path in _paths(v1):
        for value in WRONG:
            m.write_text(json.dumps(_replaced(v1, path, value)))
            _must_not_crash(f"manifest:{m}")
            n += 1
    assert n > 200
