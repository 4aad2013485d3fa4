"""manifest: — registry manifests + config blobs (schema 2, OCI, schema 1).

Expected values: the JSON read by hand, ``skopeo manifest-digest`` and
``skopeo inspect --raw`` / ``--config --raw``.
"""
from __future__ import annotations

import hashlib
import json
import subprocess

import pytest

import layerlab as ll
from layerlab.errors import DigestMismatchError, FormatError, SourceError


def _skopeo(*args: str) -> bytes:
    r = subprocess.run(["skopeo", *args], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"skopeo {' '.join(args)} failed: {r.stderr.decode()[:200]}")
    return r.stdout


def test_schema2_manifest_and_config(real_images):
    m = real_images / "containers-image-schema2.json"
    c = real_images / "containers-image-schema2-config.json"
    img = ll.load(f"manifest:{m}+{c}")
    man = json.loads(m.read_bytes())
    cfg = json.loads(c.read_bytes())
    assert img.source == "manifest"
    assert img.id == man["config"]["digest"] == "sha256:" + hashlib.sha256(c.read_bytes()).hexdigest()
    assert img.manifest_digest == _skopeo("manifest-digest", str(m)).decode().strip()
    assert [l.digest for l in img.layer_list] == [l["digest"] for l in man["layers"]]
    assert [l.compressed_size for l in img.layer_list] == [l["size"] for l in man["layers"]]
    assert img.compressed_size == sum(l["size"] for l in man["layers"])
    assert [l.diff_id for l in img.layer_list] == cfg["rootfs"]["diff_ids"]
    assert all(l.size is None for l in img.layer_list) and img.size is None
    makers = [h.get("created_by") for h in cfg["history"] if not h.get("empty_layer")]
    assert img.layers()["created_by"].tolist() == makers
    assert len(img.history()) == len(cfg["history"])
    assert img.platform == f"{cfg['os']}/{cfg['architecture']}"


def test_config_digest_mismatch_says_so(real_images, tmp_path):
    m = real_images / "containers-image-schema2.json"
    c = tmp_path / "config.json"
    data = json.loads((real_images / "containers-image-schema2-config.json").read_bytes())
    data["author"] = "someone else"
    c.write_text(json.dumps(data))
    with pytest.raises(DigestMismatchError) as ei:
        ll.load(f"manifest:{m}+{c}")
    msg = str(ei.value)
    assert str(c) in msg and "sha256:9ca4bda0a6b3727a6ffcc43e981cad0f24e2ec79d338f6ba325b4dfd0756fb8f" in msg
    assert "hashes to sha256:" + hashlib.sha256(c.read_bytes()).hexdigest() in msg


def test_schema1_signed_manifest(real_images):
    m = real_images / "containers-image-schema1.json"
    doc = json.loads(m.read_bytes())
    img = ll.load(f"manifest:{m}")
    assert img.manifest_digest == _skopeo("manifest-digest", str(m)).decode().strip()
    v1 = [json.loads(h["v1Compatibility"]) for h in reversed(doc["history"])]
    kept = [f["blobSum"] for f, h in zip(reversed(doc["fsLayers"]), v1) if not h.get("throwaway")]
    assert [l.digest for l in img.layer_list] == kept
    assert all(l.diff_id is None and l.size is None for l in img.layer_list)
    assert img.reference == f"{doc['name']}:{doc['tag']}"
    hist = img.history()
    assert len(hist) == len(doc["history"])
    assert hist["step_id"].tolist() == [h["id"] for h in v1]
    assert hist["created_by"].tolist() == [" ".join(h.get("container_config", {}).get("Cmd") or []) for h in v1]
    assert img.platform == "linux/amd64"


def test_schema1_throwaway_steps(tmp_path):
    empty = "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8c7c22955b46d4"
    real = "sha256:" + "1" * 64
    hist = [
        {"v1Compatibility": json.dumps({"id": "c", "throwaway": True, "container_config": {"Cmd": ["/bin/sh", "-c", "#(nop) CMD [\"sh\"]"]}})},
        {"v1Compatibility": json.dumps({"id": "b", "container_config": {"Cmd": ["/bin/sh", "-c", "echo hi > /x"]}})},
        {"v1Compatibility": json.dumps({"id": "a", "throwaway": True, "container_config": {"Cmd": ["/bin/sh", "-c", "#(nop) ENV A=1"]}})},
    ]
    doc = {"schemaVersion": 1, "name": "x", "tag": "1", "architecture": "arm64",
           "fsLayers": [{"blobSum": empty}, {"blobSum": real}, {"blobSum": empty}], "history": hist}
    p = tmp_path / "m.json"
    p.write_text(json.dumps(doc))
    img = ll.load(f"manifest:{p}")
    assert [l.digest for l in img.layer_list] == [real]
    h = img.history()
    assert h["empty_layer"].tolist() == [True, False, True]
    assert h["layer_position"].tolist()[1] == 0
    assert h["pairing"].tolist() == ["no_layer", "config", "no_layer"]


def test_manifest_roundtrip_through_skopeo(real_images, tmp_path):
    """manifest+config as skopeo reads them from an archive give the archive's facts."""
    for name in ("dive-test-oci-gzip-image.tar", "dive-test-oci-zstd-image.tar"):
        src = f"oci-archive:{real_images / name}"
        m, c = tmp_path / f"{name}.m.json", tmp_path / f"{name}.c.json"
        m.write_bytes(_skopeo("inspect", "--raw", src))
        c.write_bytes(_skopeo("inspect", "--config", "--raw", src))
        a = ll.load(src)
        b = ll.load(f"manifest:{m}+{c}")
        assert (b.id, b.manifest_digest) == (a.id, a.manifest_digest)
        assert [(l.diff_id, l.digest, l.compressed_size, l.media_type) for l in b.layer_list] == \
            [(l.diff_id, l.digest, l.compressed_size, l.media_type) for l in a.layer_list]


def test_manifest_errors(real_images, tmp_path):
    m = real_images / "containers-image-schema2.json"
    with pytest.raises(SourceError, match="needs its config blob"):
        ll.load(f"manifest:{m}")
    with pytest.raises(SourceError, match="no such file"):
        ll.load(f"manifest:{tmp_path / 'nope.json'}+{tmp_path / 'nope2.json'}")
    idx = tmp_path / "index.json"
    idx.write_text(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                               "manifests": [{"digest": "sha256:" + "2" * 64, "platform": {"os": "linux", "architecture": "arm64"}}]}))
    with pytest.raises(SourceError, match="linux/arm64"):
        ll.load(f"manifest:{idx}")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(FormatError, match="bad.json.*not valid JSON"):
        ll.load(f"manifest:{bad}")
    unk = tmp_path / "unk.json"
    doc = json.loads(m.read_bytes())
    doc["layers"][1]["mediaType"] = "application/vnd.example.weird"
    unk.write_text(json.dumps(doc))
    with pytest.raises(FormatError, match="unknown layer media type 'application/vnd.example.weird'"):
        ll.load(f"manifest:{unk}+{real_images / 'containers-image-schema2-config.json'}")


def test_manifest_named_by_repository_else_file(tmp_path, real_images):
    """A manifest whose annotations name its repository is called so; one saved
    as plain ``manifest.json`` (skopeo's ``dir:`` layout) by its folder; any
    other by its file name less ``.json``."""
    d = tmp_path / "app1"
    _skopeo("copy", "-q", f"docker-archive:{real_images / 'dive-test-docker-image.tar'}", f"dir:{d}")
    man = json.loads((d / "manifest.json").read_bytes())
    cfg = d / man["config"]["digest"].split(":")[1]
    assert ll.load(f"manifest:{d / 'manifest.json'}+{cfg}").reference == "app1"
    named = dict(man, annotations={"org.opencontainers.image.ref.name": "registry.example.com/team/web:2.0"})
    (tmp_path / "web-manifest.json").write_text(json.dumps(named))
    assert ll.load(f"manifest:{tmp_path / 'web-manifest.json'}+{cfg}").reference == "registry.example.com/team/web:2.0"
    (tmp_path / "web-manifest.json").write_text(json.dumps(man))
    assert ll.load(f"manifest:{tmp_path / 'web-manifest.json'}+{cfg}").reference == "web-manifest"
