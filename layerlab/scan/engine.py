"""``layerlab.scan``: read every distinct layer of a fleet once, in parallel,
into a shared content-addressed cache (:mod:`.cache`).

Planning happens here (the client): the metadata of every source (manifests,
configs) is loaded concurrently (``layerlab.load_many`` per source in a
thread pool of ``parallel_loads``); as each source's arrives, its layers are
deduplicated by diff_id (by digest when the diff_id is unknown) against those
planned before, the cache (listed once) is asked which diff_ids it holds
verified files for, and every distinct missing layer becomes one task
(:func:`.task.scan_layer`).  Tasks run on a ``dask.distributed.Client`` when
one is given (``client.map`` with ``retries``, ``pure=False``, per source as
its metadata arrives, so the workers start while the rest still loads), else
on a local :class:`~concurrent.futures.ProcessPoolExecutor` (``workers=1``: in
this process), once everything is planned.  A task uses one core (no helper
threads: :func:`.task.scan_layer`).  Workers write the tables to the cache and
return small dicts; the client never holds a file table.  A task that fails (an exception, or its
worker process dying) is retried ``retries`` times, then reported in
``Scan.failures`` with its source and error — never dropped silently.

The local pool starts processes with the ``spawn`` method: a script calling
``layerlab.scan`` at top level needs the usual ``if __name__ == "__main__":``
guard (or pass ``workers=1``, or a Dask client).
"""
from __future__ import annotations

import glob
import os
import pickle
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from ..analysis._result import Result
from ..errors import LayerlabError
from ..frames import human_bytes, images_frame, layers_frame, typed_frame
from .cache import IMAGES, LAYERS, Cache, new_scan_id, rows_table
from .task import LayerJob, scan_layer

FAILURE_COLUMNS = {"source": "string", "image": "string", "diff_id": "string", "error": "string"}


class Scan(Result):
    """A fleet scan: its images and layers (pandas, as from ``load_many``), the
    cache its file tables are in, what failed, and how much was read.

    ``stats``: ``images``, ``layers`` (rows of ``layers()``), ``distinct``
    (distinct layers), ``scanned`` (read from their sources by this scan),
    ``reused`` (found verified in the cache), ``failed``, ``read_bytes``
    (blob bytes read), ``cache_bytes`` (bytes of this fleet's layer files).
    ``failures``: one row per source that could not be loaded (``diff_id``
    null) or layer that could not be read after its retries: ``source``,
    ``image``, ``diff_id``, ``error``.
    """

    _frame_names = ("images", "layers", "failures")

    def __init__(self, *, id, cache, images, layers, failures, stats, layer_files, notes, dashboard=None,
                 storage_options=None):
        self.id = id
        self.cache = cache               # the cache root, as given (path or URL)
        self.storage_options = storage_options
        self._images = images
        self._layers = layers
        self.failures = failures
        self.stats = stats
        self.layer_files = layer_files   # diff_id -> path of its verified file in the cache
        self.notes = notes
        self.dashboard = dashboard

    def images(self):
        """One row per image (the columns of ``layerlab.load_many(...).images()``)."""
        return self._images.copy()

    def layers(self):
        """One row per (image, position) (the columns of ``layerlab.load_many(...).layers()``)."""
        return self._layers.copy()

    def files_sql(self, sql: str, params=None):
        """Run ``sql`` in DuckDB over this scan's cache (views ``files``, ``layers``,
        ``images``; see :func:`layerlab.scan.queries.files_sql`) and return a frame."""
        from .queries import files_sql

        return files_sql(self.cache, sql, params, scan_id=self.id, storage_options=self.storage_options)

    def dedup(self, top: int = 20, list_limit: int = 10):
        """Layer- vs file-level dedup of this scan's fleet
        (:func:`layerlab.scan.queries.dedup`)."""
        from .queries import dedup

        return dedup(self.cache, top=top, list_limit=list_limit, scan_id=self.id,
                     storage_options=self.storage_options)

    def _summary(self) -> str:
        s = self.stats
        fail = f", {s['failed']} failed" if s["failed"] else ""
        return (f"{s['images']} images, {s['distinct']} distinct layers ({s['scanned']} scanned, "
                f"{s['reused']} from the cache{fail}), {human_bytes(s['read_bytes'])} read; cache {self.cache}")


def scan(
    sources,
    cache=None,
    client=None,
    *,
    workers: int | None = None,
    retries: int = 2,
    parallel_loads: int = 8,
    progress: bool | None = None,
    storage_options: dict | None = None,
    load_options: dict | None = None,
) -> Scan:
    """Scan a fleet: every distinct layer of ``sources`` read once into ``cache``.

    ``sources``: a source string or a list of them (as for ``layerlab.load_many``;
    a local path with ``*``/``?`` wildcards, e.g. ``"oci:/mnt/layouts/*"``, is
    expanded).  ``cache``: the cache root, a local directory or an fsspec URL
    (``s3://bucket/prefix``; ``storage_options`` go to fsspec); default
    ``<layerlab's cache dir>/scan``; with a client on several machines it must
    be a URL or a shared directory every worker reaches at the same path.
    ``client``: a ``dask.distributed.Client`` to run the layer tasks on; without one, ``workers`` local processes
    (default: the CPU count; 1 scans in this process).  ``retries``: how often
    a failed layer is tried again before it is reported in ``failures``.
    ``parallel_loads``: sources whose metadata is loaded at once.  ``progress``:
    a tqdm bar (None: on when there is work), with the Dask dashboard link when
    there is a client.  ``load_options``: keyword arguments for
    ``layerlab.load_many`` (``platform``, ``auth``, …), used here and, when a
    worker must load a source again, there.

    Raises :class:`~layerlab.LayerlabError` only for what stops the whole scan
    (no sources, an unusable cache); a source or layer that fails is reported
    in ``Scan.failures``.
    """
    if cache is None:
        from ..contents.sizes import default_cache_dir

        cache = os.fspath(default_cache_dir() / "scan")
    store = Cache(cache, storage_options)
    srcs = _expand(sources)
    store.sweep_temps()
    scan_id = new_scan_id()
    load_options = dict(load_options or {})
    # the layers of each source are planned and handed to the workers as soon as its metadata arrives
    planner = _Planner(store, storage_options, load_options)
    batches = planner.batches(_loads(srcs, parallel_loads, load_options, progress, store))
    dashboard = getattr(client, "dashboard_link", None) if client is not None else None
    results, failed = _run(batches, client, workers, retries, progress, dashboard)
    fleet, origin, failures = _assemble(srcs, planner.loaded)
    have, blind = planner.have, planner.blind
    keys, where = _owners(fleet, origin)
    failed += [(j, f"{j.label}: a source without layer contents (its transport gives metadata only) and not "
                   "in the cache; scan the image from a registry, an OCI layout or an archive") for j in blind]
    failures += [{"source": j.source, "image": where.get(j.key, j.image), "diff_id": j.diff_id, "error": err}
                 for j, err in failed]

    by_key = {k: {"diff_id": c.diff_id, "path": c.path, "size": c.size, "bytes": c.bytes} for k, c in have.items()}
    by_key.update(results)
    _fill_layers(fleet, by_key)
    images, layers = images_frame(fleet), layers_frame(fleet)
    _write_rows(store, scan_id, images, layers, origin)
    layer_files = {r["diff_id"]: r["path"] for r in by_key.values()}
    stats = {
        "images": len(fleet), "layers": len(layers), "distinct": len(keys),
        "scanned": len(results), "reused": len(have),
        "failed": len(failed), "read_bytes": sum(r.get("read_bytes", 0) for r in results.values()),
        "cache_bytes": sum(r["bytes"] for r in by_key.values()),
    }
    notes = _notes(stats, failures, dashboard)
    return Scan(id=scan_id, cache=store.url, images=images, layers=layers,
                failures=typed_frame(failures, FAILURE_COLUMNS), stats=stats, layer_files=layer_files,
                notes=notes, dashboard=dashboard, storage_options=storage_options)


# -- planning ---------------------------------------------------------------------
def _expand(sources) -> list[str]:
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    out: list[str] = []
    for s in sources:
        if not isinstance(s, (str, os.PathLike)):
            raise LayerlabError(f"layerlab.scan: source {s!r} is not a string; pass source strings such as "
                                "'oci:/path/layout' or 'docker://host/repo:tag' (workers load them again)")
        s = os.fspath(s)
        head, sep, ref = s.partition(":")
        prefix, path = (head + sep, ref) if sep and "/" not in head and not s.startswith("docker://") else ("", s)
        if not s.startswith("docker://") and any(c in path for c in "*?[") and not path.startswith("//"):
            matches = sorted(glob.glob(path))
            if not matches:
                raise LayerlabError(f"{s}: the wildcard matches nothing; check the path")
            out += [prefix + m for m in matches]
        else:
            out.append(s)
    if not out:
        raise LayerlabError("layerlab.scan: no sources given; pass e.g. ['oci:/path/layout', 'docker://host/repo:tag']")
    return out


def _transport(src: str) -> str | None:
    from ..sources import split_source

    try:
        return split_source(src)[0]
    except LayerlabError:
        return None  # said by the load itself, in Scan.failures


def _loads(srcs: list[str], parallel: int, load_options: dict, progress, store: Cache | None = None):
    """``(index, source, images, error text)`` per source, as its images' metadata arrives
    (``parallel`` sources loaded at once, in threads); ``docker://`` sources keep their
    config blobs in ``store`` (the scan's cache)."""
    from concurrent.futures import as_completed

    from ..sources import load_many

    def one(src: str):
        opts = load_options
        if store is not None and _transport(src) == "docker" and "config_store" not in load_options:
            opts = {**load_options, "config_store": store}  # configs by digest: a rescan fetches only manifests
        try:
            return list(load_many(src, **opts)), None
        except Exception as e:  # noqa: BLE001 - one source's problem is reported in Scan.failures
            return [], _error_text(e)

    bar = _bar(len(srcs), progress, None, "loading image metadata", "source") if len(srcs) > 1 else None
    try:
        with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(srcs)))) as pool:
            futures = {pool.submit(one, src): i for i, src in enumerate(srcs)}
            for fut in as_completed(futures):
                if bar is not None:
                    bar.update(1)
                yield (futures[fut], srcs[futures[fut]], *fut.result())
    finally:
        if bar is not None:
            bar.close()


def _assemble(srcs: list[str], loaded: dict):
    """The Fleet of every source's images in source order, {reference: (source, original ref)}, failures."""
    from ..model import Fleet

    fleet, origin, failures = Fleet(), {}, []
    for i, src in enumerate(srcs):
        imgs, err = loaded.get(i, ([], "its metadata was never loaded"))
        if err is not None:
            failures.append({"source": src, "image": None, "diff_id": None, "error": err})
        for img in imgs:
            original = img.reference
            fleet.add(img)           # unique keys across sources, as load_many makes them
            origin[img.reference] = (src, original)
    return fleet, origin, failures


def _key(layer, src: str, original: str) -> str:
    """A layer's planning key: its diff_id, else its blob digest, else its place in its source."""
    return layer.diff_id or (f"digest:{layer.digest}" if layer.digest else f"{src}#{original}@{layer.position}")


class _Planner:
    """A fleet's layer jobs, planned source by source as each one's metadata
    arrives (:meth:`batches`).  Afterwards: ``loaded`` (source index →
    (images, error text)), ``have`` (diff_id → its verified file in the
    cache) and ``blind`` (jobs no worker can run: a source without layer
    contents, and not in the cache)."""

    def __init__(self, store: Cache, storage_options, load_options):
        self.store = store
        self.storage_options = storage_options
        self.load_options = load_options or None
        self.loaded: dict[int, tuple[list, str | None]] = {}
        self.have: dict = {}
        self.blind: list[LayerJob] = []
        self._seen: set[str] = set()

    def batches(self, loads):
        """For each ``(index, source, images, error)`` of ``loads``: the jobs of the
        layers no earlier source had (the first image that has it) and the cache
        holds no verified file for (the cache is listed once, at the start)."""
        listing = self.store.candidates()
        verifying = None if self.store.local else ThreadPoolExecutor(max_workers=8)   # object stores: latency
        try:
            for index, src, imgs, err in loads:
                self.loaded[index] = (imgs, err)
                todo = self._todo(src, imgs, listing, verifying)
                if todo:
                    yield todo
        finally:
            if verifying is not None:
                verifying.shutdown(wait=True)

    def _todo(self, src: str, imgs: list, listing: dict, verifying) -> list[LayerJob]:
        from ..contents.options import layer_label

        batch = []
        for img in imgs:
            provider = _shippable(img.blobs)
            for layer in img.layer_list:
                key = _key(layer, src, img.reference)     # not yet in the fleet: its own reference
                if key in self._seen:
                    continue
                self._seen.add(key)
                batch.append(LayerJob(key=key, cache=self.store.url, source=src, image=img.reference,
                                      position=layer.position, diff_id=layer.diff_id, media_type=layer.media_type,
                                      label=layer_label(img, layer.position), provider=provider,
                                      storage_options=self.storage_options, load_options=self.load_options,
                                      has_blobs=img.blobs is not None))
        found, bad = self.store.check([j.key for j in batch if j.key.startswith("sha256:")], listing=listing,
                                      pool=verifying)
        self.have.update(found)
        todo = [replace(j, stale=tuple(bad.get(j.key, ()))) for j in batch if j.key not in found]
        self.blind += [j for j in todo if j.provider is None and not j.has_blobs]
        return [j for j in todo if j.provider is not None or j.has_blobs]


def _owners(fleet, origin):
    """All distinct keys of ``fleet``, and key → the fleet's name of the first image that has it."""
    where: dict[str, str] = {}
    for img in fleet:
        src, original = origin[img.reference]
        for layer in img.layer_list:
            where.setdefault(_key(layer, src, original), img.reference)
    return list(where), where


def _shippable(blobs):
    """The provider itself when workers may use it (independent readers, picklable), else None."""
    if blobs is None or not blobs.independent_readers:
        return None
    try:
        pickle.dumps(blobs)
    except Exception:  # noqa: BLE001 - e.g. a provider holding an open socket: workers load the source again
        return None
    return blobs


# -- running ----------------------------------------------------------------------
def _run(batches, client, workers, retries: int, progress, dashboard):
    """({job.key: result dict}, [(job, error text)]) for the jobs of ``batches``
    (an iterable of job lists: a Dask client gets each batch as it comes)."""
    if client is not None:
        return _run_dask(batches, client, retries, progress, dashboard)
    jobs = [job for batch in batches for job in batch]
    if not jobs:
        return {}, []
    bar = _bar(len(jobs), progress, dashboard)
    try:
        n = min(workers or os.cpu_count() or 1, len(jobs))
        if n <= 1:   # one task (or one worker asked for): starting a process would cost more than it saves
            return _run_here(jobs, retries, bar)
        return _run_pool(jobs, n, retries, bar)
    finally:
        if bar is not None:
            bar.close()


def _bar(total: int, progress, dashboard, desc: str = "scanning layers", unit: str = "layer"):
    if progress is False:
        return None
    from tqdm.auto import tqdm

    desc = f"{desc} (dashboard {dashboard})" if dashboard else desc
    return tqdm(total=total, desc=desc, unit=unit, leave=False, disable=None if progress is None else False)


def _error_text(e: BaseException) -> str:
    return str(e) if isinstance(e, LayerlabError) else f"{type(e).__name__}: {e}"


def _run_here(jobs, retries, bar):
    results, failed = {}, []
    for job in jobs:
        for attempt in range(retries + 1):
            try:
                results[job.key] = scan_layer(job)
                break
            except Exception as e:  # noqa: BLE001 - reported in Scan.failures after the retries
                if attempt == retries:
                    failed.append((job, _error_text(e)))
        if bar is not None:
            bar.update(1)
    return results, failed


def _run_pool(jobs, n: int, retries: int, bar):
    """Local processes; a pool broken by a dying worker (every task then in it
    fails with BrokenProcessPool) is replaced and those tasks retried."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    results, failed = {}, []
    attempts = {j.key: 0 for j in jobs}
    queue = list(jobs)
    ctx = multiprocessing.get_context("spawn")
    while queue:
        pool = ProcessPoolExecutor(max_workers=min(n, len(queue)), mp_context=ctx)
        try:
            running, queue = _submit_all(pool, queue, attempts, retries, failed, bar)
            queue += _collect(pool, running, results, attempts, retries, failed, bar)
        finally:
            _close_pool(pool)
    return results, failed


def _collect(pool, running: dict, results: dict, attempts: dict, retries: int, failed: list, bar) -> list:
    """Wait for ``running`` (future -> job); the jobs to run again.  A pool whose
    manager thread died (it can, when a worker dies while another is being
    started) resolves no more futures: its unfinished jobs count as failed attempts."""
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool

    again = []

    def settle(job, e):
        attempts[job.key] += 1
        if attempts[job.key] <= retries:
            again.append(job)
            return
        failed.append((job, _error_text(e)))
        if bar is not None:
            bar.update(1)

    while running:
        done, _ = wait(running, timeout=2.0, return_when=FIRST_COMPLETED)
        if not done:
            manager = getattr(pool, "_executor_manager_thread", None)
            if manager is not None and not manager.is_alive() and not any(f.done() for f in running):
                for job in running.values():
                    settle(job, BrokenProcessPool("the process pool stopped answering"))
                break
            continue
        for fut in done:
            job = running.pop(fut)
            try:
                results[job.key] = fut.result()
            except Exception as e:  # noqa: BLE001 - retried, then reported
                settle(job, e)
                continue
            if bar is not None:
                bar.update(1)
    return again


def _close_pool(pool) -> None:
    """Shut ``pool`` down without hanging.  When a worker dies, the pool's manager
    terminates the workers it knows and joins them; a worker started by a
    ``submit`` racing with that (CPython 3.11–3.13, the ``spawn`` method) is
    never terminated and waits for work forever, and so would the join.  So
    the processes of a broken pool are killed here first.  (This reads the
    executor's private ``_broken``/``_processes``; without them it falls back
    to a plain shutdown.)"""
    if getattr(pool, "_broken", False):
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            try:
                proc.kill()
            except (OSError, ValueError, AttributeError):
                pass
    pool.shutdown(wait=True, cancel_futures=True)


def _submit_all(pool, queue, attempts, retries: int, failed: list, bar):
    """Submit ``queue`` to ``pool``: ``(running futures -> job, jobs to run again)``.
    A worker can die while jobs are still being submitted; the pool then
    refuses the rest (BrokenProcessPool, or the fork of a new worker fails on the
    pipes the breakdown closed), which count as an attempt each and
    go back to the queue for the next pool (or to ``failed`` once their
    retries are spent), so the loop always ends."""
    from concurrent.futures.process import BrokenProcessPool

    running, again = {}, []
    for k, job in enumerate(queue):
        try:
            running[pool.submit(scan_layer, job)] = job
        # a submit that starts a worker while the breakdown closes the pool's pipes can also fail
        # in the fork itself ("bad value(s) in fds_to_keep") or with the pool shut down
        except (BrokenProcessPool, ValueError, OSError, RuntimeError) as e:
            for rest in queue[k:]:
                attempts[rest.key] += 1
                if attempts[rest.key] <= retries:
                    again.append(rest)
                else:
                    failed.append((rest, _error_text(e)))
                    if bar is not None:
                        bar.update(1)
            break
    return running, again


def _run_dask(batches, client, retries: int, progress, dashboard):
    """Each batch submitted as it comes (one graph update per batch: a submit per
    task costs the scheduler a message and a graph each); results as they finish."""
    from distributed import as_completed

    scan_id = new_scan_id()
    futures: dict = {}
    finished = as_completed()
    bar, started = None, False
    try:
        for batch in batches:
            keys = [f"layerlab-scan-{(job.diff_id or job.key).replace(':', '-').replace('/', '_')}-{scan_id}-{i}"
                    for i, job in enumerate(batch, start=len(futures))]
            got = client.map(scan_layer, batch, key=keys, pure=False, retries=retries)
            futures.update(zip(got, batch))
            finished.update(got)
            if not started:
                bar, started = _bar(0, progress, dashboard), True
            if bar is not None:
                bar.total += len(batch)
                bar.refresh()
        return _collect_dask(finished, futures, bar)
    finally:
        if bar is not None:
            bar.close()


def _collect_dask(finished, futures: dict, bar):
    """Results as tasks finish, gathered a batch at a time: one request per batch
    of tasks finished since the last one, not a round trip per task (this
    halved the client's and the workers' own CPU per task)."""
    results, failed = {}, []
    for done in finished.batches():
        ok = [f for f in done if f.status == "finished"]
        try:
            got = dict(zip(ok, ok[0].client.gather(ok))) if ok else {}
        except Exception:  # noqa: BLE001 - e.g. a result lost with its worker: each future on its own below
            got = {}
        for fut in done:
            job = futures[fut]
            if fut in got:
                results[job.key] = got[fut]
            else:
                try:
                    results[job.key] = fut.result()
                except Exception as e:  # noqa: BLE001 - the task's error (or a cancelled future)
                    failed.append((job, _error_text(e)))
            fut.release()
        if bar is not None:
            bar.update(len(done))
    return results, failed


# -- results ----------------------------------------------------------------------
def _fill_layers(fleet, by_key: dict) -> None:
    """Docker sizes (and diff_ids the source did not know) from what the scan found."""
    for img in fleet:
        changed = False
        for layer in img.layer_list:
            got = by_key.get(layer.diff_id) if layer.diff_id else None
            if got is None and layer.diff_id is None:
                got = by_key.get(f"digest:{layer.digest}")
                if got is not None:
                    layer.diff_id = got["diff_id"]
                    changed = True
            if got is not None and layer.size is None and got.get("size") is not None:
                layer.size = got["size"]
        if changed:
            img.refresh_chain_ids()


def _write_rows(store: Cache, scan_id: str, images, layers, origin) -> None:
    lay = layers.copy()
    lay["source"] = [origin[i][0] for i in lay["image"]]
    lay["scan_id"] = scan_id
    img = images.copy()
    img["scan_source"] = [origin[i][0] for i in img["image"]]
    img["scan_id"] = scan_id
    for kind, df in ((LAYERS, lay), (IMAGES, img)):
        store.put_rows(kind, scan_id, rows_table(df))


def _notes(stats: dict, failures: list[dict], dashboard) -> list[str]:
    notes = []
    if failures:
        n = len(failures)
        notes.append(f"{n} {'source or layer' if n == 1 else 'sources or layers'} failed (see .failures): "
                     "their files are not in the cache")
    if dashboard:
        notes.append(f"the layer tasks ran on the Dask cluster whose dashboard is {dashboard}")
    if stats["reused"]:
        notes.append(f"{stats['reused']} of {stats['distinct']} distinct layers were already in the cache "
                     "(verified by name: rows and xxh64)")
    return notes


__all__ = ["FAILURE_COLUMNS", "Scan", "scan"]
