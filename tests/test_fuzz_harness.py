"""The fuzz harness itself: it must see a raw exception, a hang, a dead worker and a
stray write, and pass a LayerlabError and a cache write (tests/_fuzz/harness.py)."""
from __future__ import annotations

import pytest

from _fuzz.harness import Worker, finding_key, verdict

pytestmark = pytest.mark.fuzz


@pytest.fixture(scope="module")
def worker():
    # 3 s: the self-test hang sleeps an hour, so any detector bound shows it; the real suite's is 120 s
    w = Worker(hang_seconds=3)
    yield w
    w.close()


@pytest.mark.parametrize("what,outcome", [("crash", "crash"), ("hang", "hang"), ("exit", "died")])
def test_misbehaviour_is_a_finding(worker, what, outcome):
    res = worker.run("selftest", what=what)
    assert res["outcome"] == outcome
    assert verdict(res) is not None and finding_key(res) is not None


def test_raw_exception_says_where(worker):
    res = worker.run("selftest", what="crash")
    assert res["type"] == "ValueError"
    assert "targets.py" in res["where"] and "target_selftest" in res["where"]


@pytest.mark.parametrize("what,place", [("write-cwd", "cwd/stray"), ("write-home", "home/stray"),
                                        ("write-tmp", "tmp/stray"), ("write-case", "case/stray"),
                                        ("write-input", "in/sidecar")])
def test_a_stray_write_is_a_finding(worker, what, place):
    res = worker.run("selftest", what=what)
    assert res["outcome"] == "ok" and res["wrote"] == [place]
    assert "wrote outside" in verdict(res)


@pytest.mark.parametrize("what,outcome", [("layerlab-error", "error"), ("write-cache", "ok"), ("nothing", "ok")])
def test_good_behaviour_passes(worker, what, outcome):
    res = worker.run("selftest", what=what)
    assert res["outcome"] == outcome and verdict(res) is None


def test_worker_recovers_after_a_hang(worker):
    assert worker.run("selftest", what="hang")["outcome"] == "hang"
    assert worker.run("selftest", what="layerlab-error")["outcome"] == "error"
