"""Docker's layer sizes at load time, from the headers of uncompressed layer blobs.

:func:`fill_sizes` sets ``Layer.size`` for every uncompressed layer blob of a
store: from the size cache (:mod:`layerlab.contents.sizes`) when a verified
scan remembered it, else by walking the blob's tar headers with
:func:`layerlab.contents.tarindex.index_range` (the one tar header reader) and
applying Docker's rule (:func:`layerlab.contents.tarindex.docker_size`).  For
large images the biggest blobs are walked by a worker process
(:mod:`layerlab.contents._indexworker`) while this interpreter walks the rest;
the walked headers are handed to the contents scan so it need not walk them
again.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

from ..contents._runtime.busy import busy
from ._store import Blob


def tar_content_size(blob: Blob, where: str) -> int:
    """Docker's size of the uncompressed layer tar in ``blob``, from its headers.

    The engine reports (``docker history``, ``docker image inspect`` Size) the
    size of the unpacked layer directory the way moby's ``directory.Size``
    counts it: every non-directory's ``lstat`` size, once per inode.  From tar
    headers that is: regular files their size, symlinks the byte length of
    their target, hard links 0 (their target is counted), directories, devices,
    fifos and whiteouts 0; a path listed twice counts once (the last entry
    wins, as on extraction).  Checked against the real engine in the tests.
    """
    return _size_and_index(blob, where)[0]


def _size_and_index(blob: Blob, where: str, idx=None):
    """(Docker size, the tar's :class:`~layerlab.contents.tarindex.TarIndex`).

    The headers are walked by :func:`layerlab.contents.tarindex.index_range`
    (the same reader the contents scan uses; it reads headers only, so a 1 GB
    layer costs a few MB of reads) unless ``idx`` (walked by a worker) is
    given."""
    from ..contents.tarindex import index_range

    if idx is None:
        fd = os.open(blob.container, os.O_RDONLY)
        try:
            idx = index_range(fd, blob.offset, blob.length, where)
        finally:
            os.close(fd)
    return _docker_bytes(idx), idx


def _docker_bytes(idx) -> int:
    """:func:`~layerlab.contents.tarindex.docker_size` of a walked tar.  A sparse
    file unpacks to its full size (what ``lstat`` counts), which its headers
    state apart from the stored size: it counts as a regular file of that size."""
    from ..contents.tarindex import docker_size

    if idx.docker_bytes is not None:
        return idx.docker_bytes
    if idx.sparse_sizes:
        types, sizes = list(idx.type), list(idx.size)
        for row, real in idx.sparse_sizes.items():
            types[row], sizes[row] = b"0", real
        idx = dataclasses.replace(idx, type=types, size=sizes)
    return docker_size(idx)


PARALLEL_WALK_BYTES = 256 << 20
"""Walk the biggest layers in a worker process when the layers to walk add up
to more than this (and there are two or more, and two or more cores)."""


class _WalkWorker:
    """The header walks of some blobs, done by a separate interpreter
    (:mod:`layerlab.contents._indexworker`) while this one walks the others."""

    def __init__(self, blobs: list[tuple[Blob, str]]):
        import pickle
        import subprocess
        import sys

        from ..contents._runtime.workerenv import worker_env

        env = worker_env()
        self.keys = [(b.container, b.offset, b.length) for b, _ in blobs]
        self._proc = subprocess.Popen([sys.executable, "-m", "layerlab.contents._indexworker"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self._proc.stdin.write(pickle.dumps([(b.container, b.offset, b.length, w) for b, w in blobs]))
        self._proc.stdin.close()
        self._results: dict | None = None

    def result(self, key):
        """("ok", TarIndex) / ("err", exception) for one blob; None if the worker failed."""
        if self._results is None:
            import pickle

            try:
                got = pickle.loads(self._proc.stdout.read())
            except Exception:  # noqa: BLE001 - a dead worker: the caller walks itself
                got = None
            self._proc.wait()
            self._results = dict(zip(self.keys, got)) if isinstance(got, list) else {}
        return self._results.get(key)

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._proc.stdout.close()


def _start_walk_worker(todo: list[tuple[int, Blob, str]]):
    """A worker for the biggest blobs (about half the bytes), or None when not worth it."""
    distinct: dict[tuple[str, int, int], tuple[Blob, str]] = {}
    for _pos, blob, where in todo:
        distinct.setdefault((blob.container, blob.offset, blob.length), (blob, where))
    total = sum(b.length for b, _ in distinct.values())
    if len(distinct) < 2 or total < PARALLEL_WALK_BYTES or (os.cpu_count() or 1) < 2:
        return None
    mine: list[tuple[Blob, str]] = []
    got = 0
    for blob, where in sorted(distinct.values(), key=lambda t: -t[0].length):
        if got and got + blob.length > total * 0.6:
            continue
        mine.append((blob, where))
        got += blob.length
    if len(mine) == len(distinct):
        mine.pop()
    try:
        return _WalkWorker(mine)
    except OSError:
        return None


KEEP_INDEX_ENTRIES = 500_000
"""Keep the walked headers for the contents scan while the image has at most
this many entries (they cost ~300 bytes each in memory)."""


PROGRESS_MIN_BYTES = 2 << 30
"""Show a progress bar when the uncompressed layers to size exceed this (auto mode)."""


@busy()
def fill_sizes(layers: list, pending: list[tuple[int, Blob, str]], label: str, progress: bool | None = None,
               cache_dir: Any = None, indexes: dict | None = None) -> dict[int, tuple[int, int]]:
    """Set ``layers[pos].size`` from the headers of each pending uncompressed blob.

    A blob shared by several positions is read once.  A layer whose size was
    remembered after a verified scan of the same diff_id and length
    (:mod:`layerlab.contents.sizes`, under ``cache_dir``: None the default
    cache, False none) takes it from there instead of walking its headers.
    ``progress``: True / False, or None for a bar only when the blobs to walk
    add up to more than :data:`PROGRESS_MIN_BYTES` (a few seconds of header
    walking).  ``indexes``, when given, receives the walked headers per blob
    (``{(container, offset, length): TarIndex}``) for the contents scan.
    Returns ``{position: (size, blob length)}`` for every sized
    position, for :class:`StoreBlobs` (the contents scan remembers them)."""
    from ..contents.sizes import get_size

    done: dict[tuple[str, int, int], int] = {}
    walk: list[tuple[int, Blob, str]] = []
    for item in pending:
        pos, blob, _where = item
        key = (blob.container, blob.offset, blob.length)
        if key not in done:
            diff_id = getattr(layers[pos], "diff_id", None)
            known = get_size(diff_id, blob.length, cache_dir)
            if known is None and cache_dir is not False:
                from ..contents.sizes import local_key

                known = get_size(local_key(blob.container, blob.offset, blob.length, diff_id), blob.length,
                                 cache_dir)
            if known is not None:
                done[key] = known
        walk.append(item)
    todo = [t for t in walk if (t[1].container, t[1].offset, t[1].length) not in done]
    total = sum(b.length for _p, b, _w in todo)
    bar = None
    if progress or (progress is None and total > PROGRESS_MIN_BYTES):
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="B", unit_scale=True, desc=f"sizing layers of {label}", leave=False)
    sized: dict[int, tuple[int, int]] = {}
    kept = 0
    from ..contents._runtime.readahead import read_ahead

    read_ahead((b.container, b.offset, b.length) for _p, b, _w in todo)
    worker = _start_walk_worker(todo)
    if worker is not None:
        theirs = set(worker.keys)
        walk = [t for t in walk if (t[1].container, t[1].offset, t[1].length) not in theirs] + [
            t for t in walk if (t[1].container, t[1].offset, t[1].length) in theirs]
    try:
        for pos, blob, where in walk:
            key = (blob.container, blob.offset, blob.length)
            if key not in done:
                res = None
                if worker is not None and key in worker.keys:
                    # this interpreter's own walks are done (an import beside them would hold the GIL
                    # they take back after every read): while the worker finishes, import what frames need
                    from ..contents._runtime.preload import preload_pandas

                    preload_pandas()
                    res = worker.result(key)
                if res is not None and res[0] == "err":
                    raise res[1]
                done[key], idx = _size_and_index(blob, where, res[1] if res is not None else None)
                kept += len(idx)
                if indexes is not None and kept <= KEEP_INDEX_ENTRIES:
                    indexes[key] = idx
                if bar is not None:
                    bar.update(blob.length)
            layers[pos].size = done[key]
            sized[pos] = (done[key], blob.length)
    finally:
        if bar is not None:
            bar.close()
        if worker is not None:
            worker.close()
    return sized
