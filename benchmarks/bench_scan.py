#!/usr/bin/env python3
"""Benchmark: a fleet scan (``layerlab.scan``) of a registry's worth of real images.

Run on demand (not a test):  .venv/bin/python benchmarks/bench_scan.py [--teams 4] [--apps 7] [--json OUT]

1. Builds (once; reused by tag) a fleet of real images with the engine
   (BuildKit): the Debian bookworm minbase of ``bench_contents.py``
   (debootstrap, ``docker import``), three team bases with apt layers (Python;
   general tools; Python + the same tools on another chain, so the same files
   land in different layers), and per team several apps (tag ``:2``), each a venv with pip
   packages (``--network=host``, the host CA bundle as a BuildKit secret for
   that RUN only) and its own code — apps of different teams install some of
   the same packages, as teams do.  Default: 3 bases + 4 teams × 7 apps = 31
   images.
2. Starts Debian's ``docker-registry`` on 127.0.0.1 (tests/registrykit.py) and
   pushes every image there with skopeo.
3. Reads the fleet once unmeasured (so the registry's blobs are in the page
   cache for every measured run alike), then measures each scan in a fresh
   process with a ``dask.distributed.LocalCluster`` started before the clock
   (one thread per worker process; workers started with
   ``preload=["layerlab.scan.preload"]``, as a long-lived cluster has the
   task's modules imported: without it each worker imports them during its
   first task, about 0.3 CPU-s, a one-off that is 5% of the 2-worker run on a
   fleet this small; the scan's own process imports the same modules before
   the clock): a cold scan into an empty cache with 1 worker and with 2
   workers (layers scanned per second; goal: 2 workers ≥ 1.7× one), a warm
   rescan of the same fleet into the 2-worker cache (goal: ≤ 5% of the cold
   time), and the peak RSS of the client process (the scan's process, which
   also runs the scheduler; the workers are other processes).  Per run it
   also accounts for the CPU: seconds of each worker process (and its cores:
   CPU over the run's time; its seconds inside tasks from Dask's task
   stream), of the rest of the scan (the registry serving the blobs; the
   client process with the scheduler and the nannies), and of other work on
   the machine (``/proc/stat`` busy time less all of these) — on 2 CPUs the
   2-worker run shares them with the rest, while the 1-worker run has a
   spare CPU for it.
   The same two cold scans are then measured from an OCI layout on local
   disk holding the same images (``skopeo copy`` from the registry, so the
   same blobs): the scan's own scaling, with no registry on the CPUs.
4. Computes the dedup table from DuckDB (``layerlab.scan.queries.dedup``) and
   the same figures with plain pandas over the cache's Parquet files
   (tests/_scan_cache.py ``pandas_dedup``), and checks they agree.

Prints a summary and writes it as JSON (``--json``).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests")]
PY = sys.executable
CA = "/etc/ssl/certs/ca-certificates.crt"
PREFIX = "layerlab-bench-scan"

BASES = {  # name -> (FROM, RUN ...)
    "py": ("{os}", "apt-get update && apt-get install -y --no-install-recommends python3 python3-venv "
                   "&& rm -rf /var/lib/apt/lists/*"),
    "tools": ("{os}", "apt-get update && apt-get install -y --no-install-recommends curl procps less "
                      "ca-certificates && rm -rf /var/lib/apt/lists/*"),
    "py-tools": (f"{PREFIX}/base-py:1", "apt-get update && apt-get install -y --no-install-recommends curl procps "
                                        "less ca-certificates && rm -rf /var/lib/apt/lists/*"),
}
TEAM_BASE = ["py", "py-tools", "py", "py-tools"]
PACKAGES = ["requests==2.32.3", "click==8.1.7", "six==1.16.0", "attrs==24.2.0", "packaging==24.1",
            "idna==3.10", "pyyaml==6.0.2", "markupsafe==2.1.5", "itsdangerous==2.2.0", "tomli==2.0.1"]

# ENV first: each app's build shares no build-cache step with another's above its base, as builds
# by separate teams (or the sample's --no-cache builds) do not: same packages, new layers.
APP_DOCKERFILE = """\
FROM {base}
ENV LAYERLAB_APP={name}
RUN python3 -m venv /opt/venv
RUN --mount=type=secret,id=ca PIP_CERT=/run/secrets/ca /opt/venv/bin/pip install --no-cache-dir \\
    --disable-pip-version-check {packages}
COPY app.py /app/app.py
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
"""


def docker_build(tag: str, dockerfile: str, files: dict[str, str] | None = None) -> None:
    from bench_contents import DOCKER, have_image, sh

    if have_image(tag):
        return
    with tempfile.TemporaryDirectory(prefix="layerlab-bench-scan-ctx-") as d:
        Path(d, "Dockerfile").write_text(dockerfile)
        for name, text in (files or {}).items():
            Path(d, name).write_text(text)
        t = time.perf_counter()
        sh(DOCKER, "build", "--network=host", "--secret", f"id=ca,src={CA}", "-t", tag, d,
           env=dict(os.environ, DOCKER_BUILDKIT="1"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(f"  built {tag} in {time.perf_counter() - t:.0f} s", flush=True)


def build_fleet(teams: int, apps: int) -> list[str]:
    """The fleet's tags (built when missing)."""
    from bench_contents import OS_TAG, build_os

    build_os()
    tags = []
    for name in ("py", "tools", "py-tools"):
        base, run = BASES[name]
        tag = f"{PREFIX}/base-{name}:1"
        docker_build(tag, f"FROM {base.format(os=OS_TAG)}\nRUN {run}\n")
        tags.append(tag)
    for t in range(teams):
        base = f"{PREFIX}/base-{TEAM_BASE[t % len(TEAM_BASE)]}:1"
        for a in range(apps):
            # every app has requests; then a team-specific and an app-specific pick
            pkgs = sorted({PACKAGES[0], PACKAGES[1 + t % 4], PACKAGES[5 + (t + a) % 5]})
            tag = f"{PREFIX}/team{t}-app{a}:2"
            docker_build(tag, APP_DOCKERFILE.format(base=base, name=f"team{t}-app{a}", packages=" ".join(pkgs)),
                         {"app.py": f"print('team {t} app {a}')\n"})
            tags.append(tag)
    return tags


def push_fleet(tags: list[str], registry) -> list[str]:
    from registrykit import skopeo

    refs = []
    t = time.perf_counter()
    for tag in tags:
        ref = registry.ref(tag)
        skopeo("copy", "--quiet", "--dest-tls-verify=false", f"docker-daemon:{tag}", f"docker://{ref}")
        refs.append(f"docker://{ref}")
    print(f"pushed {len(refs)} images to {registry.host} in {time.perf_counter() - t:.0f} s", flush=True)
    return refs


def copy_to_layout(refs: list[str], layout: Path) -> str:
    """The pushed images copied from the registry into one OCI layout (the same blobs); its source string."""
    from registrykit import skopeo

    for i, ref in enumerate(refs):
        skopeo("copy", "--quiet", "--src-tls-verify=false", ref, f"oci:{layout}:image{i}")
    return f"oci:{layout}"


# -- one scan, in a fresh process -------------------------------------------------
def _cpu_seconds(proc) -> float:
    """User + system CPU seconds of a process (its threads, living and ended; not its children)."""
    t = proc.cpu_times()
    return t.user + t.system


def _machine_busy_seconds() -> float:
    """CPU seconds all CPUs of the machine spent not idle (``/proc/stat``), since boot."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def child(workers: int, cache: str, refs_file: str, registry_pid: int) -> None:
    """One measured scan; prints its figures as JSON.  Besides the time: the CPU
    seconds of each worker process, of the registry, of this process (the
    scan's client, the scheduler and the nannies), of the whole machine (all
    processes: what is left is other work on the machine), and each worker's
    seconds inside tasks (Dask's task stream)."""
    import psutil
    from dask.distributed import Client, LocalCluster, get_task_stream

    from layerlab.scan.engine import scan

    refs = json.loads(Path(refs_file).read_text())
    registry, me = psutil.Process(registry_pid), psutil.Process()
    # this process, too, has the task's modules imported (requests, pyarrow's Parquet, fsspec…), as a session
    # that scans again has: the runs measure the scan's work, not a fresh interpreter's first imports
    from layerlab.scan.preload import dask_setup

    dask_setup()
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", silence_logs=40,
                      preload=["layerlab.scan.preload"]) as cluster, Client(cluster) as client:
        procs = {addr: psutil.Process(pid) for addr, pid in client.run(os.getpid).items()}
        before = ({a: _cpu_seconds(p) for a, p in procs.items()}, _cpu_seconds(registry), _cpu_seconds(me),
                  _machine_busy_seconds())
        t = time.perf_counter()
        with get_task_stream(client) as stream:
            s = scan(refs, cache=cache, client=client, progress=False)
        seconds = time.perf_counter() - t
        after = ({a: _cpu_seconds(p) for a, p in procs.items()}, _cpu_seconds(registry), _cpu_seconds(me),
                 _machine_busy_seconds())
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    in_tasks = dict.fromkeys(procs, 0.0)
    for rec in stream.data:
        for ss in rec["startstops"]:
            if ss["action"] == "compute":
                in_tasks[rec["worker"]] = in_tasks.get(rec["worker"], 0.0) + ss["stop"] - ss["start"]
    workers_cpu = [after[0][a] - before[0][a] for a in sorted(procs)]
    cpu = {
        "workers_seconds": workers_cpu,
        "workers_cpu_per_wall": [c / seconds for c in workers_cpu],
        "workers_task_seconds": [in_tasks[a] for a in sorted(procs)],
        "registry_seconds": after[1] - before[1],
        "client_seconds": after[2] - before[2],
        "machine_busy_seconds": after[3] - before[3],
    }
    cpu["other_seconds"] = max(0.0, cpu["machine_busy_seconds"] - sum(workers_cpu) - cpu["registry_seconds"]
                               - cpu["client_seconds"])
    print(json.dumps({"seconds": seconds, "peak_rss_bytes": peak_kb * 1024, "failed": s.stats["failed"],
                      **{k: s.stats[k] for k in ("images", "layers", "distinct", "scanned", "reused", "read_bytes")},
                      "cpu": cpu}))


def run_child(workers: int, cache: Path, refs_file: Path, registry_pid: int) -> dict:
    out = subprocess.run([PY, __file__, "--child", str(workers), str(cache), str(refs_file), str(registry_pid)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def cpu_line(name: str, run: dict) -> str:
    """One run's CPU accounting, for the summary."""
    c = run["cpu"]
    per = ", ".join(f"{w:.2f} s ({r:.2f} cores; {t:.2f} s in tasks)" for w, r, t in
                    zip(c["workers_seconds"], c["workers_cpu_per_wall"], c["workers_task_seconds"]))
    rest = c["registry_seconds"] + c["client_seconds"]
    return (f"{name} {run['seconds']:.2f} s: workers {per}; the rest {rest:.2f} s (registry "
            f"{c['registry_seconds']:.2f}, client+scheduler {c['client_seconds']:.2f}); other work on the "
            f"machine {c['other_seconds']:.2f} s")


# -- dedup: DuckDB vs pandas --------------------------------------------------------
def compare_dedup(cache: Path) -> dict:
    import pandas as pd

    from _scan_cache import pandas_dedup
    from layerlab.scan.cache import Cache
    from layerlab.scan.queries import dedup

    t = time.perf_counter()
    r = dedup(cache, top=50)
    duck_s = time.perf_counter() - t
    t = time.perf_counter()
    paths = [c.path for c in Cache(cache).verified().values()]
    stored = pd.concat([pd.read_parquet(p, columns=["diff_id", "path", "type", "size", "hash"]) for p in paths])
    layers = pd.concat([pd.read_parquet(p) for p in sorted((cache / "layers").glob("*.parquet"))])
    layers = layers[layers["scan_id"] == layers.groupby("source")["scan_id"].transform("max")]
    want = pandas_dedup(stored, layers[["image", "diff_id"]])
    pandas_s = time.perf_counter() - t
    diffs = {k: (r.summary[k], v) for k, v in want.items() if k != "top" and r.summary[k] != v}
    top_cols = ["hash", "size", "copies", "layers", "images", "paths", "saved_bytes"]
    got_top = r.top_files[top_cols].astype({c: "int64" for c in top_cols[1:]}).reset_index(drop=True)
    want_top = want["top"][top_cols].head(50).astype({c: "int64" for c in top_cols[1:]}).reset_index(drop=True)
    if not got_top.equals(want_top.astype(got_top.dtypes.to_dict())):
        diffs["top_files"] = "differ"
    print("\nDedup (DuckDB):", r)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(r.table.to_string(index=False))
        print(r.levels.to_string(index=False))
    print(f"DuckDB {duck_s:.2f} s, pandas {pandas_s:.2f} s; agree: {not diffs}" + (f" ({diffs})" if diffs else ""))
    return {"agree": not diffs, "differences": {k: str(v) for k, v in diffs.items()}, "duckdb_seconds": duck_s,
            "pandas_seconds": pandas_s, "summary": {k: v for k, v in r.summary.items() if k != "hash_algorithms"},
            "table": json.loads(r.table.to_json(orient="records"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--teams", type=int, default=4)
    ap.add_argument("--apps", type=int, default=7)
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--child", nargs=4, metavar=("WORKERS", "CACHE", "REFS", "REGISTRY_PID"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(int(args.child[0]), args.child[1], args.child[2], int(args.child[3]))

    from registrykit import start_registry, stop_registry_proc

    tags = build_fleet(args.teams, args.apps)
    print(f"fleet: {len(tags)} images", flush=True)
    work = Path(tempfile.mkdtemp(prefix="layerlab-bench-scan-"))
    reg = start_registry(work / "registry")
    try:
        refs = push_fleet(tags, reg)
        refs_file = work / "refs.json"
        refs_file.write_text(json.dumps(refs))
        # not measured: one read of every blob, so the registry's files are in the page cache for every run below
        run_child(2, work / "cache-prime", refs_file, reg.proc.pid)
        load_before = os.getloadavg()[0]
        cold1 = run_child(1, work / "cache-1", refs_file, reg.proc.pid)
        print("cold, 1 worker: ", cold1, flush=True)
        cold2 = run_child(2, work / "cache-2", refs_file, reg.proc.pid)
        print("cold, 2 workers:", cold2, flush=True)
        warm2 = run_child(2, work / "cache-2", refs_file, reg.proc.pid)
        print("warm, 2 workers:", warm2, flush=True)
        load_after = os.getloadavg()[0]
        layout_file = work / "layout.json"
        layout_file.write_text(json.dumps([copy_to_layout(refs, work / "layout")]))
        run_child(2, work / "cache-layout-prime", layout_file, reg.proc.pid)  # page cache, as above
        oci1 = run_child(1, work / "cache-layout-1", layout_file, reg.proc.pid)
        print("cold, 1 worker, OCI layout: ", oci1, flush=True)
        oci2 = run_child(2, work / "cache-layout-2", layout_file, reg.proc.pid)
        print("cold, 2 workers, OCI layout:", oci2, flush=True)
        dd = compare_dedup(work / "cache-2")
    finally:
        stop_registry_proc(reg.proc)
    rate1 = cold1["scanned"] / cold1["seconds"]
    rate2 = cold2["scanned"] / cold2["seconds"]
    oci_rate1, oci_rate2 = oci1["scanned"] / oci1["seconds"], oci2["scanned"] / oci2["seconds"]
    out = {
        "images": len(tags), "distinct_layers": cold2["distinct"],
        "layers_per_second_1_worker": rate1, "layers_per_second_2_workers": rate2, "speedup_2_workers": rate2 / rate1,
        "cold_seconds_2_workers": cold2["seconds"], "warm_seconds_2_workers": warm2["seconds"],
        "warm_over_cold": warm2["seconds"] / cold2["seconds"], "warm_scanned": warm2["scanned"],
        "client_peak_rss_bytes": max(cold1["peak_rss_bytes"], cold2["peak_rss_bytes"], warm2["peak_rss_bytes"]),
        "read_bytes": cold2["read_bytes"], "load_average": [load_before, load_after], "cpus": os.cpu_count(),
        "oci_layout": {"layers_per_second_1_worker": oci_rate1, "layers_per_second_2_workers": oci_rate2,
                       "speedup_2_workers": oci_rate2 / oci_rate1, "seconds": [oci1["seconds"], oci2["seconds"]],
                       "scanned": [oci1["scanned"], oci2["scanned"]]},
        "cpu": {"cold_1_worker": cold1["cpu"], "cold_2_workers": cold2["cpu"], "warm_2_workers": warm2["cpu"],
                "oci_layout_1_worker": oci1["cpu"], "oci_layout_2_workers": oci2["cpu"]},
        "dedup": dd,
    }
    print("\n== results ==")
    print(f"{out['images']} images, {out['distinct_layers']} distinct layers, "
          f"{out['read_bytes'] / 1e6:.0f} MB of blobs read per cold scan")
    print(f"layers/s: 1 worker {rate1:.2f}, 2 workers {rate2:.2f} -> {out['speedup_2_workers']:.2f}x (goal >= 1.7x)")
    print(f"from an OCI layout on local disk (same blobs, no registry on the CPUs): 1 worker {oci_rate1:.2f}, "
          f"2 workers {oci_rate2:.2f} layers/s -> {oci_rate2 / oci_rate1:.2f}x")
    print(f"warm rescan {warm2['seconds']:.2f} s vs cold {cold2['seconds']:.2f} s -> "
          f"{out['warm_over_cold']:.1%} (goal <= 5%); layers read again: {warm2['scanned']}")
    print(f"load average (1 min) before/after the measured scans: {load_before:.1f}/{load_after:.1f} "
          f"on {os.cpu_count()} CPUs (other work on the machine slows the 2-worker run most)")
    print("CPU seconds per run (cores: a worker's CPU over the run's time):")
    for name, run in (("  cold, 1 worker: ", cold1), ("  cold, 2 workers:", cold2), ("  warm, 2 workers:", warm2),
                      ("  OCI layout, 1 worker: ", oci1), ("  OCI layout, 2 workers:", oci2)):
        print(cpu_line(name, run))
    print(f"client peak RSS {out['client_peak_rss_bytes'] / 2**20:.0f} MiB")
    print(f"dedup DuckDB vs pandas agree: {dd['agree']}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    if not dd["agree"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
