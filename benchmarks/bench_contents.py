#!/usr/bin/env python3
"""Benchmark: layerlab's file-level analysis vs ``dive --json`` vs the I/O bound.

Run on demand (not a test):  .venv/bin/python benchmarks/bench_contents.py [--keep] [--min-gb 1.0] [--runs 3]

1. Builds (once; reused by tag) a realistic image with the real engine: a Debian
   bookworm minbase root filesystem made with ``debootstrap`` (the mirror is read
   from the host's apt sources at run time), ``docker import``-ed, then Python
   packages from apt and the usual wasteful steps (``apt-get update`` in its own
   layer, lists deleted later, a recursive ``chown`` that copies a tree, a copy
   of the shared libraries).  ``docker save`` writes it to a >= 1 GB archive.
2. Measures, on the same archive, all in this run, in two page-cache regimes
   (``--page-cache``): ``warm`` — the archive read just before each timed run,
   so it is in memory and ``cat`` measures memory copies; ``cold`` — the
   archive's pages evicted before each timed run (``posix_fadvise`` DONTNEED,
   checked with ``RWF_NOWAIT`` probes), so every contender reads it from the
   disk, as after a reboot or for an archive saved a while ago:
   * the I/O bound: ``cat archive > /dev/null`` plus decompressing its
     compressed layers, if any;
   * ``dive --json`` (CI=true) wall time;
   * the floors: sha256 of the largest layer (a verified scan cannot end
     sooner: one layer's hash is one sequential pass), and a fresh
     interpreter importing layerlab (paid by every run);
   * layerlab cold (empty cache): load + ``files()`` + ``efficiency()`` +
     ``waste()``, in a fresh process; peak RSS of it and of its workers;
   * layerlab warm (same cache), in another fresh process, and a second
     run inside that process (new objects, same disk cache: a notebook
     re-running its cells);
   both with the default ``verify=True`` and with ``verify=False`` (dive's
   work: dive does not check diff_ids).
3. Prints the ratios the issue sets as targets: layerlab / dive <= 0.5,
   layerlab / I/O bound <= 2, peak RSS < 400 MB, warm / cold < 0.1 (for the
   whole process; without the interpreter start-up and imports of layerlab
   and pandas, measured on their own, which every Python run pays; and for
   the second run in one process), per page-cache regime.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
DOCKER = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"
DIVE = Path(PY).with_name("dive")
OS_TAG = "layerlab-bench/os:bookworm"
APP_TAG = "layerlab-bench/contents:1"

DOCKERFILE = """\
FROM {base}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update
RUN apt-get install -y --no-install-recommends python3 python3-numpy python3-scipy python3-pandas \\
    python3-matplotlib python3-sklearn python3-sympy python3-lxml python3-yaml
RUN rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
RUN chown -R 1000:1000 /usr/lib/python3/dist-packages
RUN cp -a /usr/lib/x86_64-linux-gnu /opt/libcopy
RUN python3 -c "import numpy, scipy, pandas; print(numpy.__version__)" > /numpy-version
"""


def sh(*args, env=None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=True, env=env, **kw)


def debian_mirror() -> str:
    """The bookworm mirror the host's apt uses (one implementation: tests/realfleet.py)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from realfleet import FleetError, debian_mirror as mirror

    try:
        return mirror()
    except FleetError as e:
        raise SystemExit(f"bench: {e}") from e


def have_image(tag: str) -> bool:
    return subprocess.run([DOCKER, "image", "inspect", tag], capture_output=True).returncode == 0


def build_os(tag: str = OS_TAG) -> None:
    """A Debian bookworm minbase root filesystem (debootstrap), ``docker import``-ed as ``tag`` (skipped if present)."""
    if not have_image(tag):
        mirror = debian_mirror()
        with tempfile.TemporaryDirectory(prefix="layerlab-bench-") as d:
            t = time.perf_counter()
            print(f"debootstrap --variant=minbase bookworm (mirror from the host's apt sources) ...", flush=True)
            sh("debootstrap", "--variant=minbase", "bookworm", f"{d}/root", mirror,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            print(f"  {time.perf_counter() - t:.0f} s; docker import as {tag}", flush=True)
            tar = subprocess.Popen(["tar", "-C", f"{d}/root", "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
            sh(DOCKER, "import", "-c", 'CMD ["bash"]', "-", tag, stdin=tar.stdout, stdout=subprocess.DEVNULL)
            tar.wait()


def build_images() -> None:
    build_os()
    if not have_image(APP_TAG):
        with tempfile.TemporaryDirectory(prefix="layerlab-bench-ctx-") as d:
            Path(d, "Dockerfile").write_text(DOCKERFILE.format(base=OS_TAG))
            print(f"docker build {APP_TAG} (apt python packages) ...", flush=True)
            t = time.perf_counter()
            sh(DOCKER, "build", "--network=host", "-t", APP_TAG, d, env=dict(os.environ, DOCKER_BUILDKIT="1"),
               stdout=subprocess.DEVNULL)
            print(f"  {time.perf_counter() - t:.0f} s", flush=True)


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def children_cpu() -> float:
    """user+sys seconds of the finished child processes so far (their own children included)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def evict(archive: Path) -> bool:
    """Drop the archive's pages from the kernel's page cache (``posix_fadvise``
    DONTNEED after a sync; no privileges needed); the interpreter, its
    libraries and dive's binary stay cached.  True when a probe read
    (``RWF_NOWAIT``, which fails rather than wait for the disk) confirms it."""
    os.sync()
    fd = os.open(archive, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        size = os.fstat(fd).st_size
        misses = 0
        for k in range(1, 9):
            try:
                os.preadv(fd, [bytearray(4096)], size * k // 10 & ~4095, os.RWF_NOWAIT)
            except BlockingIOError:
                misses += 1
        return misses == 8
    finally:
        os.close(fd)


def prepare(archive: Path, regime: str) -> None:
    """Put the archive in the page-cache state of ``regime`` before a timed run:
    ``warm`` — read once, so it is in memory (cat then measures memory copies);
    ``cold`` — evicted (:func:`evict`), so every contender reads it from the disk."""
    if regime == "warm":
        sh("sh", "-c", f"cat '{archive}' > /dev/null")
        return
    for _ in range(5):
        if evict(archive):
            return
        time.sleep(0.2)
    print("bench: warning: the archive is still (partly) in the page cache after eviction", flush=True)


def io_bound(archive: Path, regime: str = "warm") -> tuple[float, float]:
    """(cat seconds, decompression seconds of compressed layers)."""
    cat = lambda: sh("sh", "-c", f"cat '{archive}' > /dev/null")  # noqa: E731
    prepare(archive, regime)
    t_cat = timed(cat)
    t_dec = 0.0
    with tarfile.open(archive) as tf:
        for m in tf:
            if not m.isfile() or m.size < 64:
                continue
            f = tf.extractfile(m)
            head = f.read(4)
            f.seek(0)
            if head[:2] == b"\x1f\x8b":
                t = time.perf_counter()
                d = zlib.decompressobj(wbits=47)
                while chunk := f.read(1 << 20):
                    d.decompress(chunk)
                t_dec += time.perf_counter() - t
            elif head == b"\x28\xb5\x2f\xfd":
                import zstandard

                t = time.perf_counter()
                r = zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True)
                while r.read(1 << 20):
                    pass
                t_dec += time.perf_counter() - t
    return t_cat, t_dec


def sha256_floor(archive: Path) -> tuple[float, int]:
    """(seconds, bytes) to sha256 the largest layer member: the diff_id check of
    one layer is a single sequential hash, so a verified cold run cannot finish
    sooner than this, whatever the number of cores."""
    import hashlib

    with tarfile.open(archive) as tf:
        m = max((m for m in tf if m.isfile()), key=lambda m: m.size)  # the biggest member is a layer
    fd = os.open(archive, os.O_RDONLY)
    try:
        buf = memoryview(bytearray(8 << 20))
        h = hashlib.sha256()
        t = time.perf_counter()
        done = 0
        while done < m.size:
            n = os.preadv(fd, [buf[:min(len(buf), m.size - done)]], m.offset_data + done)
            h.update(buf[:n])
            done += n
        return time.perf_counter() - t, m.size
    finally:
        os.close(fd)


ANALYSIS = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import layerlab as ll
verify = sys.argv[2] == "verify"
t_imported = time.perf_counter()


def analyse():
    img = ll.load(sys.argv[1], progress=False)
    t = time.perf_counter()
    files = img.files(progress=False, verify=verify)
    eff = ll.efficiency(img, progress=False, verify=verify)
    w = ll.waste(img, progress=False, verify=verify)
    return t, files, eff, w


t_loaded, files, eff, w = analyse()
t_end = time.perf_counter()
rows, ineff, waste_rows = len(files), eff.inefficient_bytes, len(w)
again = None
if sys.argv[3] == "again":  # a second run in this process (a notebook re-running its cells): new objects, disk cache
    del files, w
    t = time.perf_counter()
    _t, files2, eff2, w2 = analyse()
    again = time.perf_counter() - t
    assert eff2.inefficient_bytes == ineff and len(files2) == rows
print(json.dumps({
    "seconds": t_end - t0, "import_seconds": t_imported - t0, "load_seconds": t_loaded - t_imported,
    "work_seconds": t_end - t_imported, "again_seconds": again,
    "rows": rows, "score": eff.score, "size_bytes": eff.size_bytes,
    "inefficient_bytes": eff.inefficient_bytes, "reclaimable_bytes": eff.reclaimable_bytes,
    "waste_rows": waste_rows,
    "rss_self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "rss_children_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
}))
"""


def _env(**extra) -> dict:
    """The children's environment: bytecode caching on, as for an installed
    package (a ``PYTHONDONTWRITEBYTECODE=1`` shell would make every run
    recompile layerlab's modules; :func:`import_seconds` runs first and writes
    the ``.pyc`` files)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), **extra)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run_layerlab(archive: Path, cache: Path, verify: bool, again: bool = False) -> dict:
    env = _env(LAYERLAB_CACHE=str(cache))
    c = children_cpu()
    t = time.perf_counter()
    out = subprocess.run([PY, "-c", ANALYSIS, str(archive), "verify" if verify else "noverify",
                          "again" if again else "once"], env=env,
                         capture_output=True, check=True)
    wall = time.perf_counter() - t
    res = json.loads(out.stdout.decode().strip().splitlines()[-1])
    res["wall"] = wall
    res["cpu"] = children_cpu() - c
    return res


def import_seconds() -> float:
    """Wall time of a fresh interpreter that only imports layerlab (and pandas with it)."""
    env = _env()
    warm_up = "import layerlab, pandas, layerlab.contents.layers, layerlab.contents.rangescan, " \
              "layerlab.contents.results, layerlab.analysis.efficiency, layerlab.analysis.waste"
    subprocess.run([PY, "-c", warm_up], env=env, check=True)  # writes the .pyc files once
    best = None
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([PY, "-c", "import layerlab, pandas"], env=env, check=True)
        dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    return best


def run_dive(archive: Path, out: Path) -> tuple[float, float, dict]:
    env = dict(os.environ, CI="true")
    c = children_cpu()
    t = time.perf_counter()
    subprocess.run([str(DIVE), "--json", str(out), "--source", "docker-archive", str(archive)], env=env,
                   capture_output=True, check=False)
    wall = time.perf_counter() - t
    return wall, children_cpu() - c, json.loads(out.read_text())["image"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", action="store_true", help="keep the saved archive (printed path)")
    ap.add_argument("--min-gb", type=float, default=1.0)
    ap.add_argument("--workdir", default=None, help="where the archive and caches go (default: a temp dir)")
    ap.add_argument("--runs", type=int, default=3, help="repeat each timing; the median run is reported")
    ap.add_argument("--page-cache", choices=("warm", "cold", "both"), default="both",
                    help="measure with the archive in memory (warm), evicted before each run (cold), or both")
    args = ap.parse_args()

    build_images()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="layerlab-bench-contents-"))
    work.mkdir(parents=True, exist_ok=True)
    archive = work / "image.tar"
    if not archive.exists():
        print(f"docker save {APP_TAG} -> {archive}", flush=True)
        sh(DOCKER, "save", "-o", str(archive), APP_TAG)
    size = archive.stat().st_size
    print(f"archive: {size / 1e9:.2f} GB", flush=True)
    if size < args.min_gb * 1e9:
        raise SystemExit(f"bench: the archive is {size / 1e9:.2f} GB, under --min-gb {args.min_gb}")

    regimes = ["warm", "cold"] if args.page_cache == "both" else [args.page_cache]
    t_sha, n_sha = sha256_floor(archive)
    print(f"verification floor: sha256 of the largest layer ({n_sha / 1e9:.2f} GB) {t_sha:.2f} s", flush=True)
    t_import = import_seconds()
    print(f"python + import layerlab: {t_import:.2f} s (paid by every run, cold or warm)", flush=True)

    def median(rows, key=lambda r: r):
        rows = sorted(rows, key=key)
        return rows[len(rows) // 2]

    measured = {}
    for regime in regimes:
        print(f"\n### page cache {regime}: " + (
            "the archive is in memory before each timed run" if regime == "warm" else
            "the archive is evicted from memory before each timed run (read from the disk)"), flush=True)
        cats = [io_bound(archive, regime) for _ in range(args.runs)]
        t_cat, t_dec = median(cats)
        bound = t_cat + t_dec
        print(f"I/O bound: cat {t_cat:.2f} s + decompression {t_dec:.2f} s = {bound:.2f} s", flush=True)
        dives = []
        for _ in range(args.runs):
            prepare(archive, regime)
            dives.append(run_dive(archive, work / "dive.json"))
        t_dive, cpu_dive, dive = median(dives, key=lambda r: r[0])
        print(f"dive --json: {t_dive:.2f} s wall, {cpu_dive:.2f} s CPU (score {dive['efficiencyScore']:.6f}, "
              f"inefficient {dive['inefficientBytes']:,} B)", flush=True)
        results = {}
        for verify in (True, False):
            mode = "verify=True (default)" if verify else "verify=False"
            cache = work / ("cache-verified" if verify else "cache-unverified")
            colds, warms = [], []
            for _ in range(args.runs):  # each cold run on an empty cache, each warm run right after it
                shutil.rmtree(cache, ignore_errors=True)
                prepare(archive, regime)
                colds.append(run_layerlab(archive, cache, verify))
                prepare(archive, regime)
                warms.append(run_layerlab(archive, cache, verify, again=True))
            cold = median(colds, key=lambda r: r["wall"])
            warm = median(warms, key=lambda r: r["wall"])
            warm["again_seconds"] = median([w["again_seconds"] for w in warms])
            results[verify] = (cold, warm)
            print(f"layerlab {mode}: cold {cold['wall']:.2f} s wall ({cold['cpu']:.2f} s CPU, import "
                  f"{cold['import_seconds']:.2f} + load {cold['load_seconds']:.2f} + files/efficiency/waste "
                  f"{cold['work_seconds'] - cold['load_seconds']:.2f}), {cold['rows']:,} rows, peak RSS "
                  f"{max(cold['rss_self_mb'], cold['rss_children_mb']):.0f} MB; warm {warm['wall']:.2f} s wall "
                  f"(load + files/efficiency/waste {warm['work_seconds']:.2f} s; again in the same process "
                  f"{warm['again_seconds']:.3f} s), peak RSS {warm['rss_self_mb']:.0f} MB", flush=True)
        measured[regime] = (bound, t_dive, cpu_dive, dive, results)
    load = os.getloadavg()[0]

    print()
    print(f"load average during the run: {load:.1f} on {os.cpu_count()} CPUs (wall times suffer when > CPUs)")
    for regime, (bound, t_dive, cpu_dive, dive, results) in measured.items():
        print(f"\n######## page cache {regime}: I/O bound {bound:.2f} s, dive {t_dive:.2f} s")
        print(f"floors: sha256 of the largest layer {t_sha:.2f} s ({t_sha / t_dive:.2f} of dive); "
              f"python + import {t_import:.2f} s ({t_import / bound:.2f}x the I/O bound, {t_import / t_dive:.2f} of dive)")
        for verify, (cold, warm) in results.items():
            same = (cold["score"] == dive["efficiencyScore"] and cold["size_bytes"] == dive["sizeBytes"]
                    and cold["inefficient_bytes"] == dive["inefficientBytes"] and warm["score"] == cold["score"]
                    and warm["inefficient_bytes"] == cold["inefficient_bytes"])
            peak = max(cold["rss_self_mb"], cold["rss_children_mb"], warm["rss_self_mb"])
            print()
            print(f"== {'verify=True (default: every layer sha256-checked against its diff_id)' if verify else 'verify=False (as dive: no diff_id check)'}")
            print(f"dive-exact figures, cold and warm: {'yes' if same else 'NO'}")
            print(f"cold / dive:             {cold['wall'] / t_dive:.2f} wall, {cold['cpu'] / cpu_dive:.2f} CPU (target <= 0.5)")
            print(f"cold / I/O bound:        {cold['wall'] / bound:.2f}   (target <= 2)")
            print(f"peak RSS:                {peak:.0f} MB (target < 400 MB)")
            w_net, c_net = warm["wall"] - t_import, cold["wall"] - t_import
            print(f"warm / cold:             {warm['wall'] / cold['wall']:.3f} whole process; "
                  f"{w_net / c_net:.3f} without the {t_import:.2f} s of python + imports both pay "
                  f"({w_net:.2f} s / {c_net:.2f} s); {warm['again_seconds'] / cold['wall']:.3f} for a second run "
                  f"in the same process ({warm['again_seconds']:.3f} s, as a notebook re-running its cells) (target < 0.1)")
    if not args.keep and not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
