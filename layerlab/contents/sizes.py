"""Docker's layer-size rule, once, and the sizes remembered beside the file-table cache.

**The rule** (:func:`docker_size_of`).  The engine reports (``docker history``,
``docker image inspect`` Size, ``docker system df``) the size of the unpacked
layer directory the way moby's ``directory.Size`` counts it: every
non-directory's ``lstat`` size, once per inode.  From a layer's entries that
is: regular files their size, symlinks the byte length of their target
(UTF-8), hard links 0 (their target is counted), directories, devices, fifos
and whiteouts 0; a path listed twice counts once (the last entry wins, as on
extraction).  Checked against the real engine in the tests.  Two adapters
apply it: :func:`index_docker_size` to a tar's headers
(:class:`~layerlab.contents.tarindex.TarIndex`, at load time) and
:func:`table_docker_size` to a layer's file table (after a scan).

**The cache.**

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

from .whiteouts import WHITEOUT_PREFIX

SIZES_VERSION = "sizes-v1"
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


# -- the rule --------------------------------------------------------------------------------
def docker_size_of(paths, types, sizes, link_targets) -> int:
    """Docker's size of one layer from its entries, column-wise: ``paths`` (equal
    paths are one path), ``types`` in the file table's words (``file``,
    ``symlink``, ``dir``, ``hardlink`` …), ``sizes`` (None counts 0) and
    ``link_targets`` (a symlink's target; None counts as empty)."""
    import numpy as np

    kinds = np.asarray(types, dtype=object)
    return _size_rule(list(paths), kinds == "file", kinds == "symlink", [s or 0 for s in sizes], list(link_targets))


def _size_rule(keys: list[str], is_file, is_symlink, sizes, links) -> int:
    """The rule on prepared columns (``is_file`` / ``is_symlink``: numpy bool arrays)."""
    import numpy as np

    n = len(keys)
    if not n:
        return 0
    if len(set(keys)) == n:  # the common case: no path listed twice
        big = max(sizes) >> 62
        total = int(np.asarray(sizes, dtype=object if big else np.int64)[is_file].sum())
        for row in np.flatnonzero(is_symlink).tolist():
            total += len((links[row] or "").encode("utf-8", "surrogateescape"))
        return total
    last: dict[str, int] = {}
    for key, f, sym, size, link in zip(keys, is_file.tolist(), is_symlink.tolist(), sizes, links):
        last[key] = size if f else (len((link or "").encode("utf-8", "surrogateescape")) if sym else 0)
    return sum(last.values())


def index_docker_size(idx) -> int:
    """:func:`docker_size_of` a tar's headers (a
    :class:`~layerlab.contents.tarindex.TarIndex`): names compared without a
    leading ``./`` or trailing ``/``; type flags ``0`` and ``7`` are regular
    files, ``2`` symlinks."""
    import numpy as np

    keys = [n[2:] if n[:2] == "./" else n for n in idx.name]
    keys = [k.rstrip("/") if k[-1:] == "/" or k[:2] == "./" else k for k in keys]
    if any(k[:2] == "./" for k in keys):
        keys = [_clean(k) for k in keys]
    if not keys:
        return 0
    flags = np.array(idx.type)
    return _size_rule(keys, (flags == b"0") | (flags == b"7"), flags == b"2", idx.size, idx.linkname)


def _clean(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/")


def table_docker_size(table) -> int:
    """:func:`docker_size_of` one layer's file table: a pyarrow Table or a pandas
    DataFrame with the columns ``path``, ``type``, ``size``, ``link_target``
    (``Image.files()`` rows of one position).  Whiteout and opaque rows count 0
    under a key of their own (the marker's, not the path they delete)."""
    import numpy as np

    if hasattr(table, "select") and hasattr(table, "column"):  # pyarrow
        cols = table.select(["path", "type", "size", "link_target"]).to_pydict()
        paths, types, sizes, links = cols["path"], cols["type"], cols["size"], cols["link_target"]
    else:  # pandas
        import pandas as pd

        paths = [str(p) for p in table["path"].tolist()]
        types = [str(t) for t in table["type"].tolist()]
        sizes = [0 if pd.isna(s) else int(s) for s in table["size"].tolist()]
        links = [None if pd.isna(x) else str(x) for x in table["link_target"].tolist()]
    kinds = np.asarray(types, dtype=object)
    marker = (kinds == "whiteout") | (kinds == "opaque")
    keys = list(paths)
    for r in np.flatnonzero(marker).tolist():
        keys[r] = WHITEOUT_PREFIX + keys[r]
    return _size_rule(keys, kinds == "file", kinds == "symlink", [s or 0 for s in sizes], links)


# -- the cache -------------------------------------------------------------------------------
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
