"""Fuzz (bounded run): byte-level mutation — bit flips, overwrites, truncation, chunk
duplication and deletion, extreme numbers — of images built here
(tests/_archive_helpers.py), of the archives and registry documents in
``../shared/data/real-images`` (skipped without it) and of saved docker history.

Fixed seeds (tests/_fuzz/bounded.py): ``random.Random(seed)`` makes the same
input on every machine.  Each case must end loaded or in a LayerlabError,
without hanging (a generous failure detector, not a speed target) and without
writing outside its directory and cache (tests/_fuzz/harness.py).
"""
from __future__ import annotations

import pytest

from _fuzz import catalog, seeds
from _fuzz.bounded import check_all, seeds_for, worker  # noqa: F401 - worker is a fixture
from _fuzz.harness import verdict

pytestmark = pytest.mark.fuzz


def test_seed_inputs_load_unmutated(worker):  # noqa: F811 - the fixture
    """The starting points are good images (so mutations start from something that loads)."""
    for name, data, transport in seeds.built_archives():
        res = worker.run("archive", data=data, transport=transport)
        assert res["outcome"] == "ok" and verdict(res) is None, (name, res)


def test_mutated_built_archives(worker):  # noqa: F811 - the fixture
    t = catalog.BY_NAME["mutate-built"]
    check_all(worker, (t.seeded(s) for s in seeds_for("mutate-built")))


@pytest.mark.shared
def test_mutated_real_archives(worker, real_images):  # noqa: F811 - the fixture
    t = catalog.BY_NAME["mutate-real"]
    check_all(worker, (t.seeded(s) for s in seeds_for("mutate-real")))


@pytest.mark.shared
def test_mutated_real_manifests(worker, real_images):  # noqa: F811 - the fixture
    t = catalog.BY_NAME["mutate-real-manifest"]
    check_all(worker, (t.seeded(s) for s in seeds_for("mutate-real-manifest")))


def test_mutated_history(worker):  # noqa: F811 - the fixture
    t = catalog.BY_NAME["mutate-history"]
    check_all(worker, (t.seeded(s) for s in seeds_for("mutate-history")))
