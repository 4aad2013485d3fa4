"""Open rendered reports in headless Chromium (Debian's, via playwright) with
every non-file request blocked, and check that the charts drew, nothing was
fetched, nothing failed, and hostile text from image history stays text.

Skips when playwright or /usr/bin/chromium is absent, unless
LAYERLAB_REQUIRE_BROWSER=1 (set by .ci/run) — then it fails.
"""
from __future__ import annotations

import pytest

from _browser import ARTIFACTS, Visit, assert_charts_drawn, launch_browser
from _report_fleet import XSS_IMG, XSS_SCRIPT, article_fleet, xss_fleet
from layerlab import report

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    yield from launch_browser()


@pytest.fixture(scope="module")
def article_report(tmp_path_factory):
    d = tmp_path_factory.mktemp("browser")
    article_fleet().save(d / "snap")
    out = d / "report.html"
    report.render_report([str(d / "snap")], out, progress=False)
    return out


def test_report_charts_draw_offline(browser, article_report):
    v = Visit(browser, article_report)
    try:
        page = v.page
        assert assert_charts_drawn(page) >= 4
        # the frames are there as tables too: an image name from the fleet
        text = page.inner_text("body")
        assert "layered/app2:1" in text
        assert "naive/app1:1" in text
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report-fleet-overlap.png"), full_page=True)
        v.assert_clean()
    finally:
        v.page.close()


def test_report_stays_interactive_without_a_kernel(browser, article_report):
    """The charts' Vega-Lite params work in the static page: choosing another
    image in a chart's bound dropdown redraws that chart."""
    v = Visit(browser, article_report)
    try:
        page = v.page
        selects = page.query_selector_all("div.layerlab-chart select")
        assert selects, "the fleet report's charts bind dropdowns (vega-bind)"
        changed = 0
        for sel in selects:
            chart = sel.evaluate_handle("el => el.closest('div.layerlab-chart')")
            options = sel.evaluate("el => Array.from(el.options).map(o => o.value)")
            current = sel.evaluate("el => el.value")
            other = next((o for o in options if o != current), None)
            if other is None:
                continue
            before = chart.evaluate("el => el.querySelector('svg').innerHTML")
            sel.select_option(other)
            page.wait_for_function(
                "([el, before]) => el.querySelector('svg').innerHTML !== before", arg=[chart, before], timeout=10_000
            )
            changed += 1
        assert changed >= 1
        v.assert_clean()
    finally:
        v.page.close()


def test_report_has_no_remote_references(article_report):
    """Independent of the browser: no <script src> / <link href> at all, and a CSP that forbids connections."""
    import re

    page = article_report.read_text()
    assert not re.search(r"<script[^>]*\bsrc=", page)
    assert not re.search(r"<link[^>]*\bhref=\"https?:", page)
    assert "connect-src 'none'" in page


def test_hostile_created_by_stays_text(browser, tmp_path):
    xss_fleet().save(tmp_path / "snap")
    out = tmp_path / "xss.html"
    report.render_report([str(tmp_path / "snap")], out, notebook="02-fleet-overlap", progress=False)
    v = Visit(browser, out)
    try:
        page = v.page
        text = page.inner_text("body")
        assert XSS_SCRIPT in text, "the <script> command should be shown as text"
        assert XSS_IMG.strip() in text, "the <img onerror> command should be shown as text"
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert page.query_selector_all("img[src=x]") == []
        assert page.query_selector_all("img[onerror]") == []
        # the only scripts are the spec block and the Vega bundle
        kinds = page.evaluate("Array.from(document.scripts).map(s => s.type || 'classic')")
        assert sorted(kinds) == ["application/json", "module"], kinds
        assert "__pwned" not in page.evaluate(
            "Array.from(document.scripts).filter(s => s.type !== 'application/json').map(s => s.textContent).join('')"
        )
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report-hostile-history.png"), full_page=True)
        v.assert_clean()
    finally:
        v.page.close()
