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
from hypothesis import HealthCheck, given, settings

from _fuzz import catalog
from _fuzz.bounded import EXAMPLES, check_one
from _fuzz.harness import Worker

pytestmark = pytest.mark.fuzz

BOUNDED = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                          HealthCheck.filter_too_much, HealthCheck.large_base_example])


@pytest.fixture(scope="module")
def worker():
    w = Worker()
    yield w
    w.close()


def _case(name: str, value):
    target, args = catalog.BY_NAME[name].case(value)
    return target, args


@BOUNDED
@given(catalog.BY_NAME["history"].strategy)
def test_fuzz_history(worker, value):
    check_one(worker, *_case("history", value))


@BOUNDED
@given(catalog.BY_NAME["manifest"].strategy)
def test_fuzz_manifest(worker, value):
    check_one(worker, *_case("manifest", value))


@BOUNDED
@given(catalog.BY_NAME["oci-layout"].strategy)
def test_fuzz_oci_layout(worker, value):
    check_one(worker, *_case("oci-layout", value))


@BOUNDED
@given(catalog.BY_NAME["repo-info"].strategy)
def test_fuzz_repo_info(worker, value):
    check_one(worker, *_case("repo-info", value))


@BOUNDED
@given(catalog.BY_NAME["tar-in-archive"].strategy)
def test_fuzz_tar_in_archive(worker, value):
    check_one(worker, *_case("tar-in-archive", value))


@BOUNDED
@given(catalog.BY_NAME["tar-in-oci"].strategy)
def test_fuzz_tar_in_oci(worker, value):
    check_one(worker, *_case("tar-in-oci", value))
