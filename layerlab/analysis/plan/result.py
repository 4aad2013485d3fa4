"""The planner's answer: the Dockerfiles of the proposed images, the frames
(trie, images, layers) and the savings, held by :class:`BasePlan`."""
from __future__ import annotations

import html
from typing import Iterable, Mapping, Sequence

import pandas as pd

from .._result import Result
from .dockerfile import ParsedDockerfile
from .steps import PlanError, Step
from .trie import Cut, Segment, Trie


class BasePlan(Result):
    """The planner's answer: the trie, the proposed images and Dockerfiles, the savings.

    ``trie``        one row per trie node: node, parent, depth, instruction, step, apps,
                    n_apps, makes_layer, size, size_varies, size_estimated (an install unit's
                    share of an app's layer split by package, not a measured layer), image
                    (the proposed image that holds it)
    ``images``      one row per proposed image: image, kind (base/app), parent, apps, steps,
                    layers, own_bytes (its new layers), size (with everything below), same_as
                    (a known image with exactly the base's layers: ``known=``, ``base_images=``)
    ``layers``      one row per (proposed image, layer): image, position, node, size
                    (node ids are chain identities: the same node = the same layer on a host)
    ``dockerfiles`` dict image -> Dockerfile text (bases first)
    ``savings``     one row per app (``scope`` "app") and one ``host`` row: scope, image,
                    layers_before, layers_after, size_before_bytes, size_after_bytes
                    (the app image's size), pulled_before_bytes, pulled_after_bytes,
                    pulled_with_bases_bytes, stored_before_bytes, stored_after_bytes
                    (host row only), saved_bytes (pulled_before_bytes - pulled_after_bytes);
                    see :func:`plan_bases`
    ``shared_content`` one row per pair of steps of two apps (Dockerfile apps with images)
                    whose layers hold files with the same path and content (64 KiB or more):
                    image, step, line, other_image, other_step, other_line, shared_files,
                    shared_bytes, step_bytes, other_step_bytes (each step's content, caches
                    and byte code left out), same_content (every file the same), merged (the
                    plan runs them as one step); see ``layerlab.analysis.plan.samecontent``
    ``notes``       what the planner assumed or could not read

    ``to_frame()`` is ``savings``; ``frames()`` gives the five frames by name.
    """

    _frame_names = ("savings", "images", "trie", "layers", "shared_content")

    def __init__(self, trie, images, layers, dockerfiles, savings, notes, apps, shared_content=None):
        self.trie: pd.DataFrame = trie
        self.images: pd.DataFrame = images
        self.layers: pd.DataFrame = layers
        self.dockerfiles: dict[str, str] = dockerfiles
        self.savings: pd.DataFrame = savings
        self.notes: list[str] = notes
        self.apps: list[str] = apps
        if shared_content is None:
            from .samecontent import empty_shared_content

            shared_content = empty_shared_content()
        self.shared_content: pd.DataFrame = shared_content

    @property
    def bases(self) -> list[str]:
        """The proposed base images, in trie order."""
        return [i for i in self.images.loc[self.images["kind"] == "base", "image"]]

    def _summary(self) -> str:
        from ...frames import human_bytes

        host = self.savings[self.savings["scope"] == "host"]
        tail = ""
        if len(host):
            b, a = host["stored_before_bytes"].iloc[0], host["stored_after_bytes"].iloc[0]
            tail = f"; one host stores {human_bytes(None if pd.isna(b) else int(b))} -> {human_bytes(None if pd.isna(a) else int(a))}"
        return f"{len(self.apps)} apps, {len(self.bases)} base images ({', '.join(self.bases) or 'none'}){tail}"

    def _repr_html_(self) -> str:
        e = html.escape
        parts = [f"<div class='layerlab-result'><strong>layerlab.BasePlan</strong> {e(self._summary())}"]
        for name, text in self.dockerfiles.items():
            parts.append(f"<details><summary><code>{e(name)}</code></summary><pre>{e(text)}</pre></details>")
        from ...frames import frame_html

        parts.append(frame_html(self.savings))
        if self.notes:
            parts.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in self.notes) + "</ul>")
        parts.append("</div>")
        return "".join(parts)


# -- Dockerfiles -------------------------------------------------------------
def _arg_lines(trie: Trie, nids: Iterable[int]) -> list[str]:
    return [trie.nodes[n].step.raw for n in nids if trie.nodes[n].step and trie.nodes[n].step.instruction == "ARG"]


def _stage_lines(trie: Trie, seg: Segment, body: list[int], parsed_by_app: Mapping[str, ParsedDockerfile]) -> list[str]:
    """The build stages the image's ``COPY --from`` steps need (with the global ARGs)."""
    needed: list[str] = []
    for nid in body:
        st = trie.nodes[nid].step
        if st and st.needs_stages:
            needed.extend(x for x in st.needs_stages if x not in needed)
    parsed = parsed_by_app.get(seg.apps[0])
    if not needed or parsed is None:
        return []
    lines = [parsed.global_args] if parsed.global_args else []
    lines.extend(parsed.stage_text.get(sname, f"# stage {sname} (text not available)") for sname in needed)
    lines.append("")
    return lines


def _step_line(st: Step) -> str:
    if st.instruction == "IMPORT":
        return f"# {st.text} (a base layer made by docker import)"
    if st.instruction == "UNKNOWN":
        return f"# not a Dockerfile instruction in the history: {st.text}"
    return st.raw


def _segment_dockerfile(cut: Cut, idx: int, parsed_by_app, deferred) -> str:
    trie, seg = cut.trie, cut.segments[idx]
    body = seg.prefix + seg.nodes
    lines = _stage_lines(trie, seg, body, parsed_by_app)
    first = trie.nodes[body[0]].step if body else None
    if seg.image_parent is not None:
        lines.append(f"FROM {cut.segments[seg.image_parent].name}")
        lines.extend(_arg_lines(trie, cut.ancestors(seg.image_parent)))
    elif first is None or first.instruction != "FROM":
        lines.append("FROM scratch")
        lines.append(
            "# the steps below start from an image's base layer, not a Dockerfile FROM: "
            "replace FROM scratch and the IMPORT/ADD line with the base image that provides it"
        )
    lines.extend(_step_line(trie.nodes[nid].step) for nid in body if trie.nodes[nid].step is not None)
    if seg.kind == "app":
        lines.extend(s.raw for s in deferred.get(seg.apps[0], []))
    return "\n".join(lines) + "\n"


def dockerfiles(
    cut: Cut,
    apps: Sequence[str],
    parsed_by_app: Mapping[str, ParsedDockerfile],
    deferred: Mapping[str, list[Step]],
    notes: list[str],
) -> dict[str, str]:
    """Image name -> Dockerfile text: bases first (trie order), then apps; an
    app whose whole path is shared gets ``FROM <that base>`` plus its metadata
    (and a note)."""
    out: dict[str, str] = {}
    for idx in cut.images():
        out[cut.segments[idx].name] = _segment_dockerfile(cut, idx, parsed_by_app, deferred)
    for app in apps:
        if app in out:
            continue
        seg_idx = cut.image_segment(app)
        if seg_idx is None:
            raise PlanError(f"{app}: no build steps at all")
        name = cut.segments[seg_idx].name
        body = [f"FROM {name}"] + _arg_lines(cut.trie, cut.ancestors(seg_idx))
        body.extend(s.raw for s in deferred.get(app, []))
        out[app] = "\n".join(body) + "\n"
        notes.append(f"{app}: every step is shared with another app; its image is {name} plus its metadata")
    return out


# -- frames -----------------------------------------------------------------
def _total(vals: Iterable[int | None]) -> int | None:
    vals = list(vals)
    return None if any(v is None for v in vals) else int(sum(vals))  # type: ignore[arg-type]


def trie_frame(cut: Cut) -> pd.DataFrame:
    """One row per trie node (see :class:`BasePlan`)."""
    trie = cut.trie
    rows = []
    depth = {0: 0}
    for n in trie.nodes:
        st = n.step
        if n.parent is not None:
            depth[n.node] = depth[n.parent] + 1
        sizes_known = [v for v in n.sizes if v is not None]
        rows.append(
            {
                "node": n.node,
                "parent": n.parent,
                "depth": depth[n.node],
                "instruction": "ROOT" if st is None else st.instruction,
                "step": "" if st is None else st.text,
                "apps": tuple(n.apps),
                "n_apps": len(n.apps),
                "makes_layer": False if st is None else trie.makes_layer(n.node),
                "size": None if st is None else trie.size(n.node),
                "size_varies": len(set(sizes_known)) > 1,
                "size_estimated": False if st is None else trie.size_estimated(n.node),
                "image": None if st is None else cut.image_of_node.get(n.node),
            }
        )
    return pd.DataFrame(rows).astype(
        {
            "node": "Int64", "parent": "Int64", "depth": "Int64", "instruction": "string", "step": "string",
            "n_apps": "Int64", "makes_layer": "boolean", "size": "Int64", "size_varies": "boolean",
            "size_estimated": "boolean", "image": "string",
        }
    )


def image_paths(cut: Cut, apps: Sequence[str]) -> dict[str, list[int]]:
    """Each proposed image (and app) -> its layer-making nodes, base first."""
    out: dict[str, list[int]] = {}
    for idx in cut.images():
        out[cut.segments[idx].name] = cut.trie.layer_nodes(cut.ancestors(idx))
    for app in apps:
        if app not in out:
            out[app] = cut.trie.layer_nodes(cut.trie.paths[app])
    return out


def layers_frame(cut: Cut, img_paths: Mapping[str, list[int]]) -> pd.DataFrame:
    """One row per (proposed image, layer)."""
    rows = [
        {"image": name, "position": pos, "node": nid, "size": cut.trie.size(nid)}
        for name, lnodes in img_paths.items()
        for pos, nid in enumerate(lnodes)
    ]
    return pd.DataFrame(rows, columns=["image", "position", "node", "size"]).astype(
        {"image": "string", "position": "Int64", "node": "Int64", "size": "Int64"}
    )


def images_frame(cut: Cut, apps: Sequence[str], img_paths: Mapping[str, list[int]]) -> pd.DataFrame:
    """One row per proposed image."""
    trie = cut.trie
    rows = []
    for idx in cut.images():
        seg = cut.segments[idx]
        own = trie.layer_nodes(seg.prefix + seg.nodes)
        rows.append(
            {
                "image": seg.name,
                "kind": seg.kind,
                "parent": cut.segments[seg.image_parent].name if seg.image_parent is not None else None,
                "apps": tuple(seg.apps),
                "steps": len(seg.prefix + seg.nodes),
                "layers": len(img_paths[seg.name]),
                "own_bytes": _total(trie.size(n) for n in own),
                "size": _total(trie.size(n) for n in img_paths[seg.name]),
            }
        )
    for app in apps:
        if app not in {r["image"] for r in rows}:
            rows.append(
                {
                    "image": app, "kind": "app", "parent": None, "apps": (app,), "steps": 0,
                    "layers": len(img_paths[app]), "own_bytes": 0,
                    "size": _total(trie.size(n) for n in img_paths[app]),
                }
            )
    return pd.DataFrame(rows).astype(
        {"image": "string", "kind": "string", "parent": "string", "steps": "Int64", "layers": "Int64",
         "own_bytes": "Int64", "size": "Int64"}
    )


def savings_frame(
    cut: Cut,
    apps: Sequence[str],
    img_paths: Mapping[str, list[int]],
    before_layers: Mapping[str, list[tuple[str, int | None]]],
) -> pd.DataFrame:
    """Per app and for one host: layers and bytes before and after the plan."""
    trie = cut.trie
    base_nodes: set[int] = set()
    for idx in cut.images():
        if cut.segments[idx].kind == "base":
            base_nodes.update(img_paths[cut.segments[idx].name])
    host_before: dict[str, int | None] = {}
    host_after: dict[int, int | None] = {}
    rows = []
    for app in apps:
        before = before_layers[app]
        pulled_b = [sz for ident, sz in before if ident not in host_before]
        for ident, sz in before:
            host_before.setdefault(ident, sz)
        after_nodes = img_paths[app]
        pulled_a = [trie.size(n) for n in after_nodes if n not in host_after]
        for n in after_nodes:
            host_after.setdefault(n, trie.size(n))
        rows.append(
            {
                "scope": "app",
                "image": app,
                "layers_before": len(before),
                "layers_after": len(after_nodes),
                "size_before_bytes": _total(sz for _, sz in before),
                "size_after_bytes": _total(trie.size(n) for n in after_nodes),
                "pulled_before_bytes": _total(pulled_b),
                "pulled_after_bytes": _total(pulled_a),
                "pulled_with_bases_bytes": _total(trie.size(n) for n in after_nodes if n not in base_nodes),
                "stored_before_bytes": None,
                "stored_after_bytes": None,
            }
        )
    stored_b = _total(host_before.values())
    stored_a = _total(host_after.values())
    rows.append(
        {
            "scope": "host",
            "image": "(one host, all apps)",
            "layers_before": len(host_before),
            "layers_after": len(host_after),
            "size_before_bytes": None,
            "size_after_bytes": None,
            "pulled_before_bytes": stored_b,
            "pulled_after_bytes": stored_a,
            "pulled_with_bases_bytes": None,
            "stored_before_bytes": stored_b,
            "stored_after_bytes": stored_a,
        }
    )
    savings = pd.DataFrame(rows)
    int_cols = [c for c in savings.columns if c not in {"scope", "image"}]
    savings = savings.astype({"scope": "string", "image": "string", **{c: "Int64" for c in int_cols}})
    savings["saved_bytes"] = (savings["pulled_before_bytes"] - savings["pulled_after_bytes"]).astype("Int64")
    return savings
