"""Fuzz (bounded run): hypothesis-generated saved history, registry manifests and configs,
OCI layouts, repo-info files and hostile tar streams (tests/_fuzz/strategies.py).

Every case runs in the fuzz worker (tests/_fuzz/harness.py): only a LayerlabError
may escape, no case may hang (a generous bound that detects a hang; no speed is
asserted) and nothing may be written outside the case's directory and cache.
Derandomized with a small ``max_examples``: the same inputs on every run; the
long mode is ``scripts/fuzz --minutes N``.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from _fuzz import catalog
from _fuzz.bounded import EXAMPLES, check_one, worker  # noqa: F401 - worker is a fixture

pytestmark = pytest.mark.fuzz

GENERATED = [t.name for t in catalog.TARGETS if t.strategy is not None]


@pytest.mark.parametrize("name", GENERATED)
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                                 HealthCheck.large_base_example])
@given(data=st.data())
def test_fuzz_generated(worker, name, data):  # noqa: F811 - the fixture
    t = catalog.BY_NAME[name]
    check_one(worker, *t.case(data.draw(t.strategy, label=name)))
