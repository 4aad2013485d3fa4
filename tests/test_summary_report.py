"""The summary report (`layerlab report SOURCES -o report.html` without --notebook).

Without a browser: its headline numbers against values computed here from the
engine's own records (data/sample-raw) and the snapshot's Parquet read with
pandas; a failing section or image shows its error and the rest renders; the
content bound is stated.  In headless Chromium (Debian's, every non-file
request aborted), for data/sample and the real images in ../shared: on every
section no visible <NA>/null/NaN, no number over a million without a unit, no
text overflowing its box outside the scroll wrappers, every chart drew marks;
screenshots go to the pytest tmp dir.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from _report_fleet import XSS_IMG, XSS_SCRIPT, xss_fleet
from layerlab.errors import LayerlabError
from layerlab.reporting import page as page_mod
from layerlab.reporting.summary import render_summary_report

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"
RAW = ROOT / "data" / "sample-raw"
REAL = ROOT.parent / "shared" / "data" / "real-images"
REPO_INFO = ROOT.parent / "shared" / "data" / "repo-info-2018" / "repos"
REPO_INFO_SOURCES = [f"repo-info:{REPO_INFO / name / 'remote' / tag}.md"
                     for name, tag in (("python", "3.6-stretch"), ("node", "8-stretch"), ("ruby", "2.5-stretch"),
                                       ("golang", "1.9-stretch"))]
REAL_SOURCES = [
    f"docker-archive:{REAL / 'dive-test-docker-image.tar'}",
    f"docker-archive:{REAL / 'dive-test-kaniko-image.tar'}",
    f"docker-archive:{REAL / 'ggcr-hello-world-v25.tar'}",
    f"docker-archive:{REAL / 'ggcr-test_bundle.tar'}",
    f"oci-archive:{REAL / 'dive-test-oci-gzip-image.tar'}",
]


def _figures(html_text: str) -> dict[str, int]:
    """The summary's headline figures: data-figure name -> exact bytes (the hover)."""
    out = {}
    for name, body in re.findall(r"data-figure='(\w+)'><div class='v'>(.*?)</div>", html_text):
        m = re.search(r"data-bytes='(\d+)'", body)
        out[name] = int(m.group(1)) if m else body
    return out


def _section(html_text: str, sid: str) -> str:
    m = re.search(rf"<section id='{sid}'.*?</section>", html_text, re.S)
    assert m, f"no section {sid}"
    return m.group(0)


@pytest.fixture(scope="module")
def sample_html(tmp_path_factory):
    out = tmp_path_factory.mktemp("summary") / "sample.html"
    render_summary_report([str(SAMPLE)], out, progress=False, cache_dir=False)
    return out


@pytest.fixture(scope="module")
def real_html(tmp_path_factory):
    if not REAL.is_dir():
        pytest.skip(f"{REAL} is absent (../shared)")
    out = tmp_path_factory.mktemp("summary-real") / "real.html"
    render_summary_report(REAL_SOURCES, out, progress=False, cache_dir=False)
    return out


@pytest.fixture(scope="module")
def repo_info_html(tmp_path_factory):
    """Registry metadata only: compressed sizes and digests, no contents, no uncompressed sizes."""
    if not REPO_INFO.is_dir():
        pytest.skip(f"{REPO_INFO} is absent (../shared)")
    out = tmp_path_factory.mktemp("summary-repo-info") / "repo-info.html"
    render_summary_report(REPO_INFO_SOURCES, out, progress=False, cache_dir=False)
    return out


# -- numbers, without a browser ------------------------------------------------
def test_summary_numbers_match_the_engine_and_the_parquet(sample_html):
    text = sample_html.read_text()
    fig = _figures(text)
    # the engine's own `docker system df` answer: each image's size, image by image
    df = json.loads((RAW / "system-df.json").read_text())
    assert fig["images"] == str(len(df)) == "8"
    assert fig["total_bytes"] == sum(i["Size"] for i in df)
    # one host stores each distinct layer stack once: a layer is the same stored layer when the
    # whole list of diff_ids up to it is the same (what a chain id identifies), from the Parquet directly
    layers = pd.read_parquet(SAMPLE / "layers.parquet").sort_values(["image", "position"])
    stored = {}
    for _, g in layers.groupby("image"):
        ids = list(g["diff_id"])
        for i, size in enumerate(g["size"]):
            stored[tuple(ids[: i + 1])] = int(size)
    assert fig["stored_bytes"] == sum(stored.values()) == 428_078_930
    assert fig["saved_bytes"] == fig["total_bytes"] - fig["stored_bytes"]
    # the sentence says the same numbers (human units, exact bytes a hover away)
    summary = _section(text, "summary")
    assert f"title='{sum(stored.values()):,} bytes'" in summary
    assert "8 images hold" in summary and "sharing saves" in summary and "unknown" not in summary
    # wire sizes are not in this snapshot: shown as unknown with the footnote, never <NA>
    assert "unknown<sup><a href='#fn-unknown'>*</a></sup>" in text and "id='fn-unknown'" in text
    visible = re.sub(r"<script.*?</script>", "", text, flags=re.S)
    assert "&lt;NA&gt;" not in visible and "<NA>" not in visible and "NaN" not in visible


def test_pull_figures_match_the_engine(sample_html):
    """A cold pull of an image downloads all its layers: the engine's image size."""
    df = {i["RepoTags"][0]: i["Size"] for i in json.loads((RAW / "system-df.json").read_text())}
    pulls = _section(sample_html.read_text(), "pulls")
    for name, size in df.items():
        row = re.search(rf"<code>{re.escape(name)}</code></td><td class='num'>(.*?)</td>", pulls)
        assert row, name
        assert f"data-bytes='{size}'" in row.group(1)


def test_a_failing_section_or_image_shows_its_error(tmp_path, monkeypatch):
    import layerlab.analysis.efficiency as eff_mod
    import layerlab.analysis.plan as plan_mod

    real = eff_mod.efficiency

    def flaky(img, **kw):
        if img.reference.endswith("f2:1"):
            raise LayerlabError("efficiency broke on <f2> for this test")
        return real(img, **kw)

    def broken(*a, **kw):
        raise RuntimeError("the planner broke for this test")

    monkeypatch.setattr(eff_mod, "efficiency", flaky)
    monkeypatch.setattr(plan_mod, "plan_bases", broken)
    out = render_summary_report([str(SAMPLE)], tmp_path / "r.html", progress=False, cache_dir=False)
    text = out.read_text()
    waste = _section(text, "waste")
    assert "efficiency broke on &lt;f2&gt; for this test" in waste
    assert "layerlab-sample/f3:1" in waste and "0.9813" in waste  # the other images still analysed
    assert "RuntimeError: the planner broke for this test" in _section(text, "planner")
    assert "data-bytes='428078930'" in _section(text, "sharing")  # other sections unaffected


def test_the_content_bound_is_stated_and_kept(tmp_path):
    out = render_summary_report([str(SAMPLE)], tmp_path / "r.html", progress=False, cache_dir=False,
                                max_content_bytes=150_000_000)
    waste = _section(out.read_text(), "waste")
    # os (117 MB) and f1 (146 MB) are under 150 MB; the six others are not read
    assert "Layer contents were read for 2 images of 8" in waste
    assert "title='150,000,000 bytes'" in waste
    assert "larger than the bound" in waste and "layerlab-sample/naive-app2:1" in waste


def test_no_sources_and_no_chromium_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(LayerlabError, match="give the images to report on"):
        render_summary_report([], tmp_path / "r.html", progress=False)
    monkeypatch.setattr(page_mod, "CHROMIUM", str(tmp_path / "no-chromium"))
    with pytest.raises(LayerlabError, match=r"report\.pdf: a PDF is printed through Chromium, but .*no-chromium"):
        render_summary_report([str(SAMPLE)], tmp_path / "report.pdf", progress=False, cache_dir=False)
    assert not (tmp_path / "report.pdf").exists()


def test_secrets_in_commands_are_masked_before_labels_cut_them(tmp_path):
    """A token in a shared step's command: masked in the tables (whose labels shorten the command)
    and in the charts' data, shown as it is only with mask_secrets=False."""
    from _report_fleet import OS, make_image
    from layerlab.model import Fleet

    token = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    step = (f"RUN curl -H 'Authorization: token {token}' https://example.invalid/tool -o /usr/bin/tool", 5_000_000)
    Fleet([make_image("team/a:1", [OS, step, ("COPY a /a", 1_000)]),
           make_image("team/b:1", [OS, step, ("COPY b /b", 2_000)])]).save(tmp_path / "snap")
    masked = render_summary_report([str(tmp_path / "snap")], tmp_path / "m.html", progress=False, cache_dir=False)
    text = masked.read_text()
    assert "Authorization: token ghp_" in _section(text, "sharing")  # the step is listed ...
    assert token[:12] not in text  # ... with its token masked, in the tables and in the chart data
    shown = render_summary_report([str(tmp_path / "snap")], tmp_path / "s.html", progress=False, cache_dir=False,
                                  mask_secrets=False)
    assert token[:12] in shown.read_text()


# -- in the browser ------------------------------------------------------------------
_BAD_WORDS = re.compile(r"<NA>|(?<![\w/-])(null|NaN|None|nan)(?![\w-])")  # /dev/null in a command is fine
# a number, not an id: digits that end in "…" are a cut hash (file:503166935590…), and the charts tell
# layers with the same label apart by their short key in brackets ("RUN make [503166935590]")
_NUMBER = re.compile(r"(?<![\w.,:/\[-])(\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w,…])(?P<unit>\s?(?:B|kB|MB|GB|TB|bytes)\b)?")

_OVERFLOW_JS = """
sec => Array.from(sec.querySelectorAll('*')).filter(el => {
  if (el.closest('.layerlab-table-wrap, .layerlab-chart-wrap') || el instanceof SVGElement) return false;
  const st = getComputedStyle(el);
  if (st.display === 'inline' || ['auto', 'scroll'].includes(st.overflowX)) return false;
  return el.scrollWidth > el.clientWidth + 1;
}).map(el => el.tagName + '.' + el.className + ': ' + (el.textContent || '').slice(0, 80))
"""


@pytest.fixture(scope="module")
def browser():
    from _browser import launch_browser

    yield from launch_browser()


def _check_page(browser, path: Path, shots: Path) -> int:
    from _browser import Visit, assert_charts_drawn

    v = Visit(browser, path)
    try:
        pg = v.page
        pg.set_viewport_size({"width": 1100, "height": 900})
        sections = pg.query_selector_all("section.layerlab-section")
        assert [s.get_attribute("id") for s in sections] == ["summary", "images", "sharing", "waste", "merges",
                                                             "planner", "pulls"]
        for sec in sections:
            sid = sec.get_attribute("id")
            text = sec.inner_text()
            assert not _BAD_WORDS.search(text), f"{sid}: {_BAD_WORDS.search(text).group(0)!r} shown"
            for m in _NUMBER.finditer(text):
                value = float(m.group(1).replace(",", ""))
                assert value <= 1_000_000 or m.group("unit"), f"{sid}: {m.group(0)!r} shown without a unit"
            assert sec.evaluate(_OVERFLOW_JS) == [], f"{sid}: text overflows its box"
            assert sec.query_selector_all(".error") == [], f"{sid}: {sec.inner_text()[:400]}"
            assert "layerlab-section" in sec.get_attribute("class")
            sec.screenshot(path=str(shots / f"{path.stem}-{sid}.png"))
        n = assert_charts_drawn(pg)
        pg.screenshot(path=str(shots / f"{path.stem}.png"), full_page=True)
        v.assert_clean()
        return n
    finally:
        v.page.close()


@pytest.mark.browser
def test_sample_report_reads_well_in_chromium(browser, sample_html, tmp_path_factory):
    shots = tmp_path_factory.mktemp("screenshots")
    assert _check_page(browser, sample_html, shots) >= 4
    assert (shots / "sample-summary.png").stat().st_size > 0


@pytest.mark.browser
def test_real_images_report_reads_well_in_chromium(browser, real_html, tmp_path_factory):
    shots = tmp_path_factory.mktemp("screenshots-real")
    assert _check_page(browser, real_html, shots) >= 3
    text = real_html.read_text()
    assert "dive-test:kaniko-latest" in _section(text, "waste")


@pytest.mark.browser
def test_registry_metadata_report_reads_well_in_chromium(browser, repo_info_html, tmp_path_factory):
    shots = tmp_path_factory.mktemp("screenshots-repo-info")
    assert _check_page(browser, repo_info_html, shots) >= 2
    text = repo_info_html.read_text()
    assert "compressed (blob) sizes" in _section(text, "summary")
    assert "Layer contents were read for 0 images of 4" in _section(text, "waste")


@pytest.mark.browser
def test_hostile_names_stay_text(browser, tmp_path):
    from _browser import Visit

    xss_fleet().save(tmp_path / "snap")
    out = render_summary_report([str(tmp_path / "snap")], tmp_path / "xss.html", progress=False, cache_dir=False)
    v = Visit(browser, out)
    try:
        pg = v.page
        text = pg.inner_text("body")
        assert XSS_SCRIPT in text and XSS_IMG.strip() in text
        assert pg.evaluate("typeof window.__pwned") == "undefined"
        assert pg.query_selector_all("img") == []
        kinds = pg.evaluate("Array.from(document.scripts).map(s => s.type || 'classic')")
        assert sorted(kinds) == ["application/json", "module"], kinds
        v.assert_clean()
    finally:
        v.page.close()


@pytest.mark.browser
def test_pdf_is_printed_through_chromium(browser, tmp_path):
    out = render_summary_report([str(SAMPLE)], tmp_path / "report.pdf", progress=False, cache_dir=False)
    data = out.read_bytes()
    assert data.startswith(b"%PDF-") and len(data) > 20_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.pdf"]
