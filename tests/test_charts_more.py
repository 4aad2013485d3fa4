"""The comparison and tree charts (charts.compare, charts.trie): frames in,
column names as arguments, the frame's rows embedded, the encodings asked for.
Expected values are written by hand from the small frames below."""
from __future__ import annotations

import pandas as pd
import pytest

alt = pytest.importorskip("altair")

from layerlab import charts
from layerlab.errors import AnalysisError

EVIL = '</script><script>alert(1)</script> && rm -rf /'


def _rows(spec: dict) -> list[list[dict]]:
    """The datasets embedded in a chart spec (one per distinct frame)."""
    return list(spec["datasets"].values())


def _fold(spec) -> dict:
    """The fold transform of a chart (of its first layer when layered)."""
    where = spec["layer"][0] if "layer" in spec else spec
    return next(t for t in where.get("transform", []) if "fold" in t)


def test_tree_layout_places_leaves_in_order_and_parents_between_children():
    t = pd.DataFrame({"node": [1, 2, 3, 4, 5, 9], "parent": pd.array([None, 1, 2, 1, 4, 77], dtype="Int64")})
    # 1 -> 2 -> 3, 1 -> 4 -> 5; 9's parent is not a node: a second root (a leaf)
    assert t.assign(p=charts.tree_layout(t))["p"].tolist() == [0.5, 0.0, 0.0, 1.0, 1.0, 2.0]
    many = pd.DataFrame({"node": [1, 2, 3, 4], "parent": pd.array([None, 1, 1, 1], dtype="Int64")})
    assert charts.tree_layout(many).tolist() == [1.0, 0.0, 1.0, 2.0]
    # a long chain does not recurse
    chain = pd.DataFrame({"node": range(1, 5001), "parent": pd.array([None, *range(1, 5000)], dtype="Int64")})
    assert set(charts.tree_layout(chain)) == {0.0}
    with pytest.raises(AnalysisError, match="cycle"):
        charts.tree_layout(pd.DataFrame({"node": [1, 2], "parent": [2, 1]}))
    with pytest.raises(AnalysisError, match="repeated"):
        charts.tree_layout(pd.DataFrame({"node": [1, 1], "parent": [None, None]}))


def test_trie_chart():
    trie = pd.DataFrame({
        "node": [1, 2, 3, 4],
        "parent": pd.array([0, 1, 2, 1], dtype="Int64"),  # 0 (ROOT) dropped by the caller
        "depth": [1, 2, 3, 2],
        "step": ["FROM os", "RUN a " + "x" * 200, EVIL, "RUN b"],
        "apps": [("app1", "app2"), ("app1",), ("app1",), ("app2",)],
        "size": pd.array([100, 20, 3, None], dtype="Int64"),
        "image": pd.array(["f1", "app1", "app1", None], dtype="string"),
    })
    spec = charts.trie_chart(trie, missing="(shared)", label_chars=30, title="T").to_dict()
    assert len(spec["layer"]) == 3
    datasets = _rows(spec)
    node_rows = next(d for d in datasets if len(d) == 4)
    edge_rows = next(d for d in datasets if len(d) == 3)
    by_node = {r["node"]: r for r in node_rows}
    assert by_node[2]["_label"] == "RUN a " + "x" * 12 + " … " + "x" * 9  # 30 characters, shortened in the middle
    assert by_node[3]["step"] == EVIL  # data, whole, in the tooltip
    assert by_node[4]["_color"] == "(shared)" and by_node[1]["_color"] == "f1"
    assert by_node[1]["apps"] == "app1, app2"
    assert [by_node[n]["_x"] for n in (1, 2, 3, 4)] == [0.5, 0.0, 0.0, 1.0]
    assert sorted((r["parent"], r["node"]) for r in edge_rows) == [(1, 2), (1, 4), (2, 3)]
    enc = spec["layer"][1]["encoding"]
    assert enc["color"]["field"] == "_color" and enc["y"]["scale"]["reverse"] is True
    assert {t["field"] for t in enc["tooltip"]} == {"step", "apps", "size", "image"}
    with pytest.raises(AnalysisError, match="nope"):
        charts.trie_chart(trie, color="nope")


def test_grouped_bars_fold_the_value_columns():
    df = pd.DataFrame({"family": ["debian", "alpine"], "without": [300, 20], "with": [100, 15]})
    spec = charts.grouped_bars(df, "family", ["without", "with"], labels=True, title="F").to_dict()
    (rows,) = _rows(spec)
    assert rows == [{"family": "debian", "without": 300, "with": 100}, {"family": "alpine", "without": 20, "with": 15}]
    layer = spec["layer"][0]
    assert _fold(spec) == {"fold": ["without", "with"], "as": ["measure", "bytes"]}
    enc = layer["encoding"]
    assert enc["y"]["field"] == "family" and enc["y"]["sort"] == "-x"
    assert enc["yOffset"]["field"] == "measure" and enc["x"]["field"] == "bytes"
    assert spec["layer"][1]["mark"]["type"] == "text"
    unsorted = charts.grouped_bars(df, "family", ["without"], sort=False).to_dict()
    assert unsorted["encoding"]["y"].get("sort", None) is None and unsorted["mark"]["type"] == "bar"
    with pytest.raises(AnalysisError, match=r"\['nope'\]"):
        charts.grouped_bars(df, "family", ["nope"])


def test_pull_bars_and_layer_usage_bars():
    pulls = pd.DataFrame({"variant": ["naive", "naive"], "image": ["a", "b"],
                          "pull_bytes": [10, 4], "present_bytes": [0, 6]})
    spec = charts.pull_bars(pulls).to_dict()
    assert _fold(spec)["fold"] == ["pull_bytes", "present_bytes"]
    assert spec["encoding"]["row"]["field"] == "variant" and spec["encoding"]["y"]["field"] == "image_label"
    (rows,) = _rows(spec)
    assert [r["pull_bytes"] for r in rows] == [10, 4]
    assert "row" not in charts.pull_bars(pulls.drop(columns="variant"), row=None).to_dict()["encoding"]

    usage = pd.DataFrame({"chain_id": ["c1", "c2"], "size": [500, 70], "images": [3, 1],
                          "created_by": ["/bin/sh -c #(nop) ADD file:abc in / ", EVIL + " " + "y" * 200]})
    spec = charts.layer_usage_bars(usage, title="U").to_dict()
    (rows,) = _rows(spec)
    assert [r["created_by"] for r in rows] == usage["created_by"].tolist()
    assert all(len(r["command"]) <= 70 for r in rows) and rows[0]["command"] == "base layer (ADD file:abc in /)"
    assert spec["encoding"]["color"]["field"] == "images" and spec["encoding"]["x"]["field"] == "size"


def test_rebuild_lines_names_lines_without_the_common_prefix_and_suffix():
    rb = pd.DataFrame({"position": [0, 1], "created_by": ["a", "b"],
                       "rebuilt_before_bytes": [10, 5], "rebuilt_after_bytes": [8, 5]})
    spec = charts.rebuild_lines(rb).to_dict()
    assert _fold(spec)["fold"] == ["rebuilt_before_bytes", "rebuilt_after_bytes"]
    calc = next(t for t in spec["transform"] if "calculate" in t)
    # len("rebuilt_") = 8, len("_bytes") = 6: the legend reads "before" / "after"
    assert calc == {"calculate": "slice(datum.column, 8, -6)", "as": "when"}
    one = charts.rebuild_lines(rb, values=["rebuilt_after_bytes"], created_by=None).to_dict()
    assert next(t for t in one["transform"] if "calculate" in t)["calculate"] == "slice(datum.column, 0, datum.column.length)"


def test_new_charts_render_to_svg():
    vlc = pytest.importorskip("vl_convert")
    df = pd.DataFrame({"k": ["a", "b"], "v1": [3, 1], "v2": [2, 1]})
    trie = pd.DataFrame({"node": [1, 2], "parent": [0, 1], "depth": [1, 2], "step": ["s1", "s2"],
                         "apps": [("x",), ("x",)], "size": [1, 2], "image": ["i", "i"]})
    for chart in (charts.grouped_bars(df, "k", ["v1", "v2"], labels=True), charts.trie_chart(trie)):
        svg = vlc.vegalite_to_svg(chart.to_dict())
        assert svg.startswith("<svg") and "<script" not in svg


def test_layer_charts_take_column_names():
    from _report_fleet import article_fleet

    import layerlab as ll

    cum = ll.cumulative(article_fleet()).rename(columns={"image": "img", "position": "pos", "created_by": "cmd",
                                                          "step": "short"})
    for fn in (charts.cumulative_bars, charts.waterfall, charts.layer_sizes):
        spec = fn(cum, image="img", position="pos", created_by="cmd", step="short").to_dict()
        tips = {t["field"] for t in spec["encoding"]["tooltip"]}
        assert {"pos", "cmd"} <= tips and "position" not in tips and "created_by" not in tips
        assert 'datum["pos"]' in str(spec) or spec["encoding"].get("order", {}).get("field") == "pos"
        (rows,) = _rows(spec)
        assert len(rows) == len(cum)


def test_overlap_heatmap_takes_column_names():
    pairs = pd.DataFrame({"a": ["x", "x", "y"], "b": ["x", "y", "y"], "shared_bytes": [5, 3, 4],
                          "shared_layers": [2, 1, 2]})
    spec = charts.overlap_heatmap(pairs, image="a", other_image="b", title="H").to_dict()
    enc = spec["encoding"]
    assert (enc["y"]["field"], enc["x"]["field"]) == ("a_label", "b_label") and enc["x"]["sort"] == ["x", "y"]
    assert spec["params"][0]["select"]["fields"] == ["a"]
    (rows,) = _rows(spec)
    assert [(r["a"], r["b"], r["shared_bytes"]) for r in rows] == [("x", "x", 5), ("x", "y", 3), ("y", "y", 4)]


def _timeline() -> pd.DataFrame:
    """Layer 0 on the host; layer 1 downloads 0-1 s and extracts 1-2 s; layer 2 downloads 0-1.5 s, extracts 2-3 s."""
    nan = None
    return pd.DataFrame({
        "image": ["app", "app", "app"], "position": [0, 1, 2], "digest": ["sha256:a", "sha256:b", EVIL],
        "skipped": [True, False, False], "bytes": [0, 10, 15],
        "download_start": [nan, 0.0, 0.0], "download_end": [nan, 1.0, 1.5],
        "extract_start": [nan, 1.0, 2.0], "extract_end": [nan, 2.0, 3.0],
    }).astype({"download_start": "Float64", "download_end": "Float64", "extract_start": "Float64",
               "extract_end": "Float64", "skipped": "boolean"})


def test_timeline_chart_draws_each_step_from_its_own_columns():
    spec = charts.timeline_chart(_timeline(), title="T").to_dict()
    (rows,) = _rows(spec)
    assert [r["position"] for r in rows] == [0, 1, 2] and rows[2]["digest"] == EVIL  # the frame's rows, unchanged
    download, extract, held = spec["layer"]
    assert download["encoding"]["x"]["field"] == "download_start" and download["encoding"]["x2"]["field"] == "download_end"
    assert extract["encoding"]["x"]["field"] == "extract_start" and extract["encoding"]["x2"]["field"] == "extract_end"
    assert {"calculate": "'extract'", "as": "step"} in extract["transform"]
    assert held["mark"]["type"] == "square" and 'datum["skipped"] == true' in held["transform"][0]["filter"]
    assert download["encoding"]["y"]["field"] == "position"
    assert spec["title"] == "T"


def test_timeline_chart_takes_a_pull_and_column_names_and_facets():
    from layerlab.analysis.pull import PullTime

    p = PullTime("app", 3.0, _timeline(), [], {})
    assert charts.timeline_chart(p).to_dict()["title"] == "Pull timeline: 3.0 s"
    renamed = _timeline().rename(columns={"position": "layer_no"})
    spec = charts.timeline_chart(renamed, position="layer_no").to_dict()
    assert spec["layer"][0]["encoding"]["y"]["field"] == "layer_no"
    two = pd.concat([_timeline(), _timeline().assign(image="other")], ignore_index=True)
    spec = charts.timeline_chart(two, row="image").to_dict()
    assert spec["facet"]["row"]["field"] == "image" and len(_rows(spec)[0]) == 6
    with pytest.raises(AnalysisError, match="extract_end"):
        charts.timeline_chart(_timeline().drop(columns="extract_end"))
    with pytest.raises(AnalysisError, match="PullTime"):
        charts.timeline_chart([1, 2])


def test_timeline_chart_renders_to_svg():
    vlc = pytest.importorskip("vl_convert")
    svg = vlc.vegalite_to_svg(charts.timeline_chart(_timeline()).to_dict())
    assert svg.startswith("<svg") and svg.count("<path") >= 4 and "<script" not in svg


def test_offline_charts_switches_altair_to_its_offline_jupyter_renderer():
    import altair as alt

    import layerlab as ll

    before = alt.renderers.active
    try:
        ll.offline_charts()
        assert alt.renderers.active == "jupyter"
        assert alt.renderers.options == {"offline": True, "embed_options": {"renderer": "svg"}}
        # the chart's bundle is a widget view (drawn by the page's anywidget, no CDN), not HTML with <script src>
        bundle = alt.Chart(pd.DataFrame({"x": [1]})).mark_point().encode(x="x")._repr_mimebundle_()
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        assert "application/vnd.jupyter.widget-view+json" in data and "text/html" not in data
        ll.offline_charts(False)
        assert alt.renderers.active == "default"
        # while layerlab.report executes a notebook, its renderer stays
        alt.renderers.register("layerlab-report", lambda spec, **_: {"text/plain": "r"})
        alt.renderers.enable("layerlab-report")
        ll.offline_charts()
        assert alt.renderers.active == "layerlab-report"
    finally:
        alt.renderers.enable(before)
