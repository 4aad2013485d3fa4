"""Visible waste: caches, package lists and leftovers the final filesystem still shows.

:func:`layerlab.waste` and dive count bytes a later layer *hid*; a cache that
no step ever deleted is not hidden, so neither sees it, yet every pull and
every host stores it.  This analysis reads the final filesystem
(``img.filesystem()``: the OCI merge of the layers) and matches each visible
regular file against the path rules of :mod:`layerlab.analysis._cache_rules`
(apt archives and lists, apk, dnf/yum, pip, npm and yarn caches, ``/tmp`` and
``/var/tmp``, object files, and — low confidence, often intended — Python
byte code whose source is present).  The bytes are the files' exact sizes
from the layer tables; the layer that wrote each file names the history step
to fix.

``visible_waste(img)`` returns a :class:`VisibleWaste`:

``findings`` (``to_frame()``) — one row per (kind, layer), largest first
    ============  ========  ====================================================
    column        dtype     meaning
    ============  ========  ====================================================
    image         string    the image's key
    kind          string    e.g. ``apt package lists``, ``pip cache``
    manager       string    who writes them (apt, apk, dnf/yum, pip, npm, yarn,
                            build, python)
    confidence    string    high (never needed at run time), medium, low
                            (often intended)
    position      Int64     the layer that wrote the files (0 = base)
    step          Int64     its history step (``history()`` index)
    created_by    string    that step's command
    step_label    string    that step as a Dockerfile line (shortened)
    files         Int64     regular files of this kind the layer left visible
    wasted_bytes  Int64     their bytes (exact: the tar entries' sizes)
    above_base    boolean   written above the base image (fixable in this
                            Dockerfile; see ``base=``)
    examples      string    up to three of the largest paths
    fix           string    what to change in the Dockerfile
    message       string    one sentence: step, bytes, kind, fix
    ============  ========  ====================================================

``paths`` — one row per matched file: ``image``, ``path``, ``kind``,
``wasted_bytes``, ``position``, ``step``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..errors import AnalysisError
from ..frames import human_bytes, typed_frame
from ._cache_rules import PYC, RULE_BY_KIND, classify, pyc_with_source
from ._result import Result

VISIBLE_WASTE_COLUMNS: dict[str, str] = {
    "image": "string", "kind": "string", "manager": "string", "confidence": "string",
    "position": "Int64", "step": "Int64", "created_by": "string", "step_label": "string",
    "files": "Int64", "wasted_bytes": "Int64", "above_base": "boolean",
    "examples": "string", "fix": "string", "message": "string",
}
VISIBLE_WASTE_PATH_COLUMNS: dict[str, str] = {
    "image": "string", "path": "string", "kind": "string", "wasted_bytes": "Int64",
    "position": "Int64", "step": "Int64",
}
_NEEDED = {"path", "type", "size", "position"}


@dataclass(repr=False)
class VisibleWaste(Result):
    """Caches and leftovers visible in ``image``'s final filesystem (see the module doc).

    Frames: ``findings`` (main: one row per kind and layer) and ``paths``
    (one row per file); ``total_bytes`` and ``total_bytes_above_base``."""

    image: str
    findings: pd.DataFrame
    paths: pd.DataFrame
    base_layers: int
    notes: list[str] = field(default_factory=list)

    _frame_names = ("findings", "paths")

    @property
    def total_bytes(self) -> int:
        """Bytes of every finding."""
        return int(self.findings["wasted_bytes"].sum())

    @property
    def total_bytes_above_base(self) -> int:
        """Bytes written by the layers above the base image (fixable in this Dockerfile)."""
        f = self.findings
        return int(f.loc[f["above_base"].fillna(False).astype(bool), "wasted_bytes"].sum())

    def _summary(self) -> str:
        n = len(self.findings)
        kinds = ", ".join(dict.fromkeys(self.findings["kind"].tolist())) or "none"
        return (f"{self.image!r}: {human_bytes(self.total_bytes)} visible waste in {n} finding"
                f"{'s' if n != 1 else ''} ({human_bytes(self.total_bytes_above_base)} above the base; {kinds})")


def _filesystem(img, filesystem, options) -> pd.DataFrame:
    if filesystem is not None:
        missing = _NEEDED - set(filesystem.columns)
        if missing:
            raise AnalysisError(f"visible_waste(): filesystem= lacks column(s) {sorted(missing)}; pass img.filesystem()")
        if "image" in filesystem.columns and filesystem["image"].nunique() > 1:
            filesystem = filesystem[filesystem["image"] == img.reference]
        return filesystem
    from ..contents.layers import filesystem_frame

    return filesystem_frame(img, options=options)


def _steps(img) -> tuple[dict[int, int], dict[int, str]]:
    """Per layer position: its history step index and command (:func:`.waste._step_columns`'s rule)."""
    import numpy as np

    from .waste import _step_columns

    pos = np.arange(len(img.layer_list), dtype=np.int64)
    idx, cmd = _step_columns(img, pos)
    return ({int(p): i for p, i in zip(pos, idx.to_pylist()) if i is not None},
            {int(p): c for p, c in zip(pos, cmd.to_pylist()) if c is not None})


def _matched(fs: pd.DataFrame) -> pd.DataFrame:
    """The visible regular files that a rule matches, with their kind."""
    files = fs[fs["type"].astype("string") == "file"]
    paths = files["path"].astype("string")
    kind = classify(paths)
    pyc = kind.isna() & pyc_with_source(paths, set(fs["path"].astype(str)))
    kind[pyc] = PYC.kind
    hit = kind.notna()
    return pd.DataFrame({
        "path": paths[hit].to_numpy(),
        "kind": kind[hit].to_numpy(),
        "wasted_bytes": pd.to_numeric(files.loc[hit, "size"]).fillna(0).astype("int64").to_numpy(),
        "position": pd.to_numeric(files.loc[hit, "position"]).astype("int64").to_numpy(),
    })


def _message(label: str, pos: int, above: bool, files: int, size: int, kind: str, fix: str) -> str:
    head = f"{label} (layer {pos}) left {human_bytes(size)} of {kind} ({files:,} file{'s' if files != 1 else ''})"
    if not above:
        return (f"{head}; it comes from the base image: fix it in the base image's Dockerfile or pick a base "
                f"without it ({fix})")
    return f"{head} in the final image: {fix}"


def visible_waste(
    img,
    *,
    base: Any = None,
    min_bytes: int = 1,
    filesystem: pd.DataFrame | None = None,
    cache_dir: Any = None,
    progress: bool = True,
    verify: bool = True,
    workers: int | None = None,
) -> VisibleWaste:
    """Caches, package lists and build leftovers the final filesystem of ``img`` still shows.

    Each regular file visible in the final filesystem is matched against one
    table of path rules (:mod:`layerlab.analysis._cache_rules`); matches are
    summed per (kind, layer that wrote them), with that layer's history step
    and the Dockerfile fix.  Findings under ``min_bytes`` are left out.
    ``base`` is as for :func:`layerlab.efficiency` (default: the first layer
    is the base; findings in the base are marked ``above_base=False``).
    ``filesystem``: ``img.filesystem()`` if you already have it; otherwise
    the layers are read as ``img.filesystem()`` reads them (``cache_dir``,
    ``progress``, ``verify``, ``workers``; no content hashes are needed).
    See :mod:`layerlab.analysis.visible_waste` for the frames.
    """
    from ..contents.layers import ScanOptions
    from ..model import Image
    from .cumulative import step_label
    from .efficiency import base_layer_count

    if not isinstance(img, Image):
        raise AnalysisError(f"visible_waste(): pass a layerlab.Image, not {type(img).__name__}")
    if not isinstance(min_bytes, int) or isinstance(min_bytes, bool) or min_bytes < 0:
        raise AnalysisError(f"visible_waste(): min_bytes={min_bytes!r}; pass a byte count >= 0")
    nb = base_layer_count(img, base)
    opts = ScanOptions(hash=None, cache_dir=cache_dir, progress=progress, verify=verify, workers=workers)
    m = _matched(_filesystem(img, filesystem, opts))
    idx, cmd = _steps(img)
    m["step"] = pd.array([idx.get(p) for p in m["position"]], dtype="Int64")
    m.insert(0, "image", img.reference)
    m = m.sort_values(["wasted_bytes", "path"], ascending=[False, True], kind="stable")
    paths = typed_frame(m[list(VISIBLE_WASTE_PATH_COLUMNS)].to_dict("records"), VISIBLE_WASTE_PATH_COLUMNS)
    rows = []
    for (kind, pos), g in m.groupby(["kind", "position"], sort=False):
        size = int(g["wasted_bytes"].sum())
        if size < min_bytes:
            continue
        rule = RULE_BY_KIND[kind]
        rows.append({
            "image": img.reference, "kind": kind, "manager": rule.manager, "confidence": rule.confidence,
            "position": int(pos), "step": idx.get(int(pos)), "created_by": cmd.get(int(pos)),
            "files": len(g), "wasted_bytes": size, "above_base": int(pos) >= nb,
            "examples": ", ".join("/" + p for p in g["path"].head(3)), "fix": rule.fix,
        })
    findings = typed_frame(rows, VISIBLE_WASTE_COLUMNS)
    if len(findings):
        findings = findings.sort_values(["wasted_bytes", "position", "kind"], ascending=[False, True, True])
        findings = findings.reset_index(drop=True)
        labels = step_label(findings["created_by"]).fillna("(no history step)")
        findings["step_label"] = labels.astype("string")
        findings["message"] = pd.array([
            _message(lab, int(p), bool(a), int(n), int(b), k, fx)
            for lab, p, a, n, b, k, fx in zip(labels, findings["position"], findings["above_base"],
                                               findings["files"], findings["wasted_bytes"], findings["kind"],
                                               findings["fix"])
        ], dtype="string")
    notes = []
    if len(findings) and (findings["confidence"] == "low").any():
        notes.append("low-confidence findings (python byte code, object files) are often intended: byte code "
                     "speeds start-up; check before removing them")
    below = int(findings.loc[~findings["above_base"].astype(bool), "wasted_bytes"].sum()) if len(findings) else 0
    if below:
        notes.append(f"{human_bytes(below)} of it sits in the base image (layers 0..{nb - 1}): only a "
                     "different or rebuilt base removes it")
    return VisibleWaste(img.reference, findings, paths, nb, notes)


__all__ = ["VISIBLE_WASTE_COLUMNS", "VISIBLE_WASTE_PATH_COLUMNS", "VisibleWaste", "visible_waste"]
