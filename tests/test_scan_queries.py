"""Fleet queries over a scan cache: files_sql() and dedup() (layerlab.scan.queries).

The caches are written by hand in the documented layout (tests/_scan_cache.py).
Expected figures come from how each fleet is built (worked out by hand in the
comments), or from a plain pandas computation over the same images' files()
frames — an oracle that shares no code with the DuckDB queries.
"""
from __future__ import annotations

import math

import pandas as pd
import pytest

from _contents_helpers import d, f, hard, layer_tar, mem_image, sym
from _scan_cache import pandas_dedup, write_cache_from_images, write_layer_file, write_rows
from layerlab.errors import AnalysisError
from layerlab.scan.queries import Dedup, dedup, files_sql

pytest.importorskip("duckdb")

L = {k: "sha256:" + k * 64 for k in "1234"}


def _row(path, type="file", size=0, hash=None):
    return {"path": path, "type": type, "size": size, "hash": hash}


@pytest.fixture(scope="module")
def hand_cache(tmp_path_factory):
    """Three images over four layers; L4 has no file table, one layer reference has no diff_id.

        img1: L1 L2        img2: L1 L3        img3: L1 L2 L4 (+ a layer without diff_id)
    content (regular, hashed, size > 0):
        L1: bin/a h1 100, bin/b h2 50                      (+ an empty file, a dir, a symlink, a hard link)
        L2: usr/a-copy h1 100, opt/b h2 50, opt/new h3 30  (+ a regular file without hash)
        L3: bin/a h1 100, data/same1 h4 10, data/same2 h4 10
    """
    root = tmp_path_factory.mktemp("hand") / "cache"
    write_layer_file(root, L["1"], [
        _row("bin", "dir"), _row("bin/a", size=100, hash="xxh128:h1"), _row("bin/b", size=50, hash="xxh128:h2"),
        _row("etc/empty", size=0, hash="xxh128:h0"), {**_row("bin/c", "symlink"), "link_target": "a"},
        {**_row("bin/d", "hardlink"), "link_target": "bin/a"},
    ])
    write_layer_file(root, L["2"], [
        _row("usr/a-copy", size=100, hash="xxh128:h1"), _row("opt/b", size=50, hash="xxh128:h2"),
        _row("opt/new", size=30, hash="xxh128:h3"), _row("opt/nohash", size=5, hash=None),
    ])
    write_layer_file(root, L["3"], [
        _row("bin/a", size=100, hash="xxh128:h1"), _row("data/same1", size=10, hash="xxh128:h4"),
        _row("data/same2", size=10, hash="xxh128:h4"),
    ])
    refs = [("img1", 0, L["1"]), ("img1", 1, L["2"]), ("img2", 0, L["1"]), ("img2", 1, L["3"]),
            ("img3", 0, L["1"]), ("img3", 1, L["2"]), ("img3", 2, L["4"]), ("img3", 3, None)]
    sizes = {L["1"]: 1000, L["2"]: 2000, L["3"]: 3000, L["4"]: 4000, None: None}
    layers = pd.DataFrame([{"image": i, "position": p, "diff_id": dd, "digest": None, "size": sizes[dd],
                            "compressed_size": None, "media_type": None, "source": "hand:"} for i, p, dd in refs])
    layers["size"] = layers["size"].astype("Int64")
    layers["compressed_size"] = layers["compressed_size"].astype("Int64")
    write_rows(root, "layers", layers)
    write_rows(root, "images", pd.DataFrame({"image": ["img1", "img2", "img3"], "scan_source": "hand:"}))
    return root


def test_dedup_by_hand(hand_cache):
    r = dedup(hand_cache)
    assert isinstance(r, Dedup)
    s = r.summary
    # 8 references, one without diff_id; 4 distinct layers, L4 not cached -> 6 cached references of 3 layers
    assert (s["layer_refs"], s["distinct_layers"], s["cached_layers"], s["cached_refs"]) == (7, 4, 3, 6)
    assert s["refs_without_diff_id"] == 1 and s["images"] == 3
    # stored copies: L1 2 (150 B), L2 3 (180 B), L3 3 (120 B)
    assert (s["stored_files"], s["stored_bytes"]) == (8, 450)
    # (h1,100) (h2,50) (h3,30) (h4,10); h3 alone is stored once
    assert (s["distinct_contents"], s["distinct_content_bytes"], s["singletons"]) == (4, 190, 1)
    assert s["distinct_paths"] == 7  # bin/a twice
    assert (s["distinct_path_contents"], s["distinct_path_content_bytes"]) == (7, 350)
    assert s["files_without_hash"] == 1

    t = r.table.set_index("level")
    # every reference stores its layer: L1 x3, L2 x2, L3 x1 -> 15 files, 930 bytes
    assert t.loc["none", ["layers", "files", "bytes"]].tolist() == [6, 15, 930]
    assert t.loc["layer", ["layers", "files", "bytes"]].tolist() == [3, 8, 450]
    assert pd.isna(t.loc["file", "layers"]) and t.loc["file", ["files", "bytes"]].tolist() == [4, 190]
    assert t["files_ratio"].tolist() == pytest.approx([1.0, 15 / 8, 15 / 4])
    assert t["bytes_ratio"].tolist() == pytest.approx([1.0, 930 / 450, 930 / 190])
    assert t["saved_bytes"].tolist() == [0, 480, 740]
    assert t.loc["file", "saved_vs_layer_bytes"] == 260 and r.file_store_saved_bytes == 260

    lv = r.levels.set_index("level")
    assert lv.loc["layer", ["total", "unique", "singletons"]].tolist() == [6, 3, 1]  # L3 used once
    assert lv.loc["file by content", "unique_fraction"] == pytest.approx(4 / 8)
    assert lv.loc["file by content", "unique_bytes_fraction"] == pytest.approx(190 / 450)
    assert lv.loc["file by path", "unique"] == 7 and pd.isna(lv.loc["file by path", "unique_bytes"])

    top = r.top_files
    assert top["hash"].tolist() == ["xxh128:h1", "xxh128:h2", "xxh128:h4"]
    assert top["copies"].tolist() == [3, 2, 2]
    assert top["layers"].tolist() == [3, 2, 1]
    assert top["images"].tolist() == [3, 3, 1]
    assert top["paths"].tolist() == [2, 2, 2]
    assert top["example_path"].tolist() == ["bin/a", "bin/b", "data/same1"]
    assert top["scope"].tolist() == ["across images", "across images", "same layer"]
    assert top["saved_bytes"].tolist() == [200, 50, 10]
    assert top["image_list"].iloc[2] == ["img2"]
    assert top["layer_list"].iloc[0] == sorted([L["1"], L["2"], L["3"]])

    reuse = r.layer_reuse.set_index("diff_id")
    assert reuse.loc[L["1"], ["references", "images", "size", "saved_bytes"]].tolist() == [3, 3, 1000, 2000]
    assert not reuse.loc[L["4"], "cached"] and pd.isna(reuse.loc[L["4"], "files"])
    dist = r.reuse_distribution.set_index("references")
    assert dist.loc[1, ["layers", "bytes"]].tolist() == [2, 7000]  # L3, L4
    assert dist.loc[3, ["layers", "referenced_bytes"]].tolist() == [1, 3000]
    assert any("1 of 4 distinct layers have no file table" in n for n in r.notes)
    assert "3 images" in repr(r) and "layerlab.Dedup" in r._repr_html_()


def test_top_is_limited_and_lists_are_cut(hand_cache):
    r = dedup(hand_cache, top=1, list_limit=2)
    assert r.top_files["hash"].tolist() == ["xxh128:h1"]
    assert r.top_files["layer_list"].iloc[0] == sorted([L["1"], L["2"], L["3"]])[:2]
    assert r.top_files["images"].iloc[0] == 3  # the count stays exact


def test_files_sql_examples(hand_cache):
    by_path = files_sql(hand_cache, "SELECT path, count(*) AS n FROM files WHERE type = 'file' "
                                    "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1")
    assert by_path.to_dict("records") == [{"path": "bin/a", "n": 2}]
    # per image, through the layers view: img2 holds L1 and L3 -> bin/a twice
    per_image = files_sql(hand_cache, "SELECT l.image, count(*) AS n FROM layers l JOIN files f USING (diff_id) "
                                      "WHERE f.path = ? GROUP BY 1 ORDER BY 1", ["bin/a"])
    assert per_image.to_dict("records") == [{"image": "img1", "n": 1}, {"image": "img2", "n": 2},
                                            {"image": "img3", "n": 1}]
    assert files_sql(hand_cache, "SELECT count(*) AS n FROM images")["n"].tolist() == [3]


def test_files_sql_on_a_connection(hand_cache):
    import duckdb

    con = duckdb.connect()
    # a caller (Scan) registers its own views, e.g. only some layers
    con.execute(f"CREATE VIEW files AS SELECT * FROM read_parquet('{hand_cache}/files/*.parquet')")
    con.execute(f"CREATE VIEW layers AS SELECT * FROM read_parquet('{hand_cache}/layers/*.parquet') "
                "WHERE image = 'img2'")
    assert files_sql(con, "SELECT count(DISTINCT diff_id) AS n FROM layers")["n"].tolist() == [2]
    r = dedup(con)
    # img2 alone: L1 (bin/a, bin/b) and L3 (bin/a, data/same1, data/same2) -> 5 copies of 3 contents
    assert (r.summary["stored_files"], r.summary["distinct_contents"]) == (5, 3)


def test_files_sql_errors_name_the_problem(hand_cache, tmp_path):
    with pytest.raises(AnalysisError, match="no_such_table"):
        files_sql(hand_cache, "SELECT * FROM no_such_table")
    with pytest.raises(AnalysisError, match="non-empty"):
        files_sql(hand_cache, "  ")
    with pytest.raises(AnalysisError, match="cache root"):
        files_sql(42, "SELECT 1")
    with pytest.raises(AnalysisError, match="non-negative"):
        dedup(hand_cache, top=-1)


def test_empty_cache(tmp_path):
    (tmp_path / "files").mkdir()
    r = dedup(tmp_path)
    assert r.summary["stored_files"] == 0 and len(r.top_files) == 0 and len(r.layer_reuse) == 0
    assert r.table["files"].tolist() == [0, 0, 0] and math.isnan(r.table["files_ratio"].iloc[0])


# --- against a plain pandas computation on images made here -------------------------------

def _fleet():
    base = layer_tar([d("bin"), f("bin/sh", b"shell" * 40), f("bin/ls", b"list" * 30), f("etc/os", b"debian"),
                      f("etc/empty", b""), sym("bin/sh2", "sh"), hard("bin/ls2", "bin/ls")])
    tools = layer_tar([d("usr"), f("usr/bin/curl", b"curl" * 50), f("usr/lib/libssl", b"ssl" * 70),
                       f("usr/bin/sh-copy", b"shell" * 40)])
    py = layer_tar([f("usr/lib/libssl", b"ssl" * 70), f("usr/lib/py/a.py", b"print(1)\n" * 9),
                    f("usr/lib/py/b.py", b"print(1)\n" * 9), f("opt/os-copy", b"debian")])
    apps = [layer_tar([f("app/main.py", f"app {i}".encode() * 20), f("app/shared.py", b"common\n" * 11)])
            for i in range(3)]
    return [
        mem_image([base], name="team/base:1"),
        mem_image([base, tools], name="team/tools:1"),
        mem_image([base, tools, py], name="team/py:1"),
        mem_image([base, tools, py, apps[0]], name="a/app:1"),
        mem_image([base, tools, py, apps[1]], name="b/app:1"),
        mem_image([base, py, apps[2]], name="c/app:1"),
    ]


def test_dedup_agrees_with_pandas_on_real_images(tmp_path):
    images = _fleet()
    root = tmp_path / "cache"
    write_cache_from_images(root, images)
    r = dedup(root, top=50)
    from layerlab import Fleet

    fleet = Fleet(_fleet())
    files = fleet.files(cache_dir=False, progress=False)
    first = files.drop_duplicates("diff_id")[["diff_id", "image", "position"]]
    stored = files.merge(first, on=["diff_id", "image", "position"])  # one copy of each distinct layer
    want = pandas_dedup(stored, fleet.layers())
    for k, v in want.items():
        if k != "top":
            assert r.summary[k] == v, k
    assert r.top_files["hash"].tolist() == want["top"]["hash"].tolist()
    for col in ("copies", "layers", "paths", "images", "saved_bytes"):
        assert r.top_files[col].tolist() == want["top"][col].tolist(), col
    # the figures a reader checks at a glance, from how _fleet() is built:
    # base, tools, py and 3 app layers: 6 distinct layers in 1+2+3+4+4+3 = 17 references;
    # the base is used by all 6 images
    assert (r.summary["distinct_layers"], r.summary["layer_refs"]) == (6, 17)
    assert r.layer_reuse.iloc[0][["references", "images"]].tolist() == [6, 6]


def test_dedup_agrees_with_the_pandas_duplicates_analysis(tmp_path):
    """ll.duplicates() (pandas, in layerlab.analysis) counts the same stored copies."""
    import layerlab as ll

    images = _fleet()
    root = tmp_path / "cache"
    write_cache_from_images(root, images)
    r = dedup(root, top=50)
    dup = ll.duplicates(ll.Fleet(_fleet()), cache_dir=False, progress=False)
    s = dup.attrs["summary"]
    assert (r.summary["stored_files"], r.summary["stored_bytes"]) == (s["files"], s["stored_bytes"])
    assert r.summary["distinct_contents"] == s["unique_contents"]
    assert r.file_store_saved_bytes == s["saved_bytes"]
    cols = ["hash", "size", "copies", "layers", "images", "paths", "example_path", "scope", "saved_bytes"]
    pd.testing.assert_frame_equal(r.top_files[cols], dup[cols], check_dtype=False)


def test_scan_object_answers_with_its_own_cache(tmp_path):
    """Scan.files_sql / Scan.dedup ask the cache the scan wrote, about that scan's images."""
    from _archive_helpers import layer_tar, write_legacy_archive

    import layerlab as ll

    base = layer_tar({"etc/os-release": b"debian 12\n", "bin/tool": b"T" * 500})
    app = layer_tar({"app/lib.py": b"L" * 200, "opt/tool-copy": b"T" * 500})
    write_legacy_archive(tmp_path / "a.tar", [base, app], tags=("t/a:1",))
    s = ll.scan([str(tmp_path / "a.tar")], cache=tmp_path / "c", workers=1, progress=False)
    n = s.files_sql("SELECT count(*) AS n FROM files WHERE type = 'file'")
    assert int(n["n"].iloc[0]) == 4            # os-release, tool, lib.py, tool-copy
    # by hand: 10 + 500 + 200 + 500 = 1,210 bytes stored in 4 files; tool-copy repeats bin/tool's content,
    # so 3 distinct contents of 710 bytes and a file-level store saves 500 bytes
    row = s.dedup().table.set_index("level").loc["file"]
    assert (int(row["files"]), int(row["bytes"]), int(row["saved_bytes"])) == (3, 710, 500)
