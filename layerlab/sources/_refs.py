"""Image references inside a file source: ``PATH[:REF]`` and tag spelling.

Shared by ``docker-archive:`` and ``oci:`` / ``oci-archive:`` (skopeo's
syntax: the path is the longest prefix naming an existing file, the rest a
tag or ``@N``).
"""
from __future__ import annotations

import os
import re

from ..errors import SourceError


def split_ref(ref: str, transport: str = "docker-archive",
              what: str = "file; give the path of a `docker save` tar") -> tuple[str, str | None]:
    """``PATH[:REF]`` → (path, ref).  The path is the longest prefix naming an existing file."""
    ref = os.fspath(ref)
    if os.path.exists(ref):
        return ref, None
    i = len(ref)
    while True:
        i = ref.rfind(":", 0, i)
        if i <= 0:
            break
        if os.path.exists(ref[:i]):
            return ref[:i], ref[i + 1:] or None
    raise SourceError(f"{transport}:{ref}: no such {what}")


def normalise_tag(tag: str) -> str:
    """``busybox`` → ``busybox:latest``; drops ``docker.io/`` and ``library/`` as Docker does."""
    t = tag
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/", "library/"):
        if t.startswith(prefix):
            t = t[len(prefix):]
            break
    last = t.rsplit("/", 1)[-1]
    if ":" not in last and "@" not in last:
        t += ":latest"
    return t


# -- Docker's reference grammar (distribution/reference: reference.go, normalize.go) ----------
# Written here rather than taken from a library: no maintained Python package implements
# ParseNormalizedNamed; the grammar is a handful of regular expressions, tested against the
# cases of distribution's own normalize_test.go (tests/test_wire_sizes.py).
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+(?:%[a-zA-Z0-9]+)?\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_DOMAIN_RE = re.compile(rf"^{_DOMAIN}$")
_REMAINDER = re.compile(
    rf"^(?P<path>{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$"
)
_HEX64 = re.compile(r"^[a-f0-9]{64}$")
DEFAULT_DOMAIN = "docker.io"
NAME_TOTAL_LENGTH_MAX = 255


def parse_reference(name: str) -> tuple[str, str, str | None, str | None] | None:
    """``(domain, path, tag, digest)`` of a Docker image reference, normalised as
    Docker's ``ParseNormalizedNamed`` does, or None when ``name`` is not one.

    The first ``/``-separated component is a registry when it holds a ``.``
    or ``:``, is ``localhost`` or has an upper-case letter; otherwise the
    registry is ``docker.io``.  ``index.docker.io`` is ``docker.io``; on
    ``docker.io`` a one-component path gets ``library/``.  A missing tag is
    ``latest`` unless a digest is given (``TagNameOnly``).  A bare 64-hex
    string is an image ID, not a name (None)."""
    if not isinstance(name, str) or not name or _HEX64.match(name):
        return None
    i = name.find("/")
    first = name[:i] if i >= 0 else ""
    if i < 0 or (not any(c in first for c in ".:") and first != "localhost" and first.lower() == first):
        domain, rest = DEFAULT_DOMAIN, name
    else:
        domain, rest = first, name[i + 1:]
    m = _REMAINDER.match(rest)
    if m is None or not _DOMAIN_RE.match(domain):
        return None
    path, tag, digest = m.group("path"), m.group("tag"), m.group("digest")
    if domain == "index.docker.io":
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = "library/" + path
    if len(domain) + 1 + len(path) > NAME_TOTAL_LENGTH_MAX:
        return None
    if tag is None and digest is None:
        tag = "latest"
    return domain, path, tag, digest


def reference_key(name: str, *, same_repo: bool = False) -> str:
    """The key two names of the same image share: a Docker reference in its
    full form (``busybox``, ``library/busybox``, ``docker.io/library/busybox:latest``
    all give ``docker.io/library/busybox:latest``); anything that is not a
    reference (a file label, ``app.tar@0``) is its own key.

    ``same_repo=True`` also joins the same repository and tag on different
    registries — a registry mirror's ``127.0.0.1:5000/team/app:1`` and the
    engine's ``team/app:1`` both give ``team/app:1``: the registry is dropped,
    and so is Docker Hub's ``library/`` (a mirror of ``busybox`` is usually
    pushed as ``HOST/busybox``)."""
    parsed = parse_reference(name)
    if parsed is None:
        return name
    domain, path, tag, digest = parsed
    tail = (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    if same_repo:
        return (path[len("library/"):] if path.startswith("library/") else path) + tail
    return f"{domain}/{path}{tail}"


def match_name(wanted: str, names: list[str], *, same_repo: bool = False) -> str | None:
    """The one name of ``names`` that ``wanted`` stands for: itself when listed,
    else the name with the same :func:`reference_key`.  None when there is
    none; ValueError naming the candidates when several match."""
    if wanted in names:
        return wanted
    key = reference_key(wanted, same_repo=same_repo)
    hits = [n for n in names if reference_key(n, same_repo=same_repo) == key]
    if len(hits) > 1:
        raise ValueError(f"{wanted!r} matches several images ({', '.join(map(repr, hits[:5]))}); name one exactly")
    return hits[0] if hits else None
