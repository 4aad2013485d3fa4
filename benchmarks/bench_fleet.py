"""Fleet analyses at scale: overlap, sharing tree and totals.

    .venv/bin/python benchmarks/bench_fleet.py [--repeat N] [--images N] [--rows N]

Two workloads, each timed after loading (best and median of --repeat runs),
with a plain-pandas reference measured in the same run so the ratios mean
something on a busy machine:

1. the docker-library repo-info record of 2018 (../shared/data/repo-info-2018;
   26,163 layer rows, 3,086 tags) keyed by ``digest`` (it has no diff_ids);
   target: overlap + sharing tree + totals under 1 s.
   References: ``df.groupby("digest")["compressed_size"].max().sum()`` (the
   cheapest possible pass over the frame) and the plain-pandas pairwise
   overlap (self-merge on the key, then groupby per pair).
2. a synthetic fleet generated here: 10,000 images / 100,000 layer rows with
   realistic structure (OS bases -> runtimes -> frameworks -> apps, plus a
   layer copied onto many bases so diff_id sharing differs from chain_id
   sharing); target: the same three analyses under 5 s.  Peak memory is
   reported from tracemalloc (a separate run, as tracing slows allocation)
   and the process's peak RSS.

Speed targets live here, not in the tests.
"""
from __future__ import annotations

import argparse
import gc
import hashlib
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import layerlab as ll  # noqa: E402

REPO_INFO = ROOT.parent / "shared" / "data" / "repo-info-2018" / "repos"


CPU: dict[str, float] = {}


def timed(fn, repeat, label=None):
    """(best wall time, median wall time, result); the best CPU time (this
    process, all threads) goes to CPU[label] — on a shared machine wall time
    includes waiting for a core, CPU time does not."""
    times, cpus, out = [], [], None
    for _ in range(repeat):
        gc.collect()
        c = time.process_time()
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    if label:
        CPU[label] = min(cpus)
    return min(times), statistics.median(times), out


def peak_memory(fn) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def mb(n) -> str:
    return f"{n / 1e6:,.0f} MB"


def report(title, parts, reference, repeat, target):
    print(f"\n== {title}")
    total_best = total_med = total_cpu = 0.0
    outs = {}
    for name, fn in parts:
        best, med, out = timed(fn, repeat, name)
        outs[name] = out
        total_best += best
        total_med += med
        total_cpu += CPU[name]
        rows = len(out) if hasattr(out, "__len__") else "-"
        print(f"  {name:<34} best {best:7.3f} s  median {med:7.3f} s  cpu {CPU[name]:7.3f} s  ({rows:,} rows out)")
    print(f"  {'overlap + tree + totals':<34} best {total_best:7.3f} s  median {total_med:7.3f} s  cpu {total_cpu:7.3f} s"
          f"  target < {target:g} s: {'OK' if total_best < target else 'MISSED'} (wall), "
          f"{'OK' if total_cpu < target else 'MISSED'} (cpu)")
    for name, fn in reference:
        best, med, _ = timed(fn, repeat, name)
        print(f"  reference: {name:<23} best {best:7.3f} s  cpu {CPU[name]:7.3f} s  -> analyses / reference = "
              f"{total_best / best:,.1f}x wall, {total_cpu / max(CPU[name], 1e-9):,.1f}x cpu")
    return outs


# ---------------------------------------------------------------------------
def synthetic_fleet(n_images: int = 10_000, n_rows: int = 100_000, seed: int = 7) -> pd.DataFrame:
    """A layers frame shaped like a real fleet.

    40 OS bases (1 layer) -> 5 runtimes each (2 layers) -> 5 frameworks each
    (2 layers) -> apps (the rest of the rows: 0-8 app layers each; one in
    five apps also carries a common "COPY requirements" layer whose content
    is the same on every base).  Chain ids are the real OCI ChainIDs.
    """
    rng = np.random.default_rng(seed)
    n_os, n_rt, n_fw = 40, 5, 5
    base_depth = 1 + 2 + 2
    app_rows = n_rows - n_images * base_depth
    if app_rows < 0:
        raise SystemExit(f"--rows must be at least {n_images * base_depth} for {n_images} images")
    # app layers per image: multinomial so the total is exactly n_rows
    per_app = rng.multinomial(app_rows, np.full(n_images, 1 / n_images))
    diff_ids, sizes, images, positions = [], [], [], []
    size_of: dict[str, int] = {}

    def layer(tag: str, lo: int, hi: int) -> str:
        d = "sha256:" + hashlib.sha256(tag.encode()).hexdigest()
        if d not in size_of:
            size_of[d] = int(rng.integers(lo, hi))
        return d

    common = layer("COPY requirements.txt", 1_000, 50_000)
    for i in range(n_images):
        o = i % n_os
        r = (i // n_os) % n_rt
        f = (i // (n_os * n_rt)) % n_fw
        stack = [layer(f"os{o}", 20_000_000, 120_000_000)]
        stack += [layer(f"os{o}/rt{r}/{j}", 1_000_000, 60_000_000) for j in range(2)]
        stack += [layer(f"os{o}/rt{r}/fw{f}/{j}", 100_000, 30_000_000) for j in range(2)]
        extra = int(per_app[i])
        app = [layer(f"app{i}/{j}", 100, 20_000_000) for j in range(extra)]
        if extra and i % 5 == 0:
            app[0] = common
        stack += app
        for p, d in enumerate(stack):
            images.append(f"registry.example/app{i}:1")
            positions.append(p)
            diff_ids.append(d)
            sizes.append(size_of[d])
    df = pd.DataFrame({
        "image": pd.array(images, dtype="string"),
        "position": pd.array(positions, dtype="Int64"),
        "diff_id": pd.array(diff_ids, dtype="string"),
        "size": pd.array(sizes, dtype="Int64"),
    })
    # real chain ids, per image
    chains = []
    for _, g in df.groupby("image", sort=False):
        chains.extend(ll.chain_ids(g["diff_id"].tolist()))
    df["chain_id"] = pd.array(chains, dtype="string")
    df["digest"] = df["diff_id"]          # uncompressed blobs: digest == diff_id
    df["compressed_size"] = df["size"]
    df["image_id"] = df["image"]
    return df


def naive_overlap(df: pd.DataFrame, key: str, size: str) -> pd.DataFrame:
    """The plain-pandas way (what a notebook would write): self-merge on the key."""
    pairs = df[["image", key, size]].dropna(subset=[key]).drop_duplicates(["image", key])
    m = pairs.merge(pairs[["image", key]], on=key, suffixes=("", "_other"))
    m = m[m["image"] != m["image_other"]]
    return m.groupby(["image", "image_other"], sort=False).agg(shared_bytes=(size, "sum"), shared_layers=(key, "size"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--skip-naive", action="store_true", help="skip the plain-pandas self-merge reference")
    args = ap.parse_args(argv)
    load = " ".join(f"{x:.1f}" for x in __import__("os").getloadavg())
    print(f"python {sys.version.split()[0]}, pandas {pd.__version__}, numpy {np.__version__}; "
          f"load average {load} on {__import__('os').cpu_count()} cores")

    # 1. repo-info 2018 ----------------------------------------------------
    if REPO_INFO.is_dir():
        t = time.perf_counter()
        fleet = ll.load_many(f"repo-info:{REPO_INFO}")
        layers = fleet.layers().merge(fleet.images()[["image", "id"]], on="image")
        print(f"\nloaded repo-info 2018: {len(fleet):,} images, {len(layers):,} layer rows in {time.perf_counter() - t:.2f} s")
        refs = [("groupby(digest).max().sum()", lambda: layers.groupby("digest")["compressed_size"].max().sum())]
        if not args.skip_naive:
            refs.append(("pandas self-merge overlap", lambda: naive_overlap(layers, "digest", "compressed_size")))
        outs = report(
            "repo-info 2018, key=digest (compressed sizes)",
            [
                ("overlap(key='digest')", lambda: ll.overlap(layers, key="digest")),
                ("sharing_tree(key='digest')", lambda: ll.sharing_tree(layers, key="digest")),
                ("fleet_totals(image_id='id')", lambda: ll.fleet_totals(layers, image_id="id")),
            ],
            refs,
            args.repeat,
            1.0,
        )
        tot = outs["fleet_totals(image_id='id')"].set_index(["accounting", "measure"])["stored_bytes"]
        print(f"  check: distinct images {tot[('images', 'compressed_size')] / 1e9:.2f} GB, "
              f"distinct digests {tot[('digest', 'compressed_size')] / 1e9:.2f} GB (README: 171.25 / 63.39)")
        if not args.skip_naive:
            naive = naive_overlap(layers, "digest", "compressed_size")
            ours = ll.overlap(layers, key="digest", symmetric=True)  # the self-merge lists both orders
            mine = ours[["image", "other_image", "shared_bytes"]].astype({"image": str, "other_image": str, "shared_bytes": "int64"})
            ref = naive.reset_index().rename(columns={"image_other": "other_image"})
            ref = ref[["image", "other_image", "shared_bytes"]].astype({"image": str, "other_image": str, "shared_bytes": "int64"})
            both = mine.merge(ref, on=["image", "other_image"], how="outer", suffixes=("", "_ref"), indicator=True)
            same = bool((both["_merge"] == "both").all() and (both["shared_bytes"] == both["shared_bytes_ref"]).all())
            print(f"  check: ordered sharing pairs ours {len(ours):,} vs pandas self-merge {len(naive):,}; "
                  f"every pair's shared bytes equal: {same}")
    else:
        print(f"\n{REPO_INFO} is absent: repo-info workload skipped")

    # 2. synthetic fleet ---------------------------------------------------
    t = time.perf_counter()
    syn = synthetic_fleet(args.images, args.rows)
    print(f"\ngenerated synthetic fleet: {syn['image'].nunique():,} images, {len(syn):,} layer rows "
          f"in {time.perf_counter() - t:.2f} s (not counted)")
    parts = [
        ("overlap(key='chain_id')", lambda: ll.overlap(syn, key="chain_id")),
        ("sharing_tree(key='chain_id')", lambda: ll.sharing_tree(syn, key="chain_id")),
        ("fleet_totals(image_id='image_id')", lambda: ll.fleet_totals(syn, image_id="image_id")),
    ]
    report(
        f"synthetic, {args.images:,} images / {args.rows:,} rows, key=chain_id",
        parts,
        [("groupby(chain_id).max().sum()", lambda: syn.groupby("chain_id")["size"].max().sum())],
        max(1, args.repeat // 2),
        5.0,
    )
    best, med, o = timed(lambda: ll.overlap(syn, key="diff_id"), 1, "diff_id")
    print(f"  (also) overlap(key='diff_id')        {best:7.3f} s   ({len(o):,} rows out)")

    def all_three():
        ll.overlap(syn, key="chain_id")
        ll.sharing_tree(syn, key="chain_id")
        ll.fleet_totals(syn, image_id="image_id")

    peak = peak_memory(all_three)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    frame_mem = int(syn.memory_usage(deep=True).sum())
    print(f"  memory: tracemalloc peak during the three analyses {mb(peak)} "
          f"(input frame {mb(frame_mem)}); process peak RSS {mb(rss)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
