"""The pull timeline as a Gantt chart (to move into ``layerlab.charts``).

``timeline_chart(data=pull.timeline)`` draws one row per layer (position 0,
the base, at the top) with a bar for its download and a bar for its
extraction, in seconds from the start of the pull; skipped layers show as a
labelled row without bars.  ``data`` is a :class:`~layerlab.analysis.pull.PullTime`
or its ``timeline`` frame, unchanged: the chart's rows are the frame's rows,
melted into one row per (layer, step).  ``altair`` is imported on call.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from .errors import AnalysisError

_NEEDED = ("position", "download_start", "download_end", "extract_start", "extract_end", "bytes", "skipped")


def _steps(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (layer, step) that happens; skipped layers keep one row with no times."""
    rows = []
    for _, r in df.iterrows():
        label = f"#{int(r['position'])}" + (" (on the host)" if bool(r["skipped"]) else "")
        common = {"position": int(r["position"]), "layer": label, "bytes": r["bytes"],
                  "size": r.get("size"), "digest": r.get("digest")}
        happened = False
        for step in ("download", "extract"):
            start, end = r[f"{step}_start"], r[f"{step}_end"]
            if pd.notna(start) and pd.notna(end):
                rows.append({**common, "step": step, "start": float(start), "end": float(end)})
                happened = True
        if not happened:
            rows.append({**common, "step": "on the host", "start": None, "end": None})
    return pd.DataFrame(rows, columns=["position", "layer", "bytes", "size", "digest", "step", "start", "end"])


def timeline_chart(data: Any, *, width: int = 520, title: str | None = None):
    """A Gantt chart of a pull: download and extraction bars per layer (see the module doc)."""
    frame = getattr(data, "timeline", data)
    if not isinstance(frame, pd.DataFrame) or any(c not in frame.columns for c in _NEEDED):
        raise AnalysisError("timeline_chart(): pass a PullTime or its .timeline frame "
                            f"(columns {', '.join(_NEEDED)})")
    try:
        import altair as alt
    except ImportError as e:  # pragma: no cover - altair is a core dependency
        raise AnalysisError("timeline_chart() needs altair: pip install altair") from e
    steps = _steps(frame)
    seconds = getattr(data, "seconds", None)
    if title is None:
        title = "Pull timeline" + (f": {seconds:.1f} s" if isinstance(seconds, (int, float)) else "")
    order = [lab for _, lab in sorted(set(zip(steps["position"], steps["layer"])))]
    return (
        alt.Chart(steps, title=title)
        .mark_bar()
        .encode(
            y=alt.Y("layer:N", sort=order, title="layer"),
            x=alt.X("start:Q", title="seconds from the start of the pull"),
            x2="end:Q",
            color=alt.Color("step:N", scale=alt.Scale(domain=["download", "extract", "on the host"],
                                                      range=["#4c78a8", "#f58518", "#bab0ac"])),
            tooltip=[alt.Tooltip("layer:N"), alt.Tooltip("step:N"), alt.Tooltip("start:Q", format=".2f"),
                     alt.Tooltip("end:Q", format=".2f"), alt.Tooltip("bytes:Q", format=",", title="bytes downloaded"),
                     alt.Tooltip("digest:N")],
        )
        .properties(width=width)
    )
