"""What the summary report computes, image by image and for the fleet, kept
apart from how it is shown (:mod:`layerlab.reporting.summary`).

Every analysis is a library call (``ll.fleet_totals``, ``ll.efficiency``,
``ll.waste``, ``ll.visible_waste``, ``ll.suggest_merges``, ``ll.plan_bases``,
``ll.pull_table``); nothing here re-derives their numbers.  Analyses that read
layer contents run only for images with contents (blobs or shipped file
tables) up to ``max_content_bytes``; an analysis that fails on one image is
recorded with its message and the others go on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..errors import LayerlabError

DEFAULT_MAX_CONTENT_BYTES = 2_000_000_000
"""Images larger than this (uncompressed, else compressed) are not read for the content sections."""


def error_text(e: BaseException) -> str:
    """One line for the report: the library's own message, else the exception's type and text."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if isinstance(e, LayerlabError):
        return text or type(e).__name__
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


@dataclass
class ImageContents:
    """The content analyses of one image (None where not run or failed)."""

    image: str
    size: int | None
    skipped: str | None = None
    efficiency: Any = None
    waste: pd.DataFrame | None = None
    visible: Any = None
    merges: pd.DataFrame | None = None
    errors: dict[str, str] = field(default_factory=dict)


def _bar(progress: bool, total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="image", leave=False, disable=not progress)


def content_plan(fleet, max_content_bytes: int | None) -> list[ImageContents]:
    """One :class:`ImageContents` per image, ``skipped`` saying why an image is not read."""
    out = []
    for img in fleet:
        size = img.size if img.size is not None else img.compressed_size
        entry = ImageContents(img.reference, size)
        if not img.has_file_tables:
            entry.skipped = "its source gives no layer contents (metadata only)"
        elif max_content_bytes is not None and size is None:
            entry.skipped = "its size is unknown, so the size bound cannot be checked"
        elif max_content_bytes is not None and size > max_content_bytes:
            entry.skipped = "it is larger than the bound for reading layer contents"
        out.append(entry)
    return out


def _run(entry: ImageContents, what: str, fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except Exception as e:  # one image's failure is shown in its section; the other images go on
        entry.errors[what] = error_text(e)
        return None


def run_waste(fleet, entries: list[ImageContents], *, cache_dir: Any = None, progress: bool = True) -> None:
    """efficiency, waste by step and visible waste for each readable image (in place)."""
    from ..analysis.efficiency import efficiency
    from ..analysis.visible_waste import visible_waste
    from ..analysis.waste import waste

    opts = dict(cache_dir=cache_dir, progress=False)
    with _bar(progress, len(entries), "waste and efficiency") as bar:
        for img, entry in zip(fleet, entries):
            if entry.skipped is None:
                entry.efficiency = _run(entry, "efficiency", efficiency, img, **opts)
                entry.waste = _run(entry, "waste", waste, img, by="step", **opts)
                entry.visible = _run(entry, "visible waste", visible_waste, img, **opts)
            bar.update(1)


def run_merges(fleet, entries: list[ImageContents], *, progress: bool = True) -> None:
    """suggest_merges for each readable image (in place; reuses the file tables already read)."""
    from ..analysis.merge import suggest_merges

    with _bar(progress, len(entries), "merges") as bar:
        for img, entry in zip(fleet, entries):
            if entry.skipped is None:
                entry.merges = _run(entry, "merges", suggest_merges, img, fleet=fleet, progress=False)
            bar.update(1)


@dataclass
class Totals:
    """The fleet's headline figures (exact bytes; None where unknown)."""

    images: int
    layers: int
    key: str
    size: str
    total_bytes: int | None          # every image counted with all its layers
    stored_bytes: int | None         # each distinct layer (by ``key``) once
    saved_bytes: int | None
    unknown_size_layers: int         # distinct layers of unknown ``size`` (counted 0 where known)
    wire_total_bytes: int | None
    wire_stored_bytes: int | None
    frame: pd.DataFrame = field(repr=False, default=None)
    notes: list[str] = field(default_factory=list)


def _int(v) -> int | None:
    return None if v is None or v is pd.NA or pd.isna(v) else int(v)


def fleet_figures(fleet) -> Totals:
    """``ll.fleet_totals`` read out: the total, what one host stores, what sharing saves."""
    from ..analysis.notebook_helpers import choose_measure
    from ..analysis.totals import fleet_totals

    layers = fleet.layers()
    key, size, notes = choose_measure(layers, key="chain_id")
    t = fleet_totals(fleet)
    row = lambda acc, m: t[(t["accounting"] == acc) & (t["measure"] == m)]  # noqa: E731
    ref, stored = row("images", size), row(key, size)
    complete = lambda r: len(r) and bool(r["complete"].iloc[0])  # noqa: E731
    total_b = _int(ref["stored_bytes"].iloc[0]) if complete(ref) else None
    stored_b = _int(stored["stored_bytes"].iloc[0]) if complete(stored) else None
    unknown = int(stored["unknown_size_units"].iloc[0]) if len(stored) else 0
    wref, wst = row("images", "compressed_size"), row(key, "compressed_size")
    if size == "size" and len(wst) and not complete(wst):
        notes.append("wire sizes (compressed) are not known for every layer: the totals on the wire are unknown")
    return Totals(
        images=len(fleet), layers=len(layers), key=key, size=size, total_bytes=total_b, stored_bytes=stored_b,
        saved_bytes=None if total_b is None or stored_b is None else total_b - stored_b,
        unknown_size_layers=unknown,
        wire_total_bytes=_int(wref["stored_bytes"].iloc[0]) if complete(wref) else None,
        wire_stored_bytes=_int(wst["stored_bytes"].iloc[0]) if complete(wst) else None,
        frame=t, notes=notes,
    )


def pull_figures(fleet, key: str) -> pd.DataFrame:
    """Per image: bytes of a cold pull and of a pull after the images before it,
    uncompressed (``size``) and on the wire (``compressed_size``; unknown where a
    layer's wire size is unknown — never an uncompressed size in its place)."""
    import warnings

    from ..analysis.totals import pull_table

    layers = fleet.layers()
    out = None
    for size, tag in (("size", ""), ("compressed_size", "wire_")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # estimates are counted in estimated_layers and said in the notes
            cold = pull_table(layers, present=None, key=key, size=size)
            seq = pull_table(layers, present="previous", key=key, size=size)
        part = pd.DataFrame({
            "image": cold["image"].astype("string"),
            f"{tag}cold_bytes": cold["pull_bytes"].astype("Int64"),
            f"{tag}after_previous_bytes": seq["pull_bytes"].astype("Int64").to_numpy(),
            f"{tag}estimated_layers": cold["estimated_layers"].astype("Int64"),
        })
        out = part if out is None else out.merge(part, on="image", how="left")
    return out
