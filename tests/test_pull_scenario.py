"""What-if questions on the pull model (analysis/pull_scenario.py), worked out by hand.

As in test_pull_time.py: round trips, setup, overheads and the config cost
nothing, so a pull is its downloads (bytes / bandwidth, shared link) plus its
extractions (given host rates)."""
from __future__ import annotations

import pytest

from layerlab.analysis.hostrates import HostRates
from layerlab.analysis.pull_scenario import bandwidth_for, cold_and_warm, layered_app_fleet
from layerlab.errors import AnalysisError
from test_pull_time import IDEAL, frame

INSTANT = HostRates(gzip=1e30, zstd=1e30, write=1e30, sha256=1e30, plain=1e30)
NO_COSTS = dict(rtt=0, setup=0, extract_overhead=0, config_bytes=0, host=INSTANT)


def test_bandwidth_for_inverts_the_pull_time():
    df = frame({"app": [("d1", "c1")]})  # 10 B on the wire, then 1 s of extraction
    # 10 B / bw + 1 s = 3 s  ->  bw = 5 B/s
    assert bandwidth_for(df, "app", 3, model=IDEAL) == pytest.approx(5, rel=1e-3)
    with pytest.raises(AnalysisError, match="even then it takes 1.0 s"):
        bandwidth_for(df, "app", 0.5, model=IDEAL)
    with pytest.raises(AnalysisError, match="lower low="):
        bandwidth_for(df, "app", 3, model=IDEAL, low="1MB/s")
    with pytest.raises(AnalysisError, match="seconds"):
        bandwidth_for(df, "app", -1, model=IDEAL)
    with pytest.raises(AnalysisError, match="solved for"):
        bandwidth_for(df, "app", 3, model={**IDEAL, "bandwidth": 1})


def test_layered_app_fleet_splits_the_bytes():
    f = layered_app_fleet(1000, 0.2, bases=("os", "tools"), wire_fraction=0.5)
    assert [i.reference for i in f] == ["scenario/os:1", "scenario/tools:1", "scenario/app:1"]
    app = f["scenario/app:1"].layer_list
    assert [x.size for x in app] == [400, 400, 200] and [x.compressed_size for x in app] == [200, 200, 100]
    layers = f.layers()
    # each image stands on the previous: the app shares both base layers' chain ids
    chains = layers.groupby("image")["chain_id"].apply(list)
    assert chains["scenario/app:1"][:2] == chains["scenario/tools:1"]
    with pytest.raises(AnalysisError, match="app_share"):
        layered_app_fleet(1000, 1.0)
    with pytest.raises(AnalysisError, match="weight"):
        layered_app_fleet(1000, 0.5, bases=("a", "b"), base_weights=[1])


def test_cold_and_warm_without_extraction_costs():
    # 1000 B in all, a cold pull of 10 s: 100 B/s; warm, only the app's share downloads
    t = cold_and_warm(1000, 10, [0.2, 0.5], warm_seconds=3, model=NO_COSTS)
    assert list(t["solved"]) == [False, False, True]
    assert list(t["bandwidth"]) == pytest.approx([100, 100, 100], rel=1e-3)
    assert list(t["warm_seconds"]) == pytest.approx([2.0, 5.0, 3.0], rel=1e-3)
    assert list(t["app_bytes"][:2]) == [200, 500] and list(t["warm_bytes"][:2]) == [200, 500]
    assert float(t["app_share"].iloc[2]) == pytest.approx(0.3, abs=1e-3)
    with pytest.raises(AnalysisError, match="no app share"):
        cold_and_warm(1000, 10, [], warm_seconds=11, model=NO_COSTS)
