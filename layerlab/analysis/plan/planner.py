"""``plan_bases``: the apps' steps in, a :class:`BasePlan` out.

Reads each app (a Dockerfile, or an Image's history), sizes Dockerfile steps
from built images, then hands the step chains to the trie (``trie.py``) and
the trie's cut to the result (``result.py``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from ...model import Fleet, Image, chain_prefixes
from .dockerfile import ParsedDockerfile, parse_dockerfile
from .result import BasePlan, dockerfiles, image_paths, images_frame, layers_frame, savings_frame, trie_frame
from .steps import LAYER_INSTRUCTIONS, PlanError, Step, from_step, history_steps
from .byeffect import regroup_chains
from .samecontent import empty_shared_content
from .trie import Cut, Trie, reorder_chains, size_from_history


def _as_apps(apps, names) -> list[tuple[str, Any]]:
    if isinstance(apps, Mapping):
        return [(str(k), v) for k, v in apps.items()]
    if isinstance(apps, (str, os.PathLike, Image)):
        raise PlanError("plan_bases needs several applications (a dict name -> Dockerfile/Image, or a list)")
    items = list(apps)
    out = []
    for i, a in enumerate(items):
        if names is not None:
            n = names[i]
        elif isinstance(a, Image):
            n = a.reference
        elif isinstance(a, os.PathLike) or (isinstance(a, str) and "\n" not in a):
            p = Path(a)
            n = p.parent.name if p.name == "Dockerfile" and p.parent.name else p.name
        else:
            n = f"app{i + 1}"
        out.append((n, a))
    seen: set[str] = set()
    for i, (n, a) in enumerate(out):
        if n in seen:
            out[i] = (f"{n}#{i + 1}", a)
        seen.add(out[i][0])
    return out


def _image_map(images, items: list[tuple[str, Any]]) -> dict[str, Image]:
    """``images=`` as app name -> Image (checked against the apps)."""
    if images is None:
        return {}
    if isinstance(images, Mapping):
        img_map = {str(k): v for k, v in images.items()}
    else:
        lst = list(images)
        if len(lst) != len(items):
            raise PlanError(f"images= has {len(lst)} images for {len(items)} apps; pass a dict app -> Image")
        img_map = {n: im for (n, _), im in zip(items, lst)}
    for k in img_map:
        if k not in {n for n, _ in items}:
            raise PlanError(f"images= names {k!r}, which is not one of the apps ({', '.join(n for n, _ in items)})")
    return img_map


def _base_of(img: Image, pool: Sequence[Image]) -> Image | None:
    """The image of ``pool`` with the most layers whose layer chain is a proper
    prefix of ``img``'s (the image it was built FROM, as far as layers tell:
    :func:`layerlab.model.chain_prefixes`)."""
    found = chain_prefixes(img, pool)
    return found[0] if found else None


@dataclass
class _Apps:
    """What the planner read of every app."""

    size_column: str
    chains: dict[str, list[Step]] = field(default_factory=dict)      # app -> steps in the trie
    deferred: dict[str, list[Step]] = field(default_factory=dict)    # app -> metadata steps
    parsed: dict[str, ParsedDockerfile] = field(default_factory=dict)
    before: dict[str, list[tuple[str, int | None]]] = field(default_factory=dict)  # app -> [(identity, size)]
    notes: list[str] = field(default_factory=list)
    identities: dict[str, list[str]] = field(default_factory=dict)  # Image app -> its layers' identities

    def layer_size(self, layer) -> int | None:
        v = getattr(layer, self.size_column, None)
        return None if v is None else int(v)

    def resize(self, steps: Sequence[Step], img: Image) -> None:
        """Sizes from ``size_column`` instead of ``size`` (matched by diff_id)."""
        if self.size_column == "size":
            return
        by_pos = {l.position: l for l in img.layer_list}
        for s in steps:
            # by position: diff_ids can be unknown (repo-info, registry metadata) or repeat in one image
            if s.position is not None and s.position in by_pos and (s.diff_id is None or by_pos[s.position].diff_id == s.diff_id):
                s.size = self.layer_size(by_pos[s.position])

    def keep(self, app: str, steps: list[Step], head: Sequence[Step] = ()) -> None:
        """The app's trie chain (``head`` + its non-metadata steps) and its metadata steps."""
        self.chains[app] = list(head) + [s for s in steps if not s.deferred]
        self.deferred[app] = [s for s in steps if s.deferred]

    def add_image(self, app: str, src: Image, base_pool: Sequence[Image]) -> None:
        steps = history_steps(src, name=app)
        base_img = _base_of(src, base_pool)
        if base_img is not None:
            # the base image's own steps (and its CMD, LABELs) belong to it, not to the app
            head = from_step(app, base_img.reference, src.reference, size=base_img.size, makes_layer=True)
            steps = [head] + steps[_base_cut(src, base_img):]
        self.resize(steps, src)
        for s in steps:
            if s.instruction == "UNKNOWN":
                self.notes.append(f"{app}: history step {s.text[:60]!r} is not a Dockerfile instruction; kept as written")
            if s.makes_layer is None:
                self.notes.append(f"{app}: history step {s.text[:60]!r} could not be paired with a layer; its size is unknown")
        self.identities[app] = _layer_identities(app, src)
        self.before[app] = [(ident, self.layer_size(l)) for ident, l in zip(self.identities[app], src.layer_list)]
        self.keep(app, steps)
        if src.history_list and not any(s.makes_layer for s in steps) and src.layer_list:
            self.notes.append(f"{app}: no history step is paired with a layer; the trie cannot size it")

    def add_dockerfile(self, app: str, src, img: Image | None, build_args) -> None:
        parsed = parse_dockerfile(src, name=app, build_args=build_args)
        self.parsed[app] = parsed
        self.notes.extend(parsed.notes)
        base_size: int | None = None
        if img is not None:
            base_size, more, _ = size_from_history(parsed, img)
            self.notes.extend(more)
            self.resize(parsed.steps, img)
            if self.size_column != "size" and base_size is not None:
                # the FROM image's layers (below the first matched step) in the size column too
                first = min((s.position for s in parsed.steps if s.position is not None), default=None)
                vals = [self.layer_size(lay) for lay in img.layer_list if first is None or lay.position < first]
                base_size = None if any(v is None for v in vals) else sum(vals)  # type: ignore[misc]
        for s in parsed.steps:
            # a COPY/ADD of the build context is the app's own files: the same text in two
            # apps is the same content only when their built layers say so (diff_id)
            if s.instruction in {"COPY", "ADD"} and not s.needs_stages and "://" not in s.text:
                s.key = f"{s.text} @{s.diff_id[:19]}" if s.diff_id else f"{s.text} [build context of {app}]"
        root = from_step(
            app, parsed.base, parsed.source, size=base_size,
            makes_layer=None if base_size is None else base_size > 0,
            line=parsed.stages[0]["first_line"] if parsed.stages else None,
        )
        self.keep(app, parsed.steps, [root])
        # before: independent builds, sharing only the FROM image
        lay: list[tuple[str, int | None]] = [(f"FROM {parsed.base}", base_size)]
        for s in parsed.steps:
            if s.makes_layer or (s.makes_layer is None and s.instruction in LAYER_INSTRUCTIONS):
                lay.append((f"{app}:{s.line}", s.size))
        self.before[app] = lay


def _already_shared(savings, cut: Cut, paths) -> list[str]:
    """A note when the plan saves (almost) nothing on one host: the apps already
    share what its bases would hold, or nothing is worth sharing."""
    import pandas as pd

    from ...frames import human_bytes

    host = savings[savings["scope"] == "host"].iloc[0]
    before, after = host["stored_before_bytes"], host["stored_after_bytes"]
    if pd.isna(before) or pd.isna(after) or not before:
        return []
    saved = int(before) - int(after)
    if saved > 0.01 * int(before):
        return []
    bases = [cut.segments[i].name for i in cut.images() if cut.segments[i].kind == "base"]
    if not bases:
        what = "the apps share no layer-making steps"
    elif saved <= 0:
        what = f"the apps already share the layers its bases ({', '.join(bases)}) would hold"
    else:
        what = f"its bases ({', '.join(bases)}) would hold little the apps do not already store once"
    return [f"the plan saves {human_bytes(max(saved, 0))} of {human_bytes(int(before))} stored on one host: "
            f"{what}; building new bases is not worth it"]


def _same_as(cut: Cut, paths: Mapping[str, list[int]], identities: Mapping[str, list[str]],
             known: Sequence[Image]) -> dict[str, str]:
    """Proposed base -> the known image whose layers are exactly the base's (bases
    made of apps' history steps only: a regrouped Dockerfile step is no recorded layer)."""
    if not known:
        return {}
    chains: dict[tuple, str] = {}
    for k in known:
        if isinstance(k, Image) and k.layer_list:
            chains.setdefault(tuple(_layer_identities(k.reference, k)), k.reference)
    out = {}
    for idx in cut.images():
        seg = cut.segments[idx]
        if seg.kind != "base":
            continue
        ids = []
        for nid in paths[seg.name]:
            st = cut.trie.nodes[nid].step
            if st is None or st.position is None or st.app not in identities:
                break
            ids.append(identities[st.app][st.position])
        else:
            if ids and tuple(ids) in chains:
                out[seg.name] = chains[tuple(ids)]
    return out


def _layer_identities(app: str, img: Image) -> list[str]:
    """What one host stores each layer of ``img`` as: its chain id; where diff_ids are
    unknown (repo-info, registry metadata without configs), the chain of blob
    digests up to it (the same blobs on the same parents are the same stored
    layer); else a name of its own (shared with nothing)."""
    import hashlib

    out, chain = [], hashlib.sha256()
    known = True
    for l in img.layer_list:
        known = known and l.digest is not None
        if known:
            chain.update(l.digest.encode() + b"\n")
        if l.chain_id:
            out.append(l.chain_id)
        elif known:
            out.append("digest-chain:" + chain.copy().hexdigest())
        else:
            out.append(f"{app}:{l.position}")
    return out


def _base_cut(src: Image, base_img: Image) -> int:
    """How many of ``src``'s history steps are its base image's."""
    bh = [h.created_by for h in base_img.history_list]
    if bh and [h.created_by for h in src.history_list[: len(bh)]] == bh:
        return len(bh)  # the app's history starts with its base's
    cut = 0
    nb = len(base_img.layer_list)
    for i, h in enumerate(src.history_list):
        if h.layer_position is not None and h.layer_position >= nb:
            break
        cut = i + 1
    return cut


def plan_bases(
    apps: Mapping[str, Any] | Sequence[Any],
    *,
    images: Mapping[str, Image] | Sequence[Image] | Fleet | None = None,
    names: Sequence[str] | None = None,
    build_args: Mapping[str, str] | None = None,
    base_prefix: str = "",
    size_column: str = "size",
    split: str | None = None,
    reorder: bool = False,
    base_images: Fleet | Sequence[Image] | None = None,
    by_effect: bool = True,
    levels: Sequence[str] | None = None,
    known: Fleet | Sequence[Image] | None = None,
) -> BasePlan:
    """Propose shared base images for several applications.

    ``apps``: a dict name -> Dockerfile (path or text) or Image, or a list of
    them (named by ``names``, else by image reference or Dockerfile
    directory/file name).  ``images``: built images of the apps (dict by app
    name, or a list in the same order) to take layer sizes from — for
    Dockerfile apps, their steps are matched to the image's history by
    normalised text.  ``build_args``: ``--build-arg`` values for every
    Dockerfile.  Base images are named ``f1``, ``f2``, … (prefixed by
    ``base_prefix``, e.g. a registry path) in the order of the trie, as in
    the article, or by ``levels`` (a list of names, e.g. ``["os", "tools",
    "libs"]``, used in that order; bases beyond it are ``f<n>``).  ``split="level"`` (the default for Dockerfile apps) cuts the shared trunk at branch points and
    where it moves from one of the article's levels to another — the OS and
    its packages, other tools and files, language libraries (pip, npm) — so
    each base holds one level (``f1`` OS packages → ``f2`` tools → ``f3``
    libraries, each ``FROM`` the previous); ``split="branch"`` (the default
    when every app is given as an Image: their bases exist, and the branch
    points are the images they were built from) cuts at branch points only; ``split="step"`` makes one base per shared layer-making step (each
    team owning its layer, as the article does).  ``base_images``: images
    that apps given as Images may stand on; an app whose layers start with
    one of them (same chain ids) starts ``FROM <that image>`` (else from its
    first history step, flagged in the emitted Dockerfile).
    ``reorder=True`` overlays apps that run the same steps in different
    orders: steps more apps share move first (the order of the first app
    that runs them), each app's own steps follow in their order, but no step
    moves above the app's own COPY/ADD, above an install a RUN may need, or
    above the step writing files it deletes; the notes name every reordered
    app (check the shared steps do not need its earlier ones).  A reordered step's size is taken from an app that ran it in the
    planned position where there is one (``size_varies`` flags sizes that
    differ).

    ``savings`` assumes, *before*, the apps as they are: for images, the
    layers they really share (chain ids); for Dockerfiles, apps built
    independently (no shared build cache), sharing only their FROM image.
    *After*, every app stands on the proposed bases.  ``pulled_before_bytes``
    and ``pulled_after_bytes`` are the bytes a host that starts empty pulls
    for each app, apps pulled in the order given; ``pulled_with_bases_bytes``
    what a host that already holds the bases pulls; the host row's
    ``stored_*_bytes`` what one host holding every app stores.  Sizes are ``size_column`` of the layers (``size``:
    uncompressed, Docker's accounting; ``compressed_size``: registry blobs;
    ``compressed_size_estimate``: after :func:`layerlab.estimate_wire_sizes`).
    On the wire, a layer the plan makes from parts of the apps' layers (a unit
    split by package, steps joined with their cleanup) is sized by its tar
    bytes times its source layers' wire bytes per tar byte: an estimate.
    ``by_effect=True`` (the default) compares the install steps of
    Dockerfile apps by what they install, not by their text: split or
    merged, reordered or reworded installs of the same packages
    (apt-get/apt, apk, dnf/yum, pip, npm; read with a shell parser) are one
    *install unit*, written once, in a base when several apps need it, as one
    RUN that installs and cleans up in the same layer; units run most-shared
    first, OS packages before the pip/npm packages that need them; other
    steps keep their order after the units; an app's own ``COPY``/``ADD``
    and everything after it stay in the app; a step that writes files a later
    step deletes stays in the app (see ``layerlab.analysis.plan.byeffect``).
    A unit cut from an app step that installed other units' packages too is
    sized from that step's layer in ``images``, split by package (dpkg file
    lists, pip ``RECORD``s, npm package directories; an estimate, named in
    ``notes``).  Where ``images`` are given, steps are also compared by the
    files their layers hold (see ``layerlab.analysis.plan.samecontent``):
    other steps of several apps that write the same files (path, content,
    mode; caches and byte code left out), however worded or split, are one
    step, written as the first app wrote it; ``shared_content`` lists every
    pair of steps of two apps that write the same files and whether the plan
    runs them as one.  Installs kept in place (after a step that configures
    their manager, e.g. ``ENV NODE_PATH``) that install the same packages in
    several apps are written once, with the unit's cleanup.
    Apps given as Images keep their recorded steps.
    ``known``: images to recognise the proposed bases among (e.g. the rest of
    the fleet): a base built from apps given as Images whose layers are
    exactly those of a known image (chain ids, else the chain of blob
    digests) is that image — ``images.same_as`` names it and a note says so
    (``base_images`` are recognised too).

    Raises :class:`PlanError` for fewer than two apps and for Dockerfiles it
    cannot read faithfully.
    """
    items = _as_apps(apps, names)
    base_pool = [b for b in (base_images or []) if isinstance(b, Image)]
    if len(items) < 2:
        raise PlanError(f"plan_bases needs at least two applications, got {len(items)}")
    img_map = _image_map(images, items)
    read = _Apps(size_column)
    for app, src in items:
        if isinstance(src, Image):
            read.add_image(app, src, base_pool)
        else:
            read.add_dockerfile(app, src, img_map.get(app), build_args)
    order = [a for a, _ in items]
    notes = read.notes
    findings = None
    if by_effect:
        more, findings = regroup_chains(read.chains, order, list(read.parsed), img_map)
        notes.extend(more)
    if reorder:
        notes.extend(reorder_chains(read.chains, order))
    trie = Trie(read.chains, order)
    node_of = {id(st): nid for app in order for st, nid in zip(read.chains[app], trie.paths[app])}
    shared = findings.frame(node_of) if findings is not None else empty_shared_content()
    if levels is not None and (isinstance(levels, str) or len(set(levels)) != len(levels)
                               or set(levels) & {a for a, _ in items}):
        raise PlanError(f"levels={levels!r}: give a list of distinct base names, none of them an app's name")
    if split is None:
        split = "branch" if all(isinstance(src, Image) for _a, src in items) else "level"
    cut = Cut(trie, split=split, base_prefix=base_prefix, levels=levels)
    return _result(cut, order, read, notes, shared, [*(known or []), *base_pool], size_column)


def _result(cut: Cut, order: list[str], read: _Apps, notes: list[str], shared, known: Sequence[Image],
            size_column: str) -> BasePlan:
    """The plan's frames, Dockerfiles and closing notes from the cut trie."""
    files = dockerfiles(cut, order, read.parsed, read.deferred, notes)
    paths = image_paths(cut, order)
    savings = savings_frame(cut, order, paths, read.before)
    images_df = images_frame(cut, order, paths)
    same = _same_as(cut, paths, read.identities, known)
    images_df["same_as"] = pd.array([same.get(n) for n in images_df["image"]], dtype="string")
    notes.extend(f"{b} holds exactly the layers of {ref}: use that image as {b}" for b, ref in same.items())
    notes.extend(_already_shared(savings, cut, paths))
    notes.append(f"sizes: layer {size_column!r}; a step's size is unknown where no image "
                 "tells it (never guessed)")
    return BasePlan(trie_frame(cut), images_df, layers_frame(cut, paths), files, savings,
                    notes, order, shared_content=shared)
