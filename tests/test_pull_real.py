"""The pull-time model against real pulls (slow: about four minutes).

A second dockerd of its own (data root, exec root, socket, pid file, bridge)
pulls images built here from the busybox test base out of Debian's
docker-registry through layerlab's throttling proxy, on a cold host, a host
holding the shared bases, a host holding an unrelated base, and the naive
one-layer design on a host with the bases, at 2 and 5 MB/s.
Each pull is measured three times (the median: a busy shared machine
sometimes stalls one).  ``pull_time(engine="moby")``, given the proxy's rate, the round trip measured
through it and ``measure_host()``'s rates, must land within 15% of each
measured wall time.  Deselect with ``-m "not slow"``; ``benchmarks/bench_pull.py``
prints the same table with repeats.
"""
from __future__ import annotations

import subprocess

import pytest

from pullkit import IP, MB, format_table, missing_requirements, run_scenarios

pytestmark = [pytest.mark.slow, pytest.mark.engine]


def test_predictions_within_15_percent_of_real_pulls(tmp_path):
    reason = missing_requirements()
    if reason:
        pytest.skip(f"real pulls: {reason}")
    rows = run_scenarios(tmp_path, [2 * MB, 5 * MB], repeat=3)
    table = format_table(rows)
    print(table)
    assert len(rows) == 8
    # the scenarios differ as the layers say: the bases save most of the bytes, the naive design none
    by = {(r["bandwidth"], r["scenario"]): r for r in rows}
    for bw in (2 * MB, 5 * MB):
        assert by[bw, "bases"]["bytes"] < by[bw, "cold"]["bytes"] / 3
        assert by[bw, "naive, bases"]["bytes"] > by[bw, "bases"]["bytes"] * 3
    bad = [r for r in rows if abs(r["error"]) > 0.15]
    assert not bad, "predictions off by more than 15%:\n" + table


def test_second_engine_leaves_the_host_bridge_alone(tmp_path):
    """The harness's own bridge goes away and docker0 stays (``--bridge=none`` would delete it)."""
    reason = missing_requirements()
    if reason:
        pytest.skip(f"real pulls: {reason}")
    from pullkit import SecondDockerd

    before = subprocess.run([IP, "-o", "link", "show"], capture_output=True, text=True).stdout
    with SecondDockerd(tmp_path / "d", "127.0.0.1:1") as engine:
        assert engine.bridge in subprocess.run([IP, "-o", "link", "show"], capture_output=True, text=True).stdout
        assert engine.docker("info", "--format", "{{.DockerRootDir}}").stdout.decode().strip() == str(tmp_path / "d" / "data")
    after = subprocess.run([IP, "-o", "link", "show"], capture_output=True, text=True).stdout
    assert engine.bridge not in after
    assert ("docker0" in before) == ("docker0" in after)
