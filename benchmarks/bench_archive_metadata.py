#!/usr/bin/env python3
"""Benchmark: loading a >= 1 GB `docker save` archive's metadata must not read file contents.

Builds (in a temp dir, or the directory given) a legacy docker-archive of
several uncompressed layers of many files, ~1 GB in all, with python tarfile.
Then, each a few times, in fresh processes:

* ``layerlab.load(archive)`` — the image with every layer's Docker size,
  read from the layer tars' headers;
* ``tar -tf archive`` — GNU tar listing the outer archive (the reference);
* ``cat archive > /dev/null`` — reading every byte (what we must not do).

Prints medians, the ratios, layerlab's peak RSS and the bytes it read
(``rchar`` from /proc/self/io).

    .venv/bin/python benchmarks/bench_archive_metadata.py [--dir DIR] [--gb 1.0] [--runs 5]
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

CHUNK = (hashlib.sha256(b"layerlab").digest() * 32768)  # 1 MiB of incompressible-looking bytes


class _Pattern(io.RawIOBase):
    """``n`` bytes of CHUNK repeated, without holding them in memory."""

    def __init__(self, n: int):
        self.left = n

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        k = min(len(b), self.left, len(CHUNK))
        b[:k] = CHUNK[:k]
        self.left -= k
        return k


def build(path: Path, total: int, layers: int) -> dict:
    from tqdm.auto import tqdm

    per_layer = total // layers
    diff_ids, names = [], []
    tmp_layer = path.with_suffix(".layer.tmp")
    with tarfile.open(path, "w") as outer, tqdm(total=total, unit="B", unit_scale=True, desc="building") as bar:
        for li in range(layers):
            h = hashlib.sha256()
            files = 0
            with open(tmp_layer, "wb") as raw:
                class _Hashing(io.RawIOBase):
                    def writable(self):
                        return True

                    def write(self, b):
                        h.update(b)
                        return raw.write(b)

                with tarfile.open(fileobj=_Hashing(), mode="w|", format=tarfile.GNU_FORMAT) as lt:
                    written = 0
                    while written < per_layer:
                        # a spread of sizes: many small files, some large ones
                        size = [200, 2_000, 8_000, 40_000, 200_000][files % 5]
                        d = f"usr/lib/pkg{li}/d{files // 100:04d}"
                        if files % 100 == 0:
                            ti = tarfile.TarInfo(d)
                            ti.type = tarfile.DIRTYPE
                            ti.mode = 0o755
                            lt.addfile(ti)
                        ti = tarfile.TarInfo(f"{d}/file{files:06d}.bin")
                        ti.size = size
                        ti.mode = 0o644
                        lt.addfile(ti, io.BufferedReader(_Pattern(size)))
                        if files % 50 == 0:
                            link = tarfile.TarInfo(f"{d}/link{files:06d}")
                            link.type = tarfile.SYMTYPE
                            link.linkname = f"file{files:06d}.bin"
                            lt.addfile(link)
                        written += size
                        files += 1
                        bar.update(size)
            lid = hashlib.sha256(f"layer{li}".encode()).hexdigest()
            name = f"{lid}/layer.tar"
            ti = tarfile.TarInfo(name)
            ti.size = tmp_layer.stat().st_size
            ti.mode = 0o644
            with open(tmp_layer, "rb") as f:
                outer.addfile(ti, f)
            tmp_layer.unlink()
            diff_ids.append("sha256:" + h.hexdigest())
            names.append(name)
        cfg = json.dumps({
            "architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created_by": f"RUN install pkg{i}"} for i in range(layers)],
        }).encode()
        cfg_name = hashlib.sha256(cfg).hexdigest() + ".json"
        for n, data in ((cfg_name, cfg), ("manifest.json", json.dumps(
                [{"Config": cfg_name, "RepoTags": ["bench/big:1"], "Layers": names}]).encode())):
            ti = tarfile.TarInfo(n)
            ti.size = len(data)
            outer.addfile(ti, io.BytesIO(data))
    return {"diff_ids": diff_ids}


LOAD = r"""
import json, resource, sys, time


def rchar():
    try:
        for line in open("/proc/self/io"):
            if line.startswith("rchar"):
                return int(line.split()[1])
    except OSError:
        return None


t0 = time.perf_counter()
import layerlab
t1 = time.perf_counter()
r0 = rchar()
img = layerlab.load(sys.argv[1])
r1 = rchar()
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "rchar": None if r0 is None else r1 - r0, "layers": len(img.layer_list), "size": img.size}))
"""


def wall(cmd: list[str], **kw) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, **kw)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", help="where to build the archive (kept); default a temp dir (removed)")
    ap.add_argument("--gb", type=float, default=1.0)
    ap.add_argument("--layers", type=int, default=5)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()

    tmp = None
    if args.dir:
        d = Path(args.dir)
        d.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="layerlab-bench-")
        d = Path(tmp.name)
    path = d / "big-docker-archive.tar"
    total = int(args.gb * 1e9)
    if not path.exists() or path.stat().st_size < total:
        build(path, total, args.layers)
    size = path.stat().st_size
    with tarfile.open(path) as tf:  # count the files in the layers (for the report)
        n_members = len(tf.getmembers())
    print(f"archive: {path} ({size / 1e9:.2f} GB, {n_members} outer members, {args.layers} uncompressed layers)")

    py = sys.executable
    loads, walls, rss, rchar = [], [], [], []
    for _ in range(args.runs):
        t = time.perf_counter()
        out = subprocess.run([py, "-c", LOAD, str(path)], check=True, capture_output=True, text=True).stdout
        walls.append(time.perf_counter() - t)
        r = json.loads(out)
        loads.append(r["load"])
        rss.append(r["rss_kb"])
        rchar.append(r["rchar"])
    tar_tf = [wall(["tar", "-tf", str(path)], stdout=subprocess.DEVNULL) for _ in range(args.runs)]
    cat = [wall(["cat", str(path)], stdout=subprocess.DEVNULL) for _ in range(args.runs)]

    m_load, m_wall, m_tar, m_cat = (statistics.median(x) for x in (loads, walls, tar_tf, cat))
    print(f"layers: {r['layers']}, image size (Docker's, from headers): {r['size']} bytes")
    print(f"layerlab.load (in-process, median of {args.runs}):   {m_load * 1000:9.1f} ms")
    print(f"python -c 'import layerlab; load' (process wall):  {m_wall * 1000:9.1f} ms")
    print(f"tar -tf (process wall):                            {m_tar * 1000:9.1f} ms")
    print(f"cat > /dev/null (process wall, page cache warm):   {m_cat * 1000:9.1f} ms")
    print(f"ratio load / tar -tf:          {m_load / m_tar:6.2f}x   (process walls: {m_wall / m_tar:.2f}x)")
    print(f"ratio load / cat:              {m_load / m_cat:6.3f}x")
    print(f"peak RSS of the loading process: {max(rss) / 1024:.1f} MiB")
    if rchar[0] is not None:
        print(f"bytes read during layerlab.load (rchar delta): "
              f"{statistics.median(rchar) / 1e6:.2f} MB of a {size / 1e9:.2f} GB archive")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
