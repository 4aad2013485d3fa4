"""A small static Gantt chart as inline SVG text, for results' ``_repr_html_``.

Analyses may not import ``layerlab.charts`` (the views sit above them), so a
result that wants a picture in its HTML repr draws it here as plain SVG
markup, the way ``_result.Result`` writes its HTML table: every piece of text
(labels, tooltips) goes through ``html.escape``; numbers are formatted, never
spliced from input.  No script, no external reference: it shows in Jupyter,
in a saved notebook and in a report with the network blocked.
"""
from __future__ import annotations

import html
import math
from typing import Sequence

COLORS = {"download": "#4c78a8", "extract": "#f58518", "on the host": "#bab0ac"}


def _ticks(total: float) -> list[float]:
    """About five round tick values from 0 to ``total``."""
    if total <= 0:
        return [0.0]
    raw = total / 5
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return [i * step for i in range(int(total / step) + 1)]


def gantt_svg(rows: Sequence[dict], total: float, *, width: int = 480, bar: int = 14,
              label_width: int = 110, title: str = "") -> str:
    """SVG text: one line per row, bars ``(step, start, end)`` from ``row["bars"]``.

    ``rows``: dicts with ``label`` (text), ``tip`` (hover text) and ``bars``
    (a list of ``(step, start, end)`` with ``step`` a key of :data:`COLORS`;
    an empty list draws the grey "on the host" mark).  ``total``: the time
    axis' end in seconds."""
    total = max(float(total), 1e-9)
    plot = width - label_width - 10
    top = 22 if title else 6
    height = top + len(rows) * (bar + 4) + 50

    def x(t: float) -> float:
        return label_width + plot * max(0.0, min(t, total)) / total

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" style="font:11px sans-serif">']
    if title:
        out.append(f'<text x="{label_width}" y="14" font-weight="bold">{html.escape(title)}</text>')
    for i, r in enumerate(rows):
        y = top + i * (bar + 4)
        out.append(f'<text x="{label_width - 6}" y="{y + bar - 3}" text-anchor="end">{html.escape(str(r["label"]))}</text>')
        tip = html.escape(str(r.get("tip", "")))
        if not r["bars"]:
            out.append(f'<rect x="{label_width:.1f}" y="{y + 3}" width="{bar - 6}" height="{bar - 6}" '
                       f'fill="{COLORS["on the host"]}"><title>{tip}</title></rect>')
        for step, start, end in r["bars"]:
            w = max(x(end) - x(start), 1.0)
            out.append(f'<rect x="{x(start):.1f}" y="{y}" width="{w:.1f}" height="{bar}" fill="{COLORS[step]}">'
                       f'<title>{html.escape(step)} {start:.2f}–{end:.2f} s; {tip}</title></rect>')
    axis_y = top + len(rows) * (bar + 4) + 2
    out.append(f'<line x1="{label_width}" x2="{label_width + plot}" y1="{axis_y}" y2="{axis_y}" stroke="#888"/>')
    for t in _ticks(total):
        out.append(f'<text x="{x(t):.1f}" y="{axis_y + 13}" text-anchor="middle">{t:g}</text>')
    out.append(f'<text x="{label_width + plot / 2:.1f}" y="{axis_y + 27}" text-anchor="middle">seconds</text>')
    lx = 4
    for step, color in COLORS.items():
        out.append(f'<rect x="{lx}" y="{axis_y + 34}" width="9" height="9" fill="{color}"/>'
                   f'<text x="{lx + 12}" y="{axis_y + 43}">{html.escape(step)}</text>')
        lx += 12 + 7 * len(step) + 10
    out.append("</svg>")
    return "".join(out)
