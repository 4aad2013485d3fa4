"""Checks for the bundled notebooks' parameters: each notebook calls these
right after its ``parameters`` cell, so a wrong value stops it at once with
one message saying which parameter, what is wrong and what exists
(``parameter image: 'x' is not in the fleet; images: a, b, c``), instead of
a ``KeyError`` deep in a later cell.

Values arrive as ``layerlab report --param NAME=JSON`` or papermill give them,
so every check accepts the JSON-friendly forms (lists for tuples, strings for
ranges: ``"1-3"``) and returns the value in the form the library takes.
Errors are :class:`ParameterError` (an ``AnalysisError``).
"""
from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..errors import AnalysisError

_SHOWN = 12  # names listed in a message before "… and N more"


class ParameterError(AnalysisError):
    """A notebook parameter has a value the notebook cannot use."""


def _listing(names: Sequence[str]) -> str:
    names = [str(n) for n in names]
    if not names:
        return "none"
    more = len(names) - _SHOWN
    return ", ".join(names[:_SHOWN]) + (f", … and {more} more" if more > 0 else "")


def _closest(name: str, names: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(name), [str(n) for n in names], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_flag(value: Any, parameter: str) -> bool:
    """``value`` if it is ``True`` or ``False``, else ``ParameterError``."""
    if isinstance(value, bool):
        return value
    raise ParameterError(f"parameter {parameter}: {value!r} is not true or false")


def check_choice(value: Any, choices: Sequence[Any], parameter: str) -> Any:
    """``value`` if it is one of ``choices``, else ``ParameterError`` listing them."""
    if value in choices:
        return value
    raise ParameterError(f"parameter {parameter}: {value!r} is not one of {_listing([repr(c) for c in choices])}"
                         + _closest(str(value), [str(c) for c in choices]))


def check_number(value: Any, parameter: str, *, minimum: float | None = None, maximum: float | None = None,
                 integer: bool = False, none_ok: bool = False) -> Any:
    """``value`` if it is a number (an ``int`` when ``integer``) within
    ``[minimum, maximum]`` (or None when ``none_ok``), else ``ParameterError``."""
    if value is None and none_ok:
        return None
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        what = "a whole number" if integer else "a number"
        raise ParameterError(f"parameter {parameter}: {value!r} is not {what}" + (" or None" if none_ok else ""))
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        lo = "" if minimum is None else f"at least {minimum}"
        hi = "" if maximum is None else f"at most {maximum}"
        raise ParameterError(f"parameter {parameter}: {value!r} must be {' and '.join(x for x in (lo, hi) if x)}")
    return value


def check_sources(sources: Any, parameter: str = "sources") -> list[str]:
    """Source strings as a list: one string, or a list of strings (paths
    allowed).  An empty list, or anything else, is a ``ParameterError``."""
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    if not isinstance(sources, (list, tuple)) or not sources:
        raise ParameterError(f"parameter {parameter}: expected a source string or a non-empty list of them "
                             f"(docker-daemon:NAME, docker-archive:PATH, oci:DIR, snapshot:DIR, …), got {sources!r}")
    bad = [s for s in sources if not isinstance(s, (str, os.PathLike))]
    if bad:
        raise ParameterError(f"parameter {parameter}: {bad[0]!r} is not a source string")
    return [os.fspath(s) for s in sources]


def check_path(path: Any, parameter: str, *, kind: str = "dir", none_ok: bool = False) -> Path | None:
    """``path`` as a ``Path`` when it names an existing directory (``kind="dir"``)
    or file (``"file"``); None passes when ``none_ok``."""
    if path is None and none_ok:
        return None
    if not isinstance(path, (str, os.PathLike)):
        raise ParameterError(f"parameter {parameter}: {path!r} is not a path")
    p = Path(path)
    ok = p.is_dir() if kind == "dir" else p.is_file()
    if not ok:
        what = "directory" if kind == "dir" else "file"
        where = f" (relative to {Path.cwd()})" if not p.is_absolute() else ""
        raise ParameterError(f"parameter {parameter}: {os.fspath(path)!r} is not a {what}{where}")
    return p


def check_image(fleet: Iterable[Any], name: Any, parameter: str = "image") -> str:
    """``name`` if an image of ``fleet`` has that reference, else a
    ``ParameterError`` naming the closest and listing the fleet's images."""
    refs = [img.reference for img in fleet]
    if isinstance(name, str) and name in refs:
        return name
    raise ParameterError(f"parameter {parameter}: image {name!r} is not in the fleet{_closest(str(name), refs)}; "
                         f"images: {_listing(refs)}")


def check_images(fleet: Iterable[Any], names: Any, parameter: str) -> list[str]:
    """A list of image references of ``fleet`` (one string counts as a list of one)."""
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, (list, tuple)):
        raise ParameterError(f"parameter {parameter}: expected a list of image names, got {names!r}")
    fleet = list(fleet)
    return [check_image(fleet, n, parameter) for n in names]


def check_image_groups(fleet: Iterable[Any], groups: Any, parameter: str = "groups") -> dict[str, list[str]] | None:
    """``groups`` as group name -> the fleet's image references.

    ``groups``: None (the notebook decides by labels or names), or a dict of
    group name -> a shell-style pattern (``"naive-*"``, matched against the
    full reference and against its last path part, e.g. ``app1:1``) or a list
    of image names (each must be in the fleet).  Every pattern must match an
    image, and no image may be in two groups."""
    import fnmatch

    if groups is None:
        return None
    if not isinstance(groups, Mapping) or not groups:
        raise ParameterError(f"parameter {parameter}: expected a dict such as "
                             f"{{\"naive\": \"naive-*\", \"layered\": [\"a:1\", \"b:1\"]}}, got {groups!r}")
    fleet = list(fleet)
    refs = [img.reference for img in fleet]
    out: dict[str, list[str]] = {}
    seen: dict[str, str] = {}
    for name, spec in groups.items():
        if isinstance(spec, str):
            got = [r for r in refs if fnmatch.fnmatchcase(r, spec) or fnmatch.fnmatchcase(r.rsplit("/", 1)[-1], spec)]
            if not got:
                raise ParameterError(f"parameter {parameter}: group {name!r}: pattern {spec!r} matches no image"
                                     f"{_closest(spec, refs)}; images: {_listing(refs)}")
        else:
            got = check_images(fleet, spec, f"{parameter}[{name!r}]")
        for r in got:
            if r in seen and seen[r] != name:
                raise ParameterError(f"parameter {parameter}: image {r!r} is in two groups, {seen[r]!r} and {name!r}")
            seen[r] = str(name)
        out[str(name)] = got
    return out


_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def check_groups(groups: Any, n_layers: int, image: str = "the image", parameter: str = "groups") -> list[tuple[int, int]]:
    """Groups of layer positions to merge, as ``[(first, last), …]`` (inclusive).

    Accepted forms (JSON-friendly): a string ``"1-3"`` or ``"1-3, 6-7"``; or a
    list whose items are each ``"FIRST-LAST"``, ``[FIRST, LAST]`` (two numbers
    are always first and last, never two separate positions) or ``(FIRST, LAST)``.
    Positions count from 0 (the base layer) up to ``n_layers - 1``; a group
    spans at least two layers; groups may not overlap."""
    form = 'write groups as "1-3", "1-3, 6-7" or [[1, 3], [6, 7]] (first and last layer position, inclusive)'
    if isinstance(groups, str):
        items: list[Any] = [g for g in groups.split(",") if g.strip()]
    elif isinstance(groups, (list, tuple)) and groups and all(isinstance(x, int) for x in groups):
        raise ParameterError(f"parameter {parameter}: {list(groups)!r} is ambiguous (one group or "
                             f"{len(groups)} positions?); {form}")
    elif isinstance(groups, (list, tuple)):
        items = list(groups)
    else:
        items = []
    if not items:
        raise ParameterError(f"parameter {parameter}: no group in {groups!r}; {form}")
    out = []
    for g in items:
        if isinstance(g, str) and _RANGE.match(g):
            m = _RANGE.match(g)
            first, last = int(m[1]), int(m[2] if m[2] is not None else m[1])
        elif (isinstance(g, (list, tuple)) and len(g) == 2
              and all(isinstance(x, int) and not isinstance(x, bool) for x in g)):
            first, last = g
        else:
            raise ParameterError(f"parameter {parameter}: cannot read the group {g!r}; {form}")
        if last <= first:
            raise ParameterError(f"parameter {parameter}: group {g!r} must span at least two layers, "
                                 "first < last")
        if first < 0 or last >= n_layers:
            raise ParameterError(f"parameter {parameter}: group {g!r} is outside {image}'s layers "
                                 f"(positions 0-{n_layers - 1})")
        out.append((first, last))
    out.sort()
    for (a0, a1), (b0, b1) in zip(out, out[1:]):
        if b0 <= a1:
            raise ParameterError(f"parameter {parameter}: groups {a0}-{a1} and {b0}-{b1} overlap; "
                                 "give each layer to one group at most")
    return out


def check_bandwidth(value: Any, parameter: str = "bandwidth") -> Any:
    """``value`` if ``parse_bandwidth`` reads it ("20MB/s", "100Mbit/s", bytes/s)."""
    from .pull import parse_bandwidth

    try:
        parse_bandwidth(value)
    except AnalysisError as e:
        raise ParameterError(f"parameter {parameter}: {e}") from e
    return value


def check_plan_apps(fleet: Iterable[Any], dockerfiles: Any, images: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """Notebook 05's apps: ``(apps, images)`` for ``plan_bases``.

    ``images``: app name -> image reference in ``fleet`` (or a list of
    references, each app named by its reference).  ``dockerfiles``: app name
    -> Dockerfile path or text for the same apps, or None to plan from the
    images' histories.  Needs at least two apps."""
    fleet = list(fleet)
    if isinstance(images, (list, tuple)):
        images = {str(r): r for r in images}
    if not isinstance(images, Mapping) or len(images) < 2:
        raise ParameterError("parameter images: expected at least two apps, as {app name: image name} "
                             f"or a list of image names, got {images!r}")
    refs = {str(app): check_image(fleet, ref, f"images[{app!r}]") for app, ref in images.items()}
    if dockerfiles is None:
        by_ref = {img.reference: img for img in fleet}
        return {app: by_ref[ref] for app, ref in refs.items()}, refs
    if not isinstance(dockerfiles, Mapping):
        raise ParameterError(f"parameter dockerfiles: expected {{app name: Dockerfile path or text}} or None "
                             f"(plan from the images' histories), got {dockerfiles!r}")
    if set(map(str, dockerfiles)) != set(refs):
        raise ParameterError(f"parameters dockerfiles and images name different apps: dockerfiles has "
                             f"{_listing(sorted(map(str, dockerfiles)))}, images has {_listing(sorted(refs))}")
    apps = {}
    for app, src in dockerfiles.items():
        if not isinstance(src, (str, os.PathLike)):
            raise ParameterError(f"parameter dockerfiles[{app!r}]: {src!r} is not a path or Dockerfile text")
        if "\n" not in os.fspath(src):
            check_path(src, f"dockerfiles[{app!r}]", kind="file")
        apps[str(app)] = os.fspath(src)
    return apps, refs


def check_layered(fleet: Iterable[Any], layered: Any, apps: Sequence[str]) -> tuple[list[str], list[str]]:
    """Notebook 05's ``layered``: the images built with shared bases (bases
    and apps; ``[]`` skips the comparison).  Returns ``(references,
    app_references)``, the latter the images whose repository's last part
    is an app name, in the order of ``apps``; at least two are needed."""
    refs = check_images(fleet, layered, "layered")
    if not refs:
        return [], []
    name = {r: r.split("@")[0].rsplit(":", 1)[0].rsplit("/", 1)[-1] for r in refs}
    built = [r for app in apps for r in refs if name[r] == app]
    if len(built) < 2:
        raise ParameterError(f"parameter layered: needs the images of at least two apps ({_listing(list(apps))}), "
                             f"named after them (e.g. registry/{list(apps)[0]}:1); found {_listing(built)} among "
                             f"{_listing(refs)}; pass layered=[] to skip the comparison")
    return refs, built


def check_numbers(values: Any, parameter: str, *, minimum: float | None = None, maximum: float | None = None) -> list:
    """A non-empty list of numbers, each as ``check_number`` wants it."""
    if not isinstance(values, (list, tuple)) or not values:
        raise ParameterError(f"parameter {parameter}: expected a non-empty list of numbers, got {values!r}")
    return [check_number(v, parameter, minimum=minimum, maximum=maximum) for v in values]
