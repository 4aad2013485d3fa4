"""Blob digests (issue 14, defect 5): every layer read is checked against its
own digest as well as its diff_id; a warm cache re-reads a changed archive;
``ll.verify`` reports every mismatch.  Archives and layouts are written by
hand (tests/_archive_helpers.py); expected digests are those of the bytes
written."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import layerlab as ll
from layerlab.errors import DigestMismatchError, LayerlabError

from _archive_helpers import layer_tar, sha, write_legacy_archive, write_oci_layout

GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
TAR = "application/vnd.oci.image.layer.v1.tar"


def _layers():
    return [layer_tar({"etc/": b"", "etc/a.conf": b"alpha\n" * 50}),
            layer_tar({"usr/": b"", "usr/b.bin": b"\x01\x02" * 3000}),
            layer_tar({"srv/c.txt": b"gamma " * 400})]


def _blob(root: Path, digest: str) -> Path:
    return root / "blobs" / "sha256" / digest.split(":", 1)[1]


def _retime_gzip(path: Path) -> tuple[bytes, bytes]:
    """Change the gzip header's MTIME field: same length, same content, another digest."""
    old = path.read_bytes()
    assert old[:2] == b"\x1f\x8b"
    new = old[:4] + b"\x01\x02\x03\x04" + old[8:]
    path.write_bytes(new)
    return old, new


@pytest.mark.parametrize("workers", [1, 2])
def test_gzip_blob_with_changed_header_is_refused(tmp_path, workers):
    root = tmp_path / "oci"
    info = write_oci_layout(root, [(t, GZ) for t in _layers()])
    victim = info["layer_descs"][1]["digest"]
    _old, new = _retime_gzip(_blob(root, victim))
    img = ll.load(f"oci:{root}")
    with pytest.raises(DigestMismatchError) as e:
        img.files(cache_dir=False, progress=False, workers=workers)
    msg = str(e.value)
    assert victim in msg and sha(new) in msg and "layer 1" in msg
    # the content is intact: verify=False reads it
    rows = ll.load(f"oci:{root}").files(cache_dir=False, progress=False, verify=False, workers=workers)
    assert "usr/b.bin" in set(rows["path"])


def test_intact_gzip_layout_reads(tmp_path):
    root = tmp_path / "oci"
    write_oci_layout(root, [(t, GZ) for t in _layers()])
    rows = ll.load(f"oci:{root}").files(cache_dir=False, progress=False, workers=2)
    assert {"etc/a.conf", "usr/b.bin", "srv/c.txt"} <= set(rows["path"])


def test_trailing_bytes_after_gzip_count_in_the_digest():
    """Bytes after the gzip stream are part of the stored blob: its digest covers them."""
    from _archive_helpers import compress
    from _contents_helpers import mem_image

    layers = _layers()
    gz = [compress(t, "gzip") for t in layers]
    img = mem_image(layers, blobs=[gz[0], gz[1] + b"\0" * 7, gz[2]])
    for layer, blob in zip(img.layer_list, gz):
        layer.digest = sha(blob)
    with pytest.raises(DigestMismatchError) as e:
        img.files(cache_dir=False, progress=False)
    assert sha(gz[1]) in str(e.value) and sha(gz[1] + b"\0" * 7) in str(e.value)


def test_plain_blob_stored_under_another_digest_is_refused(tmp_path):
    """An uncompressed blob's bytes are its content: its digest must be its diff_id."""
    root = tmp_path / "oci"
    layers = _layers()
    info = write_oci_layout(root, [(t, TAR) for t in layers])
    manifest = json.loads(info["manifest"])
    real = manifest["layers"][0]["digest"]
    fake = sha(b"another blob entirely")
    os.rename(_blob(root, real), _blob(root, fake))
    manifest["layers"][0]["digest"] = fake
    mbytes = json.dumps(manifest).encode()
    _blob(root, sha(mbytes)).write_bytes(mbytes)
    index = json.loads((root / "index.json").read_text())
    index["manifests"][0].update(digest=sha(mbytes), size=len(mbytes))
    (root / "index.json").write_text(json.dumps(index))
    img = ll.load(f"oci:{root}")
    assert img.layer_list[0].digest == fake
    with pytest.raises(DigestMismatchError) as e:
        img.files(cache_dir=False, progress=False)
    assert fake in str(e.value) and real in str(e.value)
    report = ll.verify(ll.load(f"oci:{root}"), progress=False)
    row = report[report["position"] == 0].iloc[0]
    assert row["digest"] == fake and row["actual_digest"] == real and row["actual_diff_id"] == real
    assert not row["ok"]


def _flip_in_layer(archive: Path, layer_bytes: bytes, marker: bytes) -> None:
    """Change one byte of a file's content inside a stored layer (same length)."""
    data = archive.read_bytes()
    at = data.index(layer_bytes)
    k = at + layer_bytes.index(marker)
    archive.write_bytes(data[:k] + bytes([data[k] ^ 0x20]) + data[k + 1:])


@pytest.mark.parametrize("analysis", ["files", "efficiency"])
def test_warm_cache_rereads_a_changed_archive(tmp_path, analysis):
    layers = _layers()
    archive = tmp_path / "img.tar"
    write_legacy_archive(archive, layers)
    cache = tmp_path / "cache"

    def run():
        img = ll.load(f"docker-archive:{archive}", cache_dir=cache, progress=False)
        if analysis == "files":
            return img.files(cache_dir=cache, progress=False)
        return ll.efficiency(img, cache_dir=cache, progress=False)

    run()
    markers = [m for m in (cache / "verified-v1").rglob("*") if m.is_file()]
    assert len(markers) == len(layers)
    stamps = {m: m.stat().st_mtime_ns for m in markers}
    run()  # warm and unchanged: served from the cache, no layer read again (its marker would be rewritten)
    assert {m: m.stat().st_mtime_ns for m in markers} == stamps
    _flip_in_layer(archive, layers[1], b"\x01\x02\x01\x02")
    with pytest.raises(DigestMismatchError) as e:
        run()
    assert sha(layers[1]) in str(e.value)
    # verify=False still answers (from a read of the changed bytes, filed under the file's identity)
    img = ll.load(f"docker-archive:{archive}", cache_dir=cache, progress=False)
    assert len(img.files(cache_dir=cache, progress=False, verify=False)) > 0


def test_warm_cache_rereads_a_changed_gzip_layout(tmp_path):
    root = tmp_path / "oci"
    info = write_oci_layout(root, [(t, GZ) for t in _layers()])
    cache = tmp_path / "cache"
    ll.load(f"oci:{root}").files(cache_dir=cache, progress=False, workers=1)
    _retime_gzip(_blob(root, info["layer_descs"][0]["digest"]))
    with pytest.raises(DigestMismatchError):
        ll.load(f"oci:{root}").files(cache_dir=cache, progress=False, workers=1)


def test_verify_reports_every_blob(tmp_path):
    root = tmp_path / "oci"
    layers = _layers()
    info = write_oci_layout(root, [(layers[0], GZ), (layers[1], GZ), (layers[2], TAR)])
    _old, new = _retime_gzip(_blob(root, info["layer_descs"][1]["digest"]))
    p = _blob(root, info["layer_descs"][2]["digest"])
    changed = layers[2].replace(b"gamma", b"GAMMA", 1)  # same length, other content
    p.write_bytes(changed)
    report = ll.verify(ll.load(f"oci:{root}"), progress=False)
    assert list(report["position"]) == [0, 1, 2]
    assert list(report["ok"]) == [True, False, False]
    r0, r1, r2 = (report.iloc[i] for i in range(3))
    assert r0["actual_digest"] == info["layer_descs"][0]["digest"] and r0["actual_diff_id"] == sha(layers[0])
    assert pd_isna(r0["error"])
    assert r1["actual_digest"] == sha(new) and r1["actual_diff_id"] == sha(layers[1])  # content intact
    assert "digest" in r1["error"]
    assert r2["actual_digest"] == sha(changed) and r2["actual_diff_id"] == sha(changed)
    assert "digest" in r2["error"] and "diff_id" in r2["error"]
    assert str(report["ok"].dtype) == "boolean" and str(report["actual_compressed_size"].dtype) == "Int64"


def test_verify_a_fleet_and_sources_without_blobs(tmp_path):
    root = tmp_path / "oci"
    write_oci_layout(root, [(t, GZ) for t in _layers()])
    hist = tmp_path / "h.jsonl"
    hist.write_text(json.dumps({"CreatedBy": "/bin/sh -c x", "ID": "<missing>", "Size": "12", "CreatedAt": "",
                                "Comment": ""}) + "\n")
    fleet = ll.Fleet([ll.load(f"oci:{root}"), ll.load(f"history:{hist}")])
    report = ll.verify(fleet, progress=False)
    assert len(report) == 4
    assert report["ok"].iloc[:3].tolist() == [True, True, True]
    assert pd_isna(report["ok"].iloc[3]) and "no layer blobs" in report["error"].iloc[3]
    with pytest.raises(LayerlabError):
        ll.verify("not an image")


def pd_isna(v) -> bool:
    import pandas as pd

    return bool(pd.isna(v))
