"""The CLI's tables: a frame as people read it in a terminal — human units,
short ids, readable step labels, as many columns as fit the width (the rest
named on stderr).  ``--format csv|json|parquet`` bypasses all of this and
keeps the full data."""
from __future__ import annotations

import os
import re
import shutil
import sys

import pandas as pd

from .frames import human_bytes, is_byte_column
from .labels import mode_texts, shorten_middle, step_labels

# columns in the order they are worth their width; the later ones go first when space runs out
PRIORITY: dict[str, list[str]] = {
    "images": ["image", "id", "platform", "layer_count", "size", "compressed_size", "created", "source", "location",
               "manifest_digest"],
    "layers": ["image", "position", "diff_id", "size", "compressed_size", "step", "cumulative_size", "digest",
               "chain_id", "created", "media_type", "history_index", "pairing"],
    "history": ["image", "index", "step", "layer_position", "size", "empty_layer", "created", "pairing",
                "author", "comment", "truncated", "step_id"],
    "failures": ["source", "error", "image", "diff_id"],   # layerlab scan: what failed, and why
}
ID_COLUMNS = {"id", "diff_id", "digest", "chain_id", "manifest_digest", "step_id", "config_digest", "layer_digest"}
SHRINKABLE = ("step", "created_by", "hidden_by_created_by", "location", "path", "message", "comment", "author", "image",
              "error")
GAP = 2
LONG = 60
_HEX = re.compile(r"^(?:sha256:|sha512:)?([0-9a-f]{12})[0-9a-f]*$")


def short_id(value) -> str:
    """``sha256:3f1c…`` -> ``3f1c0a9b8d7e`` (12 hex characters, as ``docker images``)."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return ""
    m = _HEX.match(str(value))
    return m.group(1) if m else str(value)


def _cell(v) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and v != v) or v is pd.NaT:
        return ""
    if isinstance(v, pd.Timestamp):
        return v.strftime("%Y-%m-%d %H:%M")
    return str(v)


def readable(df: pd.DataFrame, labels: bool = True) -> pd.DataFrame:
    """Every column as display text: byte columns in human units, digests as
    12 hex characters, commands as step labels (column ``step``; with
    ``labels=False`` the command as recorded), modes as ``ls -l`` shows them,
    times to the minute, unknown values empty."""
    out = pd.DataFrame(index=df.index)
    for c in df.columns:
        col = df[c]
        if is_byte_column(c):
            out[c] = [human_bytes(None if pd.isna(v) else int(v)) if not pd.isna(v) else "" for v in col]
        elif c == "mode":
            out[c] = list(mode_texts(col, df["type"] if "type" in df.columns else None))
        elif c in ID_COLUMNS:
            out[c] = [short_id(v) for v in col]
        elif c in ("created_by", "hidden_by_created_by") and labels:
            pos = df["position"] if "position" in df.columns else (
                df["layer_position"] if "layer_position" in df.columns else None)
            out["step" if c == "created_by" else c] = list(step_labels(col, 0, positions=pos))
        else:
            out[c] = [_cell(v) for v in col]
    return out


def fit(df: pd.DataFrame, width: int, priority: list[str], keep_all: bool) -> tuple[pd.DataFrame, list[str]]:
    """Columns (and text) cut until the table fits ``width`` characters:
    if it does not, long text first shortened (in the middle) to ``LONG``
    characters; then,
    unless ``keep_all``, columns dropped — empty ones first, then the least
    useful beyond the first six of ``priority``; then the text columns
    shortened further; then more columns dropped (never the first two nor
    the step).  Returns (table, dropped)."""
    df = df.copy()
    widths: dict[str, int] = {}

    def measure(c):
        widths[c] = max([len(c), *(len(v) for v in df[c])])

    for c in df.columns:
        measure(c)
    if sum(widths.values()) + GAP * (len(widths) - 1) > width:  # too wide: long text goes first
        for c in df.columns:
            if c in SHRINKABLE and c != "image":
                df[c] = [shorten_middle(v, LONG) for v in df[c]]
                measure(c)
    full = {c: list(df[c]) for c in df.columns if c in SHRINKABLE}
    cols = [c for c in priority if c in df.columns] + [c for c in df.columns if c not in priority]
    if keep_all:
        cols = list(df.columns)

    def total(cs):
        return sum(widths[c] for c in cs) + GAP * (len(cs) - 1)

    dropped: list[str] = []

    def drop(candidates):
        for c in candidates:
            if total(cols) <= width:
                return
            cols.remove(c)
            dropped.append(c)

    def shrink(least):
        for c in SHRINKABLE:
            over = total(cols) - width
            if over <= 0:
                return
            if c in cols and widths[c] > max(len(c), least):
                df[c] = [shorten_middle(v, max(len(c), least, widths[c] - over)) for v in full[c]]
                measure(c)

    if not keep_all:
        keep = set(cols[:6]) | {"step"}
        empty = [c for c in reversed(cols) if (df[c] == "").all() and c not in cols[:2]]
        drop(empty + [c for c in reversed(cols) if c not in keep and c not in empty])
    shrink(40)
    if not keep_all:
        drop([c for c in reversed(cols) if c not in cols[:2] and c != "step"])
    shrink(24)
    return df[cols], dropped


def terminal_width() -> int:
    """The width to fit: ``$COLUMNS`` when set, else the terminal's when
    printing to one; output piped elsewhere is not cut (a very large width)."""
    if os.environ.get("COLUMNS", "").isdigit() or sys.stdout.isatty():
        return shutil.get_terminal_size((120, 24)).columns
    return 1 << 20


def render(df: pd.DataFrame, what: str, *, keep_all: bool = False, width: int | None = None) -> tuple[str, list[str]]:
    """(the table as text, the columns left out to fit)."""
    width = width or terminal_width()
    text = readable(df, labels=not keep_all)  # columns named by the user: their values as recorded
    text, dropped = fit(text, width, PRIORITY.get(what, []), keep_all)
    numeric = {c for c in text.columns if is_byte_column(c)
               or (c in df.columns and pd.api.types.is_numeric_dtype(df[c].dtype)
                                                           and not pd.api.types.is_bool_dtype(df[c].dtype))}
    widths = {c: max([len(c), *(len(v) for v in text[c])]) for c in text.columns}

    def line(values):
        cells = [(v.rjust(widths[c]) if c in numeric else v.ljust(widths[c])) for c, v in zip(text.columns, values)]
        return (" " * GAP).join(cells).rstrip()

    rows = [line(list(text.columns))] + [line(r) for r in text.itertuples(index=False, name=None)]
    return "\n".join(rows), dropped
