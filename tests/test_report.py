"""layerlab.report without a kernel: parameters, source paths, notebook lookup,
and the HTML conversion of hand-made executed notebooks."""
from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from layerlab import report
from layerlab.errors import LayerlabError

ROOT = Path(__file__).resolve().parent.parent


def _nb_with_params(src='sources = ["../data/sample"]\nkey: str = "chain_id"\nn = 3\nfn = len'):
    return new_notebook(cells=[
        new_markdown_cell("# T"),
        new_code_cell(src, metadata={"tags": ["parameters"]}),
        new_code_cell("print(sources)"),
    ])


def test_parameters_are_read_and_injected_after_the_parameters_cell():
    nb = _nb_with_params()
    assert report.notebook_parameters(nb) == {"sources": ["../data/sample"], "key": "chain_id", "n": 3, "fn": "len"}
    out = report.inject_parameters(nb, {"sources": ["/x/y z", "it's"], "n": 4.5, "key": None})
    assert [c.metadata.get("tags") for c in out.cells][1:3] == [["parameters"], ["injected-parameters"]]
    ns: dict = {}
    exec(out.cells[2].source, ns)  # the injected cell is plain Python assigning exactly these values
    assert (ns["sources"], ns["n"], ns["key"]) == (["/x/y z", "it's"], 4.5, None)
    assert len(nb.cells) == 3, "the input notebook is not modified"
    # re-injecting replaces, never stacks
    again = report.inject_parameters(out, {"n": 1})
    assert sum("injected-parameters" in c.metadata.get("tags", []) for c in again.cells) == 1


def test_bad_parameters_are_clear_errors():
    with pytest.raises(LayerlabError, match=r"unknown parameter\(s\) \['nope'\].*declares: \['fn', 'key', 'n', 'sources'\]"):
        report.inject_parameters(_nb_with_params(), {"nope": 1})
    with pytest.raises(LayerlabError, match="no cell tagged 'parameters'"):
        report.inject_parameters(new_notebook(cells=[new_code_cell("x = 1")]), {"x": 2})
    with pytest.raises(LayerlabError, match="cannot be passed"):
        report.inject_parameters(_nb_with_params(), {"n": object()})
    with pytest.raises(LayerlabError, match="does not parse"):
        report.notebook_parameters(_nb_with_params("x = ("))


def test_source_paths_become_absolute(tmp_path):
    (tmp_path / "snap").mkdir()
    (tmp_path / "m.json").write_text("{}")
    (tmp_path / "c.json").write_text("{}")
    (tmp_path / "lay").mkdir()
    t = str(tmp_path)
    assert report.absolute_source("snap", tmp_path) == f"{t}/snap"
    assert report.absolute_source("snapshot:snap", tmp_path) == f"snapshot:{t}/snap"
    assert report.absolute_source("manifest:m.json+c.json", tmp_path) == f"manifest:{t}/m.json+{t}/c.json"
    assert report.absolute_source("oci:lay:v2", tmp_path) == f"oci:{t}/lay:v2"
    assert report.absolute_source("docker-daemon:busybox:1", tmp_path) == "docker-daemon:busybox:1"
    assert report.absolute_source("busybox:latest", tmp_path) == "busybox:latest"
    assert report.absolute_source("docker://registry.local/x:1", tmp_path) == "docker://registry.local/x:1"


def test_notebooks_are_found_by_name_number_or_path():
    want = ROOT / "layerlab" / "notebooks" / "02-fleet-overlap.ipynb"
    for name in ("02", "02-fleet-overlap", "fleet-overlap", "02-fleet-overlap.ipynb", str(want)):
        assert report.notebook_path(name) == want
    with pytest.raises(LayerlabError, match="choose one of: 01-tour"):
        report.notebook_path("nope")


def _executed(spec):
    nb = new_notebook(cells=[
        new_markdown_cell("# Report <b>title</b>"),
        new_code_cell("chart", execution_count=1, outputs=[
            new_output("display_data", data={"application/vnd.vegalite.v6+json": spec, "text/plain": "<chart>"}),
            new_output("display_data", data={
                "application/vnd.jupyter.widget-view+json": {"model_id": "abc", "version_major": 2, "version_minor": 0},
                "text/plain": "VBox(children=(...))"}),
            new_output("display_data", data={
                "application/vnd.jupyter.widget-view+json": {"model_id": "def", "version_major": 2, "version_minor": 0},
                "text/plain": "  0%|          | 0/3256 [00:00<?, ?file/s]"}),
            new_output("stream", name="stdout", text="<script>window.__pwned=1</script>\n"),
        ]),
    ])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    return nb


def test_html_carries_specs_safely_and_no_remote_scripts():
    hostile = '</script><script>window.__pwned=1</script> & "quotes" \u2028'
    spec = {"data": {"values": [{"created_by": hostile, "size": 3}]}, "mark": "bar",
            "encoding": {"x": {"field": "size", "type": "quantitative"}}}
    page = report.notebook_to_html(_executed(spec), notebook_label="notebooks/x.ipynb", parameters={"k": "<v>"})
    # the spec block holds the spec exactly (json.loads decodes the \\u escapes) and nothing closes it early
    block = re.search(r'<script type="application/json" id="layerlab-vega-specs">(.*?)</script>', page, re.S).group(1)
    assert "<" not in block and ">" not in block and "&" not in block
    specs = json.loads(block)
    assert specs == [{"id": "layerlab-chart-0", "spec": spec, "mode": "vega-lite"}]
    assert '<div class="layerlab-chart" id="layerlab-chart-0"></div>' in page
    # stdout text is escaped, the only scripts are ours, none loads anything
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page
    assert re.findall(r"<script[^>]*>", page) == [
        '<script type="application/json" id="layerlab-vega-specs">', '<script type="module">']
    assert "https://" not in "".join(re.findall(r"<(?:script|link)[^>]*>", page))
    # the CSP names our module script by its hash and forbids connections
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page).group(1)
    assert "connect-src 'none'" in csp and "default-src 'none'" in csp
    import base64
    import hashlib

    module = re.search(r'<script type="module">(.*?)</script>', page, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(module.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in csp
    # the widget became a note, the progress bar vanished, the parameters are shown escaped
    assert "An interactive widget stood here" in page and "notebooks/x.ipynb" in page
    assert "0/3256" not in page and "VBox(children" not in page
    assert "k = &#x27;&lt;v&gt;&#x27;" in page or "k = '&lt;v&gt;'" in page
    # no widget manager, require.js or MathJax
    for cdn in ("require.js", "mathjax", "html-manager", "unpkg", "cdnjs", "jsdelivr"):
        assert cdn not in page.lower()


def test_hide_input_by_default():
    nb = _executed({"mark": "point"})
    nb.cells[1].source = "secret_code_marker = 1"
    assert "secret_code_marker" not in report.notebook_to_html(nb)
    assert "secret_code_marker" in report.notebook_to_html(nb, hide_input=False)


def test_output_to_a_directory_or_missing_dir_is_refused(tmp_path):
    with pytest.raises(LayerlabError, match="is a directory"):
        report.render_report(None, tmp_path, progress=False)
    with pytest.raises(LayerlabError, match="does not exist"):
        report.render_report(None, tmp_path / "no" / "r.html", progress=False)
    assert list(tmp_path.iterdir()) == []
