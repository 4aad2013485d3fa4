"""``improve``: the improved Dockerfile of one image, with its predicted size.

Two kinds of change, both sized exactly from the image's file tables:

* **merges** — the best non-overlapping set of :func:`~layerlab.suggest_merges`
  (its ``chosen`` rows whose steps can become one RUN): their Dockerfile
  lines are replaced by the merged RUN; each saves what ``what_if_merge``
  says;
* **cleanups** — package-manager caches and lists that the final filesystem
  still shows (:func:`~layerlab.visible_waste`, the high-confidence cache
  kinds) get an ``rm -rf`` of their paths at the end of the RUN that wrote
  them, in the same RUN, so they never reach a layer.  A cleanup is added
  only where no later step runs the same package manager (read with
  bashlex by :func:`layerlab.analysis.plan.effects.managers_run`; a later
  ``apt-get install`` needs the lists an earlier ``apt-get update`` wrote:
  merge them first — the merges above do when they are chosen).  It saves
  the bytes of that kind of file in that layer (Docker counts file bytes;
  removing them in the RUN that wrote them leaves nothing behind).

The Dockerfile must be the one the image was built from (its steps are the
history's last steps; :func:`layerlab.analysis.merge.rewrite.dockerfile_lines`
checks that).  Everything else in it — comments, line continuations,
other stages — is kept as written; a changed step is written on one line.
The prediction is the image's size minus the savings; build the result and
compare (the tests do, with the real engine).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import AnalysisError
from ..frames import human_bytes, typed_frame
from ..model import Image
from ._result import Result

CHANGE_COLUMNS = {
    "change": "string", "first_layer": "Int64", "last_layer": "Int64", "first_line": "Int64",
    "last_line": "Int64", "before": "string", "after": "string", "saved_bytes": "Int64", "reason": "string",
}
# cache kinds (of analysis/_cache_rules.py) a cleanup removes, and the paths to remove
# (the manager that needs each: plan/effects.py's cache_manager)
_CLEAN = {
    "apt package cache": ["/var/cache/apt/archives/*.deb", "/var/cache/apt/archives/partial/*", "/var/cache/apt/*.bin"],
    "apt package lists": ["/var/lib/apt/lists/*"],
    "apk cache": ["/var/cache/apk/*"],
    "dnf/yum cache": ["/var/cache/dnf/*", "/var/cache/yum/*"],
    "pip cache": None,     # None: the cache roots found (…/.cache/pip)
    "npm cache": None,     # …/.npm
    "yarn cache": None,    # …/.cache/yarn
}
_ROOT = {"pip cache": r"^(.*?\.cache/pip)/", "npm cache": r"^(.*?\.npm)/", "yarn cache": r"^(.*?\.cache/yarn)/"}


@dataclass(repr=False)
class Improvement(Result):
    """The improved Dockerfile of ``image`` (``dockerfile``; ``write(path)``),
    the ``changes`` made (one row each: ``change`` merge/cleanup, the layers
    and Dockerfile lines it touches, the lines before and after,
    ``saved_bytes``, ``reason``), the image's ``size_bytes`` now and the
    ``predicted_size_bytes`` after."""

    image: str
    dockerfile: str
    original: str
    changes: pd.DataFrame
    size_bytes: int | None
    predicted_size_bytes: int | None
    notes: list[str] = field(default_factory=list)

    _frame_names = ("changes",)

    @property
    def saved_bytes(self) -> int:
        return int(self.changes["saved_bytes"].fillna(0).sum())

    def write(self, path: str | os.PathLike) -> Path:
        """Write the improved Dockerfile to ``path`` (a file; its folder must exist)."""
        p = Path(path)
        p.write_text(self.dockerfile)
        return p

    def _summary(self) -> str:
        n = len(self.changes)
        size = (f"{human_bytes(self.size_bytes)} -> {human_bytes(self.predicted_size_bytes)} predicted"
                if self.size_bytes is not None and self.predicted_size_bytes is not None else "size unknown")
        return f"{self.image!r}: {n} change{'s' if n != 1 else ''}, {size}"


def improve(img: Image, dockerfile: str | os.PathLike, *, files: pd.DataFrame | None = None,
            cleanups: bool = True, progress: bool = True) -> Improvement:
    """The Dockerfile ``img`` was built from, improved: the chosen merges of
    :func:`~layerlab.suggest_merges` and same-RUN cleanups of the caches
    :func:`~layerlab.visible_waste` finds (see :mod:`layerlab.analysis.improve`).

    ``dockerfile``: its path or text.  ``files``: ``img.files()`` if you have
    it.  ``cleanups=False``: merges only.  Returns an :class:`Improvement`;
    raises :class:`~layerlab.errors.AnalysisError` when the Dockerfile does not
    match the image's history.
    """
    from .merge import suggest_merges
    from .merge.rewrite import _joinable, dockerfile_lines

    if not isinstance(img, Image):
        raise AnalysisError(f"improve(): pass a layerlab.Image, not {type(img).__name__}")
    text = _read(dockerfile)
    notes: list[str] = []
    lines = dockerfile_lines(img, text, notes)
    if notes:
        raise AnalysisError(f"improve({img.reference!r}): {notes[0]}")
    spans = _spans(img, text)
    if files is None:
        files = img.files(progress=progress)
    by_pos = {s.layer_position: s.index for s in img.history_list if s.layer_position is not None}
    sugg = suggest_merges(img, files=files, dockerfile=text, progress=progress, limit=10_000)
    from .merge.suggest import APT_ALONE

    # merges that save bytes, and `apt-get update` joined to its install (it lets the lists go)
    ok = sugg["dockerfile_after"].notna()
    chosen = sugg[ok & sugg["chosen"].astype(bool) & (sugg["saved_bytes"].fillna(0) > 0)]
    taken = {p for a, b in zip(chosen["first"], chosen["last"]) for p in range(int(a), int(b) + 1)}
    for _, r in sugg[ok & (sugg["kind"] == APT_ALONE)].iterrows():
        span = set(range(int(r["first"]), int(r["last"]) + 1))
        if not span & taken:
            chosen = pd.concat([chosen, r.to_frame().T])
            taken |= span
    groups = {}   # first history index -> (first pos, last pos, after text, saved, reason)
    for r in chosen.itertuples(index=False):
        groups[by_pos[int(r.first)]] = [int(r.first), int(r.last), str(r.dockerfile_after),
                                         0 if pd.isna(r.saved_bytes) else int(r.saved_bytes),
                                         f"{r.kind}: {r.reason}" if isinstance(r.reason, str) else str(r.kind)]
    cleaned = _cleanups(img, files, lines, by_pos, groups, notes) if cleanups else []
    rows, edits = [], {}
    for first_idx, (first, last, after, saved, reason) in groups.items():
        idxs = list(range(first_idx, by_pos[last] + 1))
        extra = [c for c in cleaned if first <= c["position"] <= last]
        if extra:
            after = after + " && " + " && ".join(c["command"] for c in extra)
        rows.append(_row("merge", first, last, idxs, spans, text, after, saved, reason))
        rows += [_row("cleanup", c["position"], c["position"], idxs, spans, text, after, c["saved"], c["reason"])
                 for c in extra]
        edits.update({i: (after if i == first_idx else None) for i in idxs if i in spans})
    for c in cleaned:
        if any(first <= c["position"] <= last for first, last, *_ in groups.values()):
            continue
        i = by_pos[c["position"]]
        line = lines[i]
        if line.command is None or _joinable(line.command) is not None:
            notes.append(f"layer {c['position']}: {c['kind']} left as is: its step cannot take a cleanup")
            continue
        prev = edits.get(i) or line.text
        after = re.sub(r"[\s;]+$", "", prev) + " && " + c["command"]
        edits[i] = after
        rows.append(_row("cleanup", c["position"], c["position"], [i], spans, text, after, c["saved"], c["reason"]))
    changes = typed_frame(rows, CHANGE_COLUMNS)
    size = img.size
    predicted = None if size is None else int(size) - int(changes["saved_bytes"].fillna(0).sum())
    if changes.empty:
        notes.append("nothing to improve: no chosen merge can become one RUN and no visible cache can be "
                     "removed in the RUN that wrote it")
    return Improvement(image=img.reference, dockerfile=_apply(text, spans, edits), original=text,
                       changes=changes, size_bytes=size, predicted_size_bytes=predicted, notes=notes)


def _read(dockerfile) -> str:
    if isinstance(dockerfile, os.PathLike) or (isinstance(dockerfile, str) and "\n" not in dockerfile):
        p = Path(dockerfile)
        try:
            return p.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise AnalysisError(f"improve(): cannot read the Dockerfile {str(p)!r}: {e}") from e
    if not isinstance(dockerfile, str):
        raise AnalysisError(f"improve(): dockerfile= must be a path or the Dockerfile's text, "
                            f"not {type(dockerfile).__name__}")
    return dockerfile


def _spans(img: Image, text: str) -> dict[int, tuple[int, int]]:
    """History index -> (first, last) 1-based line of the final stage's step that made it."""
    import io

    from dockerfile_parse import DockerfileParser

    from .plan.dockerfile import parse_dockerfile

    parsed = parse_dockerfile(text)
    ends = {item["startline"] + 1: item["endline"] + 1 for item in DockerfileParser(fileobj=io.BytesIO(text.encode())).structure}
    hist = img.history_list[-len(parsed.steps):] if parsed.steps else []
    return {h.index: (st.line, ends.get(st.line, st.line)) for h, st in zip(hist, parsed.steps) if st.line}


def _cleanups(img: Image, files: pd.DataFrame, lines, by_pos, groups, notes: list[str]) -> list[dict]:
    """One cleanup per (layer, cache kind) the final filesystem shows, where no later step
    runs its package manager (:func:`.plan.effects.managers_run`)."""
    from ._cache_rules import classify
    from .plan.effects import cache_manager, managers_run
    from .visible_waste import visible_waste

    vw = visible_waste(img, progress=False)
    found = vw.findings[vw.findings["kind"].isin(list(_CLEAN)) & vw.findings["above_base"].fillna(False)]
    group_end = {p: last for first, last, *_ in groups.values() for p in range(first, last + 1)}
    own = files[files["type"].astype("string") == "file"]
    out = []
    for r in found.itertuples(index=False):
        pos = int(r.position)
        manager, globs = cache_manager(r.kind), _CLEAN[r.kind]
        end = group_end.get(pos, pos)
        later = [lines[by_pos[p]] for p in range(end + 1, len(img.layer_list)) if p in by_pos and by_pos[p] in lines]
        if pos not in by_pos or lines.get(by_pos[pos]) is None or lines[by_pos[pos]].instruction != "RUN":
            continue
        runs = [managers_run(ln.command) for ln in later if ln.command]
        if any(m is None for m in runs):
            notes.append(f"layer {pos}: {r.kind} left as is: a later RUN cannot be read, it may need the cache")
            continue
        if any(manager in m for m in runs):
            continue
        mine = own[pd.to_numeric(own["position"]) == pos]
        paths = mine["path"].astype("string")
        hit = classify(paths) == r.kind
        hit = hit.fillna(False).astype(bool)
        if globs is None:
            roots = sorted({m.group(1) for p in paths[hit] if (m := re.match(_ROOT[r.kind], str(p)))})
            globs = ["/" + x for x in roots]
        saved = int(pd.to_numeric(mine.loc[hit, "size"]).fillna(0).sum())
        if saved <= 0 or not globs:
            continue
        out.append({"position": pos, "kind": r.kind, "command": "rm -rf " + " ".join(globs), "saved": saved,
                    "reason": f"{r.kind} ({human_bytes(saved)}) left in the layer; removed in the RUN that wrote it"})
    return sorted(out, key=lambda c: (c["position"], c["kind"]))


def _row(change, first, last, idxs, spans, text, after, saved, reason) -> dict:
    src = text.splitlines()
    have = [spans[i] for i in idxs if i in spans]
    a, b = (min(s for s, _ in have), max(e for _, e in have)) if have else (None, None)
    before = "\n".join(src[a - 1:b]) if have else None
    return {"change": change, "first_layer": first, "last_layer": last, "first_line": a, "last_line": b,
            "before": before, "after": after, "saved_bytes": saved, "reason": reason}


def _apply(text: str, spans: dict[int, tuple[int, int]], edits: dict[int, str | None]) -> str:
    """``text`` with each edited step's lines replaced (None: removed)."""
    src = text.splitlines()
    out, skip = [], {}
    for i, new in edits.items():
        a, b = spans[i]
        skip[a] = (b, new)
    n = 1
    while n <= len(src):
        if n in skip:
            b, new = skip[n]
            if new is not None:
                out.append(new)
            n = b + 1
            continue
        out.append(src[n - 1])
        n += 1
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


__all__ = ["CHANGE_COLUMNS", "Improvement", "improve"]
