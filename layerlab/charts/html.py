"""Standalone HTML for a chart, with its JSON made safe inside ``<script>``."""
from __future__ import annotations

import json


def _script_safe(text: str) -> str:
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


class _ScriptSafeJSON(json.JSONEncoder):
    """JSON whose text cannot close a <script> element: ``<``, ``>`` and ``&``
    are written as ``\\u003c``, ``\\u003e``, ``\\u0026`` (the same JSON value)."""

    def encode(self, o):
        return _script_safe(super().encode(o))

    def iterencode(self, o, _one_shot=False):
        for chunk in super().iterencode(o, _one_shot):
            yield _script_safe(chunk)


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
