"""layerlab.analysis.notebook_helpers: the analyses moved out of notebook
cells.  Expected values come from how the fixtures are written (the article
fleet's steps and sizes, hand-made frames), not from layerlab's analyses."""
from __future__ import annotations

import pandas as pd
import pytest

import layerlab as ll
from _report_fleet import LIBS, OS, SEC, TOOLS, article_fleet, make_image
from layerlab.analysis import notebook_helpers as nh
from layerlab.errors import AnalysisError

APP1, APP2 = 2_000_000, 3_000_000


def test_choose_measure_falls_back_and_says_so():
    full = pd.DataFrame({"chain_id": ["c"], "digest": ["d"], "size": [1], "compressed_size": [1]})
    assert nh.choose_measure(full, "chain_id", True) == ("chain_id", "compressed_size", [])
    repo_info = pd.DataFrame({"chain_id": [None], "digest": ["d"], "size": [None], "compressed_size": [5]})
    key, size, notes = nh.choose_measure(repo_info, "chain_id", False)
    assert (key, size) == ("digest", "compressed_size")
    assert notes == ["these images record no chain_id; comparing layers by digest instead",
                     "these images record no size; counting compressed_size instead"]
    with pytest.raises(AnalysisError, match="digest"):
        nh.choose_measure(pd.DataFrame({"chain_id": [], "size": [], "compressed_size": []}))


def test_image_roles_from_the_label_or_the_name():
    roles = nh.image_roles(article_fleet()).set_index("image")
    assert roles.loc["naive/app2:1"].tolist() == ["app", "app2", "naive"]
    assert roles.loc["layered/f1:1"].tolist()[0:1] == ["base"] and roles.loc["layered/f1:1", "variant"] == "layered"
    assert pd.isna(roles.loc["layered/f1:1", "app"])
    assert (roles.dtypes == "string").all()
    unlabelled = nh.image_roles([make_image("team/web:1", [OS]), make_image("solo:2", [OS])]).set_index("image")
    assert unlabelled.loc["team/web:1"].tolist() == ["app", "web", "team"]
    assert unlabelled.loc["solo:2"].tolist() == ["app", "solo", "all"]
    mixed = nh.image_roles([make_image("x:1", [OS]), make_image("y:1", [OS], "app: y (v)")]).set_index("image")
    assert mixed.loc["x:1", "kind"] == "other"


def test_a_base_is_found_below_an_image_with_an_unknown_layer_above_it():
    """The base's whole chain starts the app's; the app's own top layer is known by neither
    diff_id nor digest, which says nothing about the layers below it."""
    app = make_image("team/web:1", [OS, ("COPY web /srv", 5)])
    app.layer_list[1].diff_id = None
    app.refresh_chain_ids()
    roles = nh.image_roles([make_image("team/os:1", [OS]), app]).set_index("image")
    assert roles.loc["team/os:1", "kind"] == "base" and roles.loc["team/web:1", "kind"] == "app"


def test_variant_summary_counts_shared_layers_once():
    layers = article_fleet().layers()
    by_variant = {v: layers[layers["image"].isin([f"{v}/app1:1", f"{v}/app2:1"])] for v in ("layered", "naive")}
    pulls = pd.DataFrame({"variant": ["layered", "layered", "naive", "naive"], "pull_bytes": [7, 11, 13, 17]})
    s = nh.variant_summary(by_variant, pulls, size="size", key="diff_id")
    base = OS[1] + SEC[1] + TOOLS[1] + LIBS[1]
    assert s.loc["naive", "sum_of_image_sizes"] == 2 * base + APP1 + APP2
    # same content (diff_id) is stored once, whatever the order
    assert s.loc["naive", "stored_on_host"] == base + APP1 + APP2
    assert s.loc["naive", "saved_by_sharing"] == base
    assert s.loc["layered", "downloaded_after_first_app"] == 11 and s.loc["naive", "apps"] == 2


def test_image_families_and_totals():
    lay = pd.DataFrame({
        "image": ["deb:1", "deb:1", "py:3", "py:3", "py:3", "alp:1", "py:3-alp", "py:3-alp"],
        "position": [0, 1, 0, 1, 2, 0, 0, 1],
        "digest": ["a", "b", "a", "b", "c", "x", "x", "y"],
        "compressed_size": [10, 5, 10, 5, 7, 3, 3, 4],
    })
    fam = nh.image_families(lay).set_index("image")
    assert fam["root_image"].to_dict() == {"deb:1": "deb:1", "py:3": "deb:1", "alp:1": "alp:1", "py:3-alp": "alp:1"}
    assert fam.loc["py:3", "family"] == "deb"
    tot = nh.family_totals(lay, fam.reset_index())
    assert tot.to_dict("records") == [
        {"family": "deb", "images": 2, "repos": 2, "unshared_bytes": 37, "shared_stored_bytes": 22,
         "stored_fraction": 0.595},
        {"family": "alp", "images": 2, "repos": 2, "unshared_bytes": 10, "shared_stored_bytes": 7,
         "stored_fraction": 0.7},
    ]


def test_families_read_out_from_the_numbers():
    # deb:1 = a b; bp:1 = a b c (on deb:1); py:3 and go:1 stand on bp:1; alp:1 = x, ap:1 = x y (on alp:1)
    lay = pd.DataFrame({
        "image": ["deb:1"] * 2 + ["bp:1"] * 3 + ["py:3"] * 4 + ["go:1"] * 4 + ["alp:1", "ap:1", "ap:1"],
        "position": [0, 1, 0, 1, 2, 0, 1, 2, 3, 0, 1, 2, 3, 0, 0, 1],
        "digest": ["a", "b", "a", "b", "c", "a", "b", "c", "p", "a", "b", "c", "g", "x", "x", "y"],
        "compressed_size": [10, 5, 10, 5, 20, 10, 5, 20, 1, 10, 5, 20, 2, 3, 3, 4],
    })
    assert nh.direct_bases(lay) == {"bp:1": "deb:1", "py:3": "bp:1", "go:1": "bp:1", "ap:1": "alp:1"}
    fam = nh.image_families(lay)
    tot = nh.family_totals(lay, fam)
    text = nh.describe_families(tot, nh.direct_bases(lay), fam)
    # deb family: 4 images, 15+35+36+37 = 123 B summed, a b c p g stored once = 38 B (31%);
    # alp family: 3+7 = 10 B summed, 7 B stored (70%)
    assert text.startswith("Reading it: the **deb** family's 4 images store 38 B of their summed 123 B (31%): ")
    assert "most often `bp:1` (2 images)" in text and "`deb:1`" not in text  # deb:1 is the base of one image
    assert text.endswith("**alp** shares least of the families shown: its 2 images store 70% of their summed size.")
    # no family of two images: nothing to compare
    alone = tot.assign(images=1)
    assert "no family shown has two images or more" in nh.describe_families(alone, {}, fam)


def test_compare_plan_against_built_images():
    savings = pd.DataFrame({"scope": ["app", "app", "host"], "pulled_after_bytes": [100, 40, None],
                            "stored_after_bytes": [None, None, 150]})
    layers = pd.DataFrame({"image": ["a:1", "a:1", "b:1", "b:1"], "chain_id": ["c1", "c2", "c1", "c3"],
                           "size": [90, 10, 90, 45]})
    out = nh.compare_plan(savings, layers, ["a:1", "b:1"])
    assert out.to_dict("list") == {"quantity": ["bytes stored for both apps", "bytes the second app adds"],
                                   "predicted": [150, 40], "built": [145, 45], "difference": [-5, 5]}
    with pytest.raises(AnalysisError, match="two built apps"):
        nh.compare_plan(savings, layers, ["a:1"])


def test_demo_archive_loads_as_written(tmp_path):
    layers = [[("etc/os-release", b"x" * 100, 0o644)], [("data/.wh.gone", None, 0), ("data/new", b"hi", 0o600)]]
    path = nh.demo_archive(tmp_path / "demo.tar", layers, ["ADD os", "RUN new"], tag="demo/t:1")
    assert [p.name for p in tmp_path.iterdir()] == ["demo.tar"]
    img = ll.load(f"docker-archive:{path}")
    assert img.reference == "demo/t:1"
    assert img.history()["created_by"].tolist() == ["ADD os", "RUN new"]
    files = img.files(cache_dir=False, progress=False)
    rows = sorted(zip(files["position"], files["path"], files["size"], files["mode"]))
    # the whiteout is read back as the deletion of data/gone
    assert rows == [(0, "etc/os-release", 100, 0o644), (1, "data/gone", 0, 0o644), (1, "data/new", 2, 0o600)]
    assert img.layers()["size"].tolist() == [100, 2]
    with pytest.raises(AnalysisError, match="2 layers but 1 commands"):
        nh.demo_archive(tmp_path / "x.tar", layers, ["one"])


def test_efficiency_without_writing_prefers_the_file_tables(tmp_path):
    from pathlib import Path

    sample = Path(__file__).resolve().parent.parent / "data" / "sample"
    if not (sample / "files").is_dir():
        pytest.skip(f"{sample}/files is absent")
    fleet = ll.load_many(str(sample))
    img = fleet["layerlab-sample/app1:1"]
    before = sorted(p.name for p in (sample / "files").rglob("*"))
    eff, (target, opts), notes = nh.efficiency_without_writing(img, sample / "files", max_bytes=10)
    assert notes == [] and target.blobs is None and opts == {"cache_dir": sample / "files", "progress": False}
    assert eff.score == ll.efficiency(target, **opts).score
    assert sorted(p.name for p in (sample / "files").rglob("*")) == before, "nothing written"
    # an image with neither blobs nor file tables, and an empty cache: nothing to read, the note says why
    bare = make_image("bare/x:1", [OS])
    eff, how, notes = nh.efficiency_without_writing(bare, tmp_path, max_bytes=None)
    assert (eff, how) == (None, None)
    assert notes[0] == f"bare/x:1: the file tables in {tmp_path} do not cover its layers"
    assert notes[1].startswith("bare/x:1: loaded without layer contents") and len(notes) == 2
    assert list(tmp_path.iterdir()) == []
    eff, how, notes = nh.efficiency_without_writing(bare, None)
    assert (eff, how) == (None, None) and len(notes) == 1 and "without layer contents" in notes[0]


def test_efficiency_without_writing_says_when_an_image_is_over_the_limit(tmp_path):
    """An archive (contents readable) over the limit: one note naming the limit, never "not available"."""
    from _archive_helpers import layer_tar, write_legacy_archive

    path = tmp_path / "a.tar"
    write_legacy_archive(path, [layer_tar({"big": b"x" * 3000})], tags=("lim/a:1",))
    img = ll.load(f"docker-archive:{path}")
    eff, how, notes = nh.efficiency_without_writing(img, None, max_bytes=1000, limit_name="efficiency_max_bytes")
    assert (eff, how) == (None, None)
    # 3000 bytes of content: Docker's size rule counts the entries' sizes (3000 B = "3 kB" in SI units)
    assert notes == ["lim/a:1: its layers hold 3 kB, over efficiency_max_bytes (1 kB), so they were not read; "
                     "raise efficiency_max_bytes to read them"]
    eff, how, notes = nh.efficiency_without_writing(img, None, max_bytes=None)
    assert eff is not None and notes == []
