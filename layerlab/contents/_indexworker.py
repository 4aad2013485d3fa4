"""Worker process for header walks: ``python -m layerlab.contents._indexworker``.

Started by :func:`layerlab.sources._blobs.fill_sizes` for large images: the
walk of the biggest layers (:func:`.tarindex.index_range`, Python-bound)
runs here, beside the caller's own walking, with a GIL of its own.  Reads a
pickled list of ``(file, offset, length, label)`` on stdin; answers with one
pickle: a list of ``("ok", TarIndex)`` or ``("err", exception)``, in order.
A separate interpreter rather than :mod:`multiprocessing`, for the reasons
given in :mod:`._worker`.
"""
from __future__ import annotations

import gc
import os
import pickle
import sys


def main() -> int:
    gc.disable()  # a short life building long lists of headers: no reference cycles worth collecting
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr  # nothing else may write to the protocol stream
    jobs = pickle.load(sys.stdin.buffer)
    from layerlab.contents.tarindex import docker_size, index_range

    results = []
    for container, offset, length, label in jobs:
        try:
            fd = os.open(container, os.O_RDONLY)
            try:
                idx = index_range(fd, offset, length, label)
                if not idx.sparse:
                    idx.docker_bytes = docker_size(idx)
                results.append(("ok", idx))
            finally:
                os.close(fd)
        except BaseException as e:  # noqa: BLE001 - reported to the parent, raised there
            try:
                pickle.dumps(e)
            except Exception:  # noqa: BLE001
                from layerlab.errors import FormatError

                e = FormatError(f"{label}: {type(e).__name__}: {e}")
            results.append(("err", e))
    out.write(pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL))
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
