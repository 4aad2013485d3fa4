"""The fuzz worker: a child process that loads one hostile input at a time.

Protocol: length-prefixed pickles on stdin/stdout.  A request is
``{"target": NAME, "args": {...}}``; the answer says how the case ended:

``ok``      loaded and every frame built
``error``   a :class:`layerlab.errors.LayerlabError` subclass (type and message kept)
``crash``   any other exception (type, where it was raised, the traceback)

and lists every path written outside the case's own directory and cache
(``wrote``), including files that appear beside the input once it is loaded.  The worker runs with ``HOME``, ``TMPDIR`` and the current
directory set to empty directories of its own, and an address-space limit,
so a memory bomb ends as a ``MemoryError`` crash instead of swapping the host.

Run as ``python -m _fuzz.worker`` with ``tests/`` on ``sys.path``.
"""
from __future__ import annotations

import os
import pickle
import resource
import shutil
import struct
import sys
import traceback
from pathlib import Path

MEMORY_LIMIT = 3 << 30   # address space of the worker; a larger need is a finding, not a swap storm


def _listing(root: Path) -> set[str]:
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            out.add(os.path.relpath(os.path.join(dirpath, n), root))
    return out


def _where(tb) -> str:
    """The innermost frame in layerlab (else the innermost frame): ``path:line function``."""
    frames = traceback.extract_tb(tb)
    inside = [f for f in frames if "/layerlab/" in f.filename.replace(os.sep, "/")]
    f = (inside or frames or [None])[-1]
    if f is None:
        return "?"
    name = f.filename.replace(os.sep, "/")
    cut = name.rfind("/layerlab/")
    short = name[cut + 1:] if cut >= 0 else os.path.basename(name)
    return f"{short}:{f.lineno} {f.name}"


def exercise(images, cache: str) -> None:
    """What a user does with a loaded image: every frame, the reprs, the contents."""
    from layerlab.analysis.efficiency import efficiency

    for img in images:
        repr(img)
        img._repr_html_()
        img.layers()
        img.history()
        img.images()
        if img.has_file_tables:
            img.files(cache_dir=cache, progress=False)
            img.filesystem(cache_dir=cache, progress=False)
            efficiency(img, cache_dir=cache, progress=False)


def run_case(target: str, args: dict, case_dir: Path) -> dict:
    from _fuzz import targets

    cache = case_dir / "cache"
    inputs = case_dir / "in"
    inputs.mkdir(parents=True)
    os.chdir(case_dir / "cwd")
    fn = getattr(targets, "target_" + target.replace("-", "_"))
    given: set[str] = set()
    try:
        load = fn(inputs, **args)
        given = _listing(inputs)
        images = load()
        exercise(images, str(cache))
        return {"outcome": "ok", "images": len(images), "beside_input": sorted(_listing(inputs) - given)}
    except BaseException as e:  # noqa: BLE001 - the point is to classify everything
        from layerlab.errors import LayerlabError

        if isinstance(e, LayerlabError):
            return {"outcome": "error", "type": type(e).__name__, "message": str(e)[:2000],
                    "beside_input": sorted(_listing(inputs) - given)}
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        return {"outcome": "crash", "type": type(e).__name__, "message": str(e)[:2000],
                "where": _where(e.__traceback__), "traceback": traceback.format_exc()[-6000:]}


def main() -> None:
    base = Path(os.environ["LAYERLAB_FUZZ_ROOT"])
    try:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    except (ValueError, OSError):
        pass
    import layerlab  # noqa: F401 - warm the imports before the first case
    import layerlab.analysis.efficiency  # noqa: F401
    import layerlab.contents.layers  # noqa: F401
    import layerlab.sources.archive  # noqa: F401

    rd, wr = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # stray prints must not corrupt the protocol
    n = 0
    while True:
        head = rd.read(4)
        if len(head) < 4:
            return
        req = pickle.loads(rd.read(struct.unpack(">I", head)[0]))
        n += 1
        case_dir = base / "cases" / str(n)
        (case_dir / "cwd").mkdir(parents=True)
        watched = {"home": Path(os.environ["HOME"]), "tmp": Path(os.environ["TMPDIR"]), "cwd": case_dir / "cwd"}
        before = {k: _listing(p) for k, p in watched.items()}
        res = run_case(req["target"], req.get("args", {}), case_dir)
        os.chdir(base)
        wrote = [f"in/{x}" for x in res.pop("beside_input", [])]
        for k, p in watched.items():
            wrote += [f"{k}/{x}" for x in sorted(_listing(p) - before[k])]
        # the case directory itself may hold only the inputs, the cache and the (checked) cwd
        wrote += [f"case/{x}" for x in sorted(os.listdir(case_dir)) if x not in ("in", "cache", "cwd")]
        res["wrote"] = wrote
        shutil.rmtree(case_dir, ignore_errors=True)
        out = pickle.dumps(res)
        wr.write(struct.pack(">I", len(out)) + out)
        wr.flush()


if __name__ == "__main__":
    main()
