"""An app's scratch steps joined with their cleanup (``join_scratch``).

A RUN that writes files a later RUN of the same app deletes (a 32 MB scratch
file written, checksummed, and removed a step later) stores the bytes in the
writer's layer for good.  The plan writes such a run of steps — the writer,
the deleter and the RUNs between them — as one RUN (the commands joined with
``&&``, every flag once: :func:`layerlab.analysis.merge.rewrite.join_lines`,
the one implementation ``suggest_merges`` and ``improve`` use), so the app
stores what a careful Dockerfile would.  Only runs of shell-form RUNs are
joined; a step between them of another kind (``COPY``, ``ENV`` …), or an
install or index update among them (the install units take those), keeps
them apart, as written.

The joined layer's size is exact where the app's image is given: the layers
of those steps merged with the OCI rules
(:class:`layerlab.analysis.merge.table.Stacked`), what ``what_if_merge``
predicts and a build makes; else unknown.
"""
from __future__ import annotations

from typing import Sequence

from ...errors import LayerlabError
from ...model import Image
from ..merge.rewrite import Line, join_lines
from .effects import RunEffect, run_effect, scratch_pairs
from .steps import Step


def join_scratch(app: str, chain: list[Step], img: Image | None, notes: list[str],
                 tables: dict | None = None) -> list[Step]:
    """``chain`` with each writer..deleter run of RUN steps (see the module doc) as one Step
    (``tables``: :func:`image_table`'s memo, shared with the content comparison)."""
    effects: list[RunEffect | None] = [run_effect(s.text[4:]) if s.instruction == "RUN" else None for s in chain]
    out: list[Step] = []
    i = 0
    pairs = {a: b for a, b, _paths in scratch_pairs(effects)}
    table = None
    while i < len(chain):
        j = pairs.get(i)
        if j is None or any(s.instruction != "RUN" or effects[k] is None or effects[k].pure_install
                            or effects[k].housekeeping for k, s in enumerate(chain[i:j + 1], i)):
            out.append(chain[i])
            i += 1
            continue
        group = chain[i:j + 1]
        _moved, run, why = join_lines([(Line("RUN", s.raw or s.text, s.run_flags, s.text[4:]), True) for s in group])
        if run is None:
            notes.append(f"{app}: {_where(group[0])} and its cleanup at {_where(group[-1])} not joined: {why}")
            out.append(chain[i])
            i += 1
            continue
        if table is None and img is not None:
            table = image_table(app, img, notes, tables if tables is not None else {})
        size = _joined_size(group, table, img)
        first = group[0]
        text = f"RUN {run.command}"
        out.append(Step(app=app, instruction="RUN", text=text, key=text, source=first.source, line=first.line,
                        size=size, makes_layer=True, raw=run.text, run_flags=run.flags,
                        reordered=size is None, layers=_positions(group)))
        notes.append(f"{app}: {_where(group[0])} writes files {_where(group[-1])} deletes: joined into one RUN "
                     + ("(its layer: the steps' layers merged)" if size is not None else "(size unknown: no image)"))
        for k in range(i + 1, j + 1):  # a writer inside the group whose deleter is later still: not joined
            pairs.pop(k, None)
        i = j + 1
    return out


def _where(st: Step) -> str:
    return f"line {st.line}" if st.line else repr(st.text[:40])


def image_table(app: str, img: Image, notes: list[str], memo: dict):
    """``img``'s file table with content hashes, its layers stacked once
    (:class:`layerlab.analysis.merge.table.Stacked`), memoised in ``memo`` by image;
    False (noted once) when its layers cannot be read."""
    from ..merge.table import Stacked

    if id(img) not in memo:
        try:
            memo[id(img)] = Stacked(img.files(hash="fast", progress=False))
        except LayerlabError as e:
            notes.append(f"{app}: the layers of {img.reference} could not be read ({e}); joined steps are not "
                         "sized and its steps are compared by text only")
            memo[id(img)] = False
    return memo[id(img)]


def _positions(group: Sequence[Step]) -> tuple[int, ...]:
    """The group's layer positions when they are known and consecutive, else ()."""
    poss = [s.position for s in group]
    if any(p is None for p in poss) or poss != list(range(poss[0], poss[0] + len(poss))):  # type: ignore[operator]
        return ()
    return tuple(poss)  # type: ignore[arg-type]


def _joined_size(group: Sequence[Step], table, img: Image | None) -> int | None:
    """The merged layer of the group's layers (consecutive positions), else None;
    in the plan's size column: scaled by the group's column bytes per tar byte
    (1 for ``size``; for a wire column, an estimate of the merged blob)."""
    if not table or img is None:
        return None
    poss = _positions(group)
    if not poss:
        return None
    tar = {lay.position: lay.size for lay in img.layer_list}
    col = [s.size for s in group]
    tars = [tar.get(p) for p in poss]
    if any(v is None for v in col + tars) or not sum(tars):  # type: ignore[arg-type]
        return None
    merged = table.merged_size(table.merged(poss))
    if col == tars:
        return merged
    return round(merged * sum(col) / sum(tars))  # type: ignore[arg-type]
