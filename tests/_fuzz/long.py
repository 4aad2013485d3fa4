"""The long fuzz mode (``scripts/fuzz --minutes N``): every target of
:mod:`_fuzz.catalog`, round-robin, until the time is up.

Unlike the default test run it is not reproducible on purpose: hypothesis is
not derandomized, seeded targets start from a random seed (printed), and
``LAYERLAB_FUZZ_WIDE=1`` widens the strategies (integers past 2**63).  It never stops at a
finding: it prints how many inputs each target tried and every distinct
finding (what escaped and where, with the first input's label and traceback);
the inputs of each finding are saved under ``--out`` (``scripts/fuzz --replay
FILE`` runs one again).
"""
from __future__ import annotations

import argparse
import collections
import os
import pickle
import random
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/fuzz", description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="total time across targets (default 10)")
    ap.add_argument("--targets", default="", help="comma-separated target names (default: all)")
    ap.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "layerlab-fuzz-findings"),
                    help="where the inputs of findings are saved (default: $TMPDIR/layerlab-fuzz-findings)")
    ap.add_argument("--seed", type=int, default=None, help="first seed of the seeded targets (default random)")
    ap.add_argument("--list", action="store_true", help="list the targets and exit")
    ap.add_argument("--replay", metavar="FILE", help="run one saved finding (a finding-N.pickle) and show how it ends")
    a = ap.parse_args(argv)
    os.environ.setdefault("LAYERLAB_FUZZ_WIDE", "1")
    import warnings

    warnings.filterwarnings("ignore", message="Generating overly large repr")
    from . import catalog, seeds
    from .harness import Worker, finding_key, verdict

    if a.replay:
        case = pickle.loads(Path(a.replay).read_bytes())
        w = Worker()
        try:
            res = w.run(case["target"], **case["args"])
        finally:
            w.close()
        print(f"saved as: {case['key']}\nnow: {verdict(res) or 'behaves (' + res['outcome'] + ')'}")
        print(res.get("traceback", "") or res.get("message", ""))
        return 0 if verdict(res) is None else 1
    if a.list:
        for t in catalog.TARGETS:
            print(f"{t.name:22} {t.doc}")
        return 0
    chosen = [catalog.BY_NAME[n] for n in a.targets.split(",") if n] or list(catalog.TARGETS)
    if not seeds.REAL_IMAGES.is_dir():
        skipped = [t.name for t in chosen if t.needs_shared]
        if skipped:
            print(f"skipping {', '.join(skipped)}: {seeds.REAL_IMAGES} is absent")
        chosen = [t for t in chosen if not t.needs_shared]
    out = Path(a.out)
    first = a.seed if a.seed is not None else random.SystemRandom().randrange(10**9)
    print(f"fuzzing {len(chosen)} targets for {a.minutes:g} min; seeded targets start at seed {first}")
    registry = None
    if any(t.needs_registry for t in chosen):
        from .registry import HostileRegistry

        registry = HostileRegistry().start()
    worker = Worker()
    tried: collections.Counter = collections.Counter()
    findings: dict[str, dict] = {}
    hits: collections.Counter = collections.Counter()
    outcomes: collections.Counter = collections.Counter()
    seed_of = {t.name: first for t in chosen}
    end = time.monotonic() + a.minutes * 60
    slice_s = max(5.0, min(60.0, a.minutes * 60 / (len(chosen) * 4)))

    def record(t, target, args, label, res):
        tried[t.name] += 1
        outcomes[(t.name, res["outcome"])] += 1
        key = finding_key(res)
        if key is None:
            return
        hits[(t.name, key)] += 1
        if key not in findings:
            findings[key] = {"target": t.name, "label": label, "verdict": verdict(res),
                             "traceback": res.get("traceback", "")}
            out.mkdir(parents=True, exist_ok=True)
            n = len(findings)
            (out / f"finding-{n}.pickle").write_bytes(pickle.dumps({"target": target, "args": args, "key": key}))
            print(f"  NEW [{t.name}] {key}  ({label})", flush=True)

    try:
        while time.monotonic() < end:
            for t in chosen:
                stop = min(end, time.monotonic() + slice_s)
                if t.seeded is not None:
                    while time.monotonic() < stop:
                        s = seed_of[t.name]
                        seed_of[t.name] += 1
                        target, args = t.seeded(s, registry) if t.needs_registry else t.seeded(s)
                        args, label = catalog.split_label(args)
                        record(t, target, args, label, worker.run(target, **args))
                else:
                    _run_generated(t, stop, worker, record, catalog)
                if time.monotonic() >= end:
                    break
    finally:
        worker.close()
        if registry is not None:
            registry.stop()
    print(f"\ninputs tried per target ({sum(tried.values())} in all):")
    for t in chosen:
        nf = sum(v for (name, _k), v in hits.items() if name == t.name)
        print(f"  {t.name:22} {tried[t.name]:7d} inputs: {outcomes[(t.name, 'ok')]} loaded, "
              f"{outcomes[(t.name, 'error')]} LayerlabError, {nf} finding(s)")
    print(f"\n{len(findings)} distinct finding(s):")
    for key, f in findings.items():
        n = sum(v for (_name, k), v in hits.items() if k == key)
        print(f"- {key}\n    {n} input(s); first: [{f['target']}] {f['label']}\n    {f['verdict']}")
        tb = f["traceback"].strip().splitlines()
        for line in tb[-6:]:
            print("      " + line)
    if findings:
        print(f"\ninputs of the findings: {out}/finding-N.pickle (scripts/fuzz --replay FILE)")
    return 1 if findings else 0


def _run_generated(t, stop: float, worker, record, catalog) -> None:
    from hypothesis import HealthCheck, Phase, given, settings

    class _Done(Exception):
        pass

    @settings(max_examples=10**6, deadline=None, derandomize=False, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(t.strategy)
    def run(value):
        if time.monotonic() >= stop:
            raise _Done
        target, args = t.case(value)
        args, label = catalog.split_label(args)
        record(t, target, args, label or f"{t.name} example", worker.run(target, **args))

    try:
        run()
    except _Done:
        pass
    except Exception as e:  # noqa: BLE001 - hypothesis re-raising _Done wrapped, or a strategy bug
        if "_Done" not in repr(e):
            print(f"  [{t.name}] stopped early: {type(e).__name__}: {e}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
