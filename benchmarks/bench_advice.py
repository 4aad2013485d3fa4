"""Advice on real fleets: plan_bases, suggest_merges and improve, proven by building.

    .venv/bin/python benchmarks/bench_advice.py [--fleet apt-pip|node-npm] [--keep] [--no-cache]
                                               [--options KEY=VALUE ...]

For each fleet of tests/realfleet.py (built with the real engine on a Debian
bookworm base debootstrapped once per machine):

1. builds the apps as their teams wrote them and the hand-written layered
   design (f1 OS tools -> f2 general tools -> f3 libraries -> apps);
2. runs ``ll.plan_bases`` (default options, or ``--options reorder=True
   split=step`` …) on the apps' Dockerfiles with their images, builds every
   Dockerfile it proposes, and measures the built fleet with the engine;
3. runs ``ll.improve`` on each app and rebuilds its Dockerfile;
4. prints, per fleet: storage on one host and bytes pulled (cold, after the
   other apps, with the bases present; uncompressed, by layer chain) before /
   as planned (the plan's prediction) / as built / for the hand-written
   design; the improved apps' predicted vs built sizes; and the timings.

The targets (issue 11): built within 5% of the plan's prediction and at most
1.1x the hand-written design.  Figures come from ``docker image inspect`` and
the engine's layer records (tests/realfleet.py ``measure``), never from layerlab.
Tags are made under a per-run prefix and removed at the end (``--keep`` keeps them).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import layerlab as ll  # noqa: E402
import realfleet as rf  # noqa: E402
from layerlab.frames import human_bytes  # noqa: E402


def _opt(text: str):
    key, _, value = text.partition("=")
    lit = {"True": True, "False": False, "None": None}
    return key, lit.get(value, value)


def _row(name: str, stored, m: rf.Measure | None, cold=None, after=None, bases=None) -> str:
    if m is not None:
        cold, after, bases = (m.app_total("pulled_cold_bytes"), m.app_total("pulled_after_bytes"),
                              m.app_total("pulled_with_bases_bytes"))
    return (f"  {name:<26} {human_bytes(stored):>10} {human_bytes(cold):>12} {human_bytes(after):>14}"
            f" {human_bytes(bases):>14}")


def _pct(got, want) -> str:
    if got is None or want is None or want != want or not want:
        return "?"
    return f"{100 * (got - want) / want:+.1f}%"


def bench(fleet: rf.Fleet, prefix: str, options: dict, no_cache: bool) -> None:
    print(f"\n== fleet {fleet.name}: {len(fleet.apps)} apps ({', '.join(fleet.apps)})", flush=True)
    times: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="layerlab-bench-advice-") as d:
        ctx = rf.write_context(fleet, d)
        t = time.perf_counter()
        apps = rf.build_fleet(fleet, prefix, ctx, no_cache=no_cache)
        times["build the apps" + ("" if no_cache else " (cache allowed)")] = time.perf_counter() - t
        t = time.perf_counter()
        design = rf.build_design(fleet, prefix, ctx, no_cache=no_cache)
        times["build the hand-written design"] = time.perf_counter() - t
        before = rf.measure(apps)
        design_m = rf.measure({a: design[a] for a in fleet.apps},
                              {n: design[n] for n in design if n not in fleet.apps})

        t = time.perf_counter()
        images = {a: ll.load(f"docker-daemon:{tag}") for a, tag in apps.items()}
        plan = ll.plan_bases({a: fleet.dockerfile(a) for a in fleet.apps}, images=images, **options)
        times["ll.load + ll.plan_bases"] = time.perf_counter() - t
        s = plan.savings
        host = s[s["scope"] == "host"].iloc[0]
        app_rows = s[s["scope"] == "app"]

        built = None
        if plan.bases:
            t = time.perf_counter()
            tags = rf.build_plan(plan, f"{prefix}plan-", ctx, no_cache=no_cache)
            times["build the plan"] = time.perf_counter() - t
            built = rf.measure({a: tags[a] for a in plan.apps}, {n: tags[n] for n in plan.bases})

        improved = []
        t = time.perf_counter()
        for a in fleet.apps:
            t1 = time.perf_counter()
            imp = ll.improve(images[a], fleet.dockerfile(a), progress=False)
            dt = time.perf_counter() - t1
            tag = rf.build(f"{prefix}{a}-improved:1", imp.dockerfile, ctx)
            improved.append((a, imp.size_bytes, imp.predicted_size_bytes, rf.image_size(tag), len(imp.changes), dt))
        times["ll.improve + rebuild, every app"] = time.perf_counter() - t

    print(f"  plan: {plan!r}")
    for note in plan.notes:
        print(f"    note: {note}")
    print(f"\n  {'':<26} {'stored':>10} {'pulled cold':>12} {'pulled after':>14} {'with bases':>14}")
    print(_row("before (as written)", before.stored_bytes, before))
    print(_row("plan: predicted before", host["stored_before_bytes"], None,
               app_rows["size_before_bytes"].sum(), app_rows["pulled_before_bytes"].sum(), None))
    print(_row("plan: predicted after", host["stored_after_bytes"], None, app_rows["size_after_bytes"].sum(),
               app_rows["pulled_after_bytes"].sum(), app_rows["pulled_with_bases_bytes"].sum()))
    if built is not None:
        print(_row("plan: built", built.stored_bytes, built))
    else:
        print("  plan: built                (no base proposed: nothing to build)")
    print(_row("hand-written design", design_m.stored_bytes, design_m))
    if built is not None:
        print(f"\n  storage: built plan vs prediction {_pct(built.stored_bytes, host['stored_after_bytes'])}"
              f" (target within 5%); vs hand-written design {built.stored_bytes / design_m.stored_bytes:.2f}x"
              " (target <= 1.1x)")
    else:
        print(f"\n  storage: no plan to build; the apps as written store {before.stored_bytes / design_m.stored_bytes:.2f}x"
              " the hand-written design (target for a plan: <= 1.1x)")
    print(f"\n  {'ll.improve':<10} {'size':>10} {'predicted':>10} {'built':>10} {'error':>8} {'changes':>8} {'time':>7}")
    for a, size, pred, got, n, dt in improved:
        print(f"  {a:<10} {human_bytes(size):>10} {human_bytes(pred):>10} {human_bytes(got):>10}"
              f" {got - pred:>+7,d}B {n:>8} {dt:>6.1f}s")
    print("\n  timings:")
    for k, v in times.items():
        print(f"    {k:<34} {v:7.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fleet", choices=sorted(rf.FLEETS), action="append",
                    help="fleet(s) to run (default: all)")
    ap.add_argument("--keep", action="store_true", help="keep the images built (tags under a per-run prefix)")
    ap.add_argument("--no-cache", action="store_true",
                    help="build without the build cache (cold build times; new layers every run)")
    ap.add_argument("--options", nargs="*", default=[], metavar="KEY=VALUE",
                    help="plan_bases options, e.g. reorder=True split=step (default: none)")
    args = ap.parse_args()
    options = dict(_opt(o) for o in args.options)
    if not rf.have_image(rf.OS_TAG):
        print(f"debootstrap bookworm -> {rf.OS_TAG} (once per machine) ...", flush=True)
    t = time.perf_counter()
    rf.build_os()
    print(f"base {rf.OS_TAG}: {human_bytes(rf.image_size(rf.OS_TAG))} ({time.perf_counter() - t:.0f} s)")
    prefix = f"layerlab-bench/advice-{uuid.uuid4().hex[:8]}-"
    try:
        for name in args.fleet or list(rf.FLEETS):
            bench(rf.FLEETS[name], prefix, options, args.no_cache)
    finally:
        if not args.keep:
            names = rf.docker("images", "--format", "{{.Repository}}:{{.Tag}}").split()
            rf.remove([n for n in names if n.startswith(prefix)])


if __name__ == "__main__":
    main()
