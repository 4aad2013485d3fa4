"""Image.files() through the real sources (docker-archive, OCI archives in every
compression), checked against an independent reading of each blob with
tarfile; the parallel scan equals the sequential one."""
from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest
import zstandard

import layerlab as ll

OCI = ["dive-test-oci-estargz-image.tar", "dive-test-oci-gzip-image.tar",
       "dive-test-oci-uncompressed-image.tar", "dive-test-oci-zstd-image.tar"]


def _oci_layers(archive):
    """(media type, uncompressed layer bytes) per layer, read by hand from index.json."""
    with tarfile.open(archive) as tf:
        def blob(digest):
            return tf.extractfile("blobs/sha256/" + digest.split(":")[1]).read()
        index = json.loads(tf.extractfile("index.json").read())
        manifest = json.loads(blob(index["manifests"][0]["digest"]))
        out = []
        for desc in manifest["layers"]:
            data = blob(desc["digest"])
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            elif data[:4] == b"\x28\xb5\x2f\xfd":
                data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
            out.append((desc["mediaType"], data))
        return out


@pytest.mark.shared
@pytest.mark.parametrize("name", OCI)
def test_oci_archives_every_compression(real_images, tmp_path, name):
    archive = real_images / name
    img = ll.load(str(archive))
    files = img.files(cache_dir=tmp_path, progress=False, hash="sha256")
    for pos, (_mt, data) in enumerate(_oci_layers(archive)):
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            members = [m for m in tf.getmembers() if m.name.strip("./")]
            want = [(m.name.lstrip("./").rstrip("/"), m.size) for m in members]
        got = files[files.position == pos]
        assert list(zip(got.path, got["size"])) == want
    # the README layer: its sha256 computed here by hand
    import hashlib
    readme = files[files.path == "README.md"].iloc[0]
    data = _oci_layers(archive)[0][1]
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        content = tf.extractfile("README.md").read()
    assert readme["hash"] == "sha256:" + hashlib.sha256(content).hexdigest()


@pytest.mark.shared
def test_docker_archive_files_and_parallel_scan(real_images, tmp_path):
    archive = real_images / "dive-test-docker-image.tar"
    img = ll.load(str(archive))
    seq = img.files(cache_dir=False, progress=False, workers=1)
    par = ll.load(str(archive)).files(cache_dir=tmp_path, progress=False, workers=2)
    assert seq.equals(par)
    with tarfile.open(archive) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))[0]
        total = 0
        for name in manifest["Layers"]:
            with tarfile.open(fileobj=io.BytesIO(outer.extractfile(name).read())) as layer:
                total += sum(1 for m in layer if m.name.strip("./"))
    assert len(seq) == total
    # the parallel run filled the cache: a fresh load reads nothing
    again = ll.load(str(archive))
    again.blobs = None
    assert again.files(cache_dir=tmp_path, progress=False).equals(seq)


@pytest.mark.shared
def test_kaniko_gzip_layers_sizes_become_known(real_images, tmp_path):
    img = ll.load(str(real_images / "dive-test-kaniko-image.tar"))
    assert all(layer.size is None for layer in img.layer_list)  # gzip blobs: unknown until read
    img.files(cache_dir=tmp_path, progress=False)
    assert all(layer.size is not None for layer in img.layer_list)


@pytest.mark.shared
def test_errors_in_worker_processes_reach_the_caller(real_images):
    img = ll.load(str(real_images / "dive-test-docker-image.tar"))
    img.layer_list[5].diff_id = "sha256:" + "ab" * 32
    with pytest.raises(ll.DigestMismatchError, match="layer 5"):
        img.files(cache_dir=False, progress=False, workers=2)
