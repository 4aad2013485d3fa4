"""Fleet totals and pull costs: hand-worked fleets, the article's naive vs
layered scenario, and the published repo-info 2018 figures."""
from __future__ import annotations

import pandas as pd
import pytest

import layerlab as ll
from layerlab.analysis import fleet_totals, overlap, pull_cost, pull_table
from layerlab.errors import AnalysisError
from layerlab.model import Fleet, Image, Layer

from conftest import REPO_INFO_2018


def D(n):
    return "sha256:%064x" % n


def mk(name, layers, id=None):
    """layers: [(n, size, compressed)] -> diff_id D(n), digest D(1000+n)"""
    return Image(name, "test", [Layer(i, D(n), digest=D(1000 + n), size=s, compressed_size=c)
                                for i, (n, s, c) in enumerate(layers)], id=id)


B, T, W, P = (1, 100, 40), (2, 10, 4), (3, 5, 2), (4, 7, 3)


@pytest.fixture
def fleet():
    return Fleet([mk("web:1", [B, T, W], "X"), mk("web:latest", [B, T, W], "X"),
                  mk("api", [B, T, P], "Y"), mk("odd", [T, B], "Z")])


def table(t):
    return {(r.accounting, r.measure): (None if pd.isna(r.stored_bytes) else int(r.stored_bytes), int(r.units)) for r in t.itertuples()}


def test_totals_by_hand(fleet):
    t = fleet_totals(fleet)  # a Fleet: image ids joined in, so the two web tags are one image
    got = table(t)
    assert got[("references", "size")] == (457, 11)        # 115 + 115 + 117 + 110
    assert got[("images", "size")] == (342, 8)             # web counted once
    assert got[("images", "compressed_size")] == (137, 8)  # 46 + 47 + 44
    assert got[("chain_id", "size")] == (232, 6)           # B, B/T, B/T/W, B/T/P, T, T/B
    assert got[("diff_id", "size")] == (122, 4)
    assert got[("digest", "compressed_size")] == (49, 4)
    assert t.set_index(["accounting", "measure"]).loc[("digest", "compressed_size"), "saved_bytes"] == 137 - 49
    assert t["complete"].all()
    assert list(t.columns) == ["accounting", "measure", "stored_bytes", "units", "unknown_key_rows", "unknown_size_units",
                               "complete", "saved_bytes", "ratio", "description"]
    # as a frame without ids, every reference is an image of its own
    assert table(fleet_totals(fleet.layers()))[("images", "size")] == (457, 11)


def test_unknown_keys_and_sizes_are_reported():
    f = Fleet([Image("a", "test", [Layer(0, None, size=10), Layer(1, None, size=None)])])
    t = fleet_totals(f).set_index(["accounting", "measure"])
    assert pd.isna(t.loc[("chain_id", "size"), "stored_bytes"]) and t.loc[("chain_id", "size"), "unknown_key_rows"] == 2
    assert t.loc[("images", "size"), "stored_bytes"] == 10 and t.loc[("images", "size"), "unknown_size_units"] == 1
    assert not t.loc[("images", "size"), "complete"]


FILES = pd.DataFrame({
    "image": ["web:1", "web:1", "web:1", "web:1", "api", "api"],
    "position": [0, 0, 0, 1, 0, 1],
    "path": ["bin/busybox", "etc/passwd", "etc", "usr/bin/bb", "bin/busybox", "app"],
    "type": ["file", "file", "dir", "file", "file", "file"],
    "size": [1000, 30, 0, 1000, 1000, 50],
    "hash": ["h1", "h2", None, "h1", "h1", "h3"],
})


def test_content_level_totals_and_overlap(fleet):
    t = table(fleet_totals(fleet, files=FILES))
    assert t[("content", "size")] == (1080, 3)  # h1 + h2 + h3, each once
    o = overlap(FILES, key="content", symmetric=False)
    assert len(o) == 1 and int(o.shared_bytes[0]) == 1000 and int(o.shared_layers[0]) == 1
    assert int(o.image_bytes[0]) in (1030, 1050)


def article(naive: bool):
    """App1/App2 from the article: OS, security tools, general tools, libraries, code.
    Naive: each app installs everything itself in its own order (different blobs
    above the OS); layered: bases f1..f4 shared, apps differ only in code."""
    OS, SEC, TOOLS, LIB = (1, 100, 100), (2, 20, 20), (3, 30, 30), (4, 40, 40)
    if naive:
        return Fleet([mk("app1", [OS, SEC, TOOLS, LIB, (5, 5, 5)]),
                      mk("app2", [OS, (13, 30, 30), (12, 20, 20), (14, 40, 40), (6, 6, 6)])])
    return Fleet([mk("f1", [OS]), mk("f2", [OS, SEC]), mk("f3", [OS, SEC, TOOLS]), mk("f4", [OS, SEC, TOOLS, LIB]),
                  mk("app1", [OS, SEC, TOOLS, LIB, (5, 5, 5)]), mk("app2", [OS, SEC, TOOLS, LIB, (6, 6, 6)])])


def test_pull_cost_article_scenario():
    naive, layered = article(True), article(False)
    assert pull_cost(naive, "app2") == 196
    assert pull_cost(naive, "app2", present=["app1"]) == 96        # only the OS layer is reused
    assert pull_cost(layered, "app2", present=["app1"]) == 6        # only the code layer is new
    assert pull_cost(layered, "app1", present=["f4"]) == 5
    assert pull_cost(layered, "app1", present=["f1"]) == 95
    t = pull_table({"naive": naive, "layered": layered}, images=["app1", "app2"], present="previous")
    assert t[["fleet", "image", "pull_bytes"]].values.tolist() == [
        ["naive", "app1", 195], ["naive", "app2", 96], ["layered", "app1", 195], ["layered", "app2", 6]]
    assert t.loc[3, "present"] == "app1" and t.loc[3, "saved_fraction"] == pytest.approx(190 / 196)
    others = pull_table(layered, present="others").set_index("image")
    assert others.loc["f1", "pull_bytes"] == 0 and others.loc["app2", "pull_bytes"] == 6
    cold = pull_table(layered).set_index("image")
    assert (cold["pull_bytes"] == cold["image_bytes"]).all()


def test_pull_cost_names_the_image_column_like_every_analysis():
    # the image to pull is ``target``; ``image`` names the column, as in overlap() and pull_table()
    lay = article(True).layers().rename(columns={"image": "ref"})
    assert pull_cost(lay, "app2", present=["app1"], image="ref") == 96
    assert pull_cost(data=lay, target="app2", image="ref") == 196
    with pytest.raises(TypeError):
        pull_cost(lay, "app2", ["app1"])  # present is keyword-only: a list is never taken for a column


def test_pull_table_places_images_on_hosts():
    # hosts= prices every image on every host; present= keeps its meaning
    layered = article(False)
    t = pull_table(layered, ["app1", "app2"], hosts={"web": ["f4"], "db": ["f1"], "new": []})
    assert t.columns[0] == "host" and "seconds" not in t.columns
    assert t[["host", "image", "pull_bytes"]].values.tolist() == [
        ["web", "app1", 5], ["web", "app2", 6], ["db", "app1", 95], ["db", "app2", 96],
        ["new", "app1", 195], ["new", "app2", 196]]
    assert t.loc[2, "present"] == "f1"
    both = pull_table({"naive": article(True), "layered": layered}, ["app2"], hosts={"h": ["app1"]})
    assert both[["host", "fleet", "pull_bytes"]].values.tolist() == [["h", "naive", 96], ["h", "layered", 6]]
    with pytest.raises(AnalysisError, match=r"either present= .* or\s+hosts="):
        pull_table(layered, hosts={"h": ["f1"]}, present="previous")
    with pytest.raises(AnalysisError, match="hosts"):
        pull_table(layered, hosts={"h": "f1"})
    with pytest.raises(AnalysisError, match="not in the frame"):
        pull_table(layered, hosts={"h": ["nope"]})


def test_pull_errors():
    f = Fleet([Image("a", "test", [Layer(0, D(1), digest=D(9), size=5, compressed_size=None)])])
    with pytest.raises(AnalysisError, match="no known"):
        pull_cost(f, "a")
    assert pull_cost(f, "a", key="diff_id") == 5
    with pytest.raises(AnalysisError, match="not in the frame"):
        pull_cost(f, "zzz")
    with pytest.raises(AnalysisError, match="present="):
        pull_table(f, present="everything")


@pytest.fixture(scope="module")
def repo_info_fleet():
    if not REPO_INFO_2018.is_dir():
        pytest.skip(f"{REPO_INFO_2018} is absent")
    try:
        return ll.load_many(f"repo-info:{REPO_INFO_2018 / 'repos'}")
    except (ImportError, ll.SourceError) as e:
        pytest.skip(f"the repo-info source is not available yet: {e}")


def test_repo_info_2018_published_figures(repo_info_fleet):
    """README of ../shared: linux/amd64, 976 distinct images (Image ID), 26,163
    tag-layer rows, 3,167 distinct digests; 171.25 GB of layers summed over
    distinct images, 63.39 GB over distinct digests (compressed sizes)."""
    images = repo_info_fleet.images()
    layers = repo_info_fleet.layers().merge(images[["image", "id", "platform"]], on="image")
    layers = layers[layers["platform"] == "linux/amd64"]
    assert len(layers) == 26_163
    t = fleet_totals(layers, image_id="id").set_index(["accounting", "measure"])
    assert t.loc[("images", "compressed_size"), "stored_bytes"] / 1e9 == pytest.approx(171.25, abs=0.005)
    assert t.loc[("digest", "compressed_size"), "stored_bytes"] / 1e9 == pytest.approx(63.39, abs=0.005)
    assert t.loc[("digest", "compressed_size"), "units"] == 3_167
    assert t.loc[("references", "compressed_size"), "units"] == 26_163
    assert layers.drop_duplicates("id")["id"].nunique() == 976


@pytest.mark.engine
@pytest.mark.registry
def test_pull_costs_match_skopeo_pulling_onto_one_host(engine, registry, tmp_path):
    """Push three images to a real registry, load them with layerlab
    (docker://), predict what each pull downloads onto a host that already
    holds the ones pulled before (key=digest, compressed bytes), and compare
    with a real client: ``skopeo copy`` from the registry into one OCI layout
    (the "host") fetches only blobs the layout lacks; the layer blobs that
    appear in it after each copy are what was downloaded."""
    import json as _json

    registrykit = pytest.importorskip("registrykit")
    enginekit = pytest.importorskip("enginekit")
    pytest.importorskip("layerlab.sources.remote")
    from test_overlap import DOCKERFILES, TAG

    enginekit.import_base(enginekit.BASE_TAG)
    for name in ["tools", "app1", "app2"]:
        enginekit.build(f"{TAG}-{name}:1", DOCKERFILES[name].format(base=enginekit.BASE_TAG, tools=f"{TAG}-tools:1"))
        registrykit.skopeo("copy", "--quiet", "--dest-tls-verify=false",
                           f"docker-daemon:{TAG}-{name}:1", f"docker://{registry.ref(f'pullcost/{name}:1')}")
    order = ["app1", "app2", "tools"]
    refs = {n: registry.ref(f"pullcost/{n}:1") for n in order}
    fleet = ll.load_many([f"docker://{refs[n]}" for n in order])
    names = dict(zip(order, [img.reference for img in fleet]))
    predicted = pull_table(fleet, images=[names[n] for n in order], present="previous", key="digest")

    host = tmp_path / "host"
    blobs_dir = host / "blobs" / "sha256"
    seen: set[str] = set()
    for n, row in zip(order, predicted.itertuples()):
        layer_digests = {l["digest"].split(":")[1] for l in _json.loads(registrykit.inspect_raw(refs[n]))["layers"]}
        registrykit.skopeo("copy", "--quiet", "--src-tls-verify=false", f"docker://{refs[n]}", f"oci:{host}:{n}")
        now = {p.name: p.stat().st_size for p in blobs_dir.iterdir()}
        fetched = (set(now) - seen) & layer_digests
        assert row.pull_layers == len(fetched), n
        assert row.pull_bytes == sum(now[d] for d in fetched), n
        seen = set(now)
    # and the shape of it: app2 reuses base and tools; tools comes for free after both apps
    assert predicted["pull_layers"].tolist()[1:] == [2, 0]
