"""Merge suggestions: which consecutive layers are worth joining, and why."""
from __future__ import annotations

import os
import re
from typing import Any, Sequence

import pandas as pd

from ...errors import AnalysisError
from ...frames import human_bytes, typed_frame
from ...labels import base_name, step_label
from ...model import Fleet, Image
from .groups import parse_groups
from .predict import _predict
from .table import Stacked, file_table

_APT_UPDATE = re.compile(r"\bapt(-get)?\s+update\b")
_APT_INSTALL = re.compile(r"\bapt(-get)?\s+(-\S+\s+)*install\b")
APT_ALONE = "apt-get update alone"

SUGGESTION_COLUMNS: dict[str, str] = {
    "first": "Int64", "last": "Int64", "layers_merged": "Int64", "saved_bytes": "Int64",
    "size_before_bytes": "Int64", "size_after_bytes": "Int64", "sharing_lost_bytes": "Int64",
    "kind": "string", "reason": "string", "chosen": "boolean",
    "dockerfile_before": "string", "dockerfile_after": "string",
}


def _command(img: Image):
    step_of = {s.layer_position: s for s in img.history_list if s.layer_position is not None}
    base = base_name(img.config)

    def cmd(p: int) -> str:
        """The step's label (the one rule: ``layerlab.labels``)."""
        s = step_of.get(p)
        return step_label(s.created_by if s else None, 70, position=p, base=base)

    return step_of, cmd


# the reasons a merge saves bytes, in the order they are reported
CREATED_THEN_DELETED = "created then deleted"
CACHE_LEFT_BEHIND = "cache left behind"
OVERWRITTEN = "overwritten"
PERMISSIONS_ONLY = "permissions-only change"
SAME_CONTENT = "same content stored again"
_REASON_COLUMNS = {
    CACHE_LEFT_BEHIND: "cache_bytes", CREATED_THEN_DELETED: "deleted_bytes", OVERWRITTEN: "overwritten_bytes",
    PERMISSIONS_ONLY: "metadata_bytes", SAME_CONTENT: "same_only_bytes",
}


def _cache_fix(examples: str) -> str:
    """The fix of the cache rule the first example path matches."""
    from .._cache_rules import RULE_BY_KIND, classify

    first = examples.split(", ")[0].lstrip("/")
    kind = classify(pd.Series([first], dtype="string")).iloc[0]
    return RULE_BY_KIND[kind].fix if not pd.isna(kind) else "delete it in the same RUN"


def _reason_text(kind: str, w: int, h: int, b: int, eg: str, cmd) -> str:
    what = {
        CACHE_LEFT_BEHIND: f"left a package-manager cache of {human_bytes(b)} (e.g. {eg}) that layer {h} "
                           f"({cmd(h)}) deleted or rewrote: clean it up in the RUN that writes it "
                           f"({_cache_fix(eg)})",
        CREATED_THEN_DELETED: f"wrote {human_bytes(b)} (e.g. {eg}) that layer {h} ({cmd(h)}) deleted",
        OVERWRITTEN: f"wrote {human_bytes(b)} (e.g. {eg}) that layer {h} ({cmd(h)}) overwrote with new content",
        PERMISSIONS_ONLY: f"wrote {human_bytes(b)} (e.g. {eg}) that layer {h} ({cmd(h)}) stored again with the "
                          "same content, only mode or owner changed (chmod/chown copies the whole file)",
        SAME_CONTENT: f"wrote {human_bytes(b)} (e.g. {eg}) that layer {h} ({cmd(h)}) stored again with the "
                      "same content and metadata",
    }[kind]
    return f"layer {w} ({cmd(w)}) {what}"


def _from_files(st: Stacked, cmd, min_bytes: int, pairs: list[dict]) -> None:
    """What a later layer deletes or overwrites of what an earlier one wrote, per pair of layers."""
    for r in st.hidden_pairs().itertuples(index=False):
        w, h = int(r.writer), int(r.hider)
        if r.hidden_bytes < min_bytes:
            continue
        by = {"cache_bytes": r.cache_bytes, "deleted_bytes": r.deleted_bytes,
              "overwritten_bytes": r.overwritten_bytes, "metadata_bytes": r.metadata_bytes,
              "same_only_bytes": r.same_content_bytes - r.metadata_bytes}
        pair = {"first": w, "last": h, "bytes": dict.fromkeys(_REASON_COLUMNS, 0), "reasons": []}
        for kind, column in _REASON_COLUMNS.items():
            if by[column] > 0:
                pair["bytes"][kind] += int(by[column])
                eg = ", ".join("/" + q for q in r.examples_by.get(
                    "same_content_bytes" if column == "same_only_bytes" else column, []))
                pair["reasons"].append((int(by[column]), _reason_text(kind, w, h, int(by[column]), eg, cmd)))
        pairs.append(pair)


def _pooled(a: int, b: int, pairs: list[dict], kind: str | None = None) -> dict:
    """The candidate merge ``a``..``b``: the reasons and bytes of every pair inside it."""
    inner = [p for p in pairs if a <= p["first"] and p["last"] <= b]
    c = {"first": a, "last": b, "reasons": [x for p in inner for x in p["reasons"]],
         "bytes": {k: sum(p["bytes"][k] for p in inner) for k in _REASON_COLUMNS}, "kind": kind}
    c["kind"] = _dominant(c)
    return c


def _dominant(c: dict) -> str:
    """The reason that accounts for the most bytes (ties: the order of _REASON_COLUMNS)."""
    best = max(c["bytes"].values(), default=0)
    return next((k for k, v in c["bytes"].items() if v == best and v > 0), c.get("kind") or APT_ALONE)


def _from_commands(n: int, step_of, cands: dict, pairs: list[dict]) -> None:
    """Candidates from the commands: ``apt-get update`` in a step of its own."""
    for p in range(n - 1):
        text = (step_of[p].created_by or "") if p in step_of else ""
        if _APT_UPDATE.search(text) and not _APT_INSTALL.search(text):
            nxt = next((q for q in range(p + 1, n) if q in step_of and _APT_INSTALL.search(step_of[q].created_by or "")),
                       p + 1)
            c = cands.setdefault((p, nxt), _pooled(p, nxt, pairs, APT_ALONE))
            c["reasons"].append((-1,
                f"layer {p} runs apt-get update in a step of its own: its package lists stay in that layer (and a "
                f"cached update layer installs stale versions later); run it in the same RUN as the install (layer {nxt})"
            ))


def _sized(img: Image, a: int, b: int, c: dict, st: Stacked | None, why, fleet) -> dict[str, Any] | None:
    """The suggestion row of candidate ``a``..``b``, sized with the prediction; None to leave it out."""
    size_before = size_after = saved = lost = None
    if st is not None:
        pred = _predict(img, parse_groups((a, b), len(img.layer_list), label=img.reference), st, None, fleet=fleet,
                        compressed=False, output_dir=None, progress=False)
        g = pred.groups.iloc[0]
        size_before = None if pd.isna(g["size_before_bytes"]) else int(g["size_before_bytes"])
        size_after = None if pd.isna(g["size_after_bytes"]) else int(g["size_after_bytes"])
        saved = None if pd.isna(g["saved_bytes"]) else int(g["saved_bytes"])
        lost = pred.metric("sharing_lost_bytes")
        if saved is not None and saved <= 0 and c["kind"] != APT_ALONE:
            return None
    reasons = "; ".join(t for _b, t in sorted(c["reasons"], key=lambda x: -x[0]))
    if saved is not None and c["kind"] != APT_ALONE:
        reasons += f" — in all, merging {a}-{b} saves {human_bytes(saved)}"
    return {
        "first": a, "last": b, "layers_merged": b - a + 1, "saved_bytes": saved,
        "size_before_bytes": size_before, "size_after_bytes": size_after, "sharing_lost_bytes": lost,
        "kind": c["kind"], "reason": reasons + ("" if st is not None else f" (bytes unknown: {why})"),
        "chosen": False,
    }


def _unions(rows: list[dict], pairs: list[dict], cap: int = 40) -> dict[tuple[int, int], dict]:
    """Candidates spanning overlapping suggestions (their reasons pooled): merging
    (2, 4) and (3, 5) is one merge, (2, 5), whose saving is not the sum of theirs."""
    spans = {(r["first"], r["last"]) for r in rows if r["saved_bytes"] is not None and r["saved_bytes"] > 0}
    out: dict[tuple[int, int], dict] = {}
    frontier = set(spans)
    while frontier and len(out) < cap:
        new = set()
        for a1, b1 in frontier:
            for a2, b2 in spans | set(out):
                u = (min(a1, a2), max(b1, b2))
                if a1 <= b2 and a2 <= b1 and u not in spans and u not in out and len(out) + len(new) < cap:
                    new.add(u)
        for u in new:
            out[u] = _pooled(u[0], u[1], pairs)
        frontier = new
    return out


def _choose(rows: list[dict]) -> None:
    """Mark the set of non-overlapping merges that saves the most (``chosen``).

    Weighted interval scheduling (dynamic programming over the groups sorted by
    their last layer); among equal savings, fewer merged layers.  Groups that
    share no layer save independently (a merged group's size depends only on the
    filesystem below it and after it, which merging another group leaves as it
    is), so the chosen savings add up to what merging them all at once saves."""
    cand = sorted((r for r in rows if r["saved_bytes"] is not None and r["saved_bytes"] > 0),
                  key=lambda r: (r["last"], r["first"]))
    best: list[tuple[int, int, list[dict]]] = [(0, 0, [])]   # (saved, -layers, picks) over the first i
    for i, r in enumerate(cand):
        j = max((k + 1 for k in range(i) if cand[k]["last"] < r["first"]), default=0)
        s, neg, picks = best[j]
        take = (s + r["saved_bytes"], neg - r["layers_merged"], picks + [r])
        best.append(max(best[i], take, key=lambda t: (t[0], t[1])))
    for r in best[-1][2]:
        r["chosen"] = True


def _dockerfile(img: Image, rows: list[dict], dockerfile, notes: list[str]) -> None:
    """The original and the rewritten Dockerfile lines of each suggestion."""
    from .rewrite import dockerfile_lines, merged_lines

    lines = dockerfile_lines(img, dockerfile, notes)
    for r in rows:
        before, after, why_not = merged_lines(img, r["first"], r["last"], lines)
        r["dockerfile_before"] = before or None
        r["dockerfile_after"] = after
        if why_not:
            r["reason"] += f" (no Dockerfile line: {why_not})"


def suggest_merges(
    img: Image,
    *,
    files: pd.DataFrame | None = None,
    fleet: Fleet | Sequence[Image] | None = None,
    dockerfile: str | os.PathLike | None = None,
    limit: int = 10,
    min_bytes: int = 1,
    start: int = 1,
    progress: bool = True,
) -> pd.DataFrame:
    """Merges of consecutive layers ranked by bytes saved, each with its reason
    and Dockerfile lines, and the best set of them to do together.

    From the file table: every pair of layers where a later one deletes or
    overwrites what an earlier one wrote gives the candidate merge
    ``(writer, hider)``, sized exactly as :func:`what_if_merge` sizes it
    (pairs hiding fewer than ``min_bytes`` are skipped).  Its ``kind`` is the
    reason behind most of the bytes: "created then deleted", "cache left
    behind" (the deleted files are a package manager's cache or lists, by the
    rules of :mod:`layerlab.analysis._cache_rules`), "overwritten" (new
    content), "permissions-only change" (the same content stored again with a
    new mode or owner: chmod/chown), "same content stored again".  From the
    commands: ``apt-get update`` in a step of its own ("apt-get update
    alone").  Where suggestions overlap, the span of them is a candidate too.

    ``chosen`` marks the best set of merges that share no layer: the most
    bytes saved (fewest merged layers among equals).  Their ``saved_bytes``
    add up to what merging them all at once saves (``what_if_merge(img,
    [(first, last), …])``); the rows of other candidates overlap them and are
    alternatives, not additions.

    ``dockerfile_before`` holds the original lines of the merged steps,
    ``dockerfile_after`` the rewritten ones: one RUN of the commands joined
    with `` && `` (RUN flags kept; config-only steps between them moved
    above); ``<NA>`` when the group cannot be one RUN (the reason says why).
    The commands come from the history; BuildKit leaves RUN flags such as
    ``--mount=type=secret`` out of it, so pass ``dockerfile`` (a path or the
    text of the Dockerfile the image was built from) to keep them.

    Without layer contents the candidates come from the commands only and
    ``saved_bytes`` is ``<NA>``.  ``files``: ``img``'s file table if you
    already have it; ``fleet``: the images ``img`` sits among (for
    ``sharing_lost_bytes``).  At most ``limit`` rows, plus the chosen rows
    beyond them.  Candidates start at layer ``start`` (default 1: the base
    layer usually comes from the ``FROM`` image, and merging it would unshare
    it).  Merges that would not save bytes (``saved_bytes <= 0``) are left out.

    Columns: ``first``, ``last``, ``layers_merged``, ``saved_bytes``,
    ``size_before_bytes``, ``size_after_bytes``, ``sharing_lost_bytes`` (all
    Int64), ``kind``, ``reason`` (the steps, bytes and example paths),
    ``chosen`` (boolean), ``dockerfile_before``, ``dockerfile_after``; the
    frame's ``attrs["notes"]`` says what was assumed.
    """
    if not isinstance(img, Image):
        raise AnalysisError(f"suggest_merges needs a layerlab Image, got {type(img).__name__}")
    if start < 0:
        raise AnalysisError(f"start={start}: a layer position must be >= 0")
    table, why = file_table(img, files, progress)
    st = Stacked(table) if table is not None else None
    step_of, cmd = _command(img)
    pairs: list[dict] = []
    if st is not None:
        _from_files(st, cmd, min_bytes, pairs)
    pairs = [p for p in pairs if p["first"] >= start]
    cands = {(p["first"], p["last"]): _pooled(p["first"], p["last"], pairs) for p in pairs}
    _from_commands(len(img.layer_list), step_of, cands, pairs)
    cands = {k: c for k, c in cands.items() if k[0] < k[1] and k[0] >= start}
    rows = [r for (a, b), c in cands.items() if (r := _sized(img, a, b, c, st, why, fleet)) is not None]
    unions = [r for (a, b), c in _unions(rows, pairs).items() if (r := _sized(img, a, b, c, st, why, fleet))]
    _choose(rows + unions)
    rows += [r for r in unions if r["chosen"]]
    notes: list[str] = []
    _dockerfile(img, rows, dockerfile, notes)
    df = typed_frame(rows, SUGGESTION_COLUMNS)
    df = df.sort_values(["saved_bytes", "layers_merged"], ascending=[False, True], na_position="last")
    df = df.reset_index(drop=True)
    df = df[(df.index < limit) | df["chosen"].fillna(False).astype(bool)].reset_index(drop=True)
    df.attrs["notes"] = notes
    return df


__all__ = ["suggest_merges"]
