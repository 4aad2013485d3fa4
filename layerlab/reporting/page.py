"""The offline page machinery every layerlab report uses: Vega inlined, a strict
Content-Security-Policy, the stamp line, writing HTML or PDF.

Charts travel as Vega(-Lite) specs in one ``<script type="application/json">``
block (made script-safe by :func:`layerlab.charts.html.json_for_script`, so
no string in the data can close the tag) and are drawn into empty ``<div
class="layerlab-chart">`` placeholders by one inline module script: Vega,
Vega-Lite and vega-embed from ``vl_convert.javascript_bundle()``.  The CSP allows only that script (by hash)
and no network at all, so even markup that slipped into the page could neither
run nor fetch anything.  Both the notebook report (:mod:`layerlab.report`) and
the summary report (:mod:`layerlab.reporting.summary`) use these functions.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import html
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..notebooks import ReportError

CHROMIUM = "/usr/bin/chromium"
"""The browser ``-o report.pdf`` prints with (Debian's package; never a downloaded one)."""


# The snippet vl_convert bundles with vega-embed: draw every chart placeholder
# from the JSON block; mark each container when done (tests wait on it).
DRAW_SNIPPET = r"""
const specs = JSON.parse(document.getElementById('layerlab-vega-specs').textContent);
const jobs = specs.map(async (item) => {
  const el = document.getElementById(item.id);
  if (!el) return;
  try {
    await vegaEmbed(el, item.spec, {mode: item.mode, renderer: 'svg', actions: false});
    el.setAttribute('data-layerlab-drawn', 'ok');
  } catch (err) {
    el.setAttribute('data-layerlab-drawn', 'error');
    el.textContent = 'chart could not be drawn: ' + err;
    console.error('layerlab report: chart ' + item.id + ' failed: ' + err);
  }
});
Promise.all(jobs).then(() => { document.body.setAttribute('data-layerlab-charts', 'done'); });
"""

_NO_CHARTS = "document.body.setAttribute('data-layerlab-charts','done');"


@functools.lru_cache(maxsize=1)
def vega_bundle() -> str:
    """Vega, Vega-Lite, vega-embed and :data:`DRAW_SNIPPET` as one ES module (from vl-convert)."""
    try:
        import vl_convert
    except ImportError as e:  # pragma: no cover - a core dependency
        raise ReportError("vl-convert-python is needed to inline Vega in the report: pip install vl-convert-python") from e
    return vl_convert.javascript_bundle(DRAW_SNIPPET)


def csp(script_bodies: Iterable[str]) -> str:
    """The page's Content-Security-Policy: these scripts (by hash), no network."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(b.encode()).digest()).decode() + "'" for b in script_bodies
    )
    # 'unsafe-eval': Vega compiles its expression language with Function().
    return (
        "default-src 'none'; "
        f"script-src {hashes} 'unsafe-eval'; "
        "style-src 'unsafe-inline'; img-src data:; font-src data:; "
        "connect-src 'none'; frame-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'"
    )


def chart_scripts(specs: list[dict]) -> tuple[str, str]:
    """``(csp_meta, tail)``: the CSP ``<meta>`` for the page's head and the
    scripts that end its body (the specs block and the Vega bundle, or a
    one-liner marking the page drawn when there are no charts)."""
    from ..charts.html import json_for_script

    if specs:
        bundle = vega_bundle()
        scripts = [bundle]
        tail = (
            f'<script type="application/json" id="layerlab-vega-specs">{json_for_script(specs)}</script>\n'
            f'<script type="module">{bundle}</script>\n'
        )
    else:
        scripts = [_NO_CHARTS]
        tail = f"<script>{_NO_CHARTS}</script>\n"
    meta = f'<meta http-equiv="Content-Security-Policy" content="{html.escape(csp(scripts), quote=False)}">\n'
    return meta, tail


def chart_div(div_id: str) -> str:
    """The placeholder a spec with ``id`` ``div_id`` is drawn into."""
    return f'<div class="layerlab-chart" id="{html.escape(div_id)}"></div>'


def stamp_html(label: str, parameters: Mapping[str, Any] | None = None) -> str:
    """The line that opens a report: layerlab's version, what made it, when."""
    from .. import __version__

    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    params = ""
    if parameters:
        items = "; ".join(f"{k} = {v!r}" for k, v in parameters.items())
        params = f" with parameters <code>{html.escape(items)}</code>"
    return (
        "<div class='layerlab-stamp' style='font:12px sans-serif;color:#666;padding:4px 16px'>"
        f"layerlab {html.escape(__version__)} report from <code>{html.escape(label)}</code>{params}, "
        f"generated {html.escape(when)}. Self-contained: no network needed to read it.</div>"
    )


def check_output(output: str | os.PathLike, suffixes: tuple[str, ...] = (".html", ".htm")) -> Path:
    """``output`` as a Path, refused (``ReportError``) when it is a directory or its directory is missing."""
    out = Path(output)
    if out.exists() and out.is_dir():
        raise ReportError(f"-o {out}: is a directory; give a file name such as {out / 'report.html'}")
    if not out.parent.exists():
        raise ReportError(f"-o {out}: directory {out.parent} does not exist; create it first")
    return out


def write_page(page: str, out: Path) -> Path:
    """Write the HTML ``page`` to ``out`` (``.pdf``: printed through Chromium)."""
    if out.suffix.lower() == ".pdf":
        return print_pdf(page, out)
    try:
        out.write_text(page, encoding="utf-8")
    except OSError as e:
        raise ReportError(f"-o {out}: cannot write the report ({e})") from e
    return out


def _chromium_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return ("the playwright Python package is not installed (pip install 'layerlab[pdf]' or pip install "
                "playwright; no browser download is needed)")
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is absent (install Debian's chromium package: apt-get install chromium)"
    return None


def print_pdf(page: str, out: Path, *, timeout_ms: int = 120_000) -> Path:
    """Print the HTML ``page`` to the PDF ``out`` with headless Chromium
    (:data:`CHROMIUM` through playwright; every non-file request refused).
    The charts are drawn before printing.  ``ReportError`` when no Chromium is
    available, saying what to install."""
    missing = _chromium_missing()
    if missing:
        raise ReportError(f"-o {out}: a PDF is printed through Chromium, but {missing}; or write -o report.html")
    from concurrent.futures import ThreadPoolExecutor

    # playwright's sync API refuses a thread with a running asyncio loop (Jupyter's): print in a thread of its own
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(_print, page, out, timeout_ms).result()


def _print(page: str, out: Path, timeout_ms: int) -> Path:
    import tempfile

    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="layerlab-pdf-") as tmp:
        src = Path(tmp) / "report.html"
        src.write_text(page, encoding="utf-8")
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
                try:
                    tab = browser.new_page()
                    tab.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file://") else r.abort())
                    tab.goto(src.as_uri())
                    tab.wait_for_selector("body[data-layerlab-charts=done]", timeout=timeout_ms, state="attached")
                    tab.emulate_media(media="print")
                    tab.pdf(path=str(out), format="A4", print_background=True,
                            margin={"top": "12mm", "bottom": "12mm", "left": "10mm", "right": "10mm"})
                finally:
                    browser.close()
        except PlaywrightError as e:
            raise ReportError(f"-o {out}: Chromium could not print the report ({str(e).splitlines()[0]})") from None
    return out


__all__ = ["CHROMIUM", "DRAW_SNIPPET", "chart_div", "chart_scripts", "check_output", "csp",
           "print_pdf", "stamp_html", "vega_bundle", "write_page"]
