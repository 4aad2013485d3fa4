"""The prediction: :func:`what_if_merge` and its result, :class:`MergePrediction`."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import pandas as pd

from ...errors import AnalysisError, LayerlabError
from ...frames import typed_frame
from ...model import Fleet, Image
from .._result import Result
from .groups import parse_groups
from .table import Stacked, file_table

GROUP_COLUMNS: dict[str, str] = {
    "group": "Int64", "first": "Int64", "last": "Int64", "layers_merged": "Int64", "commands": "string",
    "size_before_bytes": "Int64", "size_after_bytes": "Int64", "saved_bytes": "Int64", "vanished_entries": "Int64",
    "compressed_before_bytes": "Int64", "compressed_after_bytes": "Int64",
    "recompressed_before_bytes": "Int64", "compressed_method": "string", "status": "string",
}
LAYER_COLUMNS: dict[str, str] = {
    "position": "Int64", "from_positions": "object", "created_by": "string", "size_bytes": "Int64",
    "compressed_bytes": "Int64", "chain_changed": "boolean", "shared_before": "boolean",
}
SHARING_COLUMNS: dict[str, str] = {
    "image": "string", "other_image": "string", "shared_layers_before": "Int64", "shared_before_bytes": "Int64",
    "shared_layers_after": "Int64", "shared_after_bytes": "Int64",
}
REBUILD_COLUMNS: dict[str, str] = {
    "position": "Int64", "created_by": "string", "layers_rebuilt_before": "Int64", "layers_rebuilt_after": "Int64",
    "rebuilt_before_bytes": "Int64", "rebuilt_after_bytes": "Int64", "pushed_before_bytes": "Int64",
    "pushed_after_bytes": "Int64",
}
SUMMARY_COLUMNS: dict[str, str] = {"metric": "string", "before": "Int64", "after": "Int64"}


@dataclass(repr=False)
class MergePrediction(Result):
    """What merging the given step groups would do (frames; see :mod:`layerlab.analysis.merge`).

    ``summary`` (the main frame: ``to_frame()``), ``groups``, ``layers``,
    ``sharing``, ``rebuild``; ``notes``; ``metric(name, which)`` reads one
    summary cell.
    """

    image: str
    groups_list: list[list[int]]
    summary: pd.DataFrame
    groups: pd.DataFrame
    layers: pd.DataFrame
    sharing: pd.DataFrame
    rebuild: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    _frame_names = ("summary", "groups", "layers", "sharing", "rebuild")

    def metric(self, name: str, which: str = "after"):
        """The ``before`` / ``after`` / ``change`` value of summary metric ``name`` (None when unknown)."""
        row = self.summary[self.summary["metric"] == name]
        if not len(row):
            raise KeyError(name)
        v = row[which].iloc[0]
        return None if pd.isna(v) else int(v)

    def _summary(self) -> str:
        from ...frames import human_bytes

        s = {m: (b, a) for m, b, a in self.summary[["metric", "before", "after"]].itertuples(index=False)}

        def f(m, fmt=human_bytes):
            b, a = s.get(m, (None, None))
            b = None if pd.isna(b) else int(b)
            a = None if pd.isna(a) else int(a)
            return f"{fmt(b)} -> {fmt(a)}"

        groups = ", ".join(f"{g[0]}-{g[-1]}" for g in self.groups_list)
        lost = self.metric("sharing_lost_bytes") if "sharing_lost_bytes" in s else None
        return (f"{self.image!r} merge {groups}: layers {f('layers', str)}, size {f('size_bytes')}, "
                f"sharing lost {human_bytes(lost)}")

    def _repr_html_(self) -> str:
        """The summary (as every result shows its main frame), then the groups."""
        head = super()._repr_html_()
        from ...frames import frame_html

        groups = frame_html(self.groups)
        return head[: -len("</div>")] + groups + "</div>"


def _sum(vals) -> int | None:
    vals = list(vals)
    return None if any(v is None or (isinstance(v, float) and v != v) for v in vals) else int(sum(vals))


def _known(vals):
    return (None if pd.isna(x) else int(x) for x in vals)


def _fleet_images(img: Image, fleet) -> list[Image]:
    if fleet is None:
        return []
    if isinstance(fleet, Image):
        fleet = [fleet]
    others = [f for f in fleet if isinstance(f, Image) and f is not img and f.reference != img.reference]
    if not all(isinstance(f, Image) for f in fleet):
        raise AnalysisError("fleet= must be a Fleet or a list of Image objects")
    return others


@dataclass
class _Plan:
    """What the merged tars must hold (for :func:`layerlab.contents.recompress.write_merged_layers`)."""

    keep: dict[int, set[str]] = field(default_factory=dict)
    markers: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    materialise: dict[tuple[int, str], list[tuple[int, str]]] = field(default_factory=dict)


def _group_rows(img: Image, groups, st: Stacked | None, why, comp, notes) -> tuple[list[dict], _Plan]:
    """One row per group (exact sizes from the file table), and the plan of the merged tars."""
    sizes = [layer.size for layer in img.layer_list]
    step_of = {s.layer_position: s for s in img.history_list if s.layer_position is not None}
    rows, plan = [], _Plan()
    for gi, g in enumerate(groups):
        before = _sum(sizes[p] for p in g)
        row: dict[str, Any] = {
            "group": gi, "first": g[0], "last": g[-1], "layers_merged": len(g),
            "commands": " && ".join(
                (step_of[p].created_by or "") if p in step_of else f"(layer {p}: no history step)" for p in g
            ),
            "size_before_bytes": before, "size_after_bytes": None, "saved_bytes": None, "vanished_entries": None,
            "compressed_before_bytes": _sum(comp[p] for p in g), "compressed_after_bytes": None,
            "recompressed_before_bytes": None, "compressed_method": None, "status": "exact",
        }
        rows.append(row)
        if st is None:
            row["status"] = f"unpredictable: {why}"
            continue
        ml = st.merged(g)
        m = st.m
        size = st.merged_size(ml)
        row.update(size_after_bytes=size, saved_bytes=None if before is None else before - size,
                   vanished_entries=ml.vanished_entries)
        for p in g:  # cross-check: the file table must account for each layer's known size
            t_size = st.layer_size(p)
            if sizes[p] is not None and t_size != sizes[p]:
                notes.append(
                    f"layer {p}: its file table sums to {t_size} bytes but the source says {sizes[p]}; "
                    "the merged size follows the file table"
                )
        for p in g:
            plan.keep[p] = set()
        for r in ml.keep:
            plan.keep[m.positions[r]].add(m.paths[r])
        for r, lr in ml.materialised.items():
            plan.materialise.setdefault((m.positions[lr], m.paths[lr]), []).append((m.positions[r], m.paths[r]))
        if ml.markers:
            plan.markers[gi] = [(kind, m.paths[r]) for kind, r in ml.markers]
        if ml.materialised:
            notes.append(f"group {g[0]}-{g[-1]}: {len(ml.materialised)} hardlink(s) lose their target inside the "
                         "group and become files")
    return rows, plan


def _measure(img: Image, groups, rows: list[dict], plan: _Plan, output_dir, progress: bool, notes) -> None:
    """Fill the compressed columns from merged tars actually written and compressed."""
    from ...contents.recompress import write_merged_layers

    try:
        measured = write_merged_layers(img.blobs, groups, plan.keep, plan.markers, plan.materialise,
                                       output_dir=output_dir, label=img.reference, progress=progress)
    except LayerlabError as e:
        measured = {}
        notes.append(f"compressed size not measured: {e}")
    for gi, mb in measured.items():
        r = rows[gi]
        r["compressed_after_bytes"] = mb.compressed_bytes
        r["recompressed_before_bytes"] = mb.recompressed_before_bytes
        real = r["compressed_before_bytes"]
        method = mb.method
        if mb.compression.source not in ("gzip", "zstd"):
            # the source stores plain tars: its blob lengths are not compressed sizes
            r["compressed_before_bytes"] = mb.recompressed_before_bytes
            method += "; compressed_before_bytes: the original layers compressed the same way"
        elif real:
            method += (f"; the original layers recompressed the same way: {mb.recompressed_before_bytes} bytes "
                       f"vs their real blobs {real}")
        r["compressed_method"] = method


def _layers_after(img: Image, groups, rows: list[dict], comp, others: list[Image]) -> list[dict]:
    """The predicted layer list: merged groups take the place of their first layer."""
    layers = img.layer_list
    in_group = {p: gi for gi, g in enumerate(groups) for p in g}
    step_of = {s.layer_position: s for s in img.history_list if s.layer_position is not None}
    shared = {layer.chain_id for o in others for layer in o.layer_list if layer.chain_id}
    out = []
    for p in range(len(layers)):
        gi = in_group.get(p)
        if gi is not None and p != groups[gi][0]:
            continue
        srcs = tuple(groups[gi]) if gi is not None else (p,)
        out.append({
            "position": len(out),
            "from_positions": srcs,
            "created_by": rows[gi]["commands"] if gi is not None else (
                step_of[p].created_by if p in step_of else None),
            "size_bytes": rows[gi]["size_after_bytes"] if gi is not None else layers[p].size,
            "compressed_bytes": rows[gi]["compressed_after_bytes"] if gi is not None else comp[p],
            "chain_changed": p >= groups[0][0],
            "shared_before": any(layers[q].chain_id in shared for q in srcs if layers[q].chain_id),
        })
    return out


def _sharing(img: Image, others: list[Image], first_changed: int) -> tuple[pd.DataFrame, int | None]:
    """Per other image: bytes shared before and after; and the bytes no longer shared."""
    rows, lost_chains = [], {}
    for o in others:
        ochains = {layer.chain_id for layer in o.layer_list if layer.chain_id}
        before_l = [layer for layer in img.layer_list if layer.chain_id in ochains]
        after_l = [layer for layer in before_l if layer.position < first_changed]
        for layer in before_l:
            if layer.position >= first_changed:
                lost_chains[layer.chain_id] = layer.size
        rows.append({
            "image": img.reference, "other_image": o.reference,
            "shared_layers_before": len(before_l), "shared_before_bytes": _sum(x.size for x in before_l),
            "shared_layers_after": len(after_l), "shared_after_bytes": _sum(x.size for x in after_l),
        })
    sharing = typed_frame(rows, SHARING_COLUMNS)
    sharing["lost_bytes"] = (sharing["shared_before_bytes"] - sharing["shared_after_bytes"]).astype("Int64")
    return sharing, (_sum(lost_chains.values()) if others else 0)


def _rebuild(img: Image, after_rows: list[dict], comp) -> pd.DataFrame:
    """Per step: what changing it rebuilds (and pushes), before and after."""
    layers = img.layer_list
    n = len(layers)
    step_of = {s.layer_position: s for s in img.history_list if s.layer_position is not None}
    sizes = [layer.size for layer in layers]
    after_sizes = [r["size_bytes"] for r in after_rows]
    after_comp = [r["compressed_bytes"] for r in after_rows]
    pos_after = {q: r["position"] for r in after_rows for q in r["from_positions"]}

    def tail(vals, k):
        return _sum(_known(vals[k:]))

    return typed_frame([
        {
            "position": p,
            "created_by": step_of[p].created_by if p in step_of else None,
            "layers_rebuilt_before": n - p,
            "layers_rebuilt_after": len(after_rows) - pos_after[p],
            "rebuilt_before_bytes": tail(sizes, p),
            "rebuilt_after_bytes": tail(after_sizes, pos_after[p]),
            "pushed_before_bytes": tail(comp, p),
            "pushed_after_bytes": tail(after_comp, pos_after[p]),
        }
        for p in range(n)
    ], REBUILD_COLUMNS)


def _summary(img: Image, after_rows: list[dict], comp, others: list[Image], sharing_lost) -> pd.DataFrame:
    layers = img.layer_list
    fleet_before = fleet_after = None
    if others:
        chains_b: dict[str, int | None] = {}
        for o in others:
            for layer in o.layer_list:
                chains_b.setdefault(layer.chain_id or f"{o.reference}:{layer.position}", layer.size)
        chains_a = dict(chains_b)
        for layer in layers:
            chains_b.setdefault(layer.chain_id or f"{img.reference}:{layer.position}", layer.size)
        for r in after_rows:
            key = layers[r["from_positions"][0]].chain_id if not r["chain_changed"] else f"new:{r['position']}"
            size = r["size_bytes"]
            chains_a.setdefault(key or f"new:{r['position']}", None if pd.isna(size) else int(size))
        fleet_before, fleet_after = _sum(chains_b.values()), _sum(chains_a.values())
    summary = typed_frame([
        {"metric": "layers", "before": len(layers), "after": len(after_rows)},
        {"metric": "size_bytes", "before": _sum(layer.size for layer in layers),
         "after": _sum(_known(r["size_bytes"] for r in after_rows))},
        {"metric": "compressed_bytes", "before": _sum(comp),
         "after": _sum(_known(r["compressed_bytes"] for r in after_rows))},
        {"metric": "sharing_lost_bytes", "before": 0, "after": sharing_lost},
        {"metric": "fleet_stored_bytes", "before": fleet_before, "after": fleet_after},
    ], SUMMARY_COLUMNS)
    summary["change"] = (summary["after"] - summary["before"]).astype("Int64")
    return summary


def what_if_merge(
    img: Image,
    steps,
    *,
    fleet: Fleet | Sequence[Image] | None = None,
    files: pd.DataFrame | None = None,
    compressed: bool = True,
    output_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> MergePrediction:
    """Predict merging groups of consecutive layers of ``img`` into one layer each.

    ``steps``: layer positions, ``(first, last)``, a ``range``, a list of
    consecutive positions, or a list of such groups.  ``fleet``: the images
    ``img`` sits among (for sharing lost); ``files``: ``img``'s file table if
    you already have it; ``compressed=False`` skips writing and compressing
    the merged tars; ``output_dir`` keeps the merged compressed layers there
    (``merged-<first>-<last>.tar.gz``); ``progress`` shows progress bars.
    See :mod:`layerlab.analysis.merge` for how each number is obtained.
    """
    if not isinstance(img, Image):
        raise AnalysisError(f"what_if_merge needs a layerlab Image, got {type(img).__name__}")
    groups = parse_groups(steps, len(img.layer_list), label=img.reference)
    table, why = file_table(img, files, progress)
    return _predict(img, groups, Stacked(table) if table is not None else None, why, fleet=fleet,
                    compressed=compressed, output_dir=output_dir, progress=progress)


def _predict(img: Image, groups, st: Stacked | None, why, *, fleet, compressed: bool, output_dir, progress: bool
             ) -> MergePrediction:
    from ...contents.compression import kind_from_media_type

    notes: list[str] = []
    # blob lengths are compressed sizes only when the blobs are compressed (not for docker save's plain tars)
    comp = [layer.compressed_size if kind_from_media_type(layer.media_type) in ("gzip", "zstd") else None
            for layer in img.layer_list]
    rows, plan = _group_rows(img, groups, st, why, comp, notes)
    if compressed and st is not None and img.has_contents:
        _measure(img, groups, rows, plan, output_dir, progress, notes)
    elif compressed:
        for r in rows:
            r["compressed_method"] = "not measured: " + (why or "no layer blobs")
    others = _fleet_images(img, fleet)
    after_rows = _layers_after(img, groups, rows, comp, others)
    sharing, sharing_lost = _sharing(img, others, groups[0][0])
    if fleet is None:
        notes.append("no fleet= given: sharing lost is 0 by assumption (no other image shares this one's layers)")
    summary = _summary(img, after_rows, comp, others, sharing_lost)
    if st is None:
        notes.append(f"exact sizes need layer contents: {why}; upper bound of each merged layer = size_before_bytes")
    return MergePrediction(img.reference, groups, summary, typed_frame(rows, GROUP_COLUMNS),
                           typed_frame(after_rows, LAYER_COLUMNS), sharing, _rebuild(img, after_rows, comp), notes)


__all__ = ["MergePrediction", "what_if_merge"]
