"""Snapshots that ship per-layer file tables (``files/``) answer content questions without blobs."""
import shutil

import pandas as pd
import pytest

import layerlab as ll
from conftest import DATA

SAMPLE = DATA / "sample"
pytestmark = pytest.mark.skipif(not (SAMPLE / "files").is_dir(), reason="data/sample/files is absent")


def test_snapshot_files_come_from_its_own_tables(tmp_path):
    fleet = ll.load_many(str(SAMPLE))
    img = fleet["layerlab-sample/naive-app1:1"]
    assert img.blobs is None and img.has_file_tables
    own = img.files(progress=False, cache_dir=False)  # no user cache at all: only the snapshot's tables
    explicit = ll.load_many(str(SAMPLE))["layerlab-sample/naive-app1:1"]
    explicit.files_dir = None
    via_cache = explicit.files(progress=False, cache_dir=SAMPLE / "files")
    pd.testing.assert_frame_equal(own, via_cache)
    assert set(own["position"]) == set(range(len(img.layer_list)))


def test_merge_on_snapshot_is_exact():
    fleet = ll.load_many(str(SAMPLE))
    img = fleet["layerlab-sample/naive-app1:1"]
    lay = img.layers()
    pred = ll.what_if_merge(img, [(3, 4)], fleet=fleet, progress=False)
    g = pred.groups.iloc[0]
    assert g["status"] == "exact"
    assert int(g["size_before_bytes"]) == int(lay.loc[lay.position.isin([3, 4]), "size"].sum())


def test_snapshot_without_tables_says_so(tmp_path):
    shutil.copytree(SAMPLE, tmp_path / "s", ignore=shutil.ignore_patterns("files"))
    img = ll.load_many(str(tmp_path / "s"))["layerlab-sample/app1:1"]
    assert not img.has_file_tables
    with pytest.raises(ll.LayerlabError, match="not available"):
        img.files(progress=False, cache_dir=False)


def test_snapshot_format_is_written_and_a_newer_one_refused(tmp_path):
    """Fleet.save writes layerlab.snapshot's format; the snapshot: reader refuses a newer format."""
    import json

    from layerlab import snapshot

    fleet = ll.load_many(f"snapshot:{SAMPLE}")
    out = tmp_path / "snap"
    fleet.save(out)
    import hashlib

    names = ["images.parquet", "layers.parquet", "history.parquet", "configs.parquet"]
    sums = {n: "sha256:" + hashlib.sha256((out / n).read_bytes()).hexdigest() for n in names}
    assert json.loads((out / "snapshot.json").read_text()) == {"format": 1, "images": len(fleet), "checksums": sums}
    assert {p.name for p in out.iterdir()} == {"images.parquet", "layers.parquet", "history.parquet",
                                                "configs.parquet", "snapshot.json"}
    back = ll.load_many(f"snapshot:{out}")
    assert back.layers().equals(fleet.layers()) and back.history().equals(fleet.history())
    (out / "snapshot.json").write_text(json.dumps({"format": snapshot.FORMAT + 1, "images": len(fleet)}))
    with pytest.raises(ll.LayerlabError, match="newer"):
        ll.load_many(f"snapshot:{out}")
