"""``history:FILE`` — saved ``docker history`` output.

>>> img = layerlab.load("history:app.jsonl")                    # reference "app"
>>> img = layerlab.load("history:app.txt", reference="app:1", layers=8)

Formats read (detected from the text):

* JSON lines from ``docker history --no-trunc --format '{{json .}}'``
  (keys ``Comment``, ``CreatedAt``, ``CreatedBy``, ``CreatedSince``, ``ID``,
  ``Size``), with or without ``--human=false`` (then ``Size`` is exact bytes).
* The table: ``docker history IMAGE``, with ``--no-trunc`` and/or
  ``--human=false`` (columns ``IMAGE  CREATED [AT]  CREATED BY  SIZE
  COMMENT``, or any subset from ``--format 'table …'``).  ``<missing>`` IDs
  are kept as None; commands cut by docker (ending in ``…``) are flagged
  ``HistoryStep.truncated``.  A relative ``CREATED`` ("2 hours ago") gives no
  date; ``--human=false`` gives RFC 3339 dates.
* A JSON array as the Engine API / docker SDK's ``image.history()`` returns
  (``Id``, ``Created`` epoch seconds, ``CreatedBy``, ``Size`` bytes, ``Comment``).

docker history lists the newest step first; the model is oldest first.

Sizes — the choice:
    A human size (``1.98MB``, ``102kB``) is rounded to 3 significant digits.
    ``HistoryStep.size`` keeps that approximate value (useful for sorting and
    display) but ``Layer.size`` stays None (unknown: never guessed), and the
    image gets a warning saying to save with ``--human=false`` for exact
    sizes.  Sizes under 1 kB (``0B``, ``6B``) are printed as whole bytes and
    are exact, so those layers keep them.  ``--human=false`` and the API
    array give exact bytes everywhere.

Layers:
    the history has no diff_ids (``Layer.diff_id`` None, ``chain_id`` None)
    and does not say which steps made a layer.  Steps are paired by
    :func:`layerlab.sources._pairing.pair_by_evidence`: a size > 0,
    COPY/ADD/import and BuildKit RUN/WORKDIR make layers, metadata makes
    none.  A legacy-builder RUN or WORKDIR reported as 0 bytes may or may not
    have made a (0-byte) layer: without more evidence it stays ``unpaired``
    and the image warns.  Pass ``layers=N`` (the image's layer count, e.g.
    ``docker image inspect -f '{{len .RootFS.Layers}}' IMAGE``) to let the
    alignment use it.  One ``Layer`` is made per step paired with a layer.

Reference: the file name without its suffix (and without a ``.history``
before it: ``app1.history.jsonl`` -> ``app1``), or ``reference=``.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import FormatError, SourceError
from ..model import HistoryStep, Image, Layer
from ._digest import parse_json
from ._pairing import pair_by_evidence

_HUMAN = re.compile(r"^\s*([0-9.]+(?:[eE][+-]?\d+)?)\s*([kKMGTPEZY]?i?B)\s*$")
_UNITS = {"B": 1, "kB": 10**3, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "PB": 10**15,
          "EB": 10**18, "ZB": 10**21, "YB": 10**24,
          "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "PiB": 2**50}
_ID = re.compile(r"^(?:<missing>|(?:sha256:)?[0-9a-f]{12,64})$")
_MAX_BYTES = 256 << 20  # a history file is small; refuse to read a huge one whole
TRUNC = "…"


def parse_size(text: Any) -> tuple[int | None, bool]:
    """(bytes, exact) from a docker history size: ``65536`` / ``6B`` exact, ``1.98MB`` approximate."""
    if text is None:
        return None, False
    if isinstance(text, bool):
        return None, False
    if isinstance(text, int):
        return (text, True) if text >= 0 else (None, False)
    s = str(text).strip()
    if s.isdigit():
        return int(s), True
    m = _HUMAN.match(s)
    if not m:
        return None, False
    try:
        value = float(m.group(1))
    except ValueError:
        return None, False
    unit = m.group(2)
    if unit not in _UNITS:
        return None, False
    n = int(round(value * _UNITS[unit]))
    exact = unit == "B" and value == int(value)  # under 1 kB docker prints whole bytes
    return n, exact


def parse_time(text: Any) -> datetime | None:
    """RFC 3339 (``2026-11-28T02:03:10Z``, with offset or fraction) or Go's
    ``2026-11-28 02:03:10 +0000 UTC``; epoch seconds; else None (e.g. "2 hours ago")."""
    if text is None or isinstance(text, bool):
        return None
    if isinstance(text, (int, float)):
        try:
            return datetime.fromtimestamp(text, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    s = str(text).strip()
    if not s or not s[:4].isdigit():
        return None
    m = re.match(r"^(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(\.\d+)?\s*(Z|[+-]\d\d:?\d\d)?", s)
    if not m:
        return None
    tz = m.group(4) or "Z"
    if tz == "Z":
        tz = "+00:00"
    elif ":" not in tz:
        tz = tz[:3] + ":" + tz[3:]
    frac = (m.group(3) or "")[:7]
    try:
        return datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}{frac}{tz}").astimezone(timezone.utc)
    except ValueError:
        return None


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else (None if v is None else str(v))


def _step_id(v: Any) -> str | None:
    s = _str(v)
    if not s or s.strip() == "<missing>":
        return None
    return s.strip()


# ---------------------------------------------------------------------------
# the three formats -> rows (newest first): dicts with created_by, created, size, exact, id, comment, truncated
# ---------------------------------------------------------------------------
def _rows_from_json_lines(lines: list[str], where: str) -> list[dict]:
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = parse_json(line, f"{where}: line {n}")
        except FormatError as e:
            raise FormatError(f"{e}; expected the output of "
                              "docker history --no-trunc --format '{{json .}}'") from e
        if not isinstance(obj, dict):
            raise FormatError(f"{where}: line {n} is JSON but not an object")
        rows.append(_row(obj.get("CreatedBy"), obj.get("CreatedAt"), obj.get("Size"), obj.get("ID"),
                         obj.get("Comment")))
    return rows


def _rows_from_api(arr: list, where: str) -> list[dict]:
    rows = []
    for n, obj in enumerate(arr):
        if not isinstance(obj, dict):
            raise FormatError(f"{where}: item {n} of the JSON array is not an object")
        rows.append(_row(obj.get("CreatedBy"), obj.get("Created"), obj.get("Size"), obj.get("Id"),
                         obj.get("Comment")))
    return rows


def _row(created_by, created, size, step_id, comment) -> dict:
    cb = _str(created_by)
    n, exact = parse_size(size)
    return {
        "created_by": cb,
        "created": parse_time(created),
        "size": n,
        "exact": exact,
        "id": _step_id(step_id),
        "comment": _str(comment) or None,
        "truncated": bool(cb and cb.endswith(TRUNC)),
    }


_TABLE_COLUMNS = ("IMAGE", "CREATED AT", "CREATED BY", "CREATED SINCE", "CREATED", "SIZE", "COMMENT")


def _rows_from_table(lines: list[str], where: str) -> list[dict]:
    """Fixed-width columns, cut at the header's column starts (docker aligns every
    cell of a column with text/tabwriter, so those offsets hold for every row)."""
    header = lines[0]
    starts: list[tuple[int, str]] = []
    taken = [False] * (len(header) + 1)
    for name in _TABLE_COLUMNS:
        for m in re.finditer(r"(?:(?<=\s)|^)" + re.escape(name) + r"(?=\s{2,}|\s*$)", header):
            if not any(taken[m.start():m.end()]):
                starts.append((m.start(), name))
                for i in range(m.start(), m.end()):
                    taken[i] = True
                break
    starts.sort()
    names = [n for _, n in starts]
    if "CREATED BY" not in names:
        raise FormatError(f"{where}: a table without a CREATED BY column; save `docker history --no-trunc IMAGE` "
                          "or the JSON lines of --format '{{json .}}'")
    rows: list[dict] = []
    for line in lines[1:]:
        if not line.strip():
            continue
        cells = {}
        for k, (start, name) in enumerate(starts):
            end = starts[k + 1][0] if k + 1 < len(starts) else None
            cells[name] = line[start:end].strip()
        image_cell = cells.get("IMAGE")
        if rows and image_cell is not None and not _ID.match(image_cell):
            # a command with a newline (heredoc) continues on the next line
            rows[-1]["created_by"] = (rows[-1]["created_by"] or "") + "\n" + line.rstrip()
            continue
        created = cells.get("CREATED AT") or cells.get("CREATED")
        rows.append(_row(cells.get("CREATED BY"), created, cells.get("SIZE"), image_cell, cells.get("COMMENT")))
    return rows


# ---------------------------------------------------------------------------
def parse_text(text: str, where: str) -> list[dict]:
    """Rows (newest first) from any of the supported formats."""
    stripped = text.lstrip("\ufeff").strip()
    if not stripped:
        raise FormatError(f"{where}: empty; save e.g. docker history --no-trunc --human=false "
                          "--format '{{json .}}' IMAGE > FILE")
    if stripped.startswith("["):
        try:
            arr = parse_json(stripped, f"{where}: starts like a JSON array but")
        except FormatError as e:
            raise FormatError(f"{e}; expected a JSON array of history entries (the Engine API's)") from e
        if not isinstance(arr, list):
            raise FormatError(f"{where}: JSON, but not a list of history entries")
        return _rows_from_api(arr, where)
    lines = stripped.splitlines()
    if lines[0].lstrip().startswith("{"):
        return _rows_from_json_lines(lines, where)
    if "CREATED BY" in lines[0] or lines[0].startswith("IMAGE"):
        return _rows_from_table([l.rstrip("\r") for l in lines], where)
    raise FormatError(f"{where}: not docker history output (neither JSON lines, a JSON array nor the "
                      "IMAGE/CREATED BY table); save e.g. docker history --no-trunc --human=false "
                      "--format '{{json .}}' IMAGE > FILE")


def image_from_rows(rows: list[dict], reference: str, where: str, layers: int | None = None) -> Image:
    rows = list(reversed(rows))  # oldest first
    steps = [
        HistoryStep(index=i, created_by=r["created_by"], created=r["created"], comment=r["comment"],
                    empty_layer=None, size=r["size"], id=r["id"], truncated=r["truncated"])
        for i, r in enumerate(rows)
    ]
    if layers is not None and (not isinstance(layers, int) or isinstance(layers, bool) or layers < 0):
        raise SourceError(f"{where}: layers= must be the image's layer count (an int >= 0), not {layers!r}")
    pair_by_evidence(steps, layers)
    exact = {i: r["exact"] for i, r in enumerate(rows)}
    n_layers = layers if layers is not None else sum(1 for s in steps if s.layer_position is not None)
    by_pos = {s.layer_position: s for s in steps if s.layer_position is not None}
    layer_list = []
    for p in range(n_layers):
        s = by_pos.get(p)
        size = s.size if s is not None and exact[s.index] else None
        layer_list.append(Layer(position=p, diff_id=None, digest=None, size=size))
    warnings: list[str] = []
    if any(s.size is not None and not exact[s.index] for s in steps):
        warnings.append("sizes are docker's human-readable ones (3 significant digits): layer sizes are left "
                        "unknown; save with `docker history --no-trunc --human=false --format '{{json .}}' IMAGE` "
                        "for exact sizes")
    if any(s.truncated for s in steps):
        warnings.append("commands were truncated by docker (ending in '…'); save with --no-trunc for the full text")
    unpaired = [s.index for s in steps if s.pairing == "unpaired"]
    if unpaired:
        hint = ("pass layers=N (docker image inspect -f '{{len .RootFS.Layers}}' IMAGE) to settle them"
                if layers is None else "the evidence leaves them ambiguous")
        warnings.append(f"history steps {unpaired} (0-byte steps of the legacy builder) may or may not have "
                        f"made a layer; they are kept with pairing='unpaired' — {hint}")
    top = steps[-1] if steps else None
    image_id = None
    if top is not None and top.id:
        full = top.id if top.id.startswith("sha256:") else "sha256:" + top.id
        if len(full) == 71:
            image_id = full
    return Image(
        reference=reference,
        source="history",
        layer_list=layer_list,
        history_list=steps,
        id=image_id,
        created=top.created if top else None,
        location=where,
        warnings=warnings,
    )


def load(ref: str, transport: str = "history", *, reference: str | None = None, layers: int | None = None,
         **_options) -> Image:
    """Read a saved ``docker history`` output file (see the module doc)."""
    path = Path(ref)
    if not path.is_file():
        raise SourceError(f"history:{ref}: no such file; save one with "
                          "docker history --no-trunc --human=false --format '{{json .}}' IMAGE > FILE")
    try:
        if path.stat().st_size > _MAX_BYTES:
            raise FormatError(f"history:{ref}: {path.stat().st_size} bytes is too large for docker history output")
        data = path.read_bytes()
        # PowerShell 5's `>` writes UTF-16 with a BOM
        text = data.decode("utf-16", errors="replace") if data[:2] in (b"\xff\xfe", b"\xfe\xff") \
            else data.decode("utf-8", errors="replace")
    except OSError as e:
        raise SourceError(f"history:{ref}: cannot read it ({e.strerror or e})") from e
    where = f"history:{ref}"
    rows = parse_text(text, where)
    stem = path.stem[: -len(".history")] if path.stem.endswith(".history") else path.stem
    name = reference or stem or path.name
    return image_from_rows(rows, name, str(path), layers)
