"""The summary report: what ``layerlab report SOURCES -o report.html`` writes
without ``--notebook``.

>>> from layerlab.reporting import render_summary_report
>>> render_summary_report(["data/sample"], "report.html")

One page, summary first — images, total and stored size, what sharing saves,
the biggest wastes, the best merges, what a shared-base plan would save, pull
figures — then a section each for the images, sharing, waste and efficiency,
merges, the planner and pulls.  Every number is a library result
(:mod:`layerlab.reporting.findings`); every sentence is written from those
numbers.  A section that fails shows its error and the others still render.
The page is self-contained and offline (:mod:`layerlab.reporting.page`);
``output`` ending in ``.pdf`` prints it through Chromium.
"""
from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any, Callable, Iterable

from .cells import STYLE, Doc, missing
from .findings import (DEFAULT_MAX_CONTENT_BYTES, ImageContents, Totals, content_plan, error_text, fleet_figures,
                       pull_figures, run_merges, run_waste)
from .page import chart_scripts, check_output, stamp_html, write_page
from .sections import (plural, chosen_merges, images_section, merges_section, plan_section, pulls_section,
                       sharing_section, waste_section, wastes)

SECTIONS = (("images", "Images"), ("sharing", "Sharing"), ("waste", "Waste and efficiency"),
            ("merges", "Merges"), ("planner", "Shared bases (the planner)"), ("pulls", "Pulls"))


class _Report:
    """Everything computed for one fleet; each part may be None with its error."""

    def __init__(self, fleet, *, max_content_bytes: int | None, cache_dir: Any, progress: bool):
        self.fleet = fleet
        self.max_content_bytes = max_content_bytes
        self.errors: dict[str, str] = {}
        # contents first: reading a layer measures its exact size where the source did not state it
        self.entries: list[ImageContents] = content_plan(fleet, max_content_bytes)
        self._try("waste", lambda: run_waste(fleet, self.entries, cache_dir=cache_dir, progress=progress))
        self._try("merges", lambda: run_merges(fleet, self.entries, progress=progress))
        self.totals: Totals | None = self._try("sharing", lambda: fleet_figures(fleet), progress)
        self.plan = self._try("planner", self._plan, progress) if len(fleet) >= 2 else None
        key = self.totals.key if self.totals else "chain_id"
        self.pulls = self._try("pulls", lambda: pull_figures(fleet, key), progress)

    def _try(self, what: str, fn: Callable[[], Any], progress: bool = False):
        from tqdm.auto import tqdm

        with tqdm(total=1, desc=what, leave=False, disable=not progress) as bar:
            try:
                return fn()
            except Exception as e:  # a section that fails shows its message; the others still render
                self.errors[what] = error_text(e)
                return None
            finally:
                bar.update(1)

    def _plan(self):
        from ..analysis.plan import plan_bases

        return plan_bases(list(self.fleet), size_column=self.totals.size if self.totals else "size")


def _figure(label: str, value_html: str, key: str | None = None) -> str:
    attr = f" data-figure='{key}'" if key else ""
    return f"<div class='figure'{attr}><div class='v'>{value_html}</div><div class='l'>{html.escape(label)}</div></div>"


def _summary_section(doc: Doc, r: _Report) -> str:
    t, n = r.totals, len(r.fleet)
    figs = [_figure("images", f"{n:,}", "images")]
    lines = []
    if t is not None:
        figs += [_figure("counted image by image", doc.size(t.total_bytes), "total_bytes"),
                 _figure("stored on one host (shared layers once)", doc.size(t.stored_bytes), "stored_bytes"),
                 _figure("saved by sharing", doc.size(t.saved_bytes), "saved_bytes")]
        images = plural(n, "image") + (" holds" if n == 1 else " hold")
        if t.saved_bytes == 0:
            lines.append(f"{images} {doc.size(t.total_bytes)}; no layer is shared (by "
                         f"<code>{doc.text(t.key)}</code>), so a host stores every byte of each image.")
        elif t.saved_bytes is not None and t.total_bytes:
            lines.append(f"{images} {doc.size(t.total_bytes)} counted one by one; a host stores "
                         f"{doc.size(t.stored_bytes)}, each distinct layer once, so sharing saves "
                         f"{doc.size(t.saved_bytes)} ({t.saved_bytes / t.total_bytes:.0%}).")
        else:
            lines.append(f"{plural(n, 'image')}; their total size is unknown: "
                         f"{plural(t.unknown_size_layers, 'distinct layer')} with no recorded "
                         f"{doc.text(t.size)}{doc.mark()}.")
        if t.size != "size":
            lines.append("These sizes are compressed (blob) sizes: the sources record no uncompressed ones.")
        if t.wire_stored_bytes is not None and t.size == "size":
            lines.append(f"On the wire (compressed blobs) they total {doc.size(t.wire_total_bytes)}, "
                         f"{doc.size(t.wire_stored_bytes)} with each layer once.")
    read = [e for e in r.entries if e.skipped is None]
    bound = "any size" if r.max_content_bytes is None else f"up to {doc.size(r.max_content_bytes)}"
    lines.append(f"Layer contents read for {len(read):,} of {plural(n, 'image')} (those with contents, {bound}).")
    h, v = wastes(r.entries, doc)
    worst = []
    if len(h):
        worst.append((int(h["wasted_bytes"].iloc[0]), f"{doc.size(h['wasted_bytes'].iloc[0])} stored by "
                      f"<code>{doc.text(h['writer'].iloc[0])}</code> and hidden by "
                      f"<code>{doc.text(h['hider'].iloc[0])}</code> (in {doc.text(h['image_list'].iloc[0])})"))
    sure = v[v["confidence"] != "low"] if len(v) else v  # low confidence (byte code) is often intended
    if len(sure):
        top = sure.iloc[0]
        worst.append((int(top["wasted_bytes"]), f"{doc.size(top['wasted_bytes'])} of {doc.text(top['kind'])} left "
                      f"visible by <code>{doc.text(top['label'])}</code> (in {doc.text(top['image_list'])}); "
                      f"fix: {doc.text(top['fix'])}"))
    elif len(v):
        top = v.iloc[0]
        worst.append((0, f"{doc.size(top['wasted_bytes'])} of {doc.text(top['kind'])} (often intended) written by "
                      f"<code>{doc.text(top['label'])}</code> (in {doc.text(top['image_list'])})"))
    if worst:
        worst.sort(key=lambda w: -w[0])
        lines.append("Biggest waste: " + "; ".join(w for _, w in worst) + ".")
        if worst[0][0] > 0:
            figs.append(_figure("biggest single waste", doc.size(worst[0][0]), "biggest_waste_bytes"))
    elif read:
        lines.append("No hidden or visible waste found in the images read.")
    m = chosen_merges(r.entries)
    if len(m):
        top = m.iloc[0]
        lines.append(f"Best merge: layers {doc.text(top['layers'])} of {doc.text(top['image_list'])} "
                     f"({doc.text(top['kind'])}) save {doc.size(top['saved_bytes'])}; {len(m):,} merges save "
                     f"{doc.size(int(m['saved_bytes'].sum()))} in all.")
    lines.append(_plan_line(doc, r, figs))
    if r.pulls is not None and len(r.pulls):
        lines.append(_pull_line(doc, r.pulls))
    problems = [f"{doc.text(k)}: {doc.text(e)}" for k, e in r.errors.items()]
    if problems:
        lines.append("Sections that could not be computed: " + "; ".join(problems) + ".")
    return "<div class='figures'>" + "".join(figs) + "</div>" + doc.bullets(lines)


def _pull_line(doc: Doc, pulls) -> str:
    """The largest cold pull and the bytes of pulling every image in turn, in the measures known."""
    def both(u, w) -> str:
        parts = [f"{doc.size(u)} uncompressed" if u is not None else "",
                 f"{doc.size(w)} on the wire" if w is not None else ""]
        return " and ".join(p for p in parts if p) or doc.unknown()

    def total(col):
        return int(pulls[col].sum()) if pulls[col].notna().all() else None

    by = "cold_bytes" if pulls["cold_bytes"].notna().all() else "wire_cold_bytes"
    p = pulls.sort_values(by, ascending=False, na_position="last").iloc[0]
    cold = both(None if missing(p["cold_bytes"]) else int(p["cold_bytes"]),
                None if missing(p["wire_cold_bytes"]) else int(p["wire_cold_bytes"]))
    return (f"Pulls: the largest cold pull, <code>{doc.text(p['image'])}</code>, downloads {cold}; pulling every "
            f"image in turn onto one host downloads {both(total('after_previous_bytes'), total('wire_after_previous_bytes'))}.")


def _plan_line(doc: Doc, r: _Report, figs: list[str]) -> str:
    if r.plan is None:
        why = r.errors.get("planner") or f"the planner needs two images or more; this fleet has {len(r.fleet)}"
        return f"Shared bases: no plan ({doc.text(why)})."
    s = r.plan.savings
    host = s[s["scope"] == "host"]
    if not len(host) or host["stored_before_bytes"].isna().iloc[0] or host["stored_after_bytes"].isna().iloc[0]:
        return (f"Shared bases: the planner proposes {len(r.plan.bases):,} bases, but what one host would store "
                f"on them is unknown{doc.mark()}: some steps' sizes are not recorded.")
    before, after = int(host["stored_before_bytes"].iloc[0]), int(host["stored_after_bytes"].iloc[0])
    if not r.plan.bases or before - after <= 0:
        return (f"Shared bases: the planner proposes none that saves bytes for these images "
                f"(one host stores {doc.size(before)} either way).")
    figs.append(_figure("a shared-base plan would save", doc.size(before - after), "plan_saved_bytes"))
    return (f"Shared bases: rebuilding on {len(r.plan.bases)} proposed bases would store {doc.size(after)} "
            f"instead of {doc.size(before)} on one host ({doc.size(before - after)} less).")


def _section(doc: Doc, sid: str, title: str, error: str | None, fn: Callable[[], str]) -> str:
    body = ""
    if error:
        body = f"<div class='error'><strong>This section could not be computed:</strong> {doc.text(error)}</div>"
    else:
        try:
            body = fn()
        except Exception as e:  # one failing section never takes the report down
            body = (f"<div class='error'><strong>This section failed:</strong> {doc.text(error_text(e))}</div>")
    return f"<section id='{sid}' class='layerlab-section'><h2>{html.escape(title)}</h2>{body}</section>"


def summary_html(fleet, *, label: str, max_content_bytes: int | None = DEFAULT_MAX_CONTENT_BYTES,
                 cache_dir: Any = None, progress: bool = True, mask_secrets: bool = True,
                 title: str | None = None) -> str:
    """The whole page for ``fleet`` (see the module doc); ``label`` names the sources in the stamp line."""
    doc = Doc(mask=mask_secrets)
    r = _Report(fleet, max_content_bytes=max_content_bytes, cache_dir=cache_dir, progress=progress)
    e = r.errors
    parts = [_section(doc, "summary", "Summary", None, lambda: _summary_section(doc, r))]
    makers = {
        "images": lambda: images_section(doc, fleet),
        "sharing": lambda: sharing_section(doc, fleet, r.totals),
        "waste": lambda: waste_section(doc, r.entries, max_content_bytes),
        "merges": lambda: merges_section(doc, r.entries),
        "planner": lambda: plan_section(doc, r.plan, e.get("planner"), len(fleet)),
        "pulls": lambda: pulls_section(doc, r.pulls, r.totals),
    }
    for sid, name in SECTIONS:
        err = e.get(sid) if sid not in ("planner",) else None
        if sid == "pulls" and r.totals is None and not err:
            err = e.get("sharing")
        parts.append(_section(doc, sid, name, err, makers[sid]))
    notes = "".join(f"<p id='fn-{k}'>* {doc.text(v)}</p>" for k, v in doc.footnotes.items())
    foot = f"<div class='footnotes'>{notes}</div>" if notes else ""
    toc = " · ".join(f"<a href='#{sid}'>{html.escape(n)}</a>" for sid, n in (("summary", "Summary"), *SECTIONS))
    heading = html.escape(title or f"Container images: {len(fleet):,} image{'s' if len(fleet) != 1 else ''}")
    meta, tail = chart_scripts(doc.specs)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head>\n" + meta + "<meta charset='utf-8'>\n"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{heading}</title>"
        f"<style>{STYLE}</style></head>\n<body><main>{stamp_html(label)}<h1>{heading}</h1>"
        f"<nav>{toc}</nav>{''.join(parts)}{foot}</main>\n{tail}</body></html>\n"
    )


def render_summary_report(
    sources: Iterable[str] | str,
    output: str | os.PathLike = "report.html",
    *,
    max_content_bytes: int | None = DEFAULT_MAX_CONTENT_BYTES,
    cache_dir: Any = None,
    progress: bool = True,
    mask_secrets: bool = True,
    title: str | None = None,
) -> Path:
    """Load ``sources`` (as ``layerlab.load_many``) and write the summary report
    to ``output``: HTML, or PDF when the name ends in ``.pdf`` (printed through
    Chromium; ``ReportError`` when none is available).  Layer contents are read
    (``cache_dir`` as for ``img.files()``) only for images up to
    ``max_content_bytes`` (None: any size); the report says which were read.
    Likely secrets are shown masked unless ``mask_secrets=False``.  Nothing
    but ``output`` is written (and the layer cache, unless ``cache_dir=False``).
    Returns the output path."""
    from ..notebooks import ReportError
    from ..sources import load_many

    out = check_output(output)
    if isinstance(sources, (str, os.PathLike)):
        sources = [os.fspath(sources)]
    sources = [os.fspath(s) for s in sources]
    if not sources:
        raise ReportError("no SOURCES: give the images to report on, e.g. "
                          "`layerlab report docker-archive:app.tar -o report.html` (the sample: `layerlab report "
                          "data/sample` in a checkout)")
    fleet = load_many(sources)
    if not len(fleet):
        raise ReportError(f"{', '.join(sources)}: no images found to report on")
    page = summary_html(fleet, label=", ".join(sources), max_content_bytes=max_content_bytes,
                        cache_dir=cache_dir, progress=progress, mask_secrets=mask_secrets, title=title)
    return write_page(page, out)


__all__ = ["render_summary_report", "summary_html"]
