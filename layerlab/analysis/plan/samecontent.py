"""Steps of different apps that write the same files, found from the apps'
built images (``match_content``), and installs kept in place that install the
same packages (``match_kept_installs``).

Two teams download the same tool differently (``curl … | tar -x`` in one RUN;
``curl -o``, ``tar -x``, ``rm`` in three): the text differs, the shell parser
finds no package manager, yet their layers hold the same files.  Where the
apps' images are given, each layer-making step's *content* is read from its
layer (for a step joined from several RUNs, the layers merged with the OCI
rules: :class:`layerlab.analysis.merge.table.Stacked`, read once per image): the regular
files, links and their modes, by path and content hash (the file tables'
``hash``), leaving out what says nothing about the step's effect — package
caches and indexes, temporary files and byte code (the one rule table,
:mod:`layerlab.analysis._cache_rules`), and directories (an mtime touched by
an unrelated write).

* Steps among an app's *others* (not install units, not the app's own
  ``COPY`` and what follows it) whose contents are equal and not empty are
  one trie node: they share a key, and every app writes the first app's
  wording; the node's size is the first app's layer, measured in place.
* ``shared`` (the plan's ``shared_content`` frame): every pair of
  layer-making steps of two apps that write files with the same path and
  content, with the bytes and files in common and whether the plan made them
  one step — so a user sees which steps wrote the shared bytes even where
  the plan leaves them apart (an app's own ``COPY`` of the same vendored
  files, two installs whose dependencies overlap).

Installs kept as written (they follow a step that configures their manager,
e.g. ``ENV NODE_PATH`` before ``npm install -g``) and that install the same
packages with the same variant in several apps are written once, as an
install unit would be (with its cleanup), under a shared key: the trie makes
them one node where everything below them is the same.  Its size is that of
the first app whose install already cleaned up as the unit does (measured in
place); else the first app's, noted as an upper bound.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import pandas as pd

from ...errors import LayerlabError
from ...model import Image
from .._cache_rules import classify
from .effects import Install, add_wording, run_effect
from .joins import image_table
from .steps import Step

SHARED_CONTENT_COLUMNS = {
    "image": "string", "step": "string", "line": "Int64",
    "other_image": "string", "other_step": "string", "other_line": "Int64",
    "shared_files": "Int64", "shared_bytes": "Int64", "step_bytes": "Int64", "other_step_bytes": "Int64",
    "same_content": "boolean", "merged": "boolean",
}
# pairs sharing less than this are not listed (a shared empty __init__.py says nothing)
MIN_SHARED_BYTES = 64 * 1024
_CONTENT_TYPES = {"file", "hardlink", "symlink"}


class _Content:
    """One step's content: path -> (type, hash or link target, permission bits, size)."""

    def __init__(self, entries: dict[str, tuple], size: int):
        self.entries = entries
        self.size = size
        self.signature = hashlib.sha256(repr(sorted(entries.items())).encode()).hexdigest() if entries else ""


def _layers(st: Step) -> tuple[int, ...]:
    if st.layers:
        return st.layers
    return (st.position,) if st.position is not None else ()


def _content(table, positions: Sequence[int]) -> _Content:
    """The content of the layers ``positions`` of ``table`` (a ``Stacked`` image), merged when several."""
    if len(positions) == 1:
        frame = table.files[table.files["position"] == positions[0]]
    else:
        frame = table.merged_frame(table.merged(positions))
    frame = frame[frame["type"].isin(_CONTENT_TYPES)]
    frame = frame[classify(frame["path"]).isna()]
    entries: dict[str, tuple] = {}
    for path, typ, h, link, mode, size in zip(frame["path"], frame["type"], frame["hash"], frame["link_target"],
                                              frame["mode"], frame["size"]):
        what = link if typ != "file" else h
        entries[str(path)] = (str(typ), None if pd.isna(what) else str(what),
                              None if pd.isna(mode) else int(mode) & 0o7777, 0 if pd.isna(size) else int(size))
    return _Content(entries, sum(e[3] for e in entries.values()))


def _shared(a: _Content, b: _Content) -> tuple[int, int]:
    small, big = (a, b) if len(a.entries) <= len(b.entries) else (b, a)
    files = size = 0
    for path, e in small.entries.items():
        if e[1] is not None and big.entries.get(path) == e:
            files += 1
            size += e[3]
    return files, size


def step_contents(app: str, img: Image | None, steps: Sequence[Step], notes: list[str],
                  tables: dict) -> dict[int, _Content]:
    """id(step) -> its content, for the layer-making ``steps`` whose layers ``img`` holds
    (``tables``: :func:`.joins.image_table`'s memo, shared with the scratch-step joins)."""
    want = [s for s in steps if s.instruction in {"RUN", "COPY", "ADD"} and _layers(s)]
    if img is None or not want:
        return {}
    table = image_table(app, img, notes, tables)
    if not table:
        return {}
    out = {}
    for s in want:
        try:
            out[id(s)] = _content(table, _layers(s))
        except LayerlabError as e:
            notes.append(f"{app}: {_where(s)}: its layer could not be read ({e}); compared by text only")
    return out


def match_content(others: Mapping[str, list[Step]], contents: Mapping[int, _Content], apps: Sequence[str],
                  notes: list[str]) -> None:
    """Give steps of ``others`` (per app) that write the same content one key and
    wording (see the module doc)."""
    groups: dict[str, list[Step]] = {}
    for app in apps:
        for st in others.get(app, []):
            c = contents.get(id(st))
            if st.instruction == "RUN" and c is not None and c.signature:
                groups.setdefault(c.signature, []).append(st)
    for sig, members in groups.items():
        if len({s.app for s in members}) < 2:
            continue
        first = members[0]
        c = contents[id(first)]
        notes.append("same files written by differently worded steps, compared by their layers' content: "
                     + "; ".join(f"{s.app} {_where(s)}" for s in members)
                     + f" ({len(c.entries):,} files, {c.size:,} B): one step, written as {first.app}'s")
        key = f"content: {sig[:16]} {first.text}"
        for st in members:
            st.key = key
            if st is not first:
                st.text, st.raw, st.run_flags = first.text, first.raw, first.run_flags


def empty_shared_content() -> pd.DataFrame:
    """A ``shared_content`` frame with no rows (no images, or ``by_effect=False``)."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in SHARED_CONTENT_COLUMNS.items()})


@dataclass
class ContentFindings:
    """What ``shared_content`` needs once the plan's trie is built: the apps'
    original layer-making ``steps``, their ``contents``, ``texts`` (id(step) ->
    its text as the app wrote it) and ``units`` (id(install step) -> the install
    units its packages went to)."""

    steps: Mapping[str, list[Step]]
    contents: Mapping[int, _Content]
    apps: Sequence[str]
    texts: Mapping[int, str]
    units: Mapping[int, set]

    def frame(self, node_of: Mapping[int, int]) -> pd.DataFrame:
        """The ``shared_content`` frame (``node_of``: id(step) -> its trie node in the plan)."""
        def together(x: Step, y: Step) -> bool:
            if self.units.get(id(x), set()) & self.units.get(id(y), set()):
                return True
            return id(x) in node_of and node_of.get(id(x)) == node_of.get(id(y))

        return shared_content(self.steps, self.contents, self.apps, self.texts, together)


def shared_content(steps: Mapping[str, list[Step]], contents: Mapping[int, _Content], apps: Sequence[str],
                   texts: Mapping[int, str], together: Callable[[Step, Step], bool]) -> pd.DataFrame:
    """The ``shared_content`` frame over the layer-making ``steps`` of each app
    (``texts``: id(step) -> its text as the app wrote it; ``together(a, b)``:
    whether the plan puts both steps' content, or part of it, in one step)."""
    rows = []
    for i, a in enumerate(apps):
        for b in apps[i + 1:]:
            for sa in steps.get(a, []):
                ca = contents.get(id(sa))
                if ca is None:
                    continue
                for sb in steps.get(b, []):
                    cb = contents.get(id(sb))
                    if cb is None:
                        continue
                    files, size = _shared(ca, cb)
                    if size < MIN_SHARED_BYTES:
                        continue
                    rows.append({"image": a, "step": texts.get(id(sa), sa.text), "line": sa.line,
                                 "other_image": b, "other_step": texts.get(id(sb), sb.text), "other_line": sb.line,
                                 "shared_files": files, "shared_bytes": size, "step_bytes": ca.size,
                                 "other_step_bytes": cb.size, "same_content": ca.signature == cb.signature,
                                 "merged": together(sa, sb)})
    if not rows:
        return empty_shared_content()
    frame = pd.DataFrame(rows, columns=list(SHARED_CONTENT_COLUMNS)).astype(SHARED_CONTENT_COLUMNS)
    return frame.sort_values("shared_bytes", ascending=False, kind="stable").reset_index(drop=True)


def match_kept_installs(kept: Mapping[str, list[Step]], apps: Sequence[str], unit_text, notes: list[str]) -> None:
    """Write installs kept in place that install the same packages in several apps
    once, as a unit (``unit_text(groups, wording) -> commands``), under one key."""
    by_effect: dict[tuple, list[tuple[Step, list[Install], bool]]] = {}
    for app in apps:
        for st in kept.get(app, []):
            eff = run_effect(st.text[4:])
            if not eff.pure_install:
                continue
            insts = eff.installs
            what = tuple(sorted((i.manager, i.variant, i.packages) for i in insts))
            cleaned = {i.manager for i in insts} <= {c.manager for c in eff.commands if c.kind == "cleanup"} \
                or all(i.manager == "pip" and "--no-cache-dir" in st.text for i in insts)
            by_effect.setdefault(what, []).append((st, insts, cleaned))
    for what, members in by_effect.items():
        if len({st.app for st, _i, _c in members}) < 2:
            continue
        groups: dict[tuple, set[str]] = {}
        wording: dict[tuple, Install] = {}
        for _st, insts, _c in members:
            for inst in insts:
                groups.setdefault((inst.manager, inst.variant), set()).update(inst.packages)
                add_wording(wording, inst)
        cmds = unit_text(groups, wording)
        text = "RUN " + " && ".join(cmds)
        flags: list[str] = []
        for st, _i, _c in members:
            flags.extend(f for f in st.run_flags if f not in flags)
        raw = "RUN " + "".join(f + " " for f in flags) + " \\\n    && ".join(cmds)
        sized = next((st for st, _i, c in members if c), None)
        for st, _i, _c in members:
            # the first app measured it in place: the trie takes the first in-place size
            in_place = st is sized if sized is not None else st is members[0][0]
            st.text, st.raw, st.key, st.run_flags = text, raw, "effect: " + text, tuple(flags)
            st.reordered = st.reordered or not in_place
        notes.append("installs kept in place (after a step that configures their manager) that install the same "
                     "packages: " + "; ".join(f"{st.app} {_where(st)}" for st, _i, _c in members)
                     + ": written once, with the unit's cleanup"
                     + ("" if sized is not None else
                        " (sized from a layer that kept the manager's cache: the built layer can be smaller)"))


def _where(st: Step) -> str:
    return f"line {st.line}" if st.line else repr(st.text[:40])


__all__ = ["SHARED_CONTENT_COLUMNS", "ContentFindings", "empty_shared_content", "match_content", "match_kept_installs", "shared_content",
           "step_contents"]
