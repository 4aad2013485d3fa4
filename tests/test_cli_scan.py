"""``layerlab scan``: the fleet scan from the command line (``python -m layerlab``, as a CI job runs it).

The fleet is test_scan's: OCI layouts written here, whose files are known from how they are written.
"""
from __future__ import annotations

import json

import pytest

from test_cli import run
from test_scan import BASE, app_layers, build_fleet


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    return build_fleet(tmp_path_factory.mktemp("cli-scan-fleet"), range(4))


def test_scan_answers_sql_and_a_rescan_reads_nothing(fleet, tmp_path):
    cache = tmp_path / "cache"
    sql = "SELECT path, count(*) AS copies FROM files WHERE type = 'file' GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 2"
    p = run("scan", *fleet, "--cache", str(cache), "--workers", "2", "--sql", sql, "--format", "json", cwd=tmp_path)
    rows = json.loads(p.stdout)
    # app/common.txt is in each team's own layer (4 copies); every other file is in one layer (the base's
    # files too: the base is one distinct layer), and app/team0.py comes first of those by path
    assert rows == [{"path": "app/common.txt", "copies": 4}, {"path": "app/team0.py", "copies": 1}]
    assert "4 images, 9 distinct layers (9 scanned, 0 from the cache)" in p.stderr
    again = run("scan", *fleet, "--cache", str(cache), "--workers", "1", "--sql",
                "SELECT count(*) AS n FROM files", "--format", "csv", cwd=tmp_path)
    # the rows of the distinct layers: the base once (one diff_id), then each team's two layers
    distinct_rows = len(BASE) + sum(len(layer) for t in range(4) for layer in app_layers(t))
    assert again.stdout.splitlines() == ["n", str(distinct_rows)]
    assert "(0 scanned, 9 from the cache)" in again.stderr


def test_scan_prints_the_dedup_table_and_writes_it(fleet, tmp_path):
    cache = tmp_path / "cache"
    p = run("scan", *fleet, "--cache", str(cache), "--workers", "1", "--dedup", cwd=tmp_path, columns=200)
    lines = p.stdout.splitlines()
    assert lines[0].split()[:4] == ["level", "stores", "layers", "files"] and len(lines) == 4
    out = tmp_path / "dedup.parquet"
    run("scan", *fleet, "--cache", str(cache), "--workers", "1", "--dedup", "-o", str(out), cwd=tmp_path)
    import pandas as pd

    table = pd.read_parquet(out).set_index("level")
    assert table.loc["none", "layers"] == 12 and table.loc["layer", "layers"] == 9   # 4 images x 3 layers


def test_a_source_that_fails_is_printed_and_exits_1(fleet, tmp_path):
    missing = tmp_path / "no-such-layout"
    p = run("scan", fleet[0], f"oci:{missing}", "--cache", str(tmp_path / "c"), "--workers", "1",
            cwd=tmp_path, check=False, columns=400)
    assert p.returncode == 1 and "1 source or layer failed" in p.stderr
    assert f"oci:{missing}" in p.stdout and "no such OCI layout" in p.stdout
    ok = run("scan", fleet[0], "--cache", str(tmp_path / "c"), "--workers", "1", cwd=tmp_path)
    assert ok.stdout == ""   # nothing failed: nothing to print


@pytest.mark.parametrize("args, message", [
    (["--storage-option", "no-equals"], "--storage-option 'no-equals': expected NAME=VALUE"),
    (["--format", "parquet"], "--format parquet: Parquet is binary"),
    (["--sql", "SELEC 1"], "fleet query failed"),
])
def test_bad_input_is_one_line_and_exit_2(fleet, tmp_path, args, message):
    p = run("scan", fleet[0], "--cache", str(tmp_path / "c"), "--workers", "1", *args, cwd=tmp_path, check=False)
    assert p.returncode == 2
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("layerlab: error:")]
    assert len(errors) == 1 and message in errors[0], p.stderr


def test_scan_on_a_dask_scheduler(fleet, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address="127.0.0.1:0", silence_logs=40) as cluster:
        p = run("scan", *fleet, "--cache", str(tmp_path / "c"), "--scheduler", cluster.scheduler_address,
                "--sql", "SELECT count(DISTINCT diff_id) AS n FROM layers", "--format", "csv", cwd=tmp_path)
    assert p.stdout.splitlines() == ["n", "9"]
    assert "ran on the Dask cluster whose dashboard is http://127.0.0.1:" in p.stderr
