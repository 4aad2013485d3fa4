#!/usr/bin/env python3
"""Benchmark: predicted (``layerlab.analysis.pull.pull_time``) against measured ``docker pull`` seconds.

A second dockerd of its own (``--data-root``, ``--exec-root``, socket, pid
file and its own bridge: see ``tests/pullkit.py``) pulls images built from
the busybox test base (a layered os -> tools -> app fleet, an unrelated base,
and a naive one-layer app) out of Debian's docker-registry on 127.0.0.1
through ``layerlab._throttle.Throttle`` (one shared token bucket), at each
``--bandwidth``:

* cold: an empty host pulls the app;
* bases: the host holds os and tools;
* unrelated: the host holds an unrelated base;
* naive, bases: the naive app onto a host with os and tools.

Each pull is measured ``--repeat`` times (median); the prediction gets the
proxy's rate, the round trip measured through the proxy and
``measure_host()``'s rates, engine ``moby`` with its defaults; with
``--calibrate`` a second prediction uses the engine's own extraction rate
(``extract_rate=``), found from a separate full-speed pull of the unrelated base.  Prints a
Markdown table and, with ``--json``, the rows.  Needs root, dockerd,
docker-registry, skopeo and busybox-static.

    .venv/bin/python benchmarks/bench_pull.py [--bandwidth 2 5] [--repeat 3] [--calibrate] [--json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from pullkit import MB, format_table, missing_requirements, run_scenarios  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bandwidth", nargs="+", type=float, default=[2.0, 5.0], help="MB/s (10^6 bytes/s)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--calibrate", action="store_true",
                    help="also predict with the engine's extraction rate timed on a full-speed pull")
    args = ap.parse_args(argv)
    reason = missing_requirements()
    if reason:
        print(f"bench_pull: cannot run: {reason}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="layerlab-bench-pull-") as d:
        rows = run_scenarios(Path(d), [b * MB for b in args.bandwidth], repeat=args.repeat,
                             calibrate=args.calibrate)
    print(format_table(rows))
    worst = max(abs(r["error"]) for r in rows)
    print(f"\nworst error {worst:.1%} over {len(rows)} pulls (median of {args.repeat})")
    if args.json:
        print(json.dumps(rows, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
