"""JSON made safe inside ``<script>`` (the one rule: standalone chart pages
here, the reports' spec block in :mod:`layerlab.reporting.page`), and
standalone HTML for a chart."""
from __future__ import annotations

import json
from typing import Any

_ESCAPES = (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


def script_safe(text: str) -> str:
    """JSON text that cannot close a ``<script>`` element nor end a line of
    script: ``&``, ``<``, ``>``, U+2028 and U+2029 written as ``\\uXXXX``
    escapes (the same JSON value)."""
    for raw, escaped in _ESCAPES:
        text = text.replace(raw, escaped)
    return text


def json_for_script(obj: Any) -> str:
    """``obj`` as compact JSON safe inside ``<script>`` (:func:`script_safe`);
    NaN refused, values JSON does not know written as their ``str``."""
    return script_safe(json.dumps(obj, separators=(",", ":"), allow_nan=False, default=str))


class _ScriptSafeJSON(json.JSONEncoder):
    """JSON whose text cannot close a <script> element (:func:`script_safe`)."""

    def encode(self, o):
        return script_safe(super().encode(o))

    def iterencode(self, o, _one_shot=False):
        for chunk in super().iterencode(o, _one_shot):
            yield script_safe(chunk)


def to_html(chart, **kwargs) -> str:
    """A standalone HTML page for ``chart`` (``chart.to_html`` with the
    spec's JSON made script-safe: a command such as ``</script><script>…``
    in the data stays data).  Altair's own ``to_html``/``save`` write the
    JSON unescaped into a ``<script>`` element; use this (or
    ``save_html``) for charts over untrusted image metadata.  ``kwargs``
    go to ``chart.to_html`` (e.g. ``inline=True`` for no CDN)."""
    json_kwds = dict(kwargs.pop("json_kwds", None) or {})
    json_kwds["cls"] = _ScriptSafeJSON
    return chart.to_html(json_kwds=json_kwds, **kwargs)


def save_html(chart, path, **kwargs) -> None:
    """Write ``to_html(chart)`` to ``path`` (only that file is written)."""
    from pathlib import Path

    Path(path).write_text(to_html(chart, **kwargs), encoding="utf-8")
