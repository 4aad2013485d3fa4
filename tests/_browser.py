"""Headless Chromium for the report tests: Debian's /usr/bin/chromium through
playwright (never a downloaded browser), every non-file request blocked and
recorded, console errors and failed requests collected."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed (pip install playwright; no browser download needed)"
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is absent (apt-get install chromium)"
    return None


def launch_browser():
    """Generator for a module fixture (``yield from launch_browser()``) giving a browser; skips (or fails under LAYERLAB_REQUIRE_BROWSER=1) without one."""
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




def assert_charts_drawn(page) -> int:
    """Every chart placeholder of a report drew: vega-embed finished, and its
    SVG holds marks with geometry.  Returns the number of charts."""
    n_specs = page.evaluate("JSON.parse(document.getElementById('layerlab-vega-specs')?.textContent || '[]').length")
    charts = page.query_selector_all("div.layerlab-chart")
    assert len(charts) == n_specs
    for c in charts:
        assert c.get_attribute("data-layerlab-drawn") == "ok", c.inner_text()[:300]
        # vega's SVG renderer draws marks as paths/rects inside g.mark-* groups
        marks = c.evaluate(
            "el => Array.from(el.querySelectorAll('svg g[class^=\"mark-\"] path, svg g[class^=\"mark-\"] rect'))"
            ".filter(m => (m.getAttribute('d') || m.getAttribute('width') || '').length > 0).length"
        )
        assert marks > 0, f"chart {c.get_attribute('id')} drew no marks"
        box = c.bounding_box()
        assert box and box["width"] > 50 and box["height"] > 50
    return n_specs
