"""The detail sections of the summary report: images, sharing, waste and
efficiency, merges, the base-image planner, pulls.  Each function takes the
:class:`~layerlab.reporting.cells.Doc` and what :mod:`layerlab.reporting.findings`
computed, and returns the section's HTML; its sentences are written from the
numbers (f-strings over the results), never for a particular fleet."""
from __future__ import annotations

from typing import Any

import pandas as pd

from .cells import Doc, missing
from .findings import ImageContents, Totals

TOP = 15


def _labels(series: pd.Series, doc: Doc, width: int = 70) -> pd.Series:
    """Step labels of commands, masked before they are shortened (a cut secret is not recognised)."""
    from ..analysis.cumulative import step_label

    return step_label(doc.masked(series), width=width).fillna("(no history step)")


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _names(images: list[str], most: int = 4) -> str:
    more = len(images) - most
    return ", ".join(images[:most]) + (f" and {more} more" if more > 0 else "")


# -- images -------------------------------------------------------------------
def images_section(doc: Doc, fleet) -> str:
    im = fleet.images()
    cols = [("image", "image", "code"), ("platform", "platform", "text"), ("layer_count", "layers", "count"),
            ("size", "size", "size"), ("compressed_size", "on the wire", "size"), ("source", "source", "text")]
    n_unknown = int(im["size"].isna().sum())
    lead = f"<p>{plural(len(im), 'image')}, with {plural(int(im['layer_count'].sum()), 'layer')} in all."
    if n_unknown:
        lead += f" {plural(n_unknown, 'image')} record no uncompressed size for every layer."
    return lead + "</p>" + doc.table(im, cols, limit=100, what="images")


# -- sharing --------------------------------------------------------------------
def _stored_cell(doc: Doc, row: pd.DataFrame) -> str:
    if not len(row) or missing(row["stored_bytes"].iloc[0]):
        return doc.unknown()
    v = int(row["stored_bytes"].iloc[0])
    if bool(row["complete"].iloc[0]):
        return doc.size(v)
    return "at least " + doc.size(v) + doc.mark()


def sharing_section(doc: Doc, fleet, totals: Totals) -> str:
    from ..analysis.overlap import layer_usage, overlap
    from ..charts import layer_usage_bars, overlap_heatmap

    t = totals.frame
    body = []
    if totals.saved_bytes == 0:
        body.append(f"<p>The images share no layer (by <code>{doc.text(totals.key)}</code>): one host stores "
                    f"{doc.size(totals.stored_bytes)}, every byte of each image.</p>")
    elif totals.total_bytes is not None and totals.stored_bytes is not None and totals.total_bytes:
        pct = totals.saved_bytes / totals.total_bytes
        body.append(f"<p>Counted image by image, the fleet holds {doc.size(totals.total_bytes)}; stored with each "
                    f"distinct layer once (by <code>{doc.text(totals.key)}</code>) it takes "
                    f"{doc.size(totals.stored_bytes)}: sharing saves {doc.size(totals.saved_bytes)} "
                    f"({pct:.0%}).</p>")
    else:
        body.append(f"<p>The fleet's total {doc.text(totals.size)} is unknown: "
                    f"{plural(totals.unknown_size_layers, 'distinct layer')} have no recorded size.</p>")
    rows = []
    for acc in dict.fromkeys(t["accounting"]):
        sub = t[t["accounting"] == acc]
        rows.append("<tr><td class='txt'>{}</td><td class='txt'>{}</td><td class='num'>{}</td>"
                    "<td class='num'>{}</td><td class='num'>{}</td></tr>".format(
                        doc.code(acc), doc.text(sub["description"].iloc[0]),
                        doc.count(sub["units"].iloc[0]),
                        _stored_cell(doc, sub[sub["measure"] == "size"]),
                        _stored_cell(doc, sub[sub["measure"] == "compressed_size"])))
    body.append("<div class='layerlab-table-wrap'><table class='layerlab-table'><thead><tr><th>stored once</th>"
                "<th>meaning</th><th class='num'>things stored</th><th class='num'>uncompressed</th>"
                "<th class='num'>on the wire</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>")
    layers = fleet.layers()
    usage = layer_usage(layers, key=totals.key, size=totals.size)
    shared = usage[usage["shared"].fillna(False).astype(bool)]
    body.append(f"<h3>Shared layers</h3><p>{plural(len(usage), 'distinct layer')}, of which "
                f"{plural(len(shared), 'layer')} are used by more than one image.</p>")
    if len(shared):
        view = shared.assign(step=_labels(shared["created_by"], doc))
        body.append(doc.table(view, [("step", "step", "code"), ("images", "images", "count"),
                                     ("size", "size", "size"), ("saved_bytes", "saved by sharing", "size"),
                                     ("first_image", "e.g. in", "code")], limit=TOP, what="shared layers"))
    drawn = usage[usage["size"].notna()].head(20)  # layer_usage names the bytes "size" whatever size= counted
    if len(drawn) and "created_by" in drawn.columns:
        drawn = drawn.assign(created_by=doc.masked(drawn["created_by"]).fillna("(no history step)"))
        body.append(doc.chart(layer_usage_bars(drawn, size="size", title="The largest layers, coloured by "
                                               "how many images use them")))
    if 2 <= len(fleet) <= 40:
        ov = overlap(layers, key=totals.key, size=totals.size, symmetric=True, include_self=True)
        if len(ov) and ov["shared_bytes"].notna().any():
            body.append(doc.chart(overlap_heatmap(ov, title="Bytes each pair of images shares")))
    return "".join(body)


# -- waste and efficiency -------------------------------------------------------
def _bound_text(doc: Doc, entries: list[ImageContents], max_bytes: int | None) -> str:
    read = [e for e in entries if e.skipped is None]
    bound = "any size" if max_bytes is None else f"up to {doc.size(max_bytes)}"
    text = (f"<p>Layer contents were read for {plural(len(read), 'image')} of {len(entries):,} "
            f"(images with contents, {bound}).")
    skipped: dict[str, list[str]] = {}
    for e in entries:
        if e.skipped:
            skipped.setdefault(e.skipped, []).append(e.image)
    for why, names in skipped.items():
        text += f" Not read: {doc.text(_names(names, most=12))} — {doc.text(why)}."
    return text + "</p>"


def _errors(doc: Doc, entries: list[ImageContents], which: tuple[str, ...]) -> str:
    items = [f"<code>{doc.text(e.image)}</code> ({doc.text(k)}): {doc.text(msg)}"
             for e in entries for k, msg in e.errors.items() if k in which]
    if not items:
        return ""
    return "<div class='error'><strong>Some analyses failed</strong>" + doc.bullets(items) + "</div>"


def _dedupe(rows: list[dict], key: str) -> pd.DataFrame:
    """Rows of the same finding in several images (a shared layer) once, with the images joined."""
    out: dict[Any, dict] = {}
    for r in rows:
        k = r[key]
        if k in out:
            out[k]["images"].append(r["image"])
        else:
            out[k] = {**r, "images": [r["image"]]}
    frame = pd.DataFrame(list(out.values()))
    if len(frame):
        frame["image_list"] = [_names(v) for v in frame["images"]]
    return frame


def wastes(entries: list[ImageContents], doc: Doc) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(hidden waste by step pair, visible waste findings), each finding once, largest first."""
    hidden, visible = [], []
    for e in entries:
        if e.waste is not None and len(e.waste):
            hidden += e.waste.to_dict("records")
        if e.visible is not None and len(e.visible.findings):
            visible += e.visible.findings.to_dict("records")
    h, v = _dedupe(hidden, "message"), _dedupe(visible, "message")
    if len(h):
        h = h.sort_values("wasted_bytes", ascending=False, kind="stable").reset_index(drop=True)
        h["writer"] = _labels(h["created_by"], doc).to_numpy()
        h["hider"] = _labels(h["hidden_by_created_by"], doc).to_numpy()
    if len(v):
        v = v.sort_values("wasted_bytes", ascending=False, kind="stable").reset_index(drop=True)
        v["label"] = _labels(v["created_by"], doc).to_numpy()
    return h, v


def efficiency_frame(entries: list[ImageContents]) -> pd.DataFrame:
    rows = []
    for e in entries:
        eff = e.efficiency
        status = e.skipped or "; ".join(f"{k}: {m}" for k, m in e.errors.items()) or "read"
        rows.append({
            "image": e.image, "size": e.size,
            "score": eff.score if eff else None,
            "reclaimable_bytes": eff.reclaimable_bytes if eff else None,
            "above_base": eff.reclaimable_bytes_above_base if eff else None,
            "visible_bytes": e.visible.total_bytes if e.visible is not None else None,
            "status": status if status != "read" else "contents read",
        })
    return pd.DataFrame(rows, columns=["image", "size", "score", "reclaimable_bytes", "above_base", "visible_bytes",
                                       "status"]).astype({"size": "Int64", "reclaimable_bytes": "Int64", "above_base": "Int64",
                                      "visible_bytes": "Int64", "score": "Float64"})


def waste_section(doc: Doc, entries: list[ImageContents], max_bytes: int | None) -> str:
    from ..charts import grouped_bars

    body = [_bound_text(doc, entries, max_bytes), _errors(doc, entries, ("efficiency", "waste", "visible waste"))]
    eff = efficiency_frame([e for e in entries if e.skipped is None])
    if not len(eff):
        return "".join(body)
    body.append(doc.table(eff, [("image", "image", "code"), ("size", "size", "size"),
                                ("score", "dive efficiency", "score"),
                                ("reclaimable_bytes", "hidden waste", "size"),
                                ("above_base", "of it above the base", "size"),
                                ("visible_bytes", "visible caches and leftovers", "size"),
                                ("status", "contents", "text")], limit=60, what="images"))
    drawn = eff.dropna(subset=["reclaimable_bytes", "visible_bytes"])
    drawn = drawn[(drawn["reclaimable_bytes"] > 0) | (drawn["visible_bytes"] > 0)]
    if len(drawn):
        chart = grouped_bars(drawn.rename(columns={"reclaimable_bytes": "hidden waste",
                                                   "visible_bytes": "visible caches and leftovers"}).head(30),
                             "image", ["hidden waste", "visible caches and leftovers"],
                             title="Waste per image", x_title="wasted bytes")
        body.append(doc.chart(chart))
    h, v = wastes(entries, doc)
    body.append("<h3>Bytes stored but hidden by a later step</h3>")
    if len(h):
        body.append(f"<p>{plural(len(h), 'pair')} of steps where one step's files are hidden by a later one; "
                    f"the largest hides {doc.size(h['wasted_bytes'].iloc[0])}.</p>")
        body.append(doc.table(h, [("wasted_bytes", "wasted", "size"), ("files", "files", "count"),
                                  ("how", "how", "text"), ("writer", "written by", "code"),
                                  ("hider", "hidden by", "code"), ("image_list", "images", "text")],
                              limit=TOP, what="pairs"))
    else:
        body.append("<p>No step hides bytes an earlier step stored, in the images read.</p>")
    body.append("<h3>Caches and leftovers the final filesystem still shows</h3>")
    if len(v):
        body.append(doc.table(v, [("wasted_bytes", "wasted", "size"), ("files", "files", "count"),
                                  ("kind", "kind", "text"), ("confidence", "confidence", "text"),
                                  ("label", "written by", "code"), ("fix", "fix", "text"),
                                  ("image_list", "images", "text")], limit=TOP, what="findings"))
    else:
        body.append("<p>No package-manager cache, list or build leftover is visible, in the images read.</p>")
    return "".join(body)


# -- merges -------------------------------------------------------------------------
def chosen_merges(entries: list[ImageContents]) -> pd.DataFrame:
    """``suggest_merges``' chosen rows of every image, each merge once, most bytes saved first."""
    rows = []
    for e in entries:
        m = e.merges
        if m is None or not len(m):
            continue
        ch = m[m["chosen"].fillna(False).astype(bool) & m["saved_bytes"].notna()]
        for r in ch.to_dict("records"):
            r["image"] = e.image
            r["key"] = (r["first"], r["last"], r["saved_bytes"], r["dockerfile_before"])
            rows.append(r)
    f = _dedupe(rows, "key")
    if len(f):
        f = f.sort_values("saved_bytes", ascending=False, kind="stable").reset_index(drop=True)
        f["layers"] = [f"{a}–{b}" for a, b in zip(f["first"], f["last"])]
    return f


def merges_section(doc: Doc, entries: list[ImageContents]) -> str:
    body = [_errors(doc, entries, ("merges",))]
    f = chosen_merges(entries)
    if not any(e.skipped is None for e in entries):
        body.append("<p>No layer contents were read (see Waste and efficiency), so no merge could be sized.</p>")
        return "".join(body)
    if not len(f):
        body.append("<p>No merge of consecutive layers would save bytes in the images read.</p>")
        return "".join(body)
    total = int(f["saved_bytes"].sum())
    body.append(f"<p>{plural(len(f), 'merge')} of consecutive steps save bytes; together they save "
                f"{doc.size(total)} (each image's chosen merges share no layer, so they add up). The rewritten "
                "Dockerfile lines are under each row.</p>")
    body.append(doc.table(f, [("saved_bytes", "saves", "size"), ("layers", "layers", "text"),
                              ("kind", "why", "text"), ("reason", "what happens", "details"),
                              ("dockerfile_after", "Dockerfile after", "details"),
                              ("image_list", "images", "text")], limit=TOP, what="merges"))
    return "".join(body)


# -- planner ------------------------------------------------------------------------
def plan_section(doc: Doc, plan: Any, error: str | None, n_images: int) -> str:
    if plan is None:
        why = error or f"the planner needs at least two images; this fleet has {n_images}"
        return f"<p>No base plan: {doc.text(why)}.</p>"
    s = plan.savings
    host = s[s["scope"] == "host"]
    before = host["stored_before_bytes"].iloc[0] if len(host) else None
    after = host["stored_after_bytes"].iloc[0] if len(host) else None
    saved = None if missing(before) or missing(after) else int(before) - int(after)
    body = []
    if plan.bases and saved is None:
        body.append(f"<p>The planner proposes {plural(len(plan.bases), 'shared base')}, but what one host would "
                    f"store on them is unknown{doc.mark()}: some steps' sizes are not recorded (see the notes).</p>")
    elif not plan.bases or saved is None or saved <= 0:
        body.append(f"<p>The planner proposes no shared base that saves bytes for these "
                    f"{plural(len(plan.apps), 'image')}"
                    + ("" if saved is None else f" (one host would store {doc.size(after)} either way)")
                    + ". Its notes say why.</p>")
    else:
        body.append(f"<p>Rebuilding the {plural(len(plan.apps), 'image')} on {plural(len(plan.bases), 'shared base')}"
                    f" ({doc.text(', '.join(plan.bases))}) would take one host from {doc.size(before)} to "
                    f"{doc.size(after)}: {doc.size(saved)} less.</p>")
    apps = s[s["scope"] == "app"].sort_values("saved_bytes", ascending=False, kind="stable")
    body.append(doc.table(apps, [("image", "image", "code"), ("size_before_bytes", "size now", "size"),
                                 ("size_after_bytes", "size on the bases", "size"),
                                 ("pulled_before_bytes", "pulled now (in turn)", "size"),
                                 ("pulled_after_bytes", "pulled on the bases", "size"),
                                 ("saved_bytes", "saved", "size")], limit=40, what="images"))
    if plan.bases and (saved is None or saved > 0):
        files = pd.DataFrame({"image": list(plan.dockerfiles), "text": list(plan.dockerfiles.values())})
        body.append("<h3>Proposed Dockerfiles</h3>")
        body.append(doc.table(files, [("image", "image", "code"), ("text", "Dockerfile", "details")], limit=40,
                              what="Dockerfiles"))
    body.append(doc.notes(plan.notes))
    return "".join(body)


# -- pulls ------------------------------------------------------------------------
def pulls_section(doc: Doc, pulls: pd.DataFrame, totals: Totals) -> str:
    from ..charts import pull_bars

    body = [f"<p>Bytes a host downloads for each image: into an empty host, and after the images listed above it "
            f"(layers matched by <code>{doc.text(totals.key)}</code>). “On the wire” counts the compressed blobs; "
            "it is unknown where the source does not record a layer's blob size.</p>"]
    est = int(pulls["wire_estimated_layers"].fillna(0).sum())
    if est:
        body.append(f"<p>{plural(est, 'layer')} count a gzip estimate of their wire size "
                    "(ll.estimate_wire_sizes), not a stated one.</p>")
    cols = [("cold_bytes", "cold pull", "size"), ("after_previous_bytes", "after the ones above", "size"),
            ("wire_cold_bytes", "cold, on the wire", "size"), ("wire_after_previous_bytes", "after, on the wire", "size")]
    known = [c for c in cols if pulls[c[0]].notna().any()]
    hidden = [h for c, h, _ in cols if pulls[c].isna().all()]
    if hidden:
        body.append(f"<p>Not shown, being unknown for every image: {doc.text(', '.join(hidden))}.</p>")
    body.append(doc.table(pulls, [("image", "image", "code"), *known], limit=60, what="images"))
    tag, what = ("", "uncompressed") if pulls["cold_bytes"].notna().all() else ("wire_", "on the wire")
    drawn = pulls.dropna(subset=[f"{tag}cold_bytes", f"{tag}after_previous_bytes"])
    if len(drawn) and (drawn[f"{tag}cold_bytes"] > 0).any():
        after = drawn[f"{tag}after_previous_bytes"]
        f = pd.DataFrame({"image": drawn["image"], "downloaded": after,
                          "already on the host": drawn[f"{tag}cold_bytes"] - after}).head(40)
        body.append(doc.chart(pull_bars(f, parts=("downloaded", "already on the host"), row=None,
                                        x_title=f"bytes ({what})")))
    return "".join(body)


__all__ = ["chosen_merges", "efficiency_frame", "images_section", "plural", "merges_section", "plan_section",
           "pulls_section", "sharing_section", "waste_section", "wastes"]
