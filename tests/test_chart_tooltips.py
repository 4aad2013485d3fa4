"""No chart has a tooltip titled ``image``: vega-tooltip renders such a field as
``<img src=VALUE>`` (issue 14, defect 7), so the image's name would be lost from
the tooltip and, outside a page's CSP, fetched by the browser."""
from __future__ import annotations

import pandas as pd
import pytest

pytest.importorskip("altair")

import layerlab as ll
from layerlab import charts
from layerlab.model import Fleet, HistoryStep, Image, Layer


def _image(name, layers):
    return Image(reference=name, source="test",
                 layer_list=[Layer(position=i, diff_id="sha256:%064x" % d, size=s, compressed_size=s // 3)
                             for i, (d, s) in enumerate(layers)],
                 history_list=[HistoryStep(index=i, created_by=f"RUN {i}", layer_position=i, pairing="config")
                               for i in range(len(layers))])


def _tooltips(node):
    """Every tooltip entry of a Vega-Lite spec (dicts with a field, and shorthand strings)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "tooltip":
                yield from (v if isinstance(v, list) else [v])
            else:
                yield from _tooltips(v)
    elif isinstance(node, list):
        for v in node:
            yield from _tooltips(v)


def _shown_title(tip) -> str | None:
    if isinstance(tip, str):
        return tip.partition(":")[0]
    if isinstance(tip, dict) and "field" in tip:
        return tip.get("title", tip["field"])
    return None


def _all_charts():
    fleet = Fleet([_image("os", [(1, 1000)]), _image("app", [(1, 1000), (2, 500)])])
    cum = ll.cumulative(fleet)
    trie = pd.DataFrame({"node": [1, 2], "parent": pd.array([0, 1], dtype="Int64"), "depth": [1, 2],
                         "step": ["FROM os", "RUN a"], "apps": [("app",), ("app",)],
                         "size": pd.array([100, 20], dtype="Int64"),
                         "image": pd.array(["os", "app"], dtype="string")})
    pulls = pd.DataFrame({"variant": ["naive", "naive"], "image": ["a", "b"], "pull_bytes": [10, 4],
                          "present_bytes": [0, 6]})
    usage = pd.DataFrame({"chain_id": ["c1"], "size": [500], "images": [2], "created_by": ["RUN x"]})
    return {
        "cumulative_bars": charts.cumulative_bars(cum),
        "waterfall": charts.waterfall(cum),
        "layer_sizes": charts.layer_sizes(cum),
        "overlap_heatmap": charts.overlap_heatmap(fleet),
        "sharing_tree_chart": charts.sharing_tree_chart(fleet),
        "trie_chart": charts.trie_chart(trie),
        "grouped_bars": charts.grouped_bars(pd.DataFrame({"image": ["a", "b"], "v": [1, 2]}), "image", ["v"]),
        "pull_bars": charts.pull_bars(pulls),
        "layer_usage_bars": charts.layer_usage_bars(usage),
    }


def test_no_tooltip_is_titled_image():
    checked = 0
    for name, chart in _all_charts().items():
        titles = [_shown_title(t) for t in _tooltips(chart.to_dict())]
        assert titles, f"{name} has no tooltip"
        assert "image" not in [t.strip().lower() for t in titles if t], name
        checked += 1
    assert checked == 9


def test_image_names_keep_a_tooltip_of_their_own():
    spec = charts.cumulative_bars(ll.cumulative(Fleet([_image("os", [(1, 1000)])]))).to_dict()
    assert "image name" in [_shown_title(t) for t in _tooltips(spec)]
