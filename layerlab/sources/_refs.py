"""Image references inside a file source: ``PATH[:REF]`` and tag spelling.

Shared by ``docker-archive:`` and ``oci:`` / ``oci-archive:`` (skopeo's
syntax: the path is the longest prefix naming an existing file, the rest a
tag or ``@N``).
"""
from __future__ import annotations

import os

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
