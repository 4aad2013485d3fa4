"""Fuzz (bounded run): ``docker://127.0.0.1:PORT/...`` against a hostile registry
(tests/_fuzz/registry.py): mutated manifests, configs, blobs and indexes, garbage
and deeply nested JSON, wrong content types, huge/negative/short Content-Length,
redirect loops, odd statuses, hostile auth challenges and token answers, broken
chunking and gzip.  Fixed seeds; each case must end loaded or in a LayerlabError,
without hanging (a failure detector, not a speed target) and without stray writes.
"""
from __future__ import annotations

import pytest

from _fuzz import catalog
from _fuzz.bounded import check_all, seeds_for, worker  # noqa: F401 - worker is a fixture
from _fuzz.harness import verdict
from _fuzz.registry import HostileRegistry

pytestmark = pytest.mark.fuzz


@pytest.fixture(scope="module")
def hostile():
    reg = HostileRegistry().start()
    yield reg
    reg.stop()


@pytest.mark.parametrize("tag", ["1", "multi"])
def test_well_behaved_server_loads(worker, hostile, tag):  # noqa: F811 - the fixture
    """With no fault the server is a working registry (so the faults are what fails)."""
    hostile.case = {"mode": "none", "seed": 0}
    res = worker.run("registry", url=hostile.url(tag))
    assert res["outcome"] == "ok" and res["images"] == 1 and verdict(res) is None, res


def test_hostile_registry(worker, hostile):  # noqa: F811 - the fixture
    t = catalog.BY_NAME["registry"]
    check_all(worker, (t.seeded(s, hostile) for s in seeds_for("registry")))
