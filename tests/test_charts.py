"""Charts build, validate against the Vega-Lite schema, carry the expected
encodings and params, embed the frame's rows unchanged, and keep hostile
commands as text."""
from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

alt = pytest.importorskip("altair")

import layerlab as ll
from layerlab import charts
from layerlab.errors import AnalysisError
from layerlab.model import Fleet, HistoryStep, Image, Layer

EVIL = '/bin/sh -c echo "><img src=x onerror=alert(1)></script><script>alert(2)</script>'


def mk(name, layers, cmds):
    return Image(
        reference=name,
        source="test",
        layer_list=[Layer(position=i, diff_id="sha256:%064x" % d, size=s, compressed_size=s // 3)
                    for i, (d, s) in enumerate(layers)],
        history_list=[HistoryStep(index=i, created_by=c, layer_position=i, pairing="config")
                      for i, c in enumerate(cmds)],
    )


@pytest.fixture
def fleet():
    return Fleet([
        mk("os", [(1, 1_000_000)], ["/bin/sh -c #(nop) ADD file:abc in / "]),
        mk("app1", [(1, 1_000_000), (2, 20_000)], ["/bin/sh -c #(nop) ADD file:abc in / ", EVIL]),
        mk("app2", [(1, 1_000_000), (3, 300_000)], ["/bin/sh -c #(nop) ADD file:abc in / ",
                                                    "/bin/sh -c " + "apt-get install -y " + "pkg " * 60]),
    ])


def data_rows(spec: dict) -> list[dict]:
    """The rows embedded in a chart spec (altair puts a DataFrame in `datasets`)."""
    (name,) = spec["datasets"].keys()
    assert spec["data"]["name"] == name
    return spec["datasets"][name]


def same_rows(rows: list[dict], frame: pd.DataFrame, columns) -> None:
    assert len(rows) == len(frame)
    for r, (_, f) in zip(rows, frame.iterrows()):
        for c in columns:
            v = f[c]
            if v is pd.NA or (not isinstance(v, (list, tuple)) and pd.isna(v)):
                assert r[c] is None, c
            elif isinstance(v, float):
                assert r[c] == pytest.approx(v), c
            elif isinstance(v, (list, tuple)):
                assert list(r[c]) == list(v), c
            else:
                assert r[c] == (int(v) if hasattr(v, "__int__") and not isinstance(v, str) else v), c


def params(spec: dict) -> dict:
    return {p["name"]: p for p in spec.get("params", [])}


def test_import_layerlab_does_not_import_altair():
    code = "import sys, layerlab, layerlab.analysis; print([m for m in sys.modules if m.split('.')[0] in ('altair','ipywidgets','docker')])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cumulative_bars(fleet):
    cum = ll.cumulative(fleet)
    chart = charts.cumulative_bars(cum)
    spec = chart.to_dict()  # validates against the Vega-Lite schema
    enc = spec["encoding"]
    assert enc["x"]["field"] == "image_label" and enc["y"]["field"] == "size" and enc["y"]["stack"] == "zero"
    assert enc["order"]["field"] == "position"
    assert "format(datum.value" in enc["y"]["axis"]["labelExpr"]
    p = params(spec)
    assert p["layer"]["select"]["type"] == "point" and p["layer"]["select"]["fields"] == ["diff_id"]
    assert p["position_pick"]["bind"] == "legend"
    tips = {t["field"] for t in enc["tooltip"]}
    assert {"created_by", "size", "size_label"} <= tips
    same_rows(data_rows(spec), cum, ["image", "position", "size", "start_bytes", "cumulative_size", "created_by", "step"])
    # compressed variant encodes the compressed columns
    cspec = charts.cumulative_bars(cum, compressed=True).to_dict()
    assert cspec["encoding"]["y"]["field"] == "compressed_size"


def test_waterfall_and_layer_sizes_have_image_dropdowns(fleet):
    cum = ll.cumulative(fleet)
    for fn, pname in ((charts.waterfall, "waterfall_image"), (charts.layer_sizes, "layer_image")):
        spec = fn(cum, initial="app2").to_dict()
        p = params(spec)[pname]
        assert p["value"] == "app2"
        assert p["bind"]["input"] == "select" and p["bind"]["options"] == ["os", "app1", "app2"]
        assert any(pname in t.get("filter", "") for t in spec["transform"])
        same_rows(data_rows(spec), cum, ["image", "position", "size", "created_by"])
    wf = charts.waterfall(cum).to_dict()
    assert wf["encoding"]["y"]["field"] == "start_bytes" and wf["encoding"]["y2"]["field"] == "cumulative_size"
    with pytest.raises(AnalysisError, match="initial"):
        charts.waterfall(cum, initial="nope")


def test_long_commands_truncated_in_labels_full_in_tooltips(fleet):
    cum = ll.cumulative(fleet)
    long_row = cum[(cum.image == "app2") & (cum.position == 1)].iloc[0]
    # shortened in the middle: the instruction and the start stay, and the end
    assert long_row["step"] == "RUN apt-get install -y pkg pkg pkg pkg … pkg pkg pkg pkg pkg"
    assert long_row["step"].startswith("RUN apt-get install -y pkg")
    assert long_row["created_by"].count("pkg") == 60
    spec = charts.layer_sizes(cum).to_dict()
    tips = {t["field"] for t in spec["encoding"]["tooltip"]}
    assert "created_by" in tips
    assert "label" == spec["encoding"]["y"]["field"]


def test_overlap_heatmap(fleet):
    ov = ll.overlap(fleet, include_self=True, symmetric=True)
    spec = charts.overlap_heatmap(ov).to_dict()
    enc = spec["encoding"]
    assert enc["x"]["field"] == "other_image_label" and enc["y"]["field"] == "image_label"
    assert enc["color"]["field"] == "shared_bytes"
    focus = params(spec)["focus"]
    assert focus["select"]["fields"] == ["image"] and focus["bind"]["input"] == "select"
    same_rows(data_rows(spec), ov, ["image", "other_image", "shared_bytes", "shared_layers"])
    frac = charts.overlap_heatmap(ov, value="shared_fraction").to_dict()
    assert frac["encoding"]["color"]["field"] == "shared_fraction"
    # straight from a fleet too
    assert charts.overlap_heatmap(fleet).to_dict()["encoding"]["color"]["field"] == "shared_bytes"


def test_image_axes_show_short_unique_names():
    """Names too long for an axis are shown whole in their shortest unambiguous
    form, not truncated until three images look alike."""
    long = [mk(f"registry.example.com:5000/platform/team-a/{n}", [(1, 1_000_000), (i + 2, 1000)],
               ["", "/bin/sh -c make"]) for i, n in enumerate(["app:1.0", "app:1.1", "web:latest"])]
    fleet = Fleet(long)
    spec = charts.overlap_heatmap(fleet).to_dict()
    rows = data_rows(spec)
    assert {r["image_label"] for r in rows} == {"app:1.0", "app:1.1", "web"}
    assert spec["encoding"]["y"]["sort"] == ["app:1.0", "app:1.1", "web"]
    assert params(spec)["focus"]["bind"]["labels"] == ["(all)", "app:1.0", "app:1.1", "web"]
    tree = charts.sharing_tree_chart(fleet).to_dict()
    axis = tree["encoding"]["x"]["axis"]
    assert axis["values"] == [0.5, 1.5, 2.5]
    order = params(tree)["tree_image"]["bind"]["labels"][1:]
    short = {f"registry.example.com:5000/platform/team-a/{n}": s
             for n, s in (("app:1.0", "app:1.0"), ("app:1.1", "app:1.1"), ("web:latest", "web"))}
    assert axis["labelExpr"] == json.dumps([short[n] for n in order]) + "[floor(datum.value)]"


def test_sharing_tree_chart(fleet):
    tree = ll.sharing_tree(fleet)
    spec = charts.sharing_tree_chart(tree).to_dict()
    enc = spec["encoding"]
    assert enc["x"]["field"] == "x0" and enc["x2"]["field"] == "x1"
    assert enc["y"]["field"] == "depth" and enc["y2"]["field"] == "depth1"
    p = params(spec)
    assert p["tree_image"]["bind"]["input"] == "select"
    bind = p["tree_image"]["bind"]
    assert bind["labels"][0] == "(none)" and sorted(bind["labels"][1:]) == ["app1", "app2", "os"]
    assert bind["options"] == [-1, 0, 1, 2]
    # option i is the image drawn at x = i: each node covering it is on that image's path
    for i, name in enumerate(bind["labels"][1:]):
        on_path = tree[(tree.x0 <= i) & (i < tree.x1)]
        assert all(name in imgs for imgs in on_path["images"]) and on_path["ends"].sum() >= 1
    assert "tree_hover" in p
    same_rows(data_rows(spec), tree, ["node", "parent", "depth", "size", "count", "x0", "x1", "images"])


def test_hostile_commands_stay_text(fleet, tmp_path):
    cum = ll.cumulative(fleet)
    chart = charts.cumulative_bars(cum)
    # the spec carries the command verbatim, as data
    assert any(r["created_by"] == EVIL for r in data_rows(chart.to_dict()))
    page = charts.to_html(chart)
    assert "<img" not in page and "<script>alert" not in page and "</script><script>" not in page
    # the escaped JSON is the same value
    i = page.index("\\u003cimg")
    assert "onerror=alert(1)" in page[i:i + 80]
    out = tmp_path / "c.html"
    charts.save_html(chart, out)
    assert out.read_text() == page
    assert [p.name for p in tmp_path.iterdir()] == ["c.html"]


def test_charts_render_to_svg(fleet):
    vlc = pytest.importorskip("vl_convert")
    cum = ll.cumulative(fleet)
    for chart in (charts.cumulative_bars(cum), charts.waterfall(cum), charts.layer_sizes(cum),
                  charts.overlap_heatmap(fleet), charts.sharing_tree_chart(fleet)):
        svg = vlc.vegalite_to_svg(chart.to_dict())
        assert svg.startswith("<svg") and "<rect" in svg or "<path" in svg
        assert "<img" not in svg and "<script" not in svg


def test_chart_input_errors(fleet):
    with pytest.raises(AnalysisError, match="value="):
        charts.overlap_heatmap(fleet, value="nope")
    with pytest.raises(AnalysisError, match="color="):
        charts.sharing_tree_chart(fleet, color="nope")
