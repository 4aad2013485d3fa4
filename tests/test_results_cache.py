"""The per-image results cache (layerlab/contents/results.py) and the fast analyses.

* a second run reads efficiency / waste / filesystem inputs back from
  ``<cache>/results-v1/<sha256 of the ordered diff_ids>.parquet`` and gives
  exactly what a fresh computation gives, and what the per-row reference
  implementations (dive's trees, the per-row merge frames) give;
* nothing is written for unverified scans, with ``cache_dir=False`` or for an
  image without blobs; a damaged entry is a miss (and is rewritten);
* dive's figures from Arrow sets equal dive's trees on random layers (the trees
  themselves are checked against the dive binary in test_efficiency_dive.py).
"""
from __future__ import annotations

import hashlib
import io
import json
import random
import shutil
import tarfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

import layerlab as ll
from _contents_helpers import d, f, hard, layer_tar, mem_image, opq, sha256, sym, wh
from _reference import merge_table_reference
from _waste_reference import waste_from
from layerlab.analysis import efficiency as E
from layerlab.analysis import waste as W
from layerlab.contents import dive as D
from layerlab.contents import layers as L
from layerlab.contents import merge as M
from layerlab.contents.schema import FILESYSTEM_COLUMNS

FIGURES = ["score", "size_bytes", "inefficient_bytes", "user_size_bytes", "reclaimable_bytes",
           "reclaimable_bytes_above_base", "dive_reclaimable_bytes", "base_layers", "layer_sizes"]


def entry_path(cache: Path, diff_ids: list[str]) -> Path:
    """Where the entry must be, derived here from the documented layout."""
    k = hashlib.sha256("\n".join(diff_ids).encode()).hexdigest()
    return cache / "results-v1" / k[:2] / f"{k}.parquet"


def analyse(img, **kw):
    return (ll.efficiency(img, progress=False, **kw), ll.waste(img, progress=False, **kw),
            ll.waste(img, by="step", progress=False, **kw), img.filesystem(progress=False, **kw))


def reference(img):
    """The same analyses by the per-row reference code (dive's trees, the per-row merge frames)."""
    _s, table, m = L.image_contents(img, options=L.ScanOptions(progress=False, cache_dir=False))
    fs = L.to_frame(M.filesystem_table(table, m), FILESYSTEM_COLUMNS).reset_index(drop=True)
    w = waste_from(img, m)
    return E.efficiency_from(img, table, m), w, W.waste_by_step(w), fs


def assert_same(a, b):
    ea, wa, sa, fa = a
    eb, wb, sb, fb = b
    for name in FIGURES:
        assert getattr(ea, name) == getattr(eb, name), name
    pd.testing.assert_frame_equal(ea.inefficient_files, eb.inefficient_files)
    pd.testing.assert_frame_equal(wa, wb)
    pd.testing.assert_frame_equal(sa, sb)
    pd.testing.assert_frame_equal(fa, fb)


def from_cache(img) -> bool:
    return img._memo.results[1].from_cache


# -- hand-built layers (layer 2 deletes /var/lib, whose file a layer-1 hard link still names) ----------------------------------------------------------------
def layers_with_everything():
    l0 = layer_tar([d("etc"), f("etc/a", b"a" * 100), d("var"), d("var/lib"), f("var/lib/x", b"x" * 300),
                    f("bin", b"B" * 50), sym("lnk", "etc/a"), d("opt"), f("opt/keep", b"k" * 7)])
    l1 = layer_tar([f("etc/a", b"A" * 120), f("etc/b", b"b" * 40), hard("etc/h", "var/lib/x"),
                    opq("opt"), f("opt/new", b"n" * 9)])
    l2 = layer_tar([wh("etc/b"), d("bin"), f("bin/sh", b"s" * 11), f("etc/a", b"Z" * 5), wh("lnk"),
                    wh("var/lib")])
    return [l0, l1, l2]


def test_warm_results_equal_fresh_and_reference_on_built_layers(tmp_path):
    layers = layers_with_everything()
    cold = mem_image(layers)
    first = analyse(cold, cache_dir=tmp_path)
    assert not from_cache(cold)
    path = entry_path(tmp_path, [sha256(t) for t in layers])
    assert path.is_file()
    warm = mem_image(layers)
    second = analyse(warm, cache_dir=tmp_path)
    assert from_cache(warm)
    assert_same(second, first)
    assert_same(first, reference(mem_image(layers)))
    assert_same(analyse(mem_image(layers), cache_dir=False), first)
    # what the layers say, read by hand: /var/lib (300 bytes) deleted, /etc/a overwritten twice
    # (100 + 120), /bin replaced by a directory (50), /opt/keep hidden by the opaque /opt (7)
    # and /etc/b deleted (40); the hard link keeps /var/lib/x's 300 bytes reachable
    eff = second[0]
    assert eff.reclaimable_bytes == 100 + 120 + 50 + 7 + 40
    fs = second[3]
    assert int(fs.loc[fs.path == "etc/h", "content_size"].iloc[0]) == 300
    assert "lnk" not in set(fs.path) and "var/lib" not in set(fs.path)


def test_an_unverified_scan_writes_no_results(tmp_path):
    layers = layers_with_everything()
    wrong = ["sha256:" + "0" * 64, "sha256:" + "1" * 64, "sha256:" + "2" * 64]
    img = mem_image(layers, diff_ids=wrong)
    with pytest.raises(ll.LayerlabError):
        ll.efficiency(img, cache_dir=tmp_path, progress=False)
    eff = ll.efficiency(mem_image(layers, diff_ids=wrong), cache_dir=tmp_path, progress=False, verify=False)
    assert eff.size_bytes == sum(m.size for t in layers for m in tarfile.open(fileobj=io.BytesIO(t)))
    assert not (tmp_path / "results-v1").exists()
    assert not entry_path(tmp_path, wrong).exists()


def test_cache_dir_false_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERLAB_CACHE", str(tmp_path / "env"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    analyse(mem_image(layers_with_everything()), cache_dir=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "other_key"])
def test_a_damaged_entry_is_a_miss_and_is_rewritten(tmp_path, damage):
    layers = layers_with_everything()
    first = analyse(mem_image(layers), cache_dir=tmp_path)
    path = entry_path(tmp_path, [sha256(t) for t in layers])
    good = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"PAR1 not a parquet file PAR1")
    elif damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # a valid entry of other layers filed under this key
        others = [layer_tar([f("x", b"1")]), layer_tar([f("x", b"22")])]
        ll.efficiency(mem_image(others), cache_dir=tmp_path, progress=False)
        shutil.copy(entry_path(tmp_path, [sha256(t) for t in others]), path)
    img = mem_image(layers)
    again = analyse(img, cache_dir=tmp_path)
    assert not from_cache(img)
    assert_same(again, first)
    warm = mem_image(layers)
    analyse(warm, cache_dir=tmp_path)
    assert from_cache(warm)  # rewritten


def test_image_without_blobs_only_reads(tmp_path):
    """A copy reading bundled tables (as notebook 01 does with data/sample/files) writes no entry."""
    import dataclasses

    layers = layers_with_everything()
    src = mem_image(layers)
    src.files(cache_dir=tmp_path, progress=False)  # the per-layer tables only
    shutil.rmtree(tmp_path / "results-v1", ignore_errors=True)
    before = sorted(p for p in tmp_path.rglob("*"))
    blobless = dataclasses.replace(mem_image(layers), blobs=None)
    first = analyse(blobless, cache_dir=tmp_path)
    assert sorted(p for p in tmp_path.rglob("*")) == before
    assert_same(first, analyse(mem_image(layers), cache_dir=False))


# -- real images --------------------------------------------------------------------------
@pytest.mark.shared
@pytest.mark.parametrize("name", ["dive-test-docker-image.tar", "dive-test-kaniko-image.tar",
                                  "ggcr-source_image_with_empty_layer_history.tar"])
def test_real_images_warm_equals_fresh(real_images, tmp_path, name):
    archive = str(real_images / name)
    cold = ll.load(archive)
    first = analyse(cold, cache_dir=tmp_path)
    with tarfile.open(archive) as tf:  # the diff_ids, read by hand from the archive's config
        manifest = json.load(tf.extractfile("manifest.json"))[0]
        diff_ids = json.load(tf.extractfile(manifest["Config"]))["rootfs"]["diff_ids"]
    assert entry_path(tmp_path, diff_ids).is_file()
    warm = ll.load(archive)
    second = analyse(warm, cache_dir=tmp_path)
    assert from_cache(warm)
    assert_same(second, first)
    assert_same(first, reference(ll.load(archive)))


BUILD = """\
FROM {base}
RUN mkdir -p /d/sub /o/deep && dd if=/dev/zero of=/d/sub/big bs=1024 count=32 2>/dev/null && echo hi > /d/s \
    && echo 1 > /o/deep/a
RUN ln /d/s /d/s.hl && chmod 600 /d/s && rm -rf /d/sub
RUN rm -rf /o && mkdir /o && echo 2 > /o/b && touch /bin/busybox
"""


@pytest.mark.engine
def test_built_image_warm_equals_fresh(busybox_base, tmp_path):
    from enginekit import build, save

    tag = "layerlab-test/results-cache:1"
    build(tag, BUILD.format(base=busybox_base))
    archive = str(save(tag, tmp_path / "image.tar"))
    cache = tmp_path / "cache"
    first = analyse(ll.load(archive), cache_dir=cache)
    assert list((cache / "results-v1").rglob("*.parquet"))
    warm = ll.load(archive)
    second = analyse(warm, cache_dir=cache)
    assert from_cache(warm)
    assert_same(second, first)
    assert_same(first, reference(ll.load(archive)))
    # and from the engine's own stream, no cache
    daemon = ll.efficiency(ll.load(f"docker-daemon:{tag}"), cache_dir=False, progress=False)
    assert [getattr(daemon, n) for n in FIGURES] == [getattr(first[0], n) for n in FIGURES]


# -- dive's figures: sets vs trees ------------------------------------------------------------
def _table(layers):
    rows = [(k, p, t, s) for k, rows in enumerate(layers) for p, t, s in rows]
    return pa.table({"position": pa.array([r[0] for r in rows], pa.int64()),
                     "path": pa.array([r[1] for r in rows], pa.string()),
                     "type": pa.array([r[2] for r in rows], pa.string()),
                     "size": pa.array([r[3] for r in rows], pa.int64())})


def random_layers(seed: int):
    """Random layers over a few names (collisions, dirs vs files, "-c" sorting before ".wh.");
    whiteouts mostly delete paths a lower layer has, as real ones do."""
    rnd = random.Random(seed)
    names = ["a", "b", "-c", "d/e", "d/f", "g/h/i", "g/h", "g", "d", "a/x"]
    layers, seen = [], []
    for k in range(rnd.randint(1, 6)):
        rows = []
        for _ in range(rnd.randint(0, 12)):
            path = rnd.choice(names) + ("/" + rnd.choice(names) if rnd.random() < 0.3 else "")
            kind = rnd.choice(["file", "file", "dir", "dir", "symlink", "opaque", "marker", "whiteout", "whiteout"])
            if kind == "whiteout" and k == 0 and seed % 4:
                kind = "file"
            if kind == "whiteout" and seen and rnd.random() < 0.85:
                path = rnd.choice(seen)
                seen = [p for p in seen if p != path and not p.startswith(path + "/")]
            if kind == "marker":
                rows.append((path + "/.wh..wh.plnk", "file", 0))
            else:
                rows.append((path, kind, rnd.randint(0, 999) if kind == "file" else 0))
        layers.append(rows)
        seen += [p for p, kind, _s in rows if kind not in ("whiteout", "opaque") and ".wh." not in p]
    return layers


@pytest.mark.parametrize("seed", range(60))
def test_dive_sets_equal_dives_trees(monkeypatch, seed):
    layers = random_layers(seed)
    table = _table(layers)
    trees = D.dive_efficiency(layers)
    calls = []
    real = D.dive_efficiency
    monkeypatch.setattr(D, "dive_efficiency", lambda ls: calls.append(1) or real(ls))
    sets = D.dive_efficiency_table(table, len(layers))
    for name in ["score", "size_bytes", "inefficient_bytes", "user_size_bytes", "dive_reclaimable_bytes",
                 "layer_sizes"]:
        assert getattr(sets, name) == getattr(trees, name), name
    pd.testing.assert_frame_equal(sets.inefficient_files, trees.inefficient_files)
    _FAST_TAKEN.append(not calls)


_FAST_TAKEN: list[bool] = []


def test_the_set_formulation_is_taken_on_most_random_images():
    """Guard against a fast path that always falls back to the trees (run after the test above)."""
    if len(_FAST_TAKEN) < 60:
        pytest.skip("run together with test_dive_sets_equal_dives_trees")
    assert sum(_FAST_TAKEN) >= 25, _FAST_TAKEN


# -- the OCI merge: the fast loop vs the reference --------------------------------------------
@pytest.mark.parametrize("seed", range(60))
def test_fast_merge_equals_reference_merge(seed):
    rnd = random.Random(1000 + seed)
    names = ["a", "b", "-c", "d/e", "d/f", "g/h/i", "g/h", "g", "d", "a/x", "l"]
    rows = []
    for k in range(rnd.randint(1, 6)):
        for _ in range(rnd.randint(0, 14)):
            path = rnd.choice(names) + ("/" + rnd.choice(names) if rnd.random() < 0.3 else "")
            kind = rnd.choice(["file", "file", "dir", "dir", "symlink", "hardlink", "opaque", "marker", "whiteout"])
            link = None
            if kind == "marker":
                path, kind = path + "/.wh..wh.plnk", "file"
            elif kind == "symlink":
                link = rnd.choice(names + ["/" + x for x in names] + ["../" + x for x in names] + ["l/x"])
            elif kind == "hardlink":
                link = rnd.choice(names)
            rows.append((k, path, kind, rnd.randint(0, 99) if kind == "file" else 0, link))
    table = pa.table({"position": pa.array([r[0] for r in rows], pa.int64()),
                      "path": pa.array([r[1] for r in rows], pa.string()),
                      "type": pa.array([r[2] for r in rows], pa.string()),
                      "size": pa.array([r[3] for r in rows], pa.int64()),
                      "link_target": pa.array([r[4] for r in rows], pa.string())})
    fast, ref = M.merge_table(table), merge_table_reference(table)
    for name in ["hidden_by", "how", "link_row", "notes", "final", "orphan_notes", "kept_by_link"]:
        assert getattr(fast, name) == getattr(ref, name), name


@pytest.mark.parametrize("layers", [
    # layer 1 deletes "-c" and re-creates it implicitly ("-c/b"): dive's sorted graft adds "-c/b"
    # ("-c" sorts before ".wh.-c") and then removes "-c", so layer 2's whiteout finds nothing
    [[("-c", "dir", 0), ("-c/a", "file", 10), ("z", "file", 3)], [("-c", "whiteout", 0), ("-c/b", "file", 5)],
     [("-c", "whiteout", 0), ("z", "file", 4)]],
    # the same with a name sorting after ".wh.": removed first, re-created, deleted again (a dir: its size)
    [[("c", "dir", 0), ("c/a", "file", 10), ("z", "file", 3)], [("c", "whiteout", 0), ("c/b", "file", 5)],
     [("c", "whiteout", 0), ("z", "file", 4)]],
    # a whiteout of a directory in the middle of the stack, an opaque directory, a marker
    [[("u", "dir", 0), ("u/l", "dir", 0), ("u/l/a", "file", 7), ("u/l/b", "file", 9)],
     [("u/l/a", "file", 8), ("u/l", "opaque", 0), ("u/.wh..wh.plnk", "file", 0)],
     [("u/l", "whiteout", 0), ("u/m", "file", 1)], [("u", "whiteout", 0)]],
])
def test_dive_sets_on_whiteout_orders(layers):
    trees = D.dive_efficiency(layers)
    sets = D.dive_efficiency_table(_table(layers), len(layers))
    assert (sets.score, sets.inefficient_bytes, sets.dive_reclaimable_bytes, sets.layer_sizes) == \
        (trees.score, trees.inefficient_bytes, trees.dive_reclaimable_bytes, trees.layer_sizes)
    pd.testing.assert_frame_equal(sets.inefficient_files, trees.inefficient_files)


def test_an_entry_pointing_outside_the_image_is_a_miss(tmp_path):
    """A well-formed entry whose hard-link rows and hiding layers lie outside the image."""
    import pyarrow.parquet as pq

    layers = layers_with_everything()
    first = analyse(mem_image(layers), cache_dir=tmp_path)
    path = entry_path(tmp_path, [sha256(t) for t in layers])
    t = pq.read_table(path)
    meta = t.schema.metadata
    n = t.num_rows
    for col, value in [("link_row", pa.array([10 ** 6] * n, pa.int64())), ("hidden_by", pa.array([99] * n, pa.int32()))]:
        bad = t.set_column(t.schema.get_field_index(col), col, value).replace_schema_metadata(meta)
        pq.write_table(bad, path)
        img = mem_image(layers)
        assert_same(analyse(img, cache_dir=tmp_path), first)
        assert not from_cache(img)
