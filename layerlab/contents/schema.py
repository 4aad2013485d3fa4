"""Columns and dtypes of the layer-contents frames.

``Image.files()`` — one row per (image, layer, tar entry), in tar order
    ============  ===================  ==========================================================
    column        dtype                meaning
    ============  ===================  ==========================================================
    image         string               the image's key (its reference)
    position      Int64                the layer (0 = base)
    diff_id       string               the layer's diff_id (sha256 of the uncompressed tar)
    path          string               normalised: no leading ``/`` or ``./``, ``..`` resolved
                                       without climbing above the root.  For ``whiteout`` rows the
                                       path *deleted* (``a/.wh.b`` → ``a/b``); for ``opaque`` rows
                                       the directory made opaque (``a/.wh..wh..opq`` → ``a``;
                                       ``""`` is the root)
    type          string               file, dir, symlink, hardlink, char, block, fifo,
                                       whiteout, opaque
    size          Int64                the tar header's size (regular files: content bytes;
                                       others normally 0) — dive's and ``docker history``'s unit
    mode          Int64                permission bits (incl. setuid/setgid/sticky; 0o755 = 493)
    uid, gid      Int64                owner ids
    link_target   string               symlink target (as written) or hardlink target (normalised)
    mtime         datetime64[ns, UTC]  modification time (null when out of range: see warning)
    hash          string               content hash of regular files, prefixed by the algorithm:
                                       ``xxh128:…`` (default, the xxhash package), ``blake2b:…``
                                       (fallback without xxhash) or ``sha256:…`` (``hash="sha256"``);
                                       null for other types or ``hash=None``
    warning       string               recoverable oddities of this entry (absolute name, ``..``,
                                       duplicate path, bad UTF-8, unknown type, …); null when none
    ============  ===================  ==========================================================

``Image.filesystem()`` — the final merged view, one row per visible path
    The columns of ``files()`` (``position``/``diff_id`` say which layer the
    visible entry comes from), plus:

    ============  ===================  ==========================================================
    content_size  Int64                bytes of content reachable at this path: ``size`` for a
                                       file, the target's size for a hard link (also to a file
                                       in a lower layer), 0 otherwise
    ============  ===================  ==========================================================

    For hard links ``hash`` is the target's content hash.  ``warning`` adds
    what the merge found: symlink loops, a parent that is a symlink, a hard
    link whose target does not exist.
"""
from __future__ import annotations

FILE_COLUMNS: dict[str, str] = {
    "image": "string",
    "position": "Int64",
    "diff_id": "string",
    "path": "string",
    "type": "string",
    "size": "Int64",
    "mode": "Int64",
    "uid": "Int64",
    "gid": "Int64",
    "link_target": "string",
    "mtime": "datetime64[ns, UTC]",
    "hash": "string",
    "warning": "string",
}

FILESYSTEM_COLUMNS: dict[str, str] = {**FILE_COLUMNS, "content_size": "Int64"}

__all__ = ["FILE_COLUMNS", "FILESYSTEM_COLUMNS"]
