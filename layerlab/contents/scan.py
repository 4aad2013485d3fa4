"""Every layer of an image as a file table: from the cache, else by reading its
blob from the image's source (and then caching it); stacked into the image
table and merged (:func:`image_contents`, remembered per image: :mod:`.memo`).

Layers are independent, so when the source can hand out independent readers
(``docker-archive:``, ``oci:``, ``oci-archive:`` — blobs are byte ranges of a
file) and there is enough to read, the blobs are scanned by a pool of worker
processes (2 by default: this is what "use both cores" buys on an I/O-light,
CPU-bound scan).  A ``docker-daemon:`` source streams ``image.save()`` once,
in tar order, and is scanned in this process.  Plain-tar byte ranges of local
files are walked here and hashed in threads (:mod:`.rangescan`).

The engine uses only what :class:`layerlab.model.BlobProvider` declares of
``img.blobs`` and duck-types the image (it sits above the model: the model's
``Image.files()`` calls into it).
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pyarrow as pa

from ._runtime.busy import busy
from ..errors import AnalysisError, FormatError, LayerlabError
from .._limits import current as current_limits, exceeded
from .cache import LayerCache
from .memo import memo_of
from .options import ScanOptions, layer_label, local_layer_key
from .sizes import table_docker_size as docker_size
from .tarscan import LayerScan, hash_algorithm
from .verify import check_plain_digest, mark_verified, scan_checked, source_verified

if TYPE_CHECKING:
    from ..model import Image

PARALLEL_MIN_BYTES = 32 << 20   # below this, starting worker processes costs more than it saves


@busy()
def scan_image(img: Image, options: ScanOptions | None = None, **kw) -> list[LayerScan]:
    """One :class:`LayerScan` per layer position of ``img`` (shared layers share the object)."""
    opts = options or ScanOptions(**kw)
    algo, _ = hash_algorithm(opts.hash)
    cache = opts.cache()
    n = len(img.layer_list)
    lim = current_limits()
    if n > lim.layers_per_image:
        raise exceeded(f"{img.reference}: layers", "layers_per_image", lim.layers_per_image, amount=n)
    out: list[LayerScan | None] = [None] * n

    # group positions by content: a diff_id listed twice is read once
    groups: dict[str, list[int]] = {}
    for layer in img.layer_list:
        key = layer.diff_id or f"?{layer.position}"
        groups.setdefault(key, []).append(layer.position)

    missing: list[list[int]] = []
    for key, poss in groups.items():
        scan = cache.get(key, algo) if (cache is not None and not key.startswith("?")) else None
        if scan is not None and opts.verify and not all(source_verified(img, p, cache.root) for p in poss):
            scan = None  # the table is the diff_id's, but this stored copy was never checked: read it
        if scan is None and cache is not None and not opts.verify:
            lk = local_layer_key(img, poss[0])  # an earlier verify=False scan of the same, unchanged file
            scan = cache.get(lk, algo) if lk else None
        if scan is None and img.files_dir is not None and not key.startswith("?"):
            scan = LayerCache(img.files_dir).get(key, algo)  # tables shipped with a snapshot
        if scan is not None:
            for p in poss:
                out[p] = scan
        else:
            missing.append(poss)

    if missing:
        if img.blobs is None:
            raise AnalysisError(
                f"{img.reference}: layer contents are not available from a {img.source!r} source "
                f"({len(missing)} of {len(groups)} layers are not in the cache {cache.root if cache else '(off)'}); "
                "load the image from docker-daemon:, docker-archive:, oci: or oci-archive: to read its files"
            )
        header_sizes = img.blobs.header_sizes or {}
        decoded = sum(s.uncompressed_bytes for s in {id(s): s for s in out if s is not None}.values())
        for poss, scan in _scan_missing(img, missing, opts, cache):
            decoded += scan.uncompressed_bytes
            if decoded > lim.image_bytes:
                raise exceeded(f"{img.reference}: uncompressed bytes of its layers", "image_bytes", lim.image_bytes,
                               "bytes", amount=decoded)
            if opts.verify:
                layer = img.layer_list[poss[0]]
                check_plain_digest(scan, layer.digest, layer.diff_id, layer_label(img, poss[0]))
            for p in poss:
                out[p] = scan
            if cache is not None:
                _remember_size(img, poss, scan, header_sizes, cache)
                if opts.verify and scan.verified:
                    r = img.blobs.byte_range(poss[0])
                    mark_verified(img, [p for p in poss if img.blobs.byte_range(p) == r], cache.root)

    for pos, scan in enumerate(out):
        if scan is None:
            raise FormatError(
                f"{img.reference}: the source did not provide the blob of layer {pos}; the image is incomplete"
            )
        layer = img.layer_list[pos]
        if layer.size is None:
            layer.size = docker_size(scan.table)
    return out  # type: ignore[return-value]


def _remember_size(img: Image, poss: list[int], scan: LayerScan, header_sizes: dict, cache: LayerCache) -> None:
    """Store the size the source read from this layer's tar headers (see
    :mod:`.sizes`) once the scan has verified the bytes are the diff_id's (or,
    unverified, under the local file's key)."""
    from .sizes import put_size

    for p in poss:
        known = header_sizes.get(p)
        diff_id = img.layer_list[p].diff_id
        if known is None or scan.uncompressed_bytes != known[1]:
            continue
        if scan.verified and scan.diff_id == diff_id:
            put_size(diff_id, known[0], known[1], cache.root)
            return
        if not scan.verified and scan.local_key:
            put_size(scan.local_key, known[0], known[1], cache.root)
            return


def _parallel_ok(img: Image, missing: list[list[int]], opts: ScanOptions) -> bool:
    if opts.workers == 1 or len(missing) < 2:
        return False
    if img.blobs is None or not img.blobs.independent_readers:
        return False
    try:
        import pickle

        pickle.dumps(img.blobs)
    except Exception:  # noqa: BLE001 - a provider we cannot hand to another process
        return False
    if opts.workers and opts.workers > 1:
        return True
    total = sum(_stored_bytes(img, p[0]) for p in missing)
    return total >= PARALLEL_MIN_BYTES and (os.cpu_count() or 1) > 1


def _stored_bytes(img, pos: int) -> int:
    """The bytes a layer's blob holds as stored (to weigh scan work): the plain
    file range where the source has one, else its wire size, else its size."""
    rng = img.blobs.byte_range(pos) if img.blobs is not None else None
    if rng is not None:
        return int(rng[2])
    layer = img.layer_list[pos]
    return int(layer.compressed_size or layer.size or 0)


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="layer", leave=False)


def _scan_missing(img: Image, missing: list[list[int]], opts: ScanOptions, cache: LayerCache | None):
    bar = _progress(len(missing), f"reading layers of {img.reference}", opts.progress)
    try:
        ranged, missing = _split_ranged(img, missing, opts)
        if ranged:
            yield from _scan_ranged(img, ranged, opts, cache, bar)
        if not missing:
            return
        if _parallel_ok(img, missing, opts):
            yield from _scan_parallel(img, missing, opts, cache, bar)
        else:
            yield from _scan_sequential(img, missing, opts, cache, bar)
    finally:
        if bar is not None:
            bar.close()


def _split_ranged(img: Image, missing: list[list[int]], opts: ScanOptions):
    """Split the layers to scan into (plain tars that are byte ranges of local
    files, the rest).  The first go to :mod:`.rangescan` (threads, no decoding);
    compressed blobs and streams keep the streaming scan."""
    if img.blobs is None:
        return [], missing
    byte_range = img.blobs.byte_range
    from .compression import NONE, detect

    ranged, rest = [], []
    for poss in missing:
        r = byte_range(poss[0])
        if r is None:
            rest.append(poss)
            continue
        container, offset, length = r
        try:
            fd = os.open(container, os.O_RDONLY)
            try:
                head = os.pread(fd, 8, offset) if length else b""
            finally:
                os.close(fd)
        except OSError:
            rest.append(poss)  # the streaming path reports the problem with its context
            continue
        if detect(head[:min(8, length)]) == NONE:
            ranged.append((poss, r))
        else:
            rest.append(poss)
    return ranged, rest


def _scan_ranged(img: Image, ranged, opts: ScanOptions, cache: LayerCache | None, bar):
    """Scan plain-tar layers by byte range: walk headers here, hash in threads."""
    import queue
    import threading
    from concurrent.futures import wait

    from . import rangescan as R

    take_index = img.blobs.take_index
    fds: dict[str, int] = {}
    jobs: list[tuple[list[int], R.RangeJob]] = []
    try:
        for poss, (container, offset, length) in sorted(ranged, key=lambda t: t[1]):
            if container not in fds:
                try:
                    fds[container] = os.open(container, os.O_RDONLY)
                except OSError as e:
                    raise FormatError(f"{img.reference}: cannot open {container} ({e.strerror or e})") from e
            layer = img.layer_list[poss[0]]
            job = R.RangeJob(fds[container], offset, length, layer_label(img, poss[0]), layer.diff_id,
                             index=take_index(poss[0]))
            if not opts.verify:
                from .sizes import local_key

                job.local_key = local_key(container, offset, length, layer.diff_id)
            jobs.append((poss, job))
        # biggest first: with verification each layer is one sequential pass,
        # and the longest one decides when the scan ends
        from ._runtime.readahead import read_ahead

        read_ahead(r for _poss, r in ranged)  # a no-op when the load's walk brought them in already
        raws = {id(job): R.walk(job, opts.hash, opts.verify) for _p, job in sorted(jobs, key=lambda j: -j[1].length)}
        from ._runtime.preload import preload_pandas

        preload_pandas()
        # finish layers as their hashing completes: tables are built and cached
        # here while the pool still hashes the longer layers
        done_q: queue.Queue = queue.Queue()
        for k, (_p, job) in enumerate(jobs):
            futs = R.futures(job)
            if not futs:
                done_q.put(k)
                continue
            left = [len(futs)]
            lock = threading.Lock()

            def one_done(_f, k=k, left=left, lock=lock):
                with lock:
                    left[0] -= 1
                    last = left[0] == 0
                if last:
                    done_q.put(k)

            for f in futs:
                f.add_done_callback(one_done)
        # with a sha256 pass to wait for, this thread would idle: compute the image's results meanwhile
        early = _early_results(img, jobs, raws, opts, cache) if any(
            R.needs_sha(job, opts.verify) for _p, job in jobs) else None
        prebuilt = early[0] if early is not None else {}
        puts: list = []
        for _ in range(len(jobs)):
            poss, job = jobs[done_q.get()]
            scan = R.finish(job, raws[id(job)], opts.hash, opts.verify, prebuilt.pop(id(job), None))
            if cache is not None:  # Parquet writing releases the GIL: let the pool do it
                puts.append(R.pool().submit(cache.put, scan))
            if bar is not None:
                bar.update(1)
            yield poss, scan
        for fut in puts:
            fut.result()  # an unwritable cache is reported here
        if early is not None:  # every layer read and (if asked) verified: the results may be used
            from . import figures

            memo_of(img).early = (figures.results_memo_key(img, opts), early[1])
    finally:
        R.cancel([job for _p, job in jobs])
        wait([f for _p, job in jobs for f in R.futures(job)])
        for fd in fds.values():
            os.close(fd)


def _early_results(img: Image, jobs, raws, opts: ScanOptions, cache: LayerCache | None):
    """While the pool hashes, build each layer's table without its hashes, stack
    them and compute the image's merge results (:func:`.figures.compute`;
    neither looks at hashes), so ``efficiency()`` / ``waste()`` after
    ``files()`` find them done instead of stacking the layers again.  Called
    when a sha256 pass (one sequential read per layer) keeps the pool busy
    long after this thread has walked the headers: verified scans of the
    bench image took 2.77 s -> 2.44 s (median of 4).  Without one, the
    hashing ends about when this would, and a ``files()``-only caller would
    pay for the merge (measured no gain), so it is not called.

    Returns ``({id(job): build_table_deferred(...)}, ImageResults)``, or None
    when this scan does not hold every layer of the image, when the results
    are cached already, or when anything fails (the later, ordinary path
    then computes and reports it)."""
    from types import SimpleNamespace

    n = len(img.layer_list)
    if not n or sorted(p for poss, _job in jobs for p in poss) != list(range(n)):
        return None
    try:
        from . import figures
        from .merge import merge_table
        from .tarscan import build_table_deferred

        path = figures.cached_results_path(img, opts, cache)
        if path is not None and path.is_file():
            return None
        prebuilt = {}
        scans: list = [None] * n
        for poss, job in jobs:
            prebuilt[id(job)] = built = build_table_deferred(raws[id(job)])
            for p in poss:
                scans[p] = SimpleNamespace(table=built[0], diff_id=job.expected_diff_id or "")
        table = image_table(img, scans)
        return prebuilt, figures.compute(table, merge_table(table), n)
    except Exception:  # noqa: BLE001 - an optimisation only: the ordinary path reports problems
        return None


def _scan_sequential(img, missing, opts, cache, bar):
    yield from _scan_sequential_groups(img, missing, None, opts, cache, bar)


def _scan_sequential_groups(img, missing, _positions, opts, cache, bar):
    wanted: dict[int, list[int]] = {p: poss for poss in missing for p in poss}
    done: set[int] = set()
    blobs = img.blobs.iter_blobs(sorted(wanted))
    try:
        for poss, media_type, fileobj in blobs:
            first = next((p for p in poss if p in wanted), None)
            if first is None or first in done:
                continue
            group = wanted[first]
            scan = _scan_one(img, group, media_type, fileobj, opts)
            if cache is not None:
                cache.put(scan)
            done.update(group)
            if bar is not None:
                bar.update(1)
            yield group, scan
    finally:
        blobs.close()


def _scan_one(img: Image, group: list[int], media_type, fileobj, opts: ScanOptions) -> LayerScan:
    layer = img.layer_list[group[0]]
    return scan_checked(fileobj, label=layer_label(img, group[0]), diff_id=layer.diff_id, digest=layer.digest,
                        hash=opts.hash, media_type=media_type or layer.media_type, verify=opts.verify)


def _scan_parallel(img, missing, opts, cache, bar):
    """Scan blobs in ``workers`` separate interpreters (see :mod:`._worker`)."""
    import pickle
    import queue
    import subprocess
    import sys
    import threading

    workers = opts.workers if opts.workers and opts.workers > 1 else min(2, os.cpu_count() or 1)
    # biggest first into the least loaded worker, so they finish together
    tasks = []
    for i, group in enumerate(missing):
        layer = img.layer_list[group[0]]
        tasks.append((i, (group, layer.diff_id, layer.media_type, layer_label(img, group[0]), layer.digest)))
    weight = lambda t: _stored_bytes(img, t[1][0][0])  # noqa: E731
    bins: list[list] = [[] for _ in range(min(workers, len(tasks)))]
    loads = [0] * len(bins)
    for t in sorted(tasks, key=lambda t: -weight(t)):
        k = loads.index(min(loads))
        bins[k].append(t)
        loads[k] += weight(t)

    from ._runtime.workerenv import worker_env

    env = worker_env()
    cache_root = os.fspath(cache.root) if cache is not None else None
    results: queue.Queue = queue.Queue()
    procs = []

    def pump(k: int, stream) -> None:
        try:
            while True:
                head = stream.read(8)
                if len(head) < 8:
                    break
                results.put(pickle.loads(stream.read(int.from_bytes(head, "little"))))
        except Exception as e:  # noqa: BLE001
            results.put(("err", -1, e))
        finally:
            results.put(("eof", k, None))

    local, bins = bins[0], bins[1:]  # this process scans one share itself
    try:
        for k, b in enumerate(bins):
            p = subprocess.Popen([sys.executable, "-m", "layerlab.contents._worker"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, env=env)
            procs.append(p)
            job = {"provider": img.blobs, "tasks": b, "hash": opts.hash, "verify": opts.verify,
                   "cache_root": cache_root, "limits": current_limits()}
            p.stdin.write(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
            p.stdin.close()
            threading.Thread(target=pump, args=(k, p.stdout), daemon=True).start()
        groups = dict(tasks)
        if local:
            wanted = [p for _i, (group, *_rest) in local for p in group]
            yield from _scan_sequential_groups(img, [t[1][0] for t in local], wanted, opts, cache, bar)
        pending, alive = len(tasks) - len(local), len(procs)
        while pending and alive:
            kind, index, payload = results.get()
            if kind == "eof":
                alive -= 1
                continue
            if kind == "err":
                raise payload
            pending -= 1
            if bar is not None:
                bar.update(1)
            yield groups[index][0], payload
        if pending:
            raise LayerlabError(
                f"{img.reference}: a layer-scanning worker process ended early ({pending} layers unread); "
                "see its message above, or pass workers=1 to scan in this process"
            )
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()


# -- the image table ---------------------------------------------------------------
def image_table(img: Image, scans: list[LayerScan]) -> pa.Table:
    """All layers' rows of one image, with image/position/diff_id columns, as Arrow."""
    parts = []
    for pos, scan in enumerate(scans):
        t = scan.table
        n = t.num_rows
        diff_id = img.layer_list[pos].diff_id or scan.diff_id
        # pa.repeat fills the constant columns in C (a Python list of n strings cost 30 ms on 66k rows)
        t = t.add_column(0, "diff_id", pa.repeat(pa.scalar(diff_id, pa.string()), n))
        t = t.add_column(0, "position", pa.repeat(pa.scalar(pos, pa.int64()), n))
        t = t.add_column(0, "image", pa.repeat(pa.scalar(img.reference, pa.string()), n))
        parts.append(t)
    return pa.concat_tables(parts) if parts else empty_image_table()


def empty_image_table() -> pa.Table:
    """An image table with no rows (the columns of :func:`image_table`)."""
    from .tarscan import LAYER_TABLE_SCHEMA

    fields = [pa.field("image", pa.string()), pa.field("position", pa.int64()), pa.field("diff_id", pa.string())]
    return pa.schema(fields + list(LAYER_TABLE_SCHEMA)).empty_table()


@busy()
def image_contents(img: Image, merge: bool = True, **kw):
    """(scans, Arrow table of all rows, Merge or None) for one image — what the analyses share.

    ``options=`` a :class:`ScanOptions`, or its fields as keywords.  Remembered
    on the image (:mod:`.memo`; keyed by its diff_ids and the options), so
    ``files()``, ``efficiency()`` and ``waste()`` on one image read and merge once.
    A table with content hashes serves a request without (``hash=None``)."""
    from .merge import merge_table

    opts = kw.pop("options", None) or ScanOptions(**kw)
    algo, _ = hash_algorithm(opts.hash)
    ids = tuple(layer.diff_id for layer in img.layer_list)
    memo = memo_of(img)
    if memo.contents is not None:
        key, (scans, table, merged) = memo.contents
        m_ids, m_algo, m_verify, m_cache = key
        if m_ids == ids and m_verify == opts.verify and m_cache == repr(opts.cache_dir) and (
            algo is None or m_algo == algo
        ):
            if merged is None and merge:
                merged = merge_table(table)
                memo.contents = (key, (scans, table, merged))
            return scans, table, merged
    scans = scan_image(img, opts)
    table = image_table(img, scans)
    merged = merge_table(table) if merge else None
    memo.contents = ((ids, algo, opts.verify, repr(opts.cache_dir)), (scans, table, merged))  # one: tables are large
    return scans, table, merged


__all__ = ["PARALLEL_MIN_BYTES", "ScanOptions", "docker_size", "empty_image_table", "image_contents", "image_table",
           "scan_image"]
