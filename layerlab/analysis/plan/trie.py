"""The step trie: how steps are matched — a Dockerfile's steps to its built
image's history (``size_from_history``), the apps' chains to each other
(overlaid, identical steps merged) — and the shared trunk cut into base images.

Two steps are the same node when their ``Step.key`` is equal and everything
below them is the same (a trie, like Docker's chain ids).  ``reorder_chains``
optionally moves steps that several apps run to the front first (the
article's "merge duplicate nodes").  ``cut`` splits the trie into segments:
maximal single-branch runs used by the same apps; a segment used by two or
more apps is a base image (``f1``, ``f2``, … in trie order), except one that
makes no layer, which is folded into the images that follow it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from ...model import Image
from .byeffect import step_dependencies
from .effects import STAGE, run_effect
from .dockerfile import ParsedDockerfile
from .steps import PlanError, Step, history_steps


@dataclass
class Node:
    """One trie node: a step, the apps that run it (in order) and their sizes."""

    node: int
    parent: int | None
    key: str
    step: Step | None
    apps: list[str] = field(default_factory=list)
    sizes: list[int | None] = field(default_factory=list)
    children: dict[str, int] = field(default_factory=dict)
    in_place: list[bool] = field(default_factory=list)
    estimated: list[bool] = field(default_factory=list)


def size_from_history(parsed: ParsedDockerfile, img: Image) -> tuple[int | None, list[str], list[Step]]:
    """Give the Dockerfile's steps the sizes of the matching history steps of
    ``img`` (matched in order by normalised text).  Returns (bytes below the
    first matched step = the FROM image's size, notes, the image's own steps)."""
    hist = history_steps(img, name=parsed.name)
    notes: list[str] = []
    j = 0
    first_match: int | None = None
    for s in parsed.steps:
        k = j
        while k < len(hist) and hist[k].text != s.text:
            k += 1
        if k == len(hist):
            if s.makes_layer is not False:
                notes.append(f"{parsed.source}:{s.line}: {s.text[:60]!r} not found in {img.reference}'s history; size unknown")
            s.size = None if s.makes_layer is not False else 0
            continue
        h = hist[k]
        if first_match is None:
            first_match = k
        s.makes_layer = h.makes_layer
        s.size = h.size
        s.diff_id, s.chain_id, s.position = h.diff_id, h.chain_id, h.position
        j = k + 1
    base_size: int | None = None
    if first_match is not None:
        below = hist[:first_match]
        if all(b.size is not None for b in below):
            base_size = sum(b.size for b in below if b.makes_layer)  # type: ignore[misc]
    return base_size, notes, hist


def reorder_chains(chains: dict[str, list[Step]], apps: Sequence[str]) -> list[str]:
    """Move steps more apps share first (most-shared first), in the order the
    first app that has them runs them; each app's own steps keep their
    relative order after them.  Changes ``chains`` in place and flags the
    moved steps ``reordered``; returns a note per app whose order changed
    (the shared steps must not depend on the app's own earlier steps).  A step
    never moves above a step it depends on (``byeffect.step_dependencies``:
    the app's own COPY, the install a RUN needs, the step a cleanup deletes
    the files of)."""
    count: dict[str, int] = {}
    first_seen: dict[str, tuple[int, int]] = {}
    for ai, app in enumerate(apps):
        for si, st in enumerate(chains[app]):
            if st.instruction == "FROM":
                continue
            count[st.key] = count.get(st.key, 0) + 1
            first_seen.setdefault(st.key, (ai, si))
    notes: list[str] = []
    for app in apps:
        chain = chains[app]
        head = [s for s in chain if s.instruction == "FROM"]
        rest = [s for s in chain if s.instruction != "FROM"]
        shared = sorted((s for s in rest if count[s.key] > 1), key=lambda s: (-count[s.key], first_seen[s.key]))
        own = [s for s in rest if count[s.key] <= 1]
        new = head + _respecting(shared + own, rest, step_dependencies(rest))
        if [s.key for s in new] != [s.key for s in chain]:
            notes.append(
                f"{app}: steps reordered so that shared steps come first (reorder=True); check that they "
                "do not depend on the app's own earlier steps"
            )
            for i, s in enumerate(new):
                if i >= len(chain) or chain[i].key != s.key or any(a.key != b.key for a, b in zip(new[:i], chain[:i])):
                    s.reordered = True
        chains[app] = new
    return notes


def _respecting(wanted: list[Step], original: list[Step], deps: list[set[int]]) -> list[Step]:
    """``wanted``'s order, except that no step comes before one it depends on
    (``deps``: indices into ``original``, whose order satisfies them)."""
    index = {id(s): i for i, s in enumerate(original)}
    pending, done, out = list(wanted), set(), []
    while pending:
        k = next(k for k, s in enumerate(pending) if deps[index[id(s)]] <= done)
        s = pending.pop(k)
        done.add(index[id(s)])
        out.append(s)
    return out


class Trie:
    """The apps' chains overlaid: ``nodes`` (0 is the root), ``paths`` app -> node ids."""

    def __init__(self, chains: Mapping[str, list[Step]], apps: Sequence[str]):
        self.nodes: list[Node] = [Node(0, None, "", None)]
        self.nodes[0].apps = list(apps)
        self.paths: dict[str, list[int]] = {}
        for app in apps:
            cur = 0
            path = []
            for s in chains[app]:
                nxt = self.nodes[cur].children.get(s.key)
                if nxt is None:
                    nxt = len(self.nodes)
                    self.nodes.append(Node(nxt, cur, s.key, s))
                    self.nodes[cur].children[s.key] = nxt
                n = self.nodes[nxt]
                n.apps.append(app)
                n.sizes.append(s.size if s.makes_layer is not False else 0)
                n.in_place.append(not s.reordered)
                n.estimated.append(s.estimated)
                path.append(nxt)
                cur = nxt
            self.paths[app] = path

    def size(self, nid: int) -> int | None:
        """The node's layer bytes (None: unknown)."""
        n = self.nodes[nid]
        # a layer's size depends on what ran before it (a package another step already installed
        # is not installed again): prefer a size measured with the same steps below it
        for v, ok in zip(n.sizes, n.in_place):
            if ok and v is not None:
                return v
        if not n.sizes or any(v is None for v in n.sizes):
            return None
        return max(n.sizes)

    def size_estimated(self, nid: int) -> bool:
        """Whether :meth:`size` is an estimate (an install unit's share of a split layer)."""
        n = self.nodes[nid]
        if any(ok and v is not None for v, ok in zip(n.sizes, n.in_place)):
            return False
        return self.size(nid) is not None and any(n.estimated)

    def makes_layer(self, nid: int) -> bool | None:
        """Whether the node's step makes a layer (None: unknown)."""
        st = self.nodes[nid].step
        if st is None:
            return False
        if st.instruction == "FROM":
            return None if st.size is None else True
        return st.makes_layer

    def layer_nodes(self, nids: Sequence[int]) -> list[int]:
        """The nodes of ``nids`` that (may) make a layer."""
        return [n for n in nids if self.makes_layer(n) is not False]

    def makes_any_layer(self, nids: Sequence[int]) -> bool:
        """Whether a step of ``nids`` other than FROM (may) make a layer."""
        for nid in nids:
            st = self.nodes[nid].step
            if st is None or st.instruction == "FROM":
                continue
            if self.makes_layer(nid) is not False:
                return True
        return False


@dataclass(eq=False)
class Segment:
    """A run of trie nodes that becomes (part of) one proposed image."""

    nodes: list[int]
    parent: int | None                 # segment below (index)
    apps: list[str]
    kind: str = "app"                  # "base" (2+ apps) or "app"
    prefix: list[int] = field(default_factory=list)  # nodes folded in from layer-less parents
    folded: bool = False               # a shared segment without a layer: no image of its own
    image_parent: int | None = None    # the segment whose image this one is built FROM
    name: str | None = None            # the proposed image (None: folded)


def _branch_segments(trie: Trie) -> list[Segment]:
    """Maximal single-branch runs with the same app set, in depth-first order."""
    nodes = trie.nodes
    segments: list[Segment] = []
    stack = [(cid, None, 0) for cid in reversed(list(nodes[0].children.values()))]
    while stack:
        cid, seg, pid = stack.pop()
        c = nodes[cid]
        if seg is None or set(c.apps) != set(nodes[pid].apps):
            segments.append(Segment([cid], seg, list(c.apps)))
            s = len(segments) - 1
        else:
            segments[seg].nodes.append(cid)
            s = seg
        stack.extend((gid, s, cid) for gid in reversed(list(c.children.values())))
    return segments


def _per_step(segments: list[Segment], trie: Trie) -> list[Segment]:
    """One base image per shared layer-making step (the article's f1 -> f2 ->
    f3 -> f4, each team owning its layer); zero-byte steps (ENV, ARG…) go with
    the layer step that follows them (those after the last one: a segment of
    their own, folded into the images that follow)."""
    return _cut_shared(segments, trie, lambda nid: nid, trailing_alone=True)


LEVEL_NAMES = ("OS packages", "tools", "libraries")


def step_level(st: Step) -> int:
    """The article's level of a step: 0 the OS and its packages (a base layer,
    apt/apk/dnf installs and their index updates), 2 language libraries (pip,
    npm installs), 1 every other tool or file step in between."""
    if st.instruction in {"FROM", "IMPORT"}:
        return 0
    if st.instruction != "RUN":
        return 1
    eff = run_effect(st.text[4:])
    stages = {STAGE[i.manager] for i in eff.installs}
    if eff.pure_install and stages:
        return 0 if stages == {0} else 2
    if eff.housekeeping:
        return 0
    return 1


def _per_level(segments: list[Segment], trie: Trie) -> list[Segment]:
    """Shared segments cut further where the article's level of their
    layer-making steps changes (:func:`step_level`); zero-byte steps (ENV,
    ARG…) go with the layer step that follows them, or the last chunk."""
    return _cut_shared(segments, trie, lambda nid: step_level(trie.nodes[nid].step), trailing_alone=False)


def _cut_shared(segments: list[Segment], trie: Trie, key, trailing_alone: bool) -> list[Segment]:
    """Each shared segment cut before every layer-making step whose ``key(node)``
    differs from the previous layer step's; the zero-byte steps before a layer
    step go with it; those after the last one go with the last chunk, or
    (``trailing_alone``) make a chunk of their own.  Apps' segments stay whole."""
    out: list[Segment] = []
    remap: dict[int, int | None] = {}
    for si, seg in enumerate(segments):
        parent = remap.get(seg.parent) if seg.parent is not None else None
        if len(seg.apps) < 2:
            out.append(Segment(seg.nodes, parent, seg.apps))
            remap[si] = len(out) - 1
            continue
        chunk: list[int] = []
        pending: list[int] = []       # zero-byte steps since the chunk's last layer step
        last = None
        for nid in seg.nodes:
            st = trie.nodes[nid].step
            if st is None or st.instruction == "FROM" or trie.makes_layer(nid) is False:
                pending.append(nid)
                continue
            k = key(nid)
            if chunk and k != last:
                out.append(Segment(chunk, parent, seg.apps))
                parent = len(out) - 1
                chunk = []
            chunk += pending + [nid]
            pending = []
            last = k
        tails = [chunk, pending] if trailing_alone else [chunk + pending]
        for part in tails:
            if part:
                out.append(Segment(part, parent, seg.apps))
                parent = len(out) - 1
        remap[si] = parent
    return out


class Cut:
    """The trie cut into proposed images: ``segments`` (bases and apps),
    ``seg_of`` node -> segment, ``image_of_node`` node -> image name(s)."""

    def __init__(self, trie: Trie, *, split: str = "level", base_prefix: str = "",
                 levels: Sequence[str] | None = None):
        self.trie = trie
        segments = _branch_segments(trie)
        if split not in {"level", "branch", "step"}:
            raise PlanError(
                f"split={split!r}: use 'level' (one base per branch point and level: OS packages, tools, "
                "libraries), 'branch' (one base per branch point) or 'step' (one base per shared layer)"
            )
        if split == "step":
            segments = _per_step(segments, trie)
        elif split == "level":
            segments = _per_level(segments, trie)
        self.segments = segments
        self.seg_of: dict[int, int] = {nid: si for si, seg in enumerate(segments) for nid in seg.nodes}
        self._fold()
        self._name(base_prefix, list(levels or []))

    def _fold(self) -> None:
        """Fold shared segments that make no layer (only ENV/ARG/WORKDIR… or a
        FROM) into their children; find each segment's image parent."""
        segments = self.segments
        for seg in segments:
            seg.kind = "base" if len(seg.apps) >= 2 else "app"
            seg.folded = seg.kind == "base" and not self.trie.makes_any_layer(seg.nodes)
        for seg in segments:
            p = seg.parent
            prefix: list[int] = []
            while p is not None and segments[p].folded:
                prefix = segments[p].nodes + prefix
                p = segments[p].parent
            seg.image_parent = p
            seg.prefix = prefix

    def _name(self, base_prefix: str, levels: list[str]) -> None:
        """Bases ``f1``.. (or ``levels``' names, then ``f<n>``) in trie order, apps by
        name; which image holds each node."""
        counter = 0
        for seg in self.segments:
            if seg.folded:
                seg.name = None
            elif seg.kind == "base":
                counter += 1
                seg.name = base_prefix + (levels[counter - 1] if counter <= len(levels) else f"f{counter}")
            else:
                seg.name = seg.apps[0]
        self.image_of_node: dict[int, str | None] = {}
        for seg in self.segments:
            for nid in seg.nodes:
                self.image_of_node[nid] = seg.name
        for seg in self.segments:
            # a folded (layer-less) shared segment is repeated in each image that follows it
            for nid in seg.prefix:
                if seg.name is not None:
                    prev = self.image_of_node.get(nid)
                    self.image_of_node[nid] = seg.name if not prev else f"{prev},{seg.name}"

    def images(self) -> list[int]:
        """Segment indices of the proposed images: bases (trie order), then apps."""
        segs = self.segments
        return [i for i, s in enumerate(segs) if not s.folded and s.kind == "base"] + [
            i for i, s in enumerate(segs) if s.kind == "app"
        ]

    def ancestors(self, seg_idx: int | None) -> list[int]:
        """Every node of segment ``seg_idx``'s image, base first."""
        out: list[int] = []
        while seg_idx is not None:
            seg = self.segments[seg_idx]
            out = seg.prefix + seg.nodes + out
            seg_idx = seg.image_parent
        return out

    def image_segment(self, app: str) -> int | None:
        """For an app whose whole path is shared: the segment of the image it ends in."""
        path = self.trie.paths[app]
        last = path[-1] if path else None
        seg_idx = self.seg_of.get(last) if last is not None else None
        while seg_idx is not None and self.segments[seg_idx].folded:
            seg_idx = self.segments[seg_idx].parent
        return seg_idx
