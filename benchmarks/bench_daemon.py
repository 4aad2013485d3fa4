#!/usr/bin/env python3
"""Benchmark: docker-daemon: metadata and layer streaming against the docker CLI.

Builds (once; reused by tag) an image on the busybox test base with a few
layers of random data (``--mb`` in all) and one layer of many small files.
Then, each ``--runs`` times, in fresh processes:

* metadata: ``layerlab.load("docker-daemon:TAG")`` (exact pairing) against
  ``docker image inspect TAG`` + ``docker history --no-trunc TAG`` (the reference);
* contents: every layer blob streamed through ``img.blobs.iter_blobs()`` and
  read to EOF (sha256 checked against the diff_id) against
  ``docker save TAG > /dev/null`` (the reference: the engine's export alone).

Prints medians, ratios, layerlab's peak RSS and how many layers had to be
spooled (the legacy save order; see ``layerlab.sources.daemon.DaemonBlobs``).

    .venv/bin/python benchmarks/bench_daemon.py [--mb 300] [--runs 3]
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from enginekit import DOCKER, build, import_base  # noqa: E402

PY = sys.executable

LOAD = """
import layerlab as ll, sys, time
t = time.perf_counter()
img = ll.load("docker-daemon:" + sys.argv[1])
print(time.perf_counter() - t)
assert all(l.size is not None for l in img.layer_list)
"""

STREAM = """
import layerlab as ll, sys, json, resource
img = ll.load("docker-daemon:" + sys.argv[1])
n = 0
for poss, mt, f in img.blobs.iter_blobs():
    while True:
        b = f.read(1 << 20)
        if not b:
            break
        n += len(b)
print(json.dumps({"bytes": n, "spooled": img.blobs.spooled,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def timed(cmd: list[str], shell: bool = False) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run(cmd if not shell else " ".join(cmd), shell=shell, check=True, capture_output=True)
    return time.perf_counter() - t, out.stdout.decode()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=300, help="MB of random data in the image")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    base = "layerlab-test/base:busybox"
    import_base(base)
    per = max(1, args.mb // 3)
    tag = f"layerlab-test/bench-daemon:{args.mb}mb"
    dockerfile = f"FROM {base}\n" + "".join(
        f"RUN dd if=/dev/urandom of=/data{i} bs=1M count={per}\n" for i in range(3)
    ) + "ENV BENCH=1\nRUN mkdir /many && cd /many && i=0; while [ $i -lt 3000 ]; do echo $i > f$i; i=$((i+1)); done\n"
    t = time.perf_counter()
    build(tag, dockerfile)
    print(f"image {tag}: built/reused in {time.perf_counter() - t:.1f} s")

    meta_ll, meta_in, meta_cli, stream_ll, stream_cli = [], [], [], [], []
    info = {}
    for _ in range(args.runs):
        dt, out = timed([PY, "-c", LOAD, tag])
        meta_ll.append(dt)
        meta_in.append(float(out.strip().splitlines()[-1]))
        t1, _ = timed([DOCKER, "image", "inspect", tag])
        t2, _ = timed([DOCKER, "history", "--no-trunc", "--format", "{{json .}}", tag])
        meta_cli.append(t1 + t2)
        dt, out = timed([PY, "-c", STREAM, tag])
        stream_ll.append(dt)
        info = json.loads(out.strip().splitlines()[-1])
        stream_cli.append(timed([DOCKER, "save", tag, ">", "/dev/null"], shell=True)[0])

    med = statistics.median
    print(f"metadata  layerlab load (new process, incl. import) {med(meta_ll):6.2f} s | "
          f"docker inspect + history {med(meta_cli):6.2f} s | ratio {med(meta_ll) / med(meta_cli):.2f}")
    print(f"          layerlab.load() alone, in process (import excluded) {med(meta_in):6.3f} s | "
          f"ratio to the CLI pair {med(meta_in) / med(meta_cli):.2f}")
    print(f"contents  layerlab stream+verify {med(stream_ll):6.2f} s | docker save > /dev/null "
          f"{med(stream_cli):6.2f} s | ratio {med(stream_ll) / med(stream_cli):.2f}")
    print(f"          {info['bytes'] / 1e6:.0f} MB of layer tars, {info['spooled']} layer(s) spooled, "
          f"peak RSS {info['rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
