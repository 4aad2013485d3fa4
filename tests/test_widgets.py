"""The ipywidgets explorers, driven without a browser: set a control's value
as a user would, and check what the explorer now shows.

Expected numbers come from how the fixture fleet is written (which steps each
image has), not from layerlab's analyses.
"""
from __future__ import annotations

import io
import json
import tarfile

import pytest

from _report_fleet import LIBS, OS, SEC, TOOLS, XSS_IMG, XSS_SCRIPT, article_fleet, xss_fleet

widgets = pytest.importorskip("layerlab.widgets")


def _shown_text(table_html: str) -> str:
    """What a reader sees in a table: the cells' text, without tags and their attributes."""
    import html as _html
    import re

    return " ".join(_html.unescape(re.sub(r"<[^>]+>", " ", table_html)).split())


_UNIT = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}


def _human_cells(table_html: str) -> dict[int, str]:
    """exact bytes (the hover) -> the human text shown, for every size cell of a table."""
    import re

    return {int(n): t for n, t in re.findall(r"data-bytes='(\d+)'>([^<]*)</span>", table_html)}


def _reads_as(text: str, n: int) -> bool:
    """'117 MB' reads as n bytes (three significant figures)."""
    num, unit = text.split()
    return abs(float(num) * _UNIT[unit] - n) <= max(0.005 * n, 0.5)


def _pair(ex, a, b, col="shared_bytes"):
    o = ex.overlap
    row = o[(o["image"] == a) & (o["other_image"] == b)]
    return None if row.empty else int(row[col].iloc[0])


def test_fleet_explorer_follows_its_controls():
    ex = widgets.FleetExplorer(article_fleet())
    # chain_id: the naive apps share only the OS layer (their second steps differ)
    assert _pair(ex, "naive/app1:1", "naive/app2:1") == OS[1]
    # the layered apps share the whole base stack f3
    assert _pair(ex, "layered/app1:1", "layered/app2:1") == OS[1] + SEC[1] + TOOLS[1] + LIBS[1]
    assert "shared size by chain_id" in json.dumps(ex.chart.to_dict())
    assert str(OS[1]) in ex.pairs_table.value
    # the chart shown is an SVG drawn from that chart (offline): its title and image labels are in it
    svg = ex.chart_view.widget.value
    assert svg.startswith("<svg") and "shared size by chain_id" in svg and "naive/app2:1" in svg

    # sizes read in human units; the exact bytes one hover away; no raw byte count shown
    cells = _human_cells(ex.pairs_table.value)
    assert OS[1] in cells and _reads_as(cells[OS[1]], OS[1])
    assert f"title='{OS[1]:,} bytes'" in ex.pairs_table.value
    import re

    assert not re.search(r"\b\d{7,}\b", _shown_text(ex.pairs_table.value + ex.usage_table.value))
    assert "<NA>" not in _shown_text(ex.usage_table.value)

    ex.key.value = "diff_id"  # same content anywhere: the naive apps' installs match in any order
    assert _pair(ex, "naive/app1:1", "naive/app2:1") == OS[1] + SEC[1] + TOOLS[1] + LIBS[1]
    assert "shared size by diff_id" in json.dumps(ex.chart.to_dict())
    assert "shared size by diff_id" in ex.chart_view.widget.value
    assert str(OS[1] + SEC[1] + TOOLS[1] + LIBS[1]) in ex.pairs_table.value

    ex.compressed.value = True  # the fixture's blobs are size // 3
    want = sum(s // 3 for s in (OS[1], SEC[1], TOOLS[1], LIBS[1]))
    assert _pair(ex, "naive/app1:1", "naive/app2:1") == want
    assert "shared compressed_size by diff_id" in json.dumps(ex.chart.to_dict())

    ex.images.value = ("layered/f1:1", "layered/f2:1")
    assert set(ex.overlap["image"]) == {"layered/f1:1", "layered/f2:1"}
    assert "naive/app1:1" not in ex.pairs_table.value
    # the usage table follows too: f1 and f2 share OS and SEC (2 images each), TOOLS is f2's alone
    u = ex.usage.set_index("diff_id")["images"].to_dict()
    assert sorted(u.values()) == [1, 2, 2]

    assert "naive/app1:1" not in ex.chart_view.widget.value

    ex.images.value = ()
    assert ex.error and "choose at least one image" in ex.message.value
    assert ex.overlap is None and ex.pairs_table.value == "" and ex.chart_view.widget.value == ""


def test_fleet_explorer_says_when_keys_are_unknown():
    ex = widgets.FleetExplorer(article_fleet(), key="digest")  # the fixture records no digests
    assert "have no digest" in ex.message.value


def test_layer_explorer_click_shows_command():
    ex = widgets.LayerExplorer(article_fleet(), image="layered/f3:1")
    # starts on the largest layer: LIBS
    assert ex.layer.value == 3
    assert LIBS[0] in ex.command.value
    ex.select_layer(0)
    assert ex.selected["position"] == 0 and OS[0] in ex.command.value
    assert "without layer contents" in ex.files_table.value
    n_options = len(ex.layer.options)
    ex.image.value = "layered/f1:1"
    assert len(ex.layer.options) == 2 != n_options
    assert "layered/f1:1" in json.dumps(ex.chart.to_dict())
    assert "layered/f1:1" in ex.chart_view.widget.value and "layered/f3:1" not in ex.chart_view.widget.value
    ex.compressed.value = True
    assert ex.layer.options[0][0].startswith("0: ") and "26.7 MB" in ex.layer.options[0][0]  # 80 MB // 3


def test_layer_explorer_escapes_commands():
    ex = widgets.LayerExplorer(xss_fleet(), image="evil/one:1")
    ex.select_layer(1)
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in ex.command.value
    assert "<script>" not in ex.command.value
    ex.image.value = "evil/two:1"
    ex.select_layer(1)
    assert "<img" not in ex.command.value and "&lt;img src=x" in ex.command.value
    svg = ex.chart_view.widget.value  # the waterfall labels carry the commands: as SVG text
    assert "<img" not in svg and "&lt;img src=x" in svg
    fx = widgets.FleetExplorer(xss_fleet())
    fx.key.value = "diff_id"
    assert "<script>" not in fx.usage_table.value and "&lt;script&gt;" in fx.usage_table.value


def test_live_altair_mode_and_bad_mode():
    ex = widgets.FleetExplorer(article_fleet(), chart_mode="altair")
    assert type(ex.chart_view.widget).__name__ == "Output" and ex.chart is not None
    from layerlab.errors import LayerlabError

    with pytest.raises(LayerlabError, match="chart_mode='png'"):
        widgets.LayerExplorer(article_fleet(), chart_mode="png")


def test_layer_explorer_lists_a_layers_files(real_images):
    """On a real `docker save` archive: the files listed for a layer are the
    entries of that layer's tar, read here with tarfile."""
    import layerlab as ll

    path = real_images / "dive-test-docker-image.tar"
    img = ll.load(f"docker-archive:{path}")
    ex = widgets.LayerExplorer(img)
    with tarfile.open(path) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))[0]
        layer_paths = manifest["Layers"]
        for pos in (0, len(layer_paths) - 1):
            ex.select_layer(pos)
            with tarfile.open(fileobj=io.BytesIO(outer.extractfile(layer_paths[pos]).read())) as inner:
                names = {m.name.lstrip("./").rstrip("/") for m in inner.getmembers()}
            names.discard("")
            got = {p.rstrip("/") for p in ex.files["path"]}
            # whiteouts are reported under the hidden path's name or as .wh. entries: compare the plain entries
            plain = {n for n in names if "/.wh." not in "/" + n}
            assert plain <= got | {n for n in plain if n.endswith(".wh..wh..opq")}
            assert len(ex.files) == len(names)
            if len(ex.files) > 0:
                assert "<table" in ex.files_table.value
                # modes as ls -l shows them, not integers
                import re

                assert re.search(r"<td>[-dl][rwxsStT-]{9}</td>", ex.files_table.value)
                # file sizes in human units, the exact bytes (tar's) one hover away
                with tarfile.open(fileobj=io.BytesIO(outer.extractfile(layer_paths[pos]).read())) as inner:
                    sizes = {m.size for m in inner.getmembers() if m.isfile()}
                cells = _human_cells(ex.files_table.value)
                assert cells and set(cells) <= sizes | {0}
                assert all(_reads_as(t, n) for n, t in cells.items())
                assert not re.search(r"\b\d{7,}\b", _shown_text(ex.files_table.value))


def test_merge_explorer_follows_its_controls():
    """naive/app1 is OS, TOOLS, SEC, LIBS, app1: layers 1..3 (TOOLS, SEC, LIBS) are the group;
    the fixture has no layer contents, so the merged size stays unknown and the status says why."""
    from layerlab.model import Fleet

    fleet = Fleet([img for img in article_fleet() if img.reference.startswith("naive/")])
    ex = widgets.MergeExplorer(fleet, "naive/app1:1", (1, 3), compressed=False)
    assert ex.error is None and ex.span.max == 4
    g = ex.prediction.groups
    assert (int(g["first"].iloc[0]), int(g["last"].iloc[0])) == (1, 3)
    assert int(g["size_before_bytes"].iloc[0]) == TOOLS[1] + SEC[1] + LIBS[1]
    assert g["status"].iloc[0].startswith("unpredictable") and "unpredictable" in ex.groups_table.value
    assert "size_before_bytes" in ex.groups_table.value and "<table" in ex.summary_table.value
    # the merged size is unknown: said so with a footnote, never <NA> or a dash
    groups = _shown_text(ex.groups_table.value)
    assert "unknown*" in groups and "the source does not record this value" in groups
    assert "<NA>" not in groups and "–" not in groups and "nan" not in groups.lower().split()
    cells = _human_cells(ex.groups_table.value)
    before = TOOLS[1] + SEC[1] + LIBS[1]
    assert before in cells and _reads_as(cells[before], before)
    ex.span.value = (2, 2)
    assert ex.prediction is None and ex.error == "choose at least two layers"
    assert "choose at least two layers" in ex.message.value and ex.groups_table.value == ""
    ex.image.value = "naive/app2:1"
    ex.span.value = (0, 1)
    assert ex.error is None and ex.prediction.groups["first"].tolist() == [0]


def test_pull_explorer_follows_its_controls():
    # article_fleet: compressed_size = size // 3; at 1 MB/s the layered app2 with app1 on the host
    # downloads only its own code layer (3 MB // 3 = 1,000,000 bytes)
    ex = widgets.PullExplorer(article_fleet(), "layered/app2:1", present=["layered/app1:1"], bandwidth="1MB/s")
    assert ex.error is None and ex.pull.bytes == 1_000_000
    assert list(ex.pull.timeline["skipped"]) == [True, True, True, True, False]
    assert ex.chart_view.widget.value.startswith("<svg") and "Pull timeline" in ex.chart_view.widget.value
    slow = ex.pull.seconds
    ex.bandwidth.value = 10.0  # MB/s: the same bytes, faster
    assert ex.pull.bytes == 1_000_000 and ex.pull.seconds < slow
    ex.present.value = ()  # a cold host: every layer (80+12+30+90+3 MB, a third of it on the wire)
    assert ex.pull.bytes == sum(n // 3 for n in (80_000_000, 12_000_000, 30_000_000, 90_000_000, 3_000_000))
    ex.engine.value = "podman"
    assert ex.pull.params["engine"] == "podman" and ex.pull.params["model"].max_concurrent_downloads == 6
    assert "defaults" in ex.message.value  # no host rates given: the note says so
