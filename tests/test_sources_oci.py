"""oci: and oci-archive: — the real dive test archives, skopeo-made layouts, hand-made layouts.

Expected values come from python tarfile/json by hand, GNU tar and skopeo.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

import layerlab as ll
from layerlab.errors import FormatError, SourceError
from layerlab.sources import _media, _platform

from _archive_helpers import gnu_tar_sizes, layer_tar, sha, tar_dir, write_oci_layout

OCI_ARCHIVES = {
    "dive-test-oci-uncompressed-image.tar": "application/vnd.oci.image.layer.v1.tar",
    "dive-test-oci-gzip-image.tar": "application/vnd.oci.image.layer.v1.tar+gzip",
    "dive-test-oci-zstd-image.tar": "application/vnd.oci.image.layer.v1.tar+zstd",
    "dive-test-oci-estargz-image.tar": "application/vnd.oci.image.layer.v1.tar+gzip",
}


def _skopeo(*args: str) -> bytes:
    r = subprocess.run(["skopeo", *args], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"skopeo {' '.join(args)} failed: {r.stderr.decode()[:200]}")
    return r.stdout


def _hand(path: Path):
    with tarfile.open(path) as tf:
        index = json.load(tf.extractfile("index.json"))
        mdesc = index["manifests"][0]
        mbytes = tf.extractfile("blobs/sha256/" + mdesc["digest"].split(":")[1]).read()
        manifest = json.loads(mbytes)
        cbytes = tf.extractfile("blobs/sha256/" + manifest["config"]["digest"].split(":")[1]).read()
        blobs = {m.name: m for m in tf.getmembers()}
        layer_bytes = [tf.extractfile("blobs/sha256/" + l["digest"].split(":")[1]).read() for l in manifest["layers"]]
    return index, mdesc, mbytes, manifest, cbytes, json.loads(cbytes), blobs, layer_bytes


@pytest.mark.parametrize("name", sorted(OCI_ARCHIVES))
def test_real_oci_archives(real_images, name):
    path = real_images / name
    index, mdesc, mbytes, manifest, cbytes, cfg, blobs, layer_bytes = _hand(path)
    img = ll.load(f"oci-archive:{path}")
    assert ll.load(path).id == img.id  # detected without the prefix
    assert img.source == "oci-archive"
    assert img.manifest_digest == mdesc["digest"] == "sha256:" + hashlib.sha256(mbytes).hexdigest()
    assert img.id == manifest["config"]["digest"] == "sha256:" + hashlib.sha256(cbytes).hexdigest()
    assert img.platform == f"{cfg['os']}/{cfg['architecture']}"
    assert [l.diff_id for l in img.layer_list] == cfg["rootfs"]["diff_ids"]
    assert [l.digest for l in img.layer_list] == [d["digest"] for d in manifest["layers"]]
    # the wire size: a compressed blob's length; a plain tar's is unknown (a push would gzip it)
    assert [l.compressed_size for l in img.layer_list] == [
        d["size"] if d["mediaType"].endswith(("gzip", "zstd")) else None for d in manifest["layers"]]
    assert [l.media_type for l in img.layer_list] == [OCI_ARCHIVES[name]] * len(manifest["layers"])
    for layer, data in zip(img.layer_list, layer_bytes):
        assert "sha256:" + hashlib.sha256(data).hexdigest() == layer.digest
        if layer.media_type.endswith(".tar"):
            assert layer.size == gnu_tar_sizes(data)
        else:
            assert layer.size is None
    # history pairing against the config's empty_layer flags
    makers = [h for h in cfg["history"] if not h.get("empty_layer")]
    assert list(img.layers()["created_by"]) == [h.get("created_by") for h in makers]
    # skopeo reads the same manifest and config
    raw = _skopeo("inspect", "--raw", f"oci-archive:{path}")
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == img.manifest_digest
    raw_cfg = _skopeo("inspect", "--config", "--raw", f"oci-archive:{path}")
    assert "sha256:" + hashlib.sha256(raw_cfg).hexdigest() == img.id


def test_dive_oci_variants_share_a_diff_id(real_images):
    imgs = {n: ll.load(f"oci-archive:{real_images / n}") for n in OCI_ARCHIVES}
    plain = {n: i.layer_list[0] for n, i in imgs.items() if "estargz" not in n}
    assert len({l.diff_id for l in plain.values()}) == 1
    assert len({l.digest for l in plain.values()}) == 3
    star = imgs["dive-test-oci-estargz-image.tar"].layer_list[0]
    assert star.annotations.get("layerlab.estargz") == "true"
    assert star.diff_id not in {l.diff_id for l in plain.values()}  # the TOC changes the tar
    assert all("layerlab.estargz" not in l.annotations for l in plain.values())


def test_blob_provider_on_oci_archive(real_images):
    import gzip

    import zstandard

    for name in OCI_ARCHIVES:
        img = ll.load(f"oci-archive:{real_images / name}")
        (item,) = list(img.blobs.iter_blobs())
        positions, media_type, f = item
        data = f.read()
        assert positions == [0] and media_type == OCI_ARCHIVES[name]
        assert sha(data) == img.layer_list[0].digest
        raw = gzip.decompress(data) if media_type.endswith("gzip") else (
            zstandard.ZstdDecompressor().decompressobj().decompress(data) if media_type.endswith("zstd") else data)
        assert sha(raw) == img.layer_list[0].diff_id


def test_docker25_save_read_as_oci_archive_without_manifests(real_images):
    # this fixture's index.json says "manifests": null — nothing to read through the OCI side
    with pytest.raises(SourceError, match="no image manifests"):
        ll.load(f"oci-archive:{real_images / 'ggcr-hello-world-v25.tar'}")


@pytest.fixture(scope="module")
def skopeo_layout(tmp_path_factory, real_images):
    """An OCI layout written by skopeo from a docker save: gzip and zstd copies, two tags."""
    d = tmp_path_factory.mktemp("skopeo") / "layout"
    src = f"docker-archive:{real_images / 'dive-test-docker-image.tar'}"
    _skopeo("copy", "-q", src, f"oci:{d}:dive")
    _skopeo("copy", "-q", "--dest-compress", "--dest-compress-format=zstd", src, f"oci:{d}:dive-zstd")
    return d


def test_skopeo_layout(skopeo_layout, real_images):
    d = skopeo_layout
    orig = ll.load(real_images / "dive-test-docker-image.tar")
    with pytest.raises(SourceError) as ei:
        ll.load(f"oci:{d}")
    assert "dive-zstd" in str(ei.value) and "2 images" in str(ei.value)
    gz = ll.load(f"oci:{d}:dive")
    zs = ll.load(f"oci:{d}:dive-zstd")
    # skopeo writes the bare tags as ref.name: the layout's folder ("layout") names the images
    assert ll.load_many(f"oci:{d}").images()["image"].tolist() == ["layout:dive", "layout:dive-zstd"]
    for img, suffix in ((gz, "gzip"), (zs, "zstd")):
        assert [l.diff_id for l in img.layer_list] == [l.diff_id for l in orig.layer_list]
        assert [l.chain_id for l in img.layer_list] == [l.chain_id for l in orig.layer_list]
        assert all(l.media_type.endswith(suffix) for l in img.layer_list)
        raw = _skopeo("inspect", "--raw", img.location)
        manifest = json.loads(raw)
        assert img.manifest_digest == sha(raw)
        assert [l.digest for l in img.layer_list] == [x["digest"] for x in manifest["layers"]]
        assert [l.compressed_size for l in img.layer_list] == [
            (d / "blobs" / "sha256" / x["digest"].split(":")[1]).stat().st_size for x in manifest["layers"]]
        assert img.size is None
    assert gz.location == f"oci:{d}:dive"
    assert ll.load(f"oci:{d}:@1").manifest_digest == zs.manifest_digest
    # the history pairs as in the docker save
    assert gz.layers()["created_by"].tolist() == orig.layers()["created_by"].tolist()


def test_multi_platform_nested_index(tmp_path):
    root = tmp_path / "layout"
    amd = write_oci_layout(root, [(layer_tar({"amd": b"1"}), _media.OCI_LAYER)], ref_name=None, arch="amd64")
    arm = write_oci_layout(root, [(layer_tar({"arm": b"2"}), _media.OCI_LAYER_GZIP)], ref_name=None, arch="arm64")
    att = {"mediaType": _media.OCI_MANIFEST, "digest": amd["manifest_digest"], "size": 1,
           "platform": {"os": "unknown", "architecture": "unknown"},
           "annotations": {"vnd.docker.reference.type": "attestation-manifest"}}
    inner = {"schemaVersion": 2, "mediaType": _media.OCI_INDEX,
             "manifests": [amd["manifest_desc"], arm["manifest_desc"], att]}
    ib = json.dumps(inner).encode()
    (root / "blobs" / "sha256" / sha(ib).split(":")[1]).write_bytes(ib)
    index = {"schemaVersion": 2, "manifests": [{"mediaType": _media.OCI_INDEX, "digest": sha(ib), "size": len(ib),
                                                 "annotations": {"org.opencontainers.image.ref.name": "multi"}}]}
    (root / "index.json").write_text(json.dumps(index))

    host = _platform.host_platform()
    img = ll.load(f"oci:{root}")
    if host == "linux/amd64":
        assert img.id == amd["config_digest"]
    got_arm = ll.load(f"oci:{root}:multi", platform="linux/arm64")
    assert got_arm.id == arm["config_digest"] and got_arm.platform == "linux/arm64"
    assert got_arm.manifest_digest == arm["manifest_digest"]
    assert got_arm.layer_list[0].size is None and got_arm.layer_list[0].diff_id == arm["diff_ids"][0]
    got_amd = ll.load(f"oci:{root}", platform="linux/amd64")
    assert got_amd.layer_list[0].size == gnu_tar_sizes(layer_tar({"amd": b"1"}))
    both = ll.load_many(f"oci:{root}", platform="all")
    assert sorted(i.platform for i in both) == ["linux/amd64", "linux/arm64"]  # attestation skipped
    with pytest.raises(SourceError, match="available: linux/amd64, linux/arm64"):
        ll.load(f"oci:{root}", platform="linux/s390x")
    # the same layout packed in a tar
    tar_dir(root, tmp_path / "multi.tar")
    assert ll.load(f"oci-archive:{tmp_path / 'multi.tar'}:multi", platform="linux/arm64").id == arm["config_digest"]


def test_docker_media_types_and_zstd(tmp_path):
    root = tmp_path / "l"
    l0, l1, l2 = layer_tar({"a": b"1" * 100}), layer_tar({"b": 300}), layer_tar({"c": b"3"})
    info = write_oci_layout(root, [(l0, _media.DOCKER_LAYER), (l1, _media.DOCKER_LAYER_GZIP),
                                   (l2, _media.OCI_LAYER_ZSTD)], ref_name="t")
    img = ll.load(f"oci:{root}:t")
    assert [l.media_type for l in img.layer_list] == [_media.DOCKER_LAYER, _media.DOCKER_LAYER_GZIP, _media.OCI_LAYER_ZSTD]
    assert [l.size for l in img.layer_list] == [gnu_tar_sizes(l0), None, None]
    assert [l.diff_id for l in img.layer_list] == info["diff_ids"]
    assert [l.compressed_size for l in img.layer_list] == [None] + [d["size"] for d in info["layer_descs"][1:]]
    assert img.created.year == 2024


def test_bad_oci_refs(tmp_path):
    root = tmp_path / "l"
    write_oci_layout(root, [(layer_tar({"a": b"1"}), _media.OCI_LAYER)], ref_name="t")
    with pytest.raises(SourceError, match="no image named 'nope'"):
        ll.load(f"oci:{root}:nope")
    with pytest.raises(SourceError, match="no such OCI layout"):
        ll.load(f"oci:{tmp_path / 'missing'}")
    (tmp_path / "x.tar").write_bytes(b"")
    with pytest.raises(SourceError, match="oci-archive"):
        ll.load(f"oci:{tmp_path / 'x.tar'}")
    with pytest.raises(FormatError):
        ll.load(f"oci:{tmp_path}")  # a directory without index.json


# ---------------------------------------------------------------------------
# the real engine: an image built here, copied by skopeo into OCI layouts
# ---------------------------------------------------------------------------
OCI_DOCKERFILE = """\
FROM {base}
ENV STAGE=oci
RUN mkdir -p /srv && head -c 120000 /dev/zero > /srv/data && echo hi > /srv/hi
RUN rm /srv/data
LABEL purpose=layerlab-test
"""


@pytest.fixture(scope="module")
def engine_image(busybox_base):
    from enginekit import build

    tag = "layerlab-test/oci:1"
    build(tag, OCI_DOCKERFILE.format(base=busybox_base))
    return tag


def test_engine_image_through_skopeo_oci(engine_image, tmp_path):
    from enginekit import history_json, inspect

    tag = engine_image
    plain = tmp_path / "plain"
    _skopeo("copy", "-q", "--dest-oci-accept-uncompressed-layers", f"docker-daemon:{tag}", f"oci:{plain}:t")
    _skopeo("copy", "-q", f"docker-daemon:{tag}", f"oci-archive:{tmp_path / 'gz.tar'}:t")
    ins = inspect(tag)
    hist = list(reversed(history_json(tag)))
    img = ll.load(f"oci:{plain}:t")
    gz = ll.load(f"oci-archive:{tmp_path / 'gz.tar'}")
    for x in (img, gz):
        assert [l.diff_id for l in x.layer_list] == ins["RootFS"]["Layers"]
        assert len(x.history_list) == len(hist)
        assert x.platform == f"{ins['Os']}/{ins['Architecture']}"
    assert all(l.media_type == "application/vnd.oci.image.layer.v1.tar" for l in img.layer_list)
    assert all(l.media_type.endswith("gzip") and l.size is None for l in gz.layer_list)
    # uncompressed layers: sizes from headers equal the engine's, step by step
    steps = img.history()
    sizes = {l.position: l.size for l in img.layer_list}
    for i, h in enumerate(hist):
        pos = steps.loc[i, "layer_position"]
        expect = int(h["Size"])
        got = 0 if pos is ll.frames.pd.NA or pd_isna(pos) else sizes[int(pos)]
        assert got == expect, (i, h["CreatedBy"])
    assert img.size == ins["Size"]


def pd_isna(x) -> bool:
    import pandas as pd

    return bool(pd.isna(x))


def test_detection_without_prefix(tmp_path):
    root = tmp_path / "layout"
    info = write_oci_layout(root, [(layer_tar({"a": b"1"}), _media.OCI_LAYER)], ref_name="t")
    for i in range(80):  # push index.json past the first members a detector looks at
        data = f"unrelated blob {i}".encode()
        (root / "blobs" / "sha256" / sha(data).split(":")[1]).write_bytes(data)
    img = ll.load(root)
    assert (img.source, img.id) == ("oci", info["config_digest"])
    tar_dir(root, tmp_path / "o.tar")
    with tarfile.open(tmp_path / "o.tar") as tf:
        assert [m.name for m in tf.getmembers()].index("index.json") > 64
    img = ll.load(tmp_path / "o.tar")
    assert (img.source, img.id) == ("oci-archive", info["config_digest"])


def test_layouts_name_images_by_folder_and_ref_name(tmp_path, real_images):
    """Two layouts each holding a `latest` (skopeo's bare tag): the images are
    app1:latest and app2:latest, not latest and latest#2; a layout whose ref.name
    is a full reference keeps it; an archive is named by its file less .tar."""
    src = f"docker-archive:{real_images / 'dive-test-docker-image.tar'}"
    for app in ("app1", "app2"):
        _skopeo("copy", "-q", src, f"oci:{tmp_path / app}:latest")
    _skopeo("copy", "-q", src, f"oci:{tmp_path / 'full'}:registry.example.com/team/web:2.0")
    _skopeo("copy", "-q", src, f"oci-archive:{tmp_path / 'bundle.tar'}:v1")
    fleet = ll.load_many([f"oci:{tmp_path / 'app1'}", f"oci:{tmp_path / 'app2'}", f"oci:{tmp_path / 'full'}",
                          f"oci-archive:{tmp_path / 'bundle.tar'}"])
    assert fleet.images()["image"].tolist() == [
        "app1:latest", "app2:latest", "registry.example.com/team/web:2.0", "bundle:v1"]
    assert ll.load(f"oci:{tmp_path / 'app1'}:latest").location == f"oci:{tmp_path / 'app1'}:latest"
