"""Worker process for parallel layer scans: ``python -m layerlab.contents._worker``.

Started by :mod:`layerlab.contents.scan` with a pickled job on stdin (a
BlobProvider that hands out independent readers, the layers to scan with
their diff_ids and blob digests, the options); answers with length-prefixed pickles on stdout, one per layer:
``("ok", index, LayerScan)`` or ``("err", index, exception)``.

A separate interpreter rather than :mod:`multiprocessing`: with the spawn or
forkserver start methods multiprocessing re-imports the caller's ``__main__``
(a plain script calling ``img.files()`` at top level would recurse), and fork
is unsafe once threads (Jupyter, pyarrow, our hashing thread) are running.
"""
from __future__ import annotations

import os
import pickle
import sys


def _send(out, msg) -> None:
    try:
        data = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as e:  # noqa: BLE001 - an unpicklable exception: send its text
        from layerlab.errors import LayerlabError

        data = pickle.dumps((msg[0], msg[1], LayerlabError(f"{type(msg[2]).__name__}: {e}")))
    out.write(len(data).to_bytes(8, "little"))
    out.write(data)
    out.flush()


def main() -> int:
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr  # nothing else may write to the protocol stream
    job = pickle.load(sys.stdin.buffer)
    from layerlab.contents.cache import LayerCache
    from layerlab.contents.verify import scan_checked
    from layerlab.errors import FormatError
    from layerlab._limits import set_current

    if job.get("limits") is not None:
        set_current(job["limits"])  # the parent's limits (ll.limits) hold here too
    provider = job["provider"]
    cache = LayerCache(job["cache_root"]) if job["cache_root"] is not None else None
    for index, (group, diff_id, media_type, label, digest) in job["tasks"]:
        try:
            scan = None
            for _poss, mt, fileobj in provider.iter_blobs(group):
                scan = scan_checked(fileobj, label=label, diff_id=diff_id, digest=digest, hash=job["hash"],
                                    media_type=mt or media_type, verify=job["verify"])
                break
            if scan is None:
                raise FormatError(f"{label}: the source did not provide this layer's blob")
            if cache is not None:
                cache.put(scan)
            _send(out, ("ok", index, scan))
        except BaseException as e:  # noqa: BLE001 - report every failure to the parent
            _send(out, ("err", index, e))
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
