"""Tables people read: `frames.frame_html` (result reprs, notebook reports) shows sizes in human units
with the exact bytes a hover away, "unknown" for missing values, escaped text."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from layerlab import report
from layerlab.frames import frame_html


def test_frame_html_units_unknowns_and_escaping():
    df = pd.DataFrame({"image": pd.array(["a<b>", None], dtype="string"),
                       "size": pd.array([1_234_567, None], dtype="Int64"), "n": [12_345_678, 2]})
    out = frame_html(df)
    assert "a&lt;b&gt;" in out and "<b>" not in out
    assert "<span class='bytes' title='1,234,567 bytes' data-bytes='1234567'>1.23 MB</span>" in out
    assert "<td>12,345,678</td>" in out               # a count, not bytes: separators, no unit
    assert out.count(">unknown</span>") == 2 and "NA" not in out
    assert "more rows" in frame_html(pd.DataFrame({"x": range(70)}), max_rows=60)


def test_a_notebook_report_shows_no_raw_missing_values(tmp_path):
    """06's timeline and 05's savings frames: shown through frame_html in the report's kernel."""
    out = report.render_report([str(Path(__file__).resolve().parents[1] / "data" / "sample")], tmp_path / "r.html", notebook="06", progress=False)
    page = out.read_text()
    assert "&lt;NA&gt;" not in page and ">NaN<" not in page
    assert "data-bytes=" in page


def test_human_tables_changes_the_kernels_html_display_and_gives_it_back():
    """`ll.human_tables()` (the bundled notebooks' first cell): a DataFrame's HTML in an IPython
    kernel is frame_html's; `human_tables(False)` is pandas' own again; outside IPython, False."""
    import subprocess
    import sys

    from IPython.core.interactiveshell import InteractiveShell

    import layerlab as ll

    out = subprocess.run([sys.executable, "-c", "import layerlab as ll; print(ll.human_tables())"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    ip = InteractiveShell.instance()
    df = pd.DataFrame({"size": pd.array([123_456_789, None], dtype="Int64")})
    try:
        assert ll.human_tables() is True
        html = ip.display_formatter.format(df)[0]["text/html"]
        assert "123 MB" in html and "data-bytes='123456789'" in html and ">unknown<" in html
        assert ll.human_tables(False) is True
        html = ip.display_formatter.format(df)[0]["text/html"]
        assert "123456789" in html and "123 MB" not in html and "&lt;NA&gt;" in html
    finally:
        ll.human_tables(False)
        InteractiveShell.clear_instance()
