"""Likely credentials in images: ``ll.secrets(img_or_fleet)``.

An image is public to everyone who can pull it, and so is every layer of it:
a file that a later layer deletes is still in the earlier layer's blob, and a
build argument is still in the history.  :func:`secrets` looks in

* the **history**: each step's ``created_by`` (BuildKit's ``|N KEY=val``
  build-argument prefix, ``ENV``, ``LABEL``, ``ARG``, and the command text);
* the **config**: ``Env`` and ``Labels``;
* the **files** of every layer, deleted or replaced ones included: candidate
  files only (credential files by name and small text files; see
  :mod:`._secret_rules`), each read straight from its layer blob, at most
  ``max_file_bytes`` of it, one file in memory at a time.

What counts as a secret is decided by Yelp's ``detect-secrets`` plugins; the
few rules layerlab adds (file names, three credential-file line forms, the
checksum-name filter) are described in :mod:`._secret_rules`.  Values are
masked (first 4 characters and ``***``) unless ``mask=False``; the raw value
of a masked finding never appears in the frame, the repr or the HTML repr.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

from ..errors import AnalysisError, LayerlabError
from ._result import Result
from ._secret_rules import (LINE_CHARS, FileRule, Hit, file_rule, mask_value, scan_assignment, scan_file_line,
                            scan_line, scanning)

if TYPE_CHECKING:
    import pandas as pd

    from ..model import Image

COLUMNS: dict[str, str] = {
    "image": "string",
    "where": "string",
    "position": "Int64",
    "step": "Int64",
    "created_by": "string",
    "path": "string",
    "key": "string",
    "line": "Int64",
    "kind": "string",
    "value": "string",
    "deleted": "boolean",
    "hidden_by": "Int64",
    "detector": "string",
}
MAX_FILE_BYTES = 256 << 10
MAX_FILES = 20_000
MAX_READ_BYTES = 64 << 20    # file bytes judged per image, all candidates together
MAX_STEP_CHARS = 256 << 10   # characters of one history step judged


@dataclass(repr=False)
class Secrets(Result):
    """The likely credentials of one or more images (see :func:`secrets`)."""

    findings: Any
    notes: list[str] = field(default_factory=list)
    masked: bool = True
    images: int = 0
    _frame_names = ("findings",)

    def _summary(self) -> str:
        df = self.findings
        n = len(df)
        deleted = int(df["deleted"].fillna(False).sum()) if n else 0
        imgs = df["image"].nunique() if n else 0
        plural = "s" if self.images != 1 else ""
        text = f"{n} likely secret{'s' if n != 1 else ''} in {imgs} of {self.images} image{plural}"
        if deleted:
            text += f" ({deleted} in files a later layer deletes or replaces: still in the image)"
        return text + ("; values masked" if self.masked else "; values SHOWN (mask=False)")


def secrets(
    data,
    *,
    files: bool = True,
    history: bool = True,
    config: bool = True,
    mask: bool = True,
    max_file_bytes: int = MAX_FILE_BYTES,
    max_files: int = MAX_FILES,
    max_read_bytes: int = MAX_READ_BYTES,
    cache_dir=None,
    progress: bool = True,
    verify: bool = True,
) -> Secrets:
    """Likely credentials in ``data`` (an Image, a Fleet or a list of Images).

    ``history``, ``config``, ``files`` choose the places to look.  Files of
    every layer are candidates, including ones a later layer deletes; the
    file tables are read as ``img.files()`` reads them (``cache_dir``,
    ``progress``, ``verify``), then the candidates' contents from the layer
    blobs: at most ``max_file_bytes`` of each (default 256 KiB), at most
    ``max_files`` candidates and ``max_read_bytes`` (64 MiB) of their bytes
    per image (a note says when one cut in; candidates left unread are then
    reported by name when the name alone is a finding).  History steps are
    judged on their first 256 Ki characters, lines on their first 4096.  Images without
    layer contents (history files, manifests, snapshots) are searched by
    file name only when they have file tables.

    ``mask`` (default True) shows each value as its first 4 characters and
    ``***`` (``***`` alone for values under 12 characters), and masks the same
    values inside ``created_by``; ``mask=False`` shows them.

    Returns a :class:`Secrets` whose frame (``to_frame()``) has one row per
    finding:

    ==========  ========  ================================================================
    image       string    the image's reference
    where       string    ``history``, ``env``, ``label`` or ``file``
    position    Int64     the layer that holds it (history: the step's layer; null for
                          steps without one and for config values no step explains)
    step        Int64     the history step (index) that added it, when known
    created_by  string    that step's command (masked like ``value``)
    path        string    the file's path (``file`` rows)
    key         string    ``env``/``label`` rows: the variable or label; ``history`` rows
                          from an assignment: ``build arg NAME``, ``ENV NAME``, ``LABEL
                          NAME`` or ``ARG NAME`` (null for a secret in the command text)
    line        Int64     the line of the file (1-based; ``file`` rows)
    kind        string    what it looks like: ``private key``, ``AWS key``, ``npm token``,
                          ``password or secret (by its name)``, ``high-entropy string`` …
    value       string    the secret, masked unless ``mask=False``
    deleted     boolean   ``file`` rows: a later layer deletes or replaces the file, so a
                          container never sees it, yet anyone who pulls the image has it
    hidden_by   Int64     the layer that deletes or replaces it
    detector    string    ``detect-secrets:<Plugin>[+<Plugin>…]`` or ``layerlab:<rule>``
    ==========  ========  ================================================================
    """
    import pandas as pd

    images = _images(data)
    if max_file_bytes < 1 or max_files < 0 or max_read_bytes < 0:
        raise AnalysisError(f"secrets(): max_file_bytes={max_file_bytes}, max_files={max_files}, "
                            f"max_read_bytes={max_read_bytes}; use a positive max_file_bytes and counts of 0 or more")
    rows: list[dict] = []
    notes: list[str] = []
    with scanning():
        for img in images:
            found: list[dict] = []
            steps = _steps_by_layer(img)
            if history:
                found += _history_rows(img)
            if config:
                found += _config_rows(img)
            if files:
                found += _file_rows(img, steps, notes, max_file_bytes=max_file_bytes, max_files=max_files,
                                    max_read_bytes=max_read_bytes,
                                    opts=dict(cache_dir=cache_dir, progress=progress, verify=verify))
            for r in found:
                r["image"] = img.reference
            if mask:
                _mask_rows(found)
            rows += found
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    df = df.astype(COLUMNS).reset_index(drop=True)
    return Secrets(df, notes=list(dict.fromkeys(notes)), masked=mask, images=len(images))


# -- inputs ---------------------------------------------------------------------------
def _images(data) -> list[Image]:
    from ..model import Fleet, Image

    if isinstance(data, Image):
        return [data]
    if isinstance(data, Fleet):
        return list(data)
    if isinstance(data, (list, tuple)) and all(isinstance(x, Image) for x in data):
        return list(data)
    raise AnalysisError(f"secrets(): data is a {type(data).__name__}; pass a layerlab.Image, a layerlab.Fleet "
                        "or a list of Images (ll.load(...) / ll.load_many(...))")


def _steps_by_layer(img: Image) -> dict[int, Any]:
    return {s.layer_position: s for s in img.history_list if s.layer_position is not None}


def _row(where: str, hit: Hit, *, step=None, key=None, path=None, line=None, position=None, deleted=None,
         hidden_by=None) -> dict:
    pos = position if position is not None else (step.layer_position if step is not None else None)
    return {"where": where, "position": pos, "step": step.index if step is not None else None,
            "created_by": step.created_by if step is not None else None, "path": path, "key": key,
            "line": line, "kind": hit.kind, "value": hit.value, "deleted": deleted, "hidden_by": hidden_by,
            "detector": hit.detector}


# -- history and config -----------------------------------------------------------------
def _history_rows(img: Image) -> list[dict]:
    from ._secret_rules import assignments

    rows = []
    for step in img.history_list:
        text = (step.created_by or "")[:MAX_STEP_CHARS]
        seen: set[str] = set()
        for what, key, value in assignments(text):
            for hit in scan_assignment(key, value):
                seen.add(hit.value)
                rows.append(_row("history", hit, step=step, key=f"{what} {key}"))
        for line in text.splitlines():
            for hit in scan_line(line[:LINE_CHARS], "Dockerfile"):
                if not any(hit.value in v or v in hit.value for v in seen):
                    seen.add(hit.value)
                    rows.append(_row("history", hit, step=step))
    return rows


def _config_items(img: Image):
    cfg = (img.config or {}).get("config") if isinstance(img.config, dict) else None
    if not isinstance(cfg, dict):
        return
    env = cfg.get("Env")
    for item in env if isinstance(env, list) else ():
        if isinstance(item, str):
            k, _eq, v = item.partition("=")
            yield "env", k, v
    labels = cfg.get("Labels")
    for k, v in (labels.items() if isinstance(labels, dict) else ()):
        if isinstance(k, str) and isinstance(v, str):
            yield "label", k, v


def _setting_step(img: Image, where: str, key: str, value: str):
    """The last history step whose ``ENV``/``LABEL`` assignments set ``key`` to ``value``."""
    from ._secret_rules import assignments

    want = "ENV" if where == "env" else "LABEL"
    for step in reversed(img.history_list):
        if any(w == want and k == key and v == value for w, k, v in assignments(step.created_by or "")):
            return step
    return None


def _config_rows(img: Image) -> list[dict]:
    rows = []
    for where, key, value in _config_items(img):
        hits = scan_assignment(key, value)
        if hits:
            step = _setting_step(img, where, key, value)
            rows += [_row(where, hit, step=step, key=key) for hit in hits]
    return rows


# -- files -----------------------------------------------------------------------------
def _candidates(table, max_files: int, notes: list[str], label: str):
    """{position: {path: (row, FileRule)}} of the candidate regular files of ``table``."""
    cols = table.select(["position", "path", "type"]).to_pydict()
    out: dict[int, dict[str, tuple[int, FileRule]]] = {}
    n = 0
    for r, (pos, path, kind) in enumerate(zip(cols["position"], cols["path"], cols["type"])):
        if kind != "file" or not path:
            continue
        rule = file_rule(path)
        if rule is None:
            continue
        if n >= max_files:
            notes.append(f"{label}: more than {max_files} candidate files; the rest were not read "
                         "(raise max_files=)")
            break
        out.setdefault(pos, {})[path] = (r, rule)
        n += 1
    return out


def _file_rows(img: Image, steps, notes: list[str], *, max_file_bytes: int, max_files: int, max_read_bytes: int,
               opts) -> list[dict]:
    from ..contents.layers import ScanOptions, image_contents

    if not img.has_file_tables:
        notes.append(f"{img.reference}: no layer contents ({img.source}); files were not searched")
        return []
    try:
        _scans, table, merged = image_contents(img, merge=True, options=ScanOptions(hash=None, **opts))
    except LayerlabError:
        raise
    except Exception as e:  # noqa: BLE001 - reported as what it is: a failed read of contents
        raise AnalysisError(f"secrets(): reading the layer contents of {img.reference} failed: {e}") from e
    cands = _candidates(table, max_files, notes, img.reference)
    rows: list[dict] = []

    def add(pos: int, path: str, r: int, hit: Hit, line: int | None) -> None:
        hidden = merged.hidden_by[r]
        rows.append(_row("file", hit, step=steps.get(pos), path=path, line=line, position=pos,
                         deleted=hidden is not None, hidden_by=hidden))

    budget = [max_read_bytes]
    read = (_read_candidates(img, cands, max_file_bytes, budget, notes, opts["progress"], opts["verify"])
            if img.blobs is not None else {})
    if img.blobs is None:
        notes.append(f"{img.reference}: file tables without contents ({img.source}); files judged by name only")
    for pos, paths in cands.items():
        for path, (r, rule) in paths.items():
            hits = read.get((pos, path))
            if hits is None:   # not read: the name is the finding, where the name says one
                if rule.kind is not None:
                    add(pos, path, r, Hit(rule.kind, "", "layerlab:file-name"), None)
                continue
            for line_no, hit in hits:
                add(pos, path, r, hit, line_no)
    return rows


def _read_candidates(img: Image, cands, max_file_bytes: int, budget: list[int], notes: list[str],
                     progress: bool, verify: bool) -> dict:
    """{(position, path): [(line, Hit)]} of the candidates worth reading, streamed from
    the layer blobs (only layers with candidates; one file in memory at a time).
    With ``verify`` each layer read is hashed to its end and checked against its
    diff_id, so findings come from the bytes the image names (the source may
    hand out other bytes than at the first read: a registry, a file changed)."""
    from ..contents.tarscan import check_diff_id
    from ..contents.compression import DecodedStream
    from ..contents.options import layer_label
    from ..contents.scan import _progress

    wanted = {pos: {p: rule for p, (_r, rule) in paths.items() if rule.read} for pos, paths in cands.items()}
    wanted = {pos: ps for pos, ps in wanted.items() if ps}
    out: dict[tuple[int, str], list] = {}
    if not wanted:
        return out
    blobs = img.blobs.iter_blobs(sorted(wanted))
    bar = _progress(len(wanted), f"{img.reference}: secrets in files", progress)
    try:
        for poss, media_type, fileobj in blobs:
            if budget[0] <= 0:
                notes.append(f"{img.reference}: max_read_bytes spent; the remaining candidate files were not "
                             "read (raise max_read_bytes=)")
                break
            group = [p for p in poss if p in wanted]
            if not group or all((p, path) in out for p in group for path in wanted[p]):
                continue
            label = layer_label(img, group[0])
            todo: dict[str, FileRule] = {}
            for p in group:
                todo.update(wanted[p])
            stream = DecodedStream(fileobj, label=label, media_type=media_type or img.layer_list[group[0]].media_type)
            try:
                for path, hits in _scan_tar(stream, label, todo, max_file_bytes, budget, notes):
                    for p in group:
                        if path in wanted[p]:
                            out[(p, path)] = hits
                if verify:
                    stream.drain()
                    check_diff_id(stream.sha256, img.layer_list[group[0]].diff_id, True, label, notes)
            finally:
                stream.close()
            if bar is not None:
                bar.update(len(group))
    finally:
        blobs.close()
        if bar is not None:
            bar.close()
    return out


def _scan_tar(stream, label: str, todo: dict[str, FileRule], max_file_bytes: int, budget: list[int],
              notes: list[str]):
    """Yield ``(path, [(line, Hit)])`` for the regular files of the tar named in
    ``todo``, reading at most ``max_file_bytes`` of each and ``budget[0]`` in
    all (decremented); stops once all are seen or the budget is spent."""
    from ..contents.tar import TarReader
    from ..contents.whiteouts import normalise_path

    left = dict(todo)
    reader = TarReader(stream, label)
    for head in reader:
        if head.type not in (b"0", b"7") or not left:
            if not left:
                return
            continue
        path = normalise_path(head.name)[0]
        rule = left.pop(path, None)
        if rule is None:
            continue
        if budget[0] <= 0:
            notes.append(f"{label}: max_read_bytes spent; the remaining candidate files were not read "
                         "(raise max_read_bytes=)")
            return
        parts: list[bytes] = []
        want = min(head.size, max_file_bytes, budget[0])
        got = 0
        while got < want:
            chunk = reader.read_data(min(want - got, 1 << 16))
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        budget[0] -= got
        if head.size > max_file_bytes:
            notes.append(f"{label}: /{path} is larger than max_file_bytes={max_file_bytes}; "
                         "only its start was searched")
        yield path, _judge(path, b"".join(parts), rule)


def _judge(path: str, data: bytes, rule: FileRule) -> list[tuple[int | None, Hit]]:
    """The findings in one file's bytes: its lines through the detectors; a
    binary file (a NUL in its first 8 KiB) is judged by its name only."""
    if b"\0" in data[:8192]:
        return [(None, Hit(rule.kind, "", "layerlab:file-name"))] if rule.kind else []
    text = data.decode("utf-8", errors="replace")
    base = path.rpartition("/")[2]
    out: list[tuple[int | None, Hit]] = []
    seen: set[str] = set()
    for no, line in enumerate(text.splitlines(), 1):
        for hit in scan_file_line(line[:LINE_CHARS], base, rule.line_rule, rule.ini, rule.env):
            if hit.value not in seen:
                seen.add(hit.value)
                out.append((no, hit))
    return out


# -- masking ---------------------------------------------------------------------------
def _mask_rows(rows: list[dict]) -> None:
    """Mask every found value wherever it appears in the rows (value, created_by, key)."""
    values = sorted({r["value"] for r in rows if r["value"]}, key=len, reverse=True)
    if not values:
        return
    for r in rows:
        for col in ("created_by", "key"):
            text = r[col]
            if text:
                for v in values:
                    if v in text:
                        text = text.replace(v, mask_value(v))
                r[col] = text
        if r["value"]:
            r["value"] = mask_value(r["value"])
