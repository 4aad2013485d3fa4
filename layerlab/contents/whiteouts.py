"""The OCI layer path rules, once: tar names to paths, whiteout and opaque markers.

OCI image spec, "Representing Changes" / "Whiteouts":

* ``<dir>/.wh.<name>`` deletes ``<dir>/<name>`` from the layers below;
* ``<dir>/.wh..wh..opq`` makes ``<dir>`` opaque (hides what the layers below
  have in it);
* other ``.wh..wh.*`` names (``.wh..wh.plnk``, ``.wh..wh.aufs``) are AUFS
  bookkeeping: not whiteouts, and runtimes do not extract them;
* a bare ``.wh.`` names nothing and deletes nothing.

The scan (:mod:`.tarscan`, :mod:`.rangescan`), the OCI merge (:mod:`.merge`),
dive's trees (:mod:`.dive`) and the merged-layer writer of
:mod:`layerlab.analysis.merge` all parse names with these functions.  Paths
are relative (no leading ``/``), components joined by ``/``; ``""`` is the root.
"""
from __future__ import annotations

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
META_PREFIX = ".wh..wh."          # AUFS bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not whiteouts

WHITEOUT = "whiteout"
OPAQUE = "opaque"
META = "meta"
EMPTY = "empty"


def parent(path: str) -> str:
    """The parent of ``path`` (``""`` for a top-level name)."""
    return path.rpartition("/")[0]


def classify(base: str) -> str | None:
    """What a base name (last path component) means: :data:`OPAQUE`,
    :data:`WHITEOUT`, :data:`META` (AUFS bookkeeping), :data:`EMPTY` (a bare
    ``.wh.``) or None (an ordinary name)."""
    if not base.startswith(WHITEOUT_PREFIX):
        return None
    if base == OPAQUE_MARKER:
        return OPAQUE
    if base.startswith(META_PREFIX):
        return META
    if base == WHITEOUT_PREFIX:
        return EMPTY
    return WHITEOUT


def is_meta_name(path: str) -> bool:
    """``path``'s last component is an AUFS ``.wh..wh.*`` name (the opaque marker included)."""
    return path.rpartition("/")[2].startswith(META_PREFIX)


def whiteout_name(path: str) -> str:
    """The tar name of the whiteout that deletes ``path`` (``a/b`` → ``a/.wh.b``)."""
    head, _, base = path.rpartition("/")
    return f"{head}/{WHITEOUT_PREFIX}{base}" if head else WHITEOUT_PREFIX + base


def opaque_name(directory: str) -> str:
    """The tar name of the marker that makes ``directory`` opaque."""
    return f"{directory}/{OPAQUE_MARKER}" if directory else OPAQUE_MARKER


def is_marker(name: str) -> bool:
    """A tar name that is a whiteout or opaque marker (its row has no content hash,
    whatever its type flag)."""
    if WHITEOUT_PREFIX not in name:
        return False
    return classify(normalise_path(name)[0].rsplit("/", 1)[-1]) in (WHITEOUT, OPAQUE)


def shown_utf8(text: str) -> tuple[str, bool]:
    """(``text`` with undecodable bytes — surrogates from a tar's raw names — shown as
    ``\\x`` escapes, whether it was valid UTF-8)."""
    try:
        text.encode("utf-8")
        return text, True
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"), False


def normalise_path(name: str) -> tuple[str, list[str]]:
    """Tar member name -> (path without leading ``/`` or ``./``, warnings).

    ``..`` components are resolved lexically and never climb above the root
    (as Docker's layer applier requires); a name that tried to is flagged.
    """
    if name.isascii() and "/." not in name and "//" not in name and not name.startswith(("/", ".")):
        return name.rstrip("/"), []  # the common case: already clean
    notes: list[str] = []
    if not name.isascii():
        name, ok = shown_utf8(name)
        if not ok:
            notes.append("name is not valid UTF-8 (undecodable bytes shown as \\x escapes)")
    if name.startswith("/"):
        notes.append("absolute path in the tar (leading '/' removed)")
    parts: list[str] = []
    dotdot = False
    escaped = False
    for part in name.split("/"):
        if part == "" or part == ".":
            continue
        if part == "..":
            dotdot = True
            if parts:
                parts.pop()
            else:
                escaped = True
            continue
        parts.append(part)
    path = "/".join(parts)
    if escaped:
        notes.append(f"'..' climbs above the root; clamped to /{path}")
    elif dotdot:
        notes.append("name contains '..' components (resolved lexically)")
    return path, notes
