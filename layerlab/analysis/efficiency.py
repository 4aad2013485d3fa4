"""Image efficiency: dive's figures, exactly, and the corrected ones beside them.

dive's figures (``efficiencyScore``, ``sizeBytes``, ``inefficientBytes``: dive
issue #684 counts every copy of a repeated path, the kept one included) come
from :mod:`layerlab.contents.dive`, which reproduces wagoodman/dive's
``dive/filetree/efficiency.go`` rule for rule; its docstring lists the rules.

The corrected figures come from the OCI merge (:mod:`layerlab.contents.merge`):
``reclaimable_bytes`` is what squashing the image would actually free — the
bytes of every entry that is stored in a layer but not visible in the final
filesystem, i.e. per path the cumulative size minus the copy that is kept
(0 kept when the path ends up deleted).  ``reclaimable_bytes_above_base``
counts only what a layer above the base image hid (the part a Dockerfile
author can fix).  ``dive_reclaimable_bytes`` is dive's own per-path
cumulative minus *smallest* copy, the fix proposed for #684 (pull #685).
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..contents.dive import dive_efficiency
from ..errors import AnalysisError


# -- the public result --------------------------------------------------------------
from ._result import Result  # noqa: E402  (the public result, below the reference trees)


@dataclass(repr=False)
class Efficiency(Result):
    """dive-compatible efficiency of one image, with the corrected waste beside it.

    Frames: :meth:`figures` (one row, the figures as columns; also
    ``to_frame()``) and ``inefficient_files`` (dive's list: ``path``,
    ``count``, ``size_bytes``).  ``notes``: what the OCI merge of the layers
    reported (e.g. hard links to files no layer has)."""

    image: str
    score: float                         # dive's efficiencyScore
    size_bytes: int                      # dive's sizeBytes
    inefficient_bytes: int               # dive's inefficientBytes (all copies, #684)
    user_size_bytes: int                 # dive: size of every layer but the first
    reclaimable_bytes: int               # corrected: hidden bytes, cumulative minus the kept copy
    reclaimable_bytes_above_base: int    # corrected, hidden by layers above the base image
    dive_reclaimable_bytes: int          # dive's cumulative minus smallest copy (#685)
    base_layers: int                     # layers counted as the base image
    inefficient_files: pd.DataFrame = field(repr=False)
    layer_sizes: list[int] = field(default_factory=list, repr=False)
    notes: list[str] = field(default_factory=list, repr=False)

    _frame_names = ("figures", "inefficient_files")

    @property
    def wasted_user_percent(self) -> float:
        """dive's userWastedPercent (inefficient bytes / user size)."""
        return self.inefficient_bytes / self.user_size_bytes if self.user_size_bytes else 0.0

    @property
    def corrected_score(self) -> float:
        """Share of the stored bytes that the final filesystem still shows."""
        return 1.0 - self.reclaimable_bytes / self.size_bytes if self.size_bytes else 1.0

    def figures(self) -> pd.DataFrame:
        """One row: the figures as columns (for concatenating over a fleet)."""
        row = {
            "image": self.image,
            "score": self.score,
            "size_bytes": self.size_bytes,
            "inefficient_bytes": self.inefficient_bytes,
            "user_size_bytes": self.user_size_bytes,
            "wasted_user_percent": self.wasted_user_percent,
            "reclaimable_bytes": self.reclaimable_bytes,
            "reclaimable_bytes_above_base": self.reclaimable_bytes_above_base,
            "dive_reclaimable_bytes": self.dive_reclaimable_bytes,
            "corrected_score": self.corrected_score,
            "base_layers": self.base_layers,
        }
        df = pd.DataFrame([row])
        for c in df.columns:
            if c.endswith("bytes") or c == "base_layers":
                df[c] = df[c].astype("Int64")
        df["image"] = df["image"].astype("string")
        return df

    def _summary(self) -> str:
        from ..frames import human_bytes

        return (
            f"{self.image!r}: dive score {self.score:.4f}, "
            f"dive wasted {human_bytes(self.inefficient_bytes)} of {human_bytes(self.size_bytes)}; "
            f"reclaimable {human_bytes(self.reclaimable_bytes)} "
            f"({human_bytes(self.reclaimable_bytes_above_base)} above the base)"
        )

    def _repr_html_(self) -> str:
        from ..frames import human_bytes

        def row(label: str, value: str, note: str = "") -> str:
            return (
                f"<tr><th style='text-align:left'>{html.escape(label)}</th>"
                f"<td style='text-align:right'>{html.escape(value)}</td><td>{html.escape(note)}</td></tr>"
            )

        rows = [
            row("efficiency score (dive)", f"{self.score:.2%}", "Σ smallest copy / Σ all copies, per path"),
            row("image size (dive)", human_bytes(self.size_bytes), f"{self.size_bytes:,} bytes"),
            row("potential wasted space (dive)", human_bytes(self.inefficient_bytes),
                "all copies of repeated paths, the kept one included"),
            row("reclaimable (corrected)", human_bytes(self.reclaimable_bytes),
                f"{self.reclaimable_bytes:,} bytes stored but hidden in the final filesystem"),
            row("reclaimable above the base", human_bytes(self.reclaimable_bytes_above_base),
                f"hidden by layers {self.base_layers}+ (the base is layers 0..{self.base_layers - 1})"),
            row("corrected score", f"{self.corrected_score:.2%}", "visible bytes / stored bytes"),
        ]
        top = self.inefficient_files.head(10)
        files = "".join(
            f"<tr><td style='text-align:right'>{int(c)}</td><td style='text-align:right'>"
            f"{html.escape(human_bytes(int(s)))}</td><td><code>{html.escape(str(p))}</code></td></tr>"
            for p, c, s in zip(top["path"], top["count"], top["size_bytes"])
        )
        more = len(self.inefficient_files) - len(top)
        notes = "".join(f"<li>{html.escape(str(n))}</li>" for n in self.notes)
        return (
            "<div class='layerlab-efficiency layerlab-result'><strong>layerlab.Efficiency</strong> "
            f"<code>{html.escape(self.image)}</code><table>{''.join(rows)}</table>"
            + (f"<ul>{notes}</ul>" if notes else "")
            + (
                "<table><thead><tr><th>count</th><th>total space</th><th>path (dive's inefficient files)</th>"
                f"</tr></thead><tbody>{files}</tbody></table>" if files else ""
            )
            + (f"<p>… and {more} more paths</p>" if more > 0 else "")
            + "</div>"
        )


def base_layer_count(img, base: Any) -> int:
    """How many of ``img``'s layers belong to its base image.

    ``base``: an int (layer count), an Image (its layers are the common prefix
    by chain id), or None: 1, dive's convention (the first layer is the base;
    dive's "user" size is every other layer).
    """
    from ..model import Image

    n = len(img.layer_list)
    if base is None:
        return min(1, n)
    if isinstance(base, Image):
        k = 0
        for a, b in zip(img.layer_list, base.layer_list):
            if a.chain_id is None or a.chain_id != b.chain_id:
                break
            k += 1
        return k
    if isinstance(base, int) and not isinstance(base, bool) and 0 <= base <= n:
        return base
    raise AnalysisError(
        f"efficiency(): base={base!r} for {img.reference} ({n} layers): pass a layer count 0..{n}, "
        "the base Image, or None"
    )


def efficiency(img, *, base: Any = None, hash: str | None = None, cache_dir: Any = None, progress: bool = True,
               verify: bool = True, workers: int | None = None) -> Efficiency:
    """dive's efficiencyScore / sizeBytes / inefficientBytes for ``img``, exactly,
    plus the corrected waste.

    ``img``: a :class:`layerlab.Image` whose layer contents can be read (blobs,
    or file tables shipped with a snapshot).
    ``base``: the layers that belong to the base image — an int (layer count),
    the base :class:`layerlab.Image` (the common prefix by chain id), or None
    (dive's convention: the first layer); it sets ``reclaimable_bytes_above_base``.

    How the layers are read (as for ``img.files()``):
    ``hash``: content hashes to compute while reading — None (default: the
    figures need none), "fast" or "sha256" (the file tables are then cached
    with them, ready for a later ``files()``).
    ``cache_dir``: the per-layer and per-image Parquet cache — None: the
    default directory (``$LAYERLAB_CACHE``, else ``~/.cache/layerlab``), False:
    no cache, else a path.
    ``progress``: show a progress bar while layers are read.
    ``verify``: check that every layer hashes to its diff_id (a mismatch raises
    ``DigestMismatchError``); False trusts unchanged local files.
    ``workers``: processes scanning layers — None: 2 when the source allows it
    and there is enough to read, 1: this process only, n: n processes.

    The figures are cached with the file tables (:mod:`layerlab.contents.results`),
    so a second run on the same layers reads them instead of stacking the layers."""
    from ..contents.layers import ScanOptions
    from ..contents.results import image_results
    from ..model import Image

    if not isinstance(img, Image):
        raise AnalysisError(f"efficiency(): pass a layerlab.Image, not {type(img).__name__}")
    if not img.layer_list:
        raise AnalysisError(f"efficiency(): {img.reference} has no layers")
    base_layer_count(img, base)  # a bad base= fails before any reading
    options = ScanOptions(hash=hash, cache_dir=cache_dir, progress=progress, verify=verify, workers=workers)
    res = image_results(img, options)
    return efficiency_from_results(img, res, base=base)


def efficiency_from_results(img, res, *, base: Any = None) -> Efficiency:
    """:func:`efficiency` from :class:`layerlab.contents.results.ImageResults`."""
    nb = base_layer_count(img, base)
    f = res.inefficient_files
    frame = pd.DataFrame(
        {
            "path": pd.array(f.column("path").combine_chunks(), dtype="string"),
            "count": pd.array(f.column("count").to_numpy(), dtype="Int64"),
            "size_bytes": pd.array(f.column("size_bytes").to_numpy(), dtype="Int64"),
        }
    )
    return Efficiency(
        image=img.reference,
        score=res.score,
        size_bytes=res.size_bytes,
        inefficient_bytes=res.inefficient_bytes,
        user_size_bytes=res.user_size_bytes,
        reclaimable_bytes=sum(res.wasted_by_layer),
        reclaimable_bytes_above_base=sum(res.wasted_by_layer[nb:]),
        dive_reclaimable_bytes=res.dive_reclaimable_bytes,
        base_layers=nb,
        inefficient_files=frame,
        layer_sizes=list(res.layer_sizes),
        notes=list(res.orphan_notes),
    )


def efficiency_from(img, table, m, *, base: Any = None) -> Efficiency:
    """:func:`efficiency` from an already built image table and merge, with
    dive's figures from the reference implementation (dive's trees)."""
    n = len(img.layer_list)
    per_layer: list[list[tuple[str, str, int]]] = [[] for _ in range(n)]
    for pos, path, kind, size in zip(m.positions, m.paths, m.types, m.sizes):
        per_layer[pos].append((path, kind, size))
    if n == 0:
        raise AnalysisError(f"efficiency(): {img.reference} has no layers")
    d = dive_efficiency(per_layer)
    nb = base_layer_count(img, base)
    hidden = above = 0
    for r, h in enumerate(m.hidden_by):
        if h is None or not m.wasted(r):
            continue
        s = m.sizes[r]
        hidden += s
        if h >= nb:
            above += s
    return Efficiency(
        image=img.reference,
        score=d.score,
        size_bytes=d.size_bytes,
        inefficient_bytes=d.inefficient_bytes,
        user_size_bytes=d.user_size_bytes,
        reclaimable_bytes=hidden,
        reclaimable_bytes_above_base=above,
        dive_reclaimable_bytes=d.dive_reclaimable_bytes,
        base_layers=nb,
        inefficient_files=d.inefficient_files,
        layer_sizes=d.layer_sizes,
        notes=list(m.orphan_notes),
    )
