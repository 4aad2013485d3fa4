"""HTML pieces of the summary report: escaped text, human sizes with their exact
bytes one hover away, "unknown" with a footnote, tables that scroll inside
their box, charts as placeholders.

Every string that reaches the page goes through :meth:`Doc.text` (likely
secrets masked, then HTML-escaped): image names and commands come from
strangers.  Sizes are shown with :func:`layerlab.frames.human_bytes`; the exact
byte count is the cell's ``title`` (a hover away) and its ``data-bytes``.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import pandas as pd

from ..frames import bytes_html, missing

UNKNOWN_NOTE = (
    "unknown: the source does not record this value (for example wire sizes of images read from an engine "
    "or a plain docker save archive, or uncompressed sizes of layers known only from a registry); layerlab "
    "never guesses it: a total that needs it is unknown, or shown as \"at least\" the bytes of the layers whose "
    "size is known."
)



@dataclass
class Doc:
    """What one report page collects while its sections are written: chart
    specs, the footnotes used, and the secret-masking memo."""

    mask: bool = True
    specs: list[dict] = field(default_factory=list)
    footnotes: dict[str, str] = field(default_factory=dict)
    _memo: dict[str, str] = field(default_factory=dict)

    # -- text ---------------------------------------------------------------
    def text(self, v: Any) -> str:
        """``v`` as escaped text (secrets masked); unknown values as "unknown"."""
        if missing(v):
            return self.unknown()
        s = str(v)
        if self.mask and len(s) >= 8:
            from ..analysis._secret_rules import mask_nested

            s = mask_nested(s, self._memo)
        return html.escape(s)

    def masked(self, series: pd.Series) -> pd.Series:
        """``series`` of text with likely secrets masked (when this page masks them); nulls stay null."""
        if not self.mask:
            return series
        from ..analysis._secret_rules import mask_nested

        return pd.Series([None if missing(v) else mask_nested(str(v), self._memo) for v in series],
                         index=series.index, dtype="string")

    def code(self, v: Any) -> str:
        return self.unknown() if missing(v) else f"<code>{self.text(v)}</code>"

    def unknown(self) -> str:
        return f"<span class='unknown' title='not recorded by the source'>unknown{self.mark()}</span>"

    def mark(self) -> str:
        """The footnote mark that points to the note on unknown values."""
        self.footnotes.setdefault("unknown", UNKNOWN_NOTE)
        return "<sup><a href='#fn-unknown'>*</a></sup>"

    def size(self, v: Any) -> str:
        """A human size; the exact bytes in the hover (``title``) and ``data-bytes``."""
        if missing(v):
            return self.unknown()
        return bytes_html(v)

    def count(self, v: Any) -> str:
        return self.unknown() if missing(v) else f"{int(v):,}"

    def percent(self, v: Any, digits: int = 1) -> str:
        return self.unknown() if missing(v) else f"{float(v) * 100:.{digits}f}%"

    # -- blocks ---------------------------------------------------------------
    def table(self, frame: pd.DataFrame, columns: Sequence[tuple[str, str, str]], *, limit: int | None = None,
              what: str = "rows") -> str:
        """A table of ``frame``: ``columns`` are (column, header, kind) with kind
        ``text``, ``code``, ``size``, ``count``, ``percent``, ``score`` or
        ``details`` (a collapsed ``<pre>``).  Wrapped in a box that scrolls
        sideways when the table is wider than the page."""
        fmt: dict[str, Callable[[Any], str]] = {
            "text": self.text, "code": self.code, "size": self.size, "count": self.count,
            "percent": self.percent, "score": lambda v: self.unknown() if missing(v) else f"{float(v):.4f}",
            "details": self.details,
        }
        shown = frame if limit is None else frame.head(limit)
        head = "".join(f"<th class='{'num' if k in ('size', 'count', 'percent', 'score') else 'txt'}'>"
                       f"{self.text(h)}</th>" for _, h, k in columns)
        body = []
        for rec in shown.to_dict("records"):
            cells = []
            for col, _, kind in columns:
                cls = "num" if kind in ("size", "count", "percent", "score") else "txt"
                cells.append(f"<td class='{cls}'>{fmt[kind](rec.get(col))}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        more = ""
        if limit is not None and len(frame) > limit:
            more = f"<p class='more'>{len(frame) - limit:,} more {self.text(what)} not shown.</p>"
        return (f"<div class='layerlab-table-wrap'><table class='layerlab-table'><thead><tr>{head}</tr></thead>"
                f"<tbody>{''.join(body)}</tbody></table></div>{more}")

    def details(self, v: Any, summary: str = "show") -> str:
        if missing(v) or not str(v).strip():
            return "—"
        return f"<details><summary>{self.text(summary)}</summary><pre>{self.text(v)}</pre></details>"

    def chart(self, chart: Any) -> str:
        """A placeholder div for an altair chart; its spec joins the page's specs
        (masked like the text when the page masks secrets)."""
        spec = chart.to_dict()
        if self.mask:
            from ..analysis._secret_rules import mask_nested

            spec = mask_nested(spec, self._memo)
        div_id = f"layerlab-chart-{len(self.specs)}"
        self.specs.append({"id": div_id, "spec": spec, "mode": "vega-lite"})
        from .page import chart_div

        return "<div class='layerlab-chart-wrap'>" + chart_div(div_id) + "</div>"

    def bullets(self, items: Sequence[str]) -> str:
        """``items`` are HTML already (made with this Doc's escapes)."""
        return "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>" if items else ""

    def notes(self, notes: Sequence[str], limit: int = 12) -> str:
        if not notes:
            return ""
        # the analyses' notes name pandas' missing value as <NA>; a reader sees "unknown"
        items = [self.text(str(n).replace("<NA>", "unknown")) for n in notes[:limit]]
        more = f"<p class='more'>{len(notes) - limit:,} more notes not shown.</p>" if len(notes) > limit else ""
        return "<div class='notes'><strong>Notes</strong>" + self.bullets(items) + more + "</div>"


STYLE = """
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#222;margin:0;background:#fafafa}
main{max-width:1100px;margin:0 auto;padding:8px 20px 40px;background:#fff;overflow-wrap:anywhere}
h1{font-size:26px;margin:16px 0 4px}h2{font-size:20px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:16px;margin:18px 0 6px}
section{overflow-wrap:anywhere}
.figures{display:flex;flex-wrap:wrap;gap:10px;margin:10px 0}
.figure{flex:1 1 170px;border:1px solid #ddd;border-radius:6px;padding:8px 10px;background:#f6f8fb;min-width:0}
.figure .v{font-size:22px;font-weight:600}.figure .l{font-size:12px;color:#555}
.layerlab-table-wrap{overflow-x:auto;max-width:100%;margin:6px 0 10px}
.layerlab-table{border-collapse:collapse;font-size:13px}
.layerlab-table th,.layerlab-table td{border-bottom:1px solid #e4e4e4;padding:3px 8px;vertical-align:top}
.layerlab-table th{background:#f1f1f1;text-align:left;white-space:nowrap}
.layerlab-table td.num,.layerlab-table th.num{text-align:right;white-space:nowrap}
.layerlab-table td.txt{max-width:480px;min-width:4em;overflow-wrap:break-word}
.layerlab-table td.txt code{overflow-wrap:break-word}
.layerlab-chart-wrap{overflow-x:auto;max-width:100%;margin:8px 0}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f6f6;padding:6px;font-size:12px;margin:4px 0}
code{overflow-wrap:anywhere}
.bytes{border-bottom:1px dotted #999;cursor:help}
.unknown{color:#8a5a00}
.error{border:1px solid #d99;background:#fff3f3;padding:8px;border-radius:4px}
.notes{font-size:13px;color:#444}.more{font-size:13px;color:#555}
.footnotes{font-size:13px;color:#444;border-top:1px solid #ddd;margin-top:30px}
@media print{body{background:#fff}main{max-width:none}.layerlab-table-wrap{overflow:visible}.layerlab-table{font-size:11px}.layerlab-chart-wrap svg{max-width:100%;height:auto}}
"""

