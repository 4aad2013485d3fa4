"""Merge suggestions: which consecutive layers are worth joining, and why."""
from __future__ import annotations

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
_CHMOD = re.compile(r"\b(chmod|chown|chgrp)\b")
APT_ALONE = "apt-get update alone"

SUGGESTION_COLUMNS: dict[str, str] = {
    "first": "Int64", "last": "Int64", "layers_merged": "Int64", "saved_bytes": "Int64",
    "size_before_bytes": "Int64", "size_after_bytes": "Int64", "sharing_lost_bytes": "Int64",
    "kind": "string", "reason": "string",
}


def _command(img: Image):
    step_of = {s.layer_position: s for s in img.history_list if s.layer_position is not None}

    base = base_name(img.config)

    def cmd(p: int) -> str:
        """The step's label (the one rule: ``layerlab.labels``)."""
        s = step_of.get(p)
        return step_label(s.created_by if s else None, 70, position=p, base=base)

    return step_of, cmd


def _full_command(step_of, p: int) -> str:
    s = step_of.get(p)
    return (s.created_by or "") if s else ""


def _from_files(st: Stacked, cmd, st_steps: dict, min_bytes: int, cands: dict) -> None:
    """Candidates from the file table: a later layer deletes or overwrites what an earlier one wrote."""
    for r in st.hidden_pairs().itertuples(index=False):
        w, h = int(r.writer), int(r.hider)
        if r.hidden_bytes < min_bytes:
            continue
        eg = ", ".join("/" + q for q in r.examples)
        if r.same_content_files and r.same_content_bytes * 2 >= r.hidden_bytes:
            if _CHMOD.search(_full_command(st_steps, h)):
                kind = "chmod/chown copy"
                why_ = "a metadata change (chmod/chown) stores the whole file again"
            else:
                kind = "same content stored again"
                why_ = "the step rewrote them with the same bytes"
            reason = (
                f"layer {h} ({cmd(h)}) stores {r.same_content_files} file(s) of layer {w} again with the same "
                f"content ({human_bytes(int(r.same_content_bytes))}, e.g. {eg}; {why_}); "
                f"merging {w}-{h} keeps one copy"
            )
        else:
            kind = "create then delete"
            reason = (
                f"layer {w} ({cmd(w)}) wrote {human_bytes(int(r.hidden_bytes))} (e.g. {eg}) that layer {h} "
                f"({cmd(h)}) deleted or overwrote; merging {w}-{h} never stores them"
            )
        c = cands.setdefault((w, h), {"first": w, "last": h, "kind": kind, "reasons": []})
        c["reasons"].append(reason)


def _from_commands(n: int, step_of, cands: dict) -> None:
    """Candidates from the commands: ``apt-get update`` in a step of its own."""
    for p in range(n - 1):
        text = (step_of[p].created_by or "") if p in step_of else ""
        if _APT_UPDATE.search(text) and not _APT_INSTALL.search(text):
            nxt = next((q for q in range(p + 1, n) if q in step_of and _APT_INSTALL.search(step_of[q].created_by or "")),
                       p + 1)
            c = cands.setdefault((p, nxt), {"first": p, "last": nxt, "kind": APT_ALONE, "reasons": []})
            c["reasons"].append(
                f"layer {p} runs apt-get update in a step of its own: its package lists stay in that layer (and a "
                f"cached update layer installs stale versions later); run it in the same RUN as the install (layer {nxt})"
            )


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
    reasons = "; ".join(c["reasons"])
    if saved is not None and c["kind"] != APT_ALONE:
        reasons += f" — in all, merging {a}-{b} saves {human_bytes(saved)}"
    return {
        "first": a, "last": b, "layers_merged": b - a + 1, "saved_bytes": saved,
        "size_before_bytes": size_before, "size_after_bytes": size_after, "sharing_lost_bytes": lost,
        "kind": c["kind"], "reason": reasons + ("" if st is not None else f" (bytes unknown: {why})"),
    }


def suggest_merges(
    img: Image,
    *,
    files: pd.DataFrame | None = None,
    fleet: Fleet | Sequence[Image] | None = None,
    limit: int = 10,
    min_bytes: int = 1,
    start: int = 1,
    progress: bool = True,
) -> pd.DataFrame:
    """Merges of consecutive layers ranked by bytes saved, each with the reason.

    From the file table: every pair of layers where a later one deletes or
    overwrites what an earlier one wrote (create-then-delete across steps,
    repeated chmod/chown of the same files: same content, new metadata) gives
    the candidate merge ``(writer, hider)``, sized exactly as
    :func:`what_if_merge` sizes it (pairs hiding fewer than ``min_bytes`` are
    skipped).  From the commands: ``apt-get update`` in a step of its own.
    Without layer contents the candidates come from the commands only and
    ``saved_bytes`` is ``<NA>``.  ``files``: ``img``'s file table if you
    already have it; ``fleet``: the images ``img`` sits among (for
    ``sharing_lost_bytes``); at most ``limit`` rows.

    Candidates start at layer ``start`` (default 1: the base layer usually
    comes from the ``FROM`` image, and merging it would unshare it).
    Merges that would not save bytes (``saved_bytes <= 0``) are left out.

    Columns: ``first``, ``last``, ``layers_merged``, ``saved_bytes``,
    ``size_before_bytes``, ``size_after_bytes``, ``sharing_lost_bytes`` (all
    Int64), ``kind`` ("create then delete", "chmod/chown copy", "same content
    stored again", "apt-get update alone"), ``reason`` (the steps, bytes and
    example paths).
    """
    if not isinstance(img, Image):
        raise AnalysisError(f"suggest_merges needs a layerlab Image, got {type(img).__name__}")
    if start < 0:
        raise AnalysisError(f"start={start}: a layer position must be >= 0")
    table, why = file_table(img, files, progress)
    st = Stacked(table) if table is not None else None
    step_of, cmd = _command(img)
    cands: dict[tuple[int, int], dict[str, Any]] = {}
    if st is not None:
        _from_files(st, cmd, step_of, min_bytes, cands)
    _from_commands(len(img.layer_list), step_of, cands)
    rows = []
    for (a, b), c in cands.items():
        if b <= a or a < start:
            continue
        row = _sized(img, a, b, c, st, why, fleet)
        if row is not None:
            rows.append(row)
    df = typed_frame(rows, SUGGESTION_COLUMNS)
    df = df.sort_values(["saved_bytes", "layers_merged"], ascending=[False, True], na_position="last")
    return df.reset_index(drop=True).head(limit)


__all__ = ["suggest_merges"]
