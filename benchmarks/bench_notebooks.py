#!/usr/bin/env python3
"""Benchmark: how long each notebook in layerlab/notebooks/ takes to execute on the
bundled data, and how long `layerlab report` takes end to end.

Reference, measured in the same run: executing a notebook with one empty code
cell (kernel start-up and shut-down, the floor of any execution).  Prints each
notebook's median seconds and its ratio to that floor, then the report's.
The target (issue 4): each notebook under ~20 s, so the test suite stays quick.

    .venv/bin/python benchmarks/bench_notebooks.py [--runs 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import nbformat  # noqa: E402

from layerlab import report  # noqa: E402


def timed(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    empty = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("pass")],
                                     metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
    floor = timed(lambda: report.execute_notebook(empty, progress=False), args.runs)
    print(f"{'reference: empty notebook':34} {floor:7.2f} s   1.00x")
    for path in report.list_notebooks():
        t = timed(lambda: report.execute_notebook(path, progress=False), args.runs)
        flag = "" if t < 20 else "   (over the ~20 s target)"
        print(f"{path.stem:34} {t:7.2f} s {t / floor:6.2f}x{flag}")
    with tempfile.TemporaryDirectory() as d:
        t = timed(lambda: report.render_report(None, Path(d) / "r.html", progress=False), args.runs)
        size = (Path(d) / "r.html").stat().st_size
    print(f"{'layerlab report (02, data/sample)':34} {t:7.2f} s {t / floor:6.2f}x   ({size / 1e6:.2f} MB HTML)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
