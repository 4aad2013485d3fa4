"""Docker layer sizes remembered beside the file-table cache, keyed by diff_id.

Loading a ``docker-archive:`` / ``oci:`` image sizes every uncompressed layer
by walking its tar headers (:func:`layerlab.sources._blobs.tar_content_size`),
which on a multi-GB image costs about a second — on every load, even when the
layer's file table is already cached.  The size is a function of the layer's
bytes alone, so once a scan has *verified* those bytes against the diff_id,
the exact figure the header walk gave is stored here and later loads take it
instead of walking again.

Kept in its own small module without pyarrow so ``load()`` stays cheap.  Each
entry also records the uncompressed tar's length; a blob of another length
(a truncated or replaced layer) is walked as before, so load-time errors for
damaged archives are unchanged.  Layout (names from the validated hex digest
only)::

    <cache_dir>/sizes-v1/<hex[:2]>/<hex>.json    {"size": N, "length": L}
    <cache_dir>/sizes-v1/local/<hex[:2]>/<hex>.json   (after verify=False scans of
                                                      an unchanged local file)
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

SIZES_VERSION = "sizes-v1"
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def default_cache_dir() -> Path:
    env = os.environ.get("LAYERLAB_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "layerlab"
    return Path.home() / ".cache" / "layerlab"


_LOCAL_RE = re.compile(r"^local:[0-9a-f]{64}$")


def _path(root, diff_id: str | None) -> Path | None:
    """The entry for a diff_id, or for a ``local:`` key (an unverified layer of
    an unchanged local file: see :func:`layerlab.contents.cache.local_key`)."""
    if not diff_id:
        return None
    base = Path(root).expanduser() if root is not None else default_cache_dir()
    if _DIGEST_RE.match(diff_id):
        hexpart = diff_id[7:]
        return base / SIZES_VERSION / hexpart[:2] / f"{hexpart}.json"
    if _LOCAL_RE.match(diff_id):
        hexpart = diff_id[6:]
        return base / SIZES_VERSION / "local" / hexpart[:2] / f"{hexpart}.json"
    return None


def get_size(diff_id: str | None, length: int, root=None) -> int | None:
    """The remembered Docker size of the layer ``diff_id`` whose uncompressed
    tar is ``length`` bytes; None when unknown (or ``root`` is False)."""
    if root is False:
        return None
    p = _path(root, diff_id)
    if p is None:
        return None
    try:
        doc = json.loads(p.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("length") != length:
        return None
    size = doc.get("size")
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None


def put_size(diff_id: str | None, size: int, length: int, root=None) -> None:
    """Remember ``size`` for a layer whose bytes were verified to hash to ``diff_id``.
    Best effort: a cache that cannot be written only costs a header walk later."""
    if root is False:
        return
    p = _path(root, diff_id)
    if p is None:
        return
    try:
        write_atomically(p, lambda f: json.dump({"size": int(size), "length": int(length)}, f), ".json", "w")
    except OSError:
        pass


def write_atomically(path: Path, write, suffix: str, mode: str = "wb") -> None:
    """Write ``path`` via a temp file in the same directory and ``os.replace``, so
    concurrent readers (other processes sharing the cache) never see a partial
    file.  ``write(f)`` fills the open temp file.  OSError propagates."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=suffix)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def is_local_key(key: str | None) -> bool:
    return bool(key) and bool(_LOCAL_RE.match(key or ""))


def local_key(container: str, offset: int, length: int, diff_id: str | None) -> str | None:
    """``local:<sha256 hex>`` naming an unverified layer by where it is stored:
    the claimed diff_id, the file's real path, device, inode, size, mtime and
    ctime (ns), and the byte range.  Any change to the file (even one that
    keeps size and mtime: ctime moves) gives another key.  None when the
    file cannot be stat-ed."""
    try:
        real = os.path.realpath(container)
        st = os.stat(real)
    except OSError:
        return None
    ident = json.dumps([diff_id, real, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                        offset, length])
    return "local:" + hashlib.sha256(ident.encode("utf-8", "surrogateescape")).hexdigest()
