"""Open rendered reports in headless Chromium (Debian's, via playwright) with
every non-file request blocked, and check that the charts drew, nothing was
fetched, nothing failed, and hostile text from image history stays text.

Skips when playwright or /usr/bin/chromium is absent, unless
LAYERLAB_REQUIRE_BROWSER=1 (set by .ci/run) — then it fails.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from _report_fleet import XSS_IMG, XSS_SCRIPT, article_fleet, xss_fleet
from layerlab import report

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

pytestmark = pytest.mark.browser


def _browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed (pip install playwright; no browser download needed)"
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is absent (apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def browser():
    reason = _browser_missing()
    if reason:
        if os.environ.get("LAYERLAB_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " — and LAYERLAB_REQUIRE_BROWSER=1 says it must be there")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


class Visit:
    """One page load with network blocked and everything recorded."""

    def __init__(self, browser, path: Path):
        self.blocked: list[str] = []
        self.failed: list[str] = []
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.page = browser.new_page()
        self.page.on("console", lambda m: m.type == "error" and self.console_errors.append(m.text))
        self.page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.failed.append(f"{r.url} {r.failure}"))

        def route(r):
            if r.request.url.startswith("file://"):
                r.continue_()
            else:
                self.blocked.append(r.request.url)
                r.abort()

        self.page.route("**/*", route)
        self.page.goto(path.resolve().as_uri())
        self.page.wait_for_selector("body[data-layerlab-charts=done]", timeout=60_000)

    def assert_clean(self):
        assert self.blocked == [], f"the report asked for the network: {self.blocked}"
        assert self.failed == [], f"failed requests: {self.failed}"
        assert self.console_errors == [], f"console errors: {self.console_errors}"
        assert self.page_errors == [], f"page errors: {self.page_errors}"


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
        # count the Vega-Lite specs the page carries, straight from its JSON block
        n_specs = page.evaluate("JSON.parse(document.getElementById('layerlab-vega-specs').textContent).length")
        assert n_specs >= 3
        charts = page.query_selector_all("div.layerlab-chart")
        assert len(charts) == n_specs
        for c in charts:
            assert c.get_attribute("data-layerlab-drawn") == "ok"
            # vega's SVG renderer draws marks as paths/rects inside g.mark-* groups
            marks = c.evaluate(
                "el => Array.from(el.querySelectorAll('svg g[class^=\"mark-\"] path, svg g[class^=\"mark-\"] rect'))"
                ".filter(m => (m.getAttribute('d') || m.getAttribute('width') || '').length > 0).length"
            )
            assert marks > 0, f"chart {c.get_attribute('id')} drew no marks"
            box = c.bounding_box()
            assert box and box["width"] > 50 and box["height"] > 50
        # the frames are there as tables too: an image name from the fleet
        text = page.inner_text("body")
        assert "layered/app2:1" in text
        assert "naive/app1:1" in text
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report-fleet-overlap.png"), full_page=True)
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
