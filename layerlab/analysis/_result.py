"""The one result convention of every analysis (xarray's habits).

A result object holds frames (``to_frame()`` for the main one, ``frames()``
for all of them by name), ``notes`` (plain sentences: what was assumed, what
is unknown, what to check), a short ``__repr__`` and a ``_repr_html_`` for
Jupyter.  Subclasses name their frame attributes in ``_frame_names`` (main
frame first) and say what they are in one line in ``_summary()``.
"""
from __future__ import annotations

import html
from typing import Any

_HTML_ROWS = 20


class Result:
    """Base of analysis results: frames, notes and both reprs."""

    _frame_names: tuple[str, ...] = ()
    notes: list[str]

    # -- frames ------------------------------------------------------------
    def frames(self) -> dict[str, Any]:
        """Every frame of the result by name (main frame first)."""
        out = {}
        for name in self._frame_names:
            value = getattr(self, name)
            out[name] = value() if callable(value) else value
        return out

    def to_frame(self):
        """The main frame of the result."""
        if not self._frame_names:
            raise NotImplementedError(f"{type(self).__name__} has no frames")
        value = getattr(self, self._frame_names[0])
        return value() if callable(value) else value

    # -- display -----------------------------------------------------------
    def _summary(self) -> str:
        """One line saying what the result is (subclasses override)."""
        return ""

    def _html_figure(self) -> str:
        """Markup of a small static figure for ``_repr_html_``, drawn after the
        notes (subclasses override; every text in it escaped).  "": none."""
        return ""

    def __repr__(self) -> str:
        head = f"<layerlab.{type(self).__name__}"
        summary = self._summary()
        notes = getattr(self, "notes", None) or []
        tail = f"; {len(notes)} note{'s' if len(notes) != 1 else ''}" if notes else ""
        return f"{head}: {summary}{tail}>" if summary else f"{head}{tail}>"

    def _repr_html_(self) -> str:
        parts = [f"<div class='layerlab-result'><strong>layerlab.{html.escape(type(self).__name__)}</strong>"]
        summary = self._summary()
        if summary:
            parts.append(f" {html.escape(summary)}")
        notes = getattr(self, "notes", None) or []
        if notes:
            parts.append("<ul>" + "".join(f"<li>{html.escape(str(n))}</li>" for n in notes) + "</ul>")
        parts.append(self._html_figure())
        try:
            frame = self.to_frame()
        except NotImplementedError:
            frame = None
        if frame is not None and hasattr(frame, "to_html"):
            from ..frames import frame_html

            parts.append(frame_html(frame.iloc[:, :20], max_rows=_HTML_ROWS))
            if len(frame) > _HTML_ROWS:
                parts.append("<p><code>.to_frame()</code> has them all.</p>")
        parts.append("</div>")
        return "".join(parts)
