"""What-if merges on archives written by hand (python tarfile): every expected
number below is worked out from the files the test writes, not by layerlab."""
from __future__ import annotations

import gzip
import io
import json
import tarfile
import zlib
from pathlib import Path

import pandas as pd
import pytest

import layerlab as ll
from layerlab.analysis.merge import merged_layer_table, parse_groups
from _archive_helpers import sha, write_legacy_archive, write_oci_layout


def layer(*entries) -> bytes:
    """entries: ("f", name, bytes|int), ("d", name), ("wh", name) whiteout,
    ("opq", dir) opaque marker, ("l", name, target) hardlink, ("s", name, target) symlink."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for e in entries:
            kind, name = e[0], e[1]
            if kind == "f":
                data = e[2] if isinstance(e[2], bytes) else bytes((i * 7 + len(name)) % 251 for i in range(e[2]))
                ti = tarfile.TarInfo(name)
                ti.size, ti.mode = len(data), (e[3] if len(e) > 3 else 0o644)
                tf.addfile(ti, io.BytesIO(data))
            elif kind == "d":
                ti = tarfile.TarInfo(name)
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            elif kind in ("wh", "opq"):
                head, _, base = name.rpartition("/")
                marker = ".wh..wh..opq" if kind == "opq" else ".wh." + base
                path = (name + "/" + marker) if kind == "opq" else ((head + "/" if head else "") + marker)
                tf.addfile(tarfile.TarInfo(path))
            elif kind in ("l", "s"):
                ti = tarfile.TarInfo(name)
                ti.type = tarfile.LNKTYPE if kind == "l" else tarfile.SYMTYPE
                ti.linkname = e[2]
                tf.addfile(ti)
    return buf.getvalue()


def history(cmds):
    return [{"created": "2024-01-01T00:00:00Z", "created_by": c} for c in cmds]


BASE = layer(("d", "etc"), ("f", "etc/os", 1000), ("f", "etc/keep", 50), ("d", "opt"), ("f", "opt/old", 400),
             ("d", "var"), ("f", "var/lower", 30))
L1 = layer(("d", "data"), ("f", "data/big", 30000), ("f", "data/keep", 700), ("f", "etc/os", 1200))
L2 = layer(("f", "data/tmp", 5000), ("f", "data/keep", 700, 0o600), ("wh", "etc/keep"))
L3 = layer(("wh", "data/big"), ("wh", "data/tmp"), ("f", "data/hello", 3), ("opq", "opt"), ("f", "opt/new", 9))
L4 = layer(("f", "data/keep", 700, 0o644))
L5 = layer(("f", "done", 5))
CMDS = [
    "",
    "RUN /bin/sh -c make big # buildkit",
    "RUN /bin/sh -c make tmp && chmod 600 /data/keep # buildkit",
    "RUN /bin/sh -c rm /data/big /data/tmp # buildkit",
    "RUN /bin/sh -c chmod 644 /data/keep # buildkit",
    "RUN /bin/sh -c echo done # buildkit",
]


@pytest.fixture(scope="module", autouse=True)
def own_cache(tmp_path_factory):
    """A file-table cache of this module's own (layer tables are cached by diff_id)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAYERLAB_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("merge") / "img.tar"
    write_legacy_archive(p, [BASE, L1, L2, L3, L4, L5], tags=("test/merge:1",), history=history(CMDS))
    return p


@pytest.fixture(scope="module")
def img(archive):
    return ll.load(f"docker-archive:{archive}")


def test_sizes_are_the_tar_entry_sums(img):
    # sanity of the fixture against the source: Docker's size = sum of tar entry sizes
    assert [l.size for l in img.layer_list] == [1480, 31900, 5700, 12, 700, 5]


def test_merge_2_to_4_exact(img, tmp_path):
    pred = ll.what_if_merge(img, (2, 4), output_dir=tmp_path)
    g = pred.groups.iloc[0]
    # data/tmp (5000) added in 2, deleted in 3: vanishes. data/keep written in 2 and 4: counts once (700).
    # data/big lives below the group (layer 1): its whiteout stays (0). etc/keep (base) whiteout stays (0).
    # data/hello 3, opt/new 9, opaque opt (0).
    assert int(g["size_before_bytes"]) == 5700 + 12 + 700
    assert int(g["size_after_bytes"]) == 700 + 3 + 9
    assert int(g["saved_bytes"]) == 6412 - 712
    assert g["status"] == "exact"
    assert pred.metric("layers") == 4
    assert pred.metric("size_bytes") == 1480 + 31900 + 712 + 5
    # the merged layer written to output_dir: read it back with tarfile, independently
    files = list(tmp_path.glob("merged-2-4.tar.gz"))
    assert len(files) == 1
    assert files[0].stat().st_size == int(g["compressed_after_bytes"])
    with tarfile.open(files[0], "r:gz") as tf:
        names = {m.name: m for m in tf.getmembers()}
    assert "data/tmp" not in names
    assert {"data/keep", "data/hello", "opt/new", "data/.wh.big", "etc/.wh.keep", "opt/.wh..wh..opq"} <= set(names)
    assert names["data/keep"].mode == 0o644 and names["data/keep"].size == 700
    assert sum(m.size for m in names.values() if m.isfile()) == 700 + 3 + 9


def test_create_then_delete_inside_group_vanishes(img):
    pred = ll.what_if_merge(img, (1, 3), compressed=False)
    g = pred.groups.iloc[0]
    # group 1..3: big (30000) and tmp (5000) vanish; keep 700 once; etc/os overwritten in 1 (1200);
    # hello 3; opt/new 9; whiteouts of etc/keep (base) and opaque opt.
    assert int(g["size_after_bytes"]) == 700 + 1200 + 3 + 9
    assert int(g["size_before_bytes"]) == 31900 + 5700 + 12


def test_hardlink_whose_target_the_group_deletes_becomes_a_file(tmp_path):
    big = bytes(range(256)) * 12  # 3072 bytes
    la = layer(("d", "data"), ("f", "data/big", big))
    lb = layer(("l", "data/link", "data/big"), ("f", "x", 10))
    lc = layer(("wh", "data/big"))
    p = tmp_path / "h.tar"
    write_legacy_archive(p, [BASE, la, lb, lc], tags=("t/h:1",), history=history(CMDS[:4]))
    pred = ll.what_if_merge(ll.load(f"docker-archive:{p}"), (2, 3), output_dir=tmp_path / "o")
    assert int(pred.groups.iloc[0]["size_after_bytes"]) == 3072 + 10
    with tarfile.open(tmp_path / "o" / "merged-2-3.tar.gz", "r:gz") as tf:
        m = tf.getmember("data/link")
        assert m.isfile() and tf.extractfile(m).read() == big
        assert tf.getmember("data/.wh.big").size == 0


def test_several_groups_and_rebuild(img):
    pred = ll.what_if_merge(img, [(1, 2), [4, 5]], compressed=False)
    assert list(pred.groups["first"]) == [1, 4]
    # 1..2: big 30000, keep 700 (once), etc/os 1200, tmp 5000, etc/keep whiteout 0
    assert list(pred.groups["size_after_bytes"]) == [36900, 705]
    assert pred.metric("layers") == 4
    rb = pred.rebuild.set_index("position")
    # changing step 3 before: layers 3,4,5 = 12+700+5; after: layer 3 stays alone + merged(4,5)=705
    assert rb.loc[3, "rebuilt_before_bytes"] == 717
    assert rb.loc[3, "rebuilt_after_bytes"] == 12 + 705
    # changing step 2 after the merge rebuilds the merged 1..2 layer from its start
    assert rb.loc[2, "rebuilt_before_bytes"] == 5700 + 717
    assert rb.loc[2, "rebuilt_after_bytes"] == 36900 + 12 + 705
    assert rb.loc[2, "layers_rebuilt_after"] == 3


def test_gzip_source_level_and_calibration(tmp_path):
    root = tmp_path / "oci"
    mt = "application/vnd.oci.image.layer.v1.tar+gzip"
    write_oci_layout(root, [(BASE, mt), (L1, mt), (L2, mt), (L3, mt)], history=history(CMDS[:4]))
    im = ll.load(f"oci:{root}")
    pred = ll.what_if_merge(im, (1, 3), output_dir=tmp_path / "out")
    g = pred.groups.iloc[0]
    # gzip.compress defaults to level 9 -> header XFL=2
    assert "level 9" in g["compressed_method"] and "XFL=2" in g["compressed_method"]
    # compressed_before is the real blobs' length (as written by the helper)
    real = sum(len(gzip.compress(x, mtime=0)) for x in (L1, L2, L3))
    assert int(g["compressed_before_bytes"]) == real
    out = tmp_path / "out" / "merged-1-3.tar.gz"
    assert out.stat().st_size == int(g["compressed_after_bytes"])
    raw = zlib.decompress(out.read_bytes(), 31)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        assert sum(m.size for m in tf.getmembers() if m.isfile()) == 700 + 1200 + 3 + 9
    assert out.read_bytes()[8] == 2  # written at level 9 too
    # the image's compressed size after: the untouched base blob plus the measured merged blob
    assert pred.metric("compressed_bytes") == len(gzip.compress(BASE, mtime=0)) + int(g["compressed_after_bytes"])
    assert pred.metric("compressed_bytes", "before") == len(gzip.compress(BASE, mtime=0)) + real


def test_sharing_lost_with_fleet(tmp_path):
    a = tmp_path / "a.tar"
    b = tmp_path / "b.tar"
    write_legacy_archive(a, [BASE, L1, L2, L3], tags=("t/a:1",), history=history(CMDS[:4]))
    write_legacy_archive(b, [BASE, L1, L5], tags=("t/b:1",), history=history(CMDS[:2] + [CMDS[5]]))
    fleet = ll.load_many([f"docker-archive:{a}", f"docker-archive:{b}"])
    ia = fleet[0]
    # merging 2..3 keeps base and L1 shared with b
    p1 = ll.what_if_merge(ia, (2, 3), fleet=fleet, compressed=False)
    assert p1.metric("sharing_lost_bytes") == 0
    # merging 1..2 rewrites L1 (31900 bytes) that b shares
    p2 = ll.what_if_merge(ia, (1, 2), fleet=fleet, compressed=False)
    assert p2.metric("sharing_lost_bytes") == 31900
    row = p2.sharing.iloc[0]
    assert (row["other_image"], int(row["shared_before_bytes"]), int(row["shared_after_bytes"])) == ("t/b:1", 1480 + 31900, 1480)
    # one host: before a+b = base + L1 + L2 + L3 + L5 ; after: base + merged(1..2) + L3 + (b's L1, L5)
    assert p2.metric("fleet_stored_bytes", "before") == 1480 + 31900 + 5700 + 12 + 5
    merged = int(p2.groups.iloc[0]["size_after_bytes"])
    assert p2.metric("fleet_stored_bytes") == 1480 + 31900 + 5 + merged + 12


def test_group_errors(img):
    with pytest.raises(ll.LayerlabError, match="not consecutive"):
        ll.what_if_merge(img, [1, 3])
    with pytest.raises(ll.LayerlabError, match="overlap"):
        ll.what_if_merge(img, [(1, 3), (3, 4)])
    with pytest.raises(ll.LayerlabError, match="do not exist"):
        ll.what_if_merge(img, (4, 9))
    with pytest.raises(ll.LayerlabError, match="at least two"):
        ll.what_if_merge(img, [[2]])
    with pytest.raises(ll.LayerlabError, match="backwards"):
        ll.what_if_merge(img, (3, 1))
    assert parse_groups(range(2, 5), 6) == [[2, 3, 4]]
    assert parse_groups([(4, 5), [1, 2]], 6) == [[1, 2], [4, 5]]


def test_without_contents_is_unpredictable_not_wrong(img, tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERLAB_CACHE", str(tmp_path / "empty-cache"))  # no cached tables to fall back on
    ll.load_many([img]).save(tmp_path / "snap")
    snap = ll.load_many(f"snapshot:{tmp_path / 'snap'}")[0]
    pred = ll.what_if_merge(snap, (1, 3))
    g = pred.groups.iloc[0]
    assert g["status"].startswith("unpredictable")
    assert pd.isna(g["size_after_bytes"]) and pd.isna(g["compressed_after_bytes"])
    assert pd.isna(pred.summary.set_index("metric").loc["size_bytes", "after"])
    assert pred.metric("layers") == 4  # the layer count is known without contents
    # docker save stores plain tars: their lengths are not compressed sizes
    assert pd.isna(pred.summary.set_index("metric").loc["compressed_bytes", "before"])
    assert int(g["size_before_bytes"]) == 31900 + 5700 + 12


def test_suggest_merges_ranks_by_bytes(img):
    s = ll.suggest_merges(img)
    by = {(int(r.first), int(r.last)): r for r in s.itertuples(index=False)}
    # data/big (30000) written in 1, deleted in 3 -> merge 1..3
    assert by[(1, 3)].kind == "created then deleted"
    assert int(by[(1, 3)].saved_bytes) == (31900 + 5700 + 12) - (700 + 1200 + 3 + 9)
    # the top row spans the overlapping suggestions: 1..4 also drops the chmod copy of data/keep in 4
    top = s.iloc[0]
    assert (int(top["first"]), int(top["last"])) == (1, 4) and bool(top["chosen"])
    assert int(top["saved_bytes"]) == (31900 + 5700 + 12 + 700) - (700 + 1200 + 3 + 9)
    assert s["chosen"].sum() == 1
    # chmod of data/keep (same content, new mode) in layer 2 over layer 1 is a permissions-only change
    assert by[(1, 2)].kind == "permissions-only change" and int(by[(1, 2)].saved_bytes) == 700
    assert s["saved_bytes"].is_monotonic_decreasing


def test_suggest_apt_update_alone(tmp_path):
    p = tmp_path / "apt.tar"
    cmds = ["", "RUN /bin/sh -c apt-get update # buildkit", "RUN /bin/sh -c apt-get install -y curl # buildkit"]
    lists = layer(("d", "var"), ("f", "var/lists", 4000))
    inst = layer(("f", "usr/bin/curl", 100))
    write_legacy_archive(p, [BASE, lists, inst], tags=("t/apt:1",), history=history(cmds))
    s = ll.suggest_merges(ll.load(f"docker-archive:{p}"))
    row = s[s["kind"] == "apt-get update alone"].iloc[0]
    assert (int(row["first"]), int(row["last"])) == (1, 2)
    assert "apt-get update" in row["reason"]


def test_repr_and_html_escape(tmp_path):
    p = tmp_path / "x.tar"
    evil = 'RUN /bin/sh -c echo "<script>alert(1)</script>" # buildkit'
    write_legacy_archive(p, [BASE, L5, L4], tags=("t/x:1",), history=history(["", evil, CMDS[4]]))
    pred = ll.what_if_merge(ll.load(f"docker-archive:{p}"), (1, 2), compressed=False)
    h = pred._repr_html_()
    assert "<script>" not in h and "&lt;script&gt;" in h
    assert "layers 3 -> 2" in repr(pred)


def test_corrupt_layer_gives_unpredictable_not_a_crash(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERLAB_CACHE", str(tmp_path / "cache"))
    p = tmp_path / "bad.tar"
    good = [BASE, L1, L2, L3]
    info = write_legacy_archive(p, good, tags=("t/bad:1",), history=history(CMDS[:4]))
    # rewrite the archive with one byte of layer 2 changed after its end-of-archive marker:
    # still a readable tar, but its content no longer matches its diff_id
    q = tmp_path / "bad2.tar"
    with tarfile.open(p) as src, tarfile.open(q, "w") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read() if m.isfile() else None
            if m.name == info["layer_names"][2]:
                data = data[:-1] + bytes([data[-1] ^ 0xFF])
            dst.addfile(m, io.BytesIO(data) if data is not None else None)
    img = ll.load(f"docker-archive:{q}")
    pred = ll.what_if_merge(img, (1, 3))
    g = pred.groups.iloc[0]
    assert g["status"].startswith("unpredictable") and "could not be read" in g["status"]
    assert pd.isna(g["size_after_bytes"])
    s = ll.suggest_merges(img)
    assert len(s) == 0 or s["saved_bytes"].isna().all()


def test_zstd_source_is_compressed_with_zstd(tmp_path):
    import zstandard

    root = tmp_path / "oci"
    mt = "application/vnd.oci.image.layer.v1.tar+zstd"
    write_oci_layout(root, [(BASE, mt), (L1, mt), (L2, mt), (L3, mt)], history=history(CMDS[:4]))
    pred = ll.what_if_merge(ll.load(f"oci:{root}"), (1, 3), output_dir=tmp_path / "out")
    g = pred.groups.iloc[0]
    assert "zstd level 3" in g["compressed_method"]
    out = tmp_path / "out" / "merged-1-3.tar.zst"
    assert out.stat().st_size == int(g["compressed_after_bytes"])
    raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(out.read_bytes())).read()
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        assert sum(m.size for m in tf.getmembers() if m.isfile()) == 700 + 1200 + 3 + 9


def test_markers_of_the_merged_layer(tmp_path):
    """Whiteouts and opaque markers the merged layer writes, worked out by hand from the OCI rules."""
    base = layer(("d", "a"), ("f", "a/x", 10), ("d", "b"), ("f", "b/y", 20), ("d", "c"), ("d", "e"), ("f", "e/z", 5))
    l1 = layer(("wh", "a"), ("wh", "b"), ("wh", "c"), ("f", "t", 1))        # delete three lower directories
    l2 = layer(("d", "a"), ("f", "a/new", 3), ("d", "c"), ("wh", "e/z"))     # a, c come back; e/z goes
    l3 = layer(("f", "b/fresh", 4), ("wh", "e"))                             # b comes back as a parent; e goes
    p = tmp_path / "m.tar"
    write_legacy_archive(p, [base, l1, l2, l3], tags=("t/m:1",), history=history(CMDS[:4]))
    img = ll.load(f"docker-archive:{p}")
    merged, info = merged_layer_table(img.files(progress=False), [1, 2, 3])
    marks = sorted((t, p) for t, p in zip(merged["type"], merged["path"]) if t in ("whiteout", "opaque"))
    # a: re-created as a directory and had contents below -> opaque; c: re-created, empty below -> a plain dir;
    # b: re-created as the parent of b/fresh -> opaque; e: deleted (its child's whiteout is covered by it)
    assert marks == [("opaque", "a"), ("opaque", "b"), ("whiteout", "e")]
    kept = sorted(p for t, p in zip(merged["type"], merged["path"]) if t not in ("whiteout", "opaque"))
    assert kept == ["a", "a/new", "b/fresh", "c", "t"]
    assert info == {"vanished_entries": 0, "hardlinks_materialised": 0}
    pred = ll.what_if_merge(img, (1, 3), output_dir=tmp_path / "o")
    assert int(pred.groups.iloc[0]["size_after_bytes"]) == 1 + 3 + 4
    with tarfile.open(tmp_path / "o" / "merged-1-3.tar.gz", "r:gz") as tf:
        names = sorted(m.name for m in tf.getmembers())
    assert names == sorted(["a", "a/new", "c", "t", "b/fresh", "a/.wh..wh..opq", "b/.wh..wh..opq", ".wh.e"])


def test_prediction_is_a_result(img):
    from layerlab.analysis._result import Result

    pred = ll.what_if_merge(img, (1, 2), compressed=False, progress=False)
    assert isinstance(pred, Result)
    assert pred.to_frame() is pred.summary
    assert list(pred.frames()) == ["summary", "groups", "layers", "sharing", "rebuild"]
    assert pred.notes and all(isinstance(n, str) for n in pred.notes)
    assert repr(pred).startswith("<layerlab.MergePrediction: 'test/merge:1' merge 1-2: layers 6 -> 5")
    h = pred._repr_html_()
    assert "sharing_lost_bytes" in h and "make big" in h   # the summary, then the groups


def test_real_signatures():
    import inspect

    from layerlab.analysis.merge import suggest_merges, what_if_merge

    for fn, names in ((what_if_merge, ["img", "steps", "fleet", "files", "compressed", "output_dir", "progress"]),
                      (suggest_merges, ["img", "files", "fleet", "dockerfile", "limit", "min_bytes", "start", "progress"])):
        params = inspect.signature(fn).parameters
        assert list(params) == names
        assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
