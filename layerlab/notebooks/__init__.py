"""The notebooks shipped with layerlab (package data: they are in the wheel),
and how to find, list and copy them.

``layerlab report --notebook NAME`` runs one (see ``layerlab.report``);
``layerlab notebooks [DIR]`` copies them for a user to open in Jupyter.  Their
default data paths are relative to this directory and name the sample of a
layerlab checkout (``../../data/sample``); elsewhere, pass ``sources``.
"""
from __future__ import annotations

import importlib.resources
import json
import os
from pathlib import Path

from ..errors import LayerlabError


class ReportError(LayerlabError):
    """A notebook could not be found, parametrised, executed or exported."""


def notebooks_dir() -> Path:
    """The directory of the notebooks shipped with layerlab (this package's
    data, in a checkout and in an installed wheel alike)."""
    res = importlib.resources.files(__name__)
    if not isinstance(res, Path):  # pragma: no cover - a zipped install
        raise ReportError(f"the bundled notebooks are not files on disk ({res}); install layerlab unzipped")
    return res


def list_notebooks(directory: Path | None = None) -> list[Path]:
    """The notebooks in ``directory`` (default: the bundled ones), in name order."""
    d = Path(directory) if directory else notebooks_dir()
    return sorted(p for p in d.glob("*.ipynb") if not p.name.startswith("."))


def notebook_title(path: Path) -> str:
    """The first ``# `` heading of the notebook's markdown cells ("" if none)."""
    try:
        cells = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ReportError(f"{path}: not a readable notebook ({e})") from e
    for c in cells:
        if c.get("cell_type") != "markdown":
            continue
        for ln in "".join(c.get("source", "")).splitlines():
            if ln.startswith("# "):
                return ln[2:].strip()
    return ""


def copy_notebooks(directory: str | os.PathLike = "layerlab-notebooks", *, force: bool = False) -> list[Path]:
    """Copy the bundled notebooks into ``directory`` (created if needed) for a
    user to open in Jupyter; returns the copies' paths.

    A file of the same name with other content is never overwritten unless
    ``force``: then nothing at all is copied and ``ReportError`` names the
    files.  Identical files are left as they are.  Nothing else is written.
    """
    dest = Path(directory)
    if dest.exists() and not dest.is_dir():
        raise ReportError(f"{dest}: exists and is not a directory")
    bundled = list_notebooks()
    if not bundled:
        raise ReportError(f"no notebooks found in {notebooks_dir()}: a broken install?")
    clash = [p.name for p in bundled
             if (dest / p.name).exists() and (dest / p.name).read_bytes() != p.read_bytes()]
    if clash and not force:
        raise ReportError(f"{dest}: {', '.join(clash)} already there with other content; "
                          "keep your edits elsewhere, or pass --force to overwrite them")
    try:
        dest.mkdir(parents=True, exist_ok=True)
        out = []
        for p in bundled:
            target = dest / p.name
            if not (target.exists() and target.read_bytes() == p.read_bytes()):
                target.write_bytes(p.read_bytes())
            out.append(target)
    except OSError as e:
        raise ReportError(f"{dest}: cannot copy the notebooks ({e})") from e
    return out


def notebook_path(name: str | os.PathLike) -> Path:
    """Resolve ``name``: a path to an ``.ipynb``, or a bundled notebook
    by file name, stem, number prefix (``02``) or title part (``fleet-overlap``)."""
    p = Path(name)
    if p.suffix == ".ipynb" and p.is_file():
        return p.resolve()
    s = str(name)
    known = list_notebooks()
    for cand in known:
        if s in (cand.name, cand.stem):
            return cand
    hits = [c for c in known if c.stem.startswith(s + "-") or c.stem.split("-", 1)[-1] == s]
    if len(hits) == 1:
        return hits[0]
    names = ", ".join(c.stem for c in known) or "(none found)"
    if p.suffix == ".ipynb":
        raise ReportError(f"notebook {s!r}: no such file; give a path to an .ipynb or one of: {names}")
    raise ReportError(f"notebook {s!r}: not found in {notebooks_dir()}; choose one of: {names}")
