"""layerlab.scan: the fleet scan on a local process pool and a Dask LocalCluster.

The fleets are OCI layouts written here (their files are known from how they
are written) and the same images pushed to the local registry.  Expected file
tables come from ``Image.files()`` (the per-image contents engine, which the
scan does not call) and from the entries written; expected cache behaviour
from the files on disk (names, bytes, inodes).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

import layerlab as ll
from layerlab.contents.schema import FILE_COLUMNS
from layerlab.scan.cache import Cache, register_views, verify_file
from _archive_helpers import write_oci_layout
from _contents_helpers import d, f, layer_tar, sym

GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
TAR = "application/vnd.oci.image.layer.v1.tar"

BASE = [d("etc"), f("etc/os-release", b"PRETTY_NAME=test\n"), d("bin"), f("bin/sh", b"\x7fELF" + b"s" * 300),
        sym("bin/bash", "sh")]


def app_layers(team: int) -> list[list]:
    return [
        [d("app"), f(f"app/team{team}.py", b"print(%d)\n" % team), f("app/common.txt", b"shared text\n")],
        [d("data"), f(f"data/blob{team}.bin", bytes([team]) * (1000 + team))],
    ]


def build_fleet(root: Path, teams: range) -> list[str]:
    """One OCI layout per team: the shared base, then two layers of its own."""
    out = []
    for t in teams:
        layers = [(layer_tar(BASE), GZ)] + [(layer_tar(e), GZ if i else TAR) for i, e in enumerate(app_layers(t))]
        write_oci_layout(root / f"team{t}", layers, ref_name="1")   # named team{t}:1 (folder:tag)
        out.append(f"oci:{root / f'team{t}'}")
    return out


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    return build_fleet(tmp_path_factory.mktemp("fleet"), range(4))


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    # on 127.0.0.1 only (scheduler, workers, dashboard): no traffic leaves the loopback
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address="127.0.0.1:0", silence_logs=40) as cluster, \
            distributed.Client(cluster) as c:
        yield c


def cache_tables(root: Path) -> dict[str, pd.DataFrame]:
    """diff_id -> the verified layer table in the cache, with the files() dtypes."""
    out = {}
    cache = Cache(root)
    for diff_id, got in cache.verified().items():
        df = pq.read_table(got.path).to_pandas()
        out[diff_id] = df.astype({c: t for c, t in FILE_COLUMNS.items() if c in df.columns})
    return out


def files_dir_names(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "files").iterdir())


def assert_all_names_verify(root: Path) -> None:
    names = files_dir_names(root)
    assert names, "the cache holds no layer files"
    for n in names:
        assert verify_file(Cache(root).fs, str(root / "files" / n)) is not None, f"{n} does not verify"


def reference_tables(sources: list[str]) -> dict[str, pd.DataFrame]:
    """diff_id -> Image.files() rows of that layer (the per-image engine), less image/position."""
    out = {}
    for src in sources:
        img = ll.load(src)
        files = img.files(cache_dir=False, progress=False)
        for layer in img.layer_list:
            rows = files[files["position"] == layer.position].drop(columns=["image", "position"])
            out[layer.diff_id] = rows.reset_index(drop=True)
    return out


# -- single process ------------------------------------------------------------------
def test_scan_writes_one_verified_table_per_distinct_layer(fleet, tmp_path):
    s = ll.scan(fleet, cache=tmp_path / "c", workers=1, progress=False)
    # 4 images x 3 layers; the base is shared: 1 + 4*2 distinct
    assert (s.stats["images"], s.stats["layers"], s.stats["distinct"]) == (4, 12, 9)
    assert (s.stats["scanned"], s.stats["reused"], s.stats["failed"]) == (9, 0, 0)
    assert s.failures.empty
    assert len(files_dir_names(tmp_path / "c")) == 9
    assert_all_names_verify(tmp_path / "c")
    got, want = cache_tables(tmp_path / "c"), reference_tables(fleet)
    assert sorted(got) == sorted(want)
    for diff_id, table in got.items():
        assert (table["diff_id"] == diff_id).all()
        pd.testing.assert_frame_equal(table, want[diff_id], check_dtype=True)
    # what the test wrote: team 2's first app layer, in tar order
    team2 = s.layers().query("image == 'team2:1' and position == 1")["diff_id"].iloc[0]
    assert list(got[team2]["path"]) == ["app", "app/team2.py", "app/common.txt"]
    assert list(got[team2]["size"]) == [0, len(b"print(2)\n"), len(b"shared text\n")]
    # the frames are load_many's, with the sizes the scan measured
    fleet_frames = ll.load_many(fleet)
    pd.testing.assert_frame_equal(s.images().drop(columns=["size"]), fleet_frames.images().drop(columns=["size"]))
    assert list(s.layers().columns) == list(fleet_frames.layers().columns)
    assert s.layers().query("image == 'team3:1' and position == 2")["size"].iloc[0] == 1003
    assert repr(s).startswith("<layerlab.Scan: 4 images, 9 distinct layers (9 scanned, 0 from the cache)")
    assert "<table" in s._repr_html_() and "team3" in s._repr_html_()
    assert list(s.frames()) == ["images", "layers", "failures"]


def test_views_over_the_cache(fleet, tmp_path):
    duckdb = pytest.importorskip("duckdb")
    s = ll.scan(fleet, cache=tmp_path / "c", workers=1, progress=False)
    con = duckdb.connect()
    assert register_views(con, tmp_path / "c", s.id) == {"files": 9}
    n_files = sum(len(e) for e in [BASE] + [layer for t in range(4) for layer in app_layers(t)])
    assert con.execute("SELECT count(*) FROM files").fetchone()[0] == n_files
    assert con.execute("SELECT count(*) FROM files WHERE path = 'app/common.txt'").fetchone()[0] == 4
    rows = con.execute("SELECT image, position, source FROM layers ORDER BY image, position").fetchall()
    assert rows[:3] == [("team0:1", 0, fleet[0]), ("team0:1", 1, fleet[0]), ("team0:1", 2, fleet[0])]
    assert con.execute("SELECT count(*) FROM images").fetchone()[0] == 4
    # a later scan of fewer sources: without scan_id, each source's latest rows
    ll.scan(fleet[:1], cache=tmp_path / "c", workers=1, progress=False)
    register_views(con, tmp_path / "c")
    assert con.execute("SELECT count(*) FROM layers").fetchone()[0] == 12
    assert con.execute("SELECT count(DISTINCT scan_id) FROM layers").fetchone()[0] == 2


def test_the_views_of_an_empty_cache_have_the_scanned_columns(fleet, tmp_path):
    """No scan yet: ``files``, ``layers`` and ``images`` exist, hold no rows, and have the
    columns and types they have over a scanned cache (SQL written for one runs on the other)."""
    duckdb = pytest.importorskip("duckdb")
    ll.scan(fleet[:1], cache=tmp_path / "full", workers=1, progress=False)
    (tmp_path / "empty").mkdir()
    full, empty = duckdb.connect(), duckdb.connect()
    register_views(full, tmp_path / "full")
    assert register_views(empty, tmp_path / "empty") == {"files": 0}
    for view in ("files", "layers", "images"):
        assert empty.execute(f"DESCRIBE {view}").fetchall() == full.execute(f"DESCRIBE {view}").fetchall(), view
        assert empty.execute(f"SELECT count(*) FROM {view}").fetchone()[0] == 0
    sql = "SELECT l.source, count(*) FROM layers l JOIN files f USING (diff_id) GROUP BY 1"
    written = len(BASE) + sum(len(layer) for layer in app_layers(0))   # the entries team0 was written with
    assert empty.execute(sql).fetchall() == [] and full.execute(sql).fetchall() == [(fleet[0], written)]


def test_second_scan_reads_only_new_layers(fleet, tmp_path):
    cache = tmp_path / "c"
    ll.scan(fleet[:3], cache=cache, workers=1, progress=False)
    before = {p.name: p.stat().st_ino for p in (cache / "files").iterdir()}
    assert len(before) == 7
    s = ll.scan(fleet, cache=cache, workers=1, progress=False)
    assert (s.stats["distinct"], s.stats["scanned"], s.stats["reused"]) == (9, 2, 7)
    after = {p.name: p.stat().st_ino for p in (cache / "files").iterdir()}
    assert {k: after[k] for k in before} == before      # the old files were not rewritten
    assert len(after) == 9
    again = ll.scan(fleet, cache=cache, workers=1, progress=False)
    assert (again.stats["scanned"], again.stats["reused"]) == (0, 9)


def test_truncated_and_corrupted_files_are_detected_and_rewritten(fleet, tmp_path):
    cache = tmp_path / "c"
    ll.scan(fleet, cache=cache, workers=1, progress=False)
    a, b = sorted((cache / "files").iterdir())[:2]
    good = {a.name: a.read_bytes(), b.name: b.read_bytes()}
    a.write_bytes(good[a.name][: len(good[a.name]) // 2])          # truncated
    flipped = bytearray(good[b.name])
    flipped[len(flipped) // 2] ^= 0xFF                               # one byte changed, same length
    b.write_bytes(bytes(flipped))
    assert verify_file(Cache(cache).fs, str(a)) is None and verify_file(Cache(cache).fs, str(b)) is None
    s = ll.scan(fleet, cache=cache, workers=1, progress=False)
    assert (s.stats["scanned"], s.stats["reused"]) == (2, 7)
    assert a.read_bytes() == good[a.name] and b.read_bytes() == good[b.name]
    assert_all_names_verify(cache)
    # a damaged file under another name (a different hash) is removed once the layer is rewritten
    hexpart, rows, _h, ext = a.name.split(".")
    other = a.with_name(f"{hexpart}.{rows}.{'0' * 16}.{ext}")
    a.rename(other)
    s = ll.scan(fleet, cache=cache, workers=1, progress=False)
    assert s.stats["scanned"] == 1 and not other.exists() and a.read_bytes() == good[a.name]
    assert len(files_dir_names(cache)) == 9


def test_old_temp_files_of_killed_writers_are_swept(fleet, tmp_path):
    cache = tmp_path / "c"
    (cache / "files").mkdir(parents=True)
    old, fresh = cache / "files" / ".tmp-old", cache / "files" / ".tmp-fresh"
    old.write_bytes(b"half a table")
    fresh.write_bytes(b"another scan is writing this")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    ll.scan(fleet[:1], cache=cache, workers=1, progress=False)
    assert not old.exists() and fresh.exists()


@pytest.mark.parametrize("runner", ["here", "pool", "dask"])
def test_a_corrupt_layer_ends_in_failures(tmp_path, runner, request):
    src = build_fleet(tmp_path / "fleet", range(2))
    info = write_oci_layout(tmp_path / "bad", [(layer_tar(BASE), GZ), (layer_tar(app_layers(9)[1]), GZ)],
                            ref_name="1")
    blob = tmp_path / "bad/blobs/sha256" / info["layer_descs"][1]["digest"].split(":")[1]
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF                                     # inside the deflate stream
    blob.write_bytes(bytes(data))
    how = {"here": {"workers": 1}, "pool": {"workers": 2}, "dask": {"client": None}}[runner]
    if runner == "dask":
        how["client"] = request.getfixturevalue("client")
    s = ll.scan(src + [f"oci:{tmp_path / 'bad'}"], cache=tmp_path / "c", retries=1, progress=False, **how)
    assert s.stats["failed"] == 1
    assert len(s.failures) == 1
    row = s.failures.iloc[0]
    assert row["source"] == f"oci:{tmp_path / 'bad'}" and row["diff_id"] == info["diff_ids"][1]
    assert row["image"] == "bad:1" and row["error"]
    assert len(files_dir_names(tmp_path / "c")) == 5                 # everything else was read
    assert "failed" in repr(s)


def test_a_source_that_cannot_be_loaded_ends_in_failures(fleet, tmp_path):
    s = ll.scan(fleet[:1] + [f"oci:{tmp_path / 'missing'}"], cache=tmp_path / "c", workers=1, progress=False)
    assert list(s.failures["source"]) == [f"oci:{tmp_path / 'missing'}"]
    assert s.failures["diff_id"].isna().all()
    assert s.stats["images"] == 1


# -- concurrency and processes --------------------------------------------------------
SCRIPT = """
import sys
import layerlab as ll
if __name__ == "__main__":
    s = ll.scan(sys.argv[2:], cache=sys.argv[1], workers=1, progress=False)
    assert s.failures.empty, s.failures
"""


def test_two_scans_writing_one_cache_at_once(fleet, tmp_path):
    script = tmp_path / "scan.py"
    script.write_text(SCRIPT)
    cache = tmp_path / "shared"
    procs = [subprocess.Popen([sys.executable, str(script), str(cache), *fleet]) for _ in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    names = files_dir_names(cache)
    assert len(names) == 9 and not [n for n in names if n.startswith(".")]   # no partial (temp) file left
    assert_all_names_verify(cache)
    want = reference_tables(fleet)
    for diff_id, table in cache_tables(cache).items():
        pd.testing.assert_frame_equal(table, want[diff_id])
    runs = sorted((cache / "layers").iterdir())
    assert len(runs) == 2
    one, two = (pq.read_table(p).to_pandas().drop(columns=["scan_id"]) for p in runs)
    pd.testing.assert_frame_equal(one, two)


def test_local_pool_equals_single_process(fleet, tmp_path):
    pool = ll.scan(fleet, cache=tmp_path / "pool", workers=2, progress=False)
    here = ll.scan(fleet, cache=tmp_path / "here", workers=1, progress=False)
    assert files_dir_names(tmp_path / "pool") == files_dir_names(tmp_path / "here")
    pd.testing.assert_frame_equal(pool.layers(), here.layers())
    pd.testing.assert_frame_equal(pool.images(), here.images())


# -- Dask -------------------------------------------------------------------------------
def test_cluster_scan_equals_single_process_scan(fleet, client, tmp_path):
    on_cluster = ll.scan(fleet, cache=tmp_path / "dask", client=client, progress=False)
    here = ll.scan(fleet, cache=tmp_path / "here", workers=1, progress=False)
    assert on_cluster.stats["scanned"] == 9 and on_cluster.failures.empty
    # the same bytes: the names carry row counts and content hashes
    assert files_dir_names(tmp_path / "dask") == files_dir_names(tmp_path / "here")
    pd.testing.assert_frame_equal(on_cluster.layers(), here.layers())
    pd.testing.assert_frame_equal(on_cluster.images(), here.images())
    got, want = cache_tables(tmp_path / "dask"), cache_tables(tmp_path / "here")
    for diff_id in want:
        pd.testing.assert_frame_equal(got[diff_id], want[diff_id])
    # the tasks ran on the workers: each wrote from its own process
    assert on_cluster.dashboard is not None and any("dashboard" in n for n in on_cluster.notes)
    # and the link is a live dashboard (distributed serves it with bokeh installed)
    import requests

    page = requests.get(on_cluster.dashboard, timeout=30)
    assert page.status_code == 200 and "Dask Diagnostic UI" in page.text  # not "Dask needs bokeh"


def test_sources_whose_metadata_arrives_out_of_order_plan_the_same_scan(fleet, tmp_path, monkeypatch):
    """Layers are planned as each source's metadata arrives: the last source
    first gives the same jobs (each distinct layer once), frames and cache."""
    from layerlab.scan import engine

    in_order = ll.scan(fleet, cache=tmp_path / "ordered", workers=1, progress=False)
    loads = engine._loads
    monkeypatch.setattr(engine, "_loads", lambda *a, **kw: reversed(list(loads(*a, **kw))))
    reverse = ll.scan(fleet, cache=tmp_path / "reversed", workers=1, progress=False)
    assert (reverse.stats["distinct"], reverse.stats["scanned"], reverse.stats["reused"]) == (9, 9, 0)
    pd.testing.assert_frame_equal(reverse.images(), in_order.images())
    pd.testing.assert_frame_equal(reverse.layers(), in_order.layers())
    assert files_dir_names(tmp_path / "reversed") == files_dir_names(tmp_path / "ordered")


def test_registry_images_on_cluster_equal_single_process(fleet, client, registry, tmp_path):
    from registrykit import push_oci

    refs = []
    for src in fleet:
        layout = src.split(":", 1)[1]
        ref = registry.ref(f"scan/{Path(layout).name}:1")
        push_oci(Path(layout), ref)
        refs.append(f"docker://{ref}")
    on_cluster = ll.scan(refs, cache=tmp_path / "dask", client=client, progress=False)
    here = ll.scan(refs, cache=tmp_path / "here", workers=1, progress=False)
    assert on_cluster.failures.empty and on_cluster.stats["distinct"] == 9
    assert files_dir_names(tmp_path / "dask") == files_dir_names(tmp_path / "here")
    pd.testing.assert_frame_equal(on_cluster.layers(), here.layers())
    # the registry's layers hold the same files as the layouts pushed there
    want = reference_tables(fleet)
    for diff_id, table in cache_tables(tmp_path / "dask").items():
        pd.testing.assert_frame_equal(table, want[diff_id])


def test_the_worker_preload_imports_everything_a_scan_task_imports(fleet, registry, tmp_path):
    """``layerlab.scan.preload`` on a fresh worker: a scan of registry and OCI-layout
    images then imports no new module of the packages a task uses."""
    distributed = pytest.importorskip("distributed")
    from registrykit import push_oci

    refs = []
    for src in fleet[:2]:
        layout = src.split(":", 1)[1]
        ref = registry.ref(f"scan/{Path(layout).name}:1")
        push_oci(Path(layout), ref)
        refs.append(f"docker://{ref}")
    watched = ("layerlab", "requests", "urllib3", "pyarrow", "numpy", "xxhash", "zstandard", "fsspec", "pandas")

    def modules():
        return sorted(m for m in sys.modules if m.split(".")[0] in watched)

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address="127.0.0.1:0", silence_logs=40,
                                  preload=["layerlab.scan.preload"]) as cluster, distributed.Client(cluster) as c:
        before = set(next(iter(c.run(modules).values())))
        assert "layerlab.sources.remote" in before and "pyarrow.parquet" in before
        s = ll.scan(refs + fleet[2:], cache=tmp_path / "c", client=c, progress=False)
        after = set(next(iter(c.run(modules).values())))
    assert s.failures.empty and s.stats["scanned"] == 9
    assert sorted(after - before) == []


def test_other_peoples_images_on_the_cluster_equal_the_per_image_engine(real_images, client, tmp_path):
    """``../shared/data/real-images`` (docker, kaniko, OCI gzip / zstd / estargz / uncompressed archives,
    ggcr's test images): every layer's table in the cache equals ``Image.files()``'s rows for it."""
    sources = sorted(str(p) for p in real_images.glob("*.tar"))
    s = ll.scan(sources, cache=tmp_path / "c", client=client, progress=False)
    want = {}
    for img in ll.load_many(sources):
        if img.blobs is None:
            continue
        files = img.files(cache_dir=False, progress=False)
        for layer in img.layer_list:
            rows = files[files["position"] == layer.position].drop(columns=["image", "position"])
            want.setdefault(layer.diff_id, rows.reset_index(drop=True))
    got = cache_tables(tmp_path / "c")
    assert s.failures.empty, s.failures
    assert sorted(got) == sorted(want) and s.stats["distinct"] == len(want)
    for diff_id, table in got.items():
        pd.testing.assert_frame_equal(table, want[diff_id], obj=diff_id)


def test_a_rescan_of_registry_images_fetches_no_config_again(fleet, registry, tmp_path):
    """docker:// sources keep their config blobs in the scan cache (configs/<digest hex>): a
    rescan loads the same images with the registry's config blobs gone."""
    import json

    from registrykit import inspect_raw, push_oci

    refs, configs = [], []
    for src in fleet:
        layout = src.split(":", 1)[1]
        ref = registry.ref(f"scan-configs/{Path(layout).name}:1")
        push_oci(Path(layout), ref)
        refs.append(f"docker://{ref}")
        configs.append(json.loads(inspect_raw(ref))["config"]["digest"])
    first = ll.scan(refs, cache=tmp_path / "c", workers=1, progress=False)
    kept = sorted(p.name for p in (tmp_path / "c" / "configs").iterdir())
    assert kept == sorted(d.split(":", 1)[1] for d in configs)
    for d in configs:
        registry.blob_file(d).unlink()
    again = ll.scan(refs, cache=tmp_path / "c", workers=1, progress=False)
    assert again.failures.empty and (again.stats["scanned"], again.stats["reused"]) == (0, 9)
    pd.testing.assert_frame_equal(again.images(), first.images())
    fresh = ll.scan(refs, cache=tmp_path / "other", workers=1, progress=False)  # a cache without them
    assert len(fresh.failures) == len(refs)


def test_a_worker_killed_mid_scan_loses_no_layer(client, tmp_path):
    sources = build_fleet(tmp_path / "fleet", range(6))
    pids = client.run(os.getpid)                          # worker address -> its process id
    victim_addr, victim = sorted(pids.items())[0]
    other = [pid for addr, pid in pids.items() if addr != victim_addr]
    for pid in pids.values():
        os.kill(pid, signal.SIGSTOP)                      # freeze both: tasks get assigned, none can finish
    result: dict = {}
    runner = threading.Thread(target=lambda: result.setdefault(
        "scan", ll.scan(sources, cache=tmp_path / "c", client=client, progress=False)), daemon=True)
    try:
        runner.start()
        deadline = time.monotonic() + 60
        while not client.processing().get(victim_addr) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.processing().get(victim_addr), "the scheduler never gave the frozen worker a task"
        assert not (tmp_path / "c" / "files").exists()   # nothing finished yet
    finally:
        os.kill(victim, signal.SIGKILL)                   # dies holding its tasks
        for pid in other:
            os.kill(pid, signal.SIGCONT)
    runner.join(timeout=120)
    assert not runner.is_alive(), "the scan hung after a worker was killed"
    first = result["scan"]
    # nothing silently dropped: every distinct layer is in the cache or in failures
    assert len(first.layer_files) + first.stats["failed"] == first.stats["distinct"] == 13
    client.wait_for_workers(2, timeout=60)
    rerun = ll.scan(sources, cache=tmp_path / "c", client=client, progress=False)
    assert rerun.failures.empty and len(rerun.layer_files) == 13
    assert rerun.stats["scanned"] == first.stats["failed"]
    assert_all_names_verify(tmp_path / "c")
    want = reference_tables(sources)
    got = cache_tables(tmp_path / "c")
    assert sorted(got) == sorted(want)
    for diff_id in want:
        pd.testing.assert_frame_equal(got[diff_id], want[diff_id])


def test_scan_is_the_public_function_and_cache_default(monkeypatch, fleet, tmp_path):
    from layerlab.scan import engine

    assert ll.scan is engine.scan and callable(ll.scan)
    monkeypatch.setenv("LAYERLAB_CACHE", str(tmp_path / "env"))
    s = ll.scan(fleet[:1], workers=1, progress=False)
    assert Path(s.cache) == tmp_path / "env" / "scan" and len(files_dir_names(tmp_path / "env" / "scan")) == 3
    shutil.rmtree(tmp_path / "env")


def test_a_pool_process_killed_mid_scan_loses_no_layer(fleet, tmp_path):
    import multiprocessing

    before = {p.pid for p in multiprocessing.active_children()}
    result: dict = {}

    def run():
        try:
            result["scan"] = ll.scan(fleet, cache=tmp_path / "c", workers=2, progress=False)
        except BaseException as e:  # noqa: BLE001 - shown by the assertion below
            result["error"] = e

    runner = threading.Thread(target=run, daemon=True)   # a hang fails this test, not the whole run
    runner.start()
    killed = None
    deadline = time.monotonic() + 60
    while killed is None and runner.is_alive() and time.monotonic() < deadline:
        fresh = [p for p in multiprocessing.active_children() if p.pid not in before]
        if fresh:
            killed = fresh[0].pid
            os.kill(killed, signal.SIGKILL)       # a pool process, still starting or scanning
        time.sleep(0.01)
    runner.join(timeout=120)
    assert killed is not None, "the scan ended before a pool process could be seen"
    assert not runner.is_alive(), "the scan hung after a pool process was killed"
    assert "error" not in result, result.get("error")
    s = result["scan"]
    assert s.failures.empty and len(s.layer_files) == 9   # the broken pool's tasks were retried
    assert_all_names_verify(tmp_path / "c")
    want = reference_tables(fleet)
    for diff_id, table in cache_tables(tmp_path / "c").items():
        pd.testing.assert_frame_equal(table, want[diff_id])


def test_an_fsspec_url_as_cache(fleet):
    duckdb = pytest.importorskip("duckdb")
    import fsspec

    url = f"memory://layerlab-scan-{os.getpid()}/c"
    try:
        s = ll.scan(fleet, cache=url, workers=1, progress=False)
        assert s.cache == url and s.stats["scanned"] == 9
        fs = fsspec.filesystem("memory")
        names = [p.rsplit("/", 1)[-1] for p in fs.ls(f"/layerlab-scan-{os.getpid()}/c/files", detail=False)]
        assert len(names) == 9 and not [n for n in names if n.startswith(".")]
        again = ll.scan(fleet, cache=url, workers=1, progress=False)
        assert (again.stats["scanned"], again.stats["reused"]) == (0, 9)
        con = duckdb.connect()
        assert register_views(con, url, s.id) == {"files": 9}
        assert con.execute("SELECT count(*) FROM files WHERE path = 'etc/os-release'").fetchone()[0] == 1
    finally:
        fsspec.filesystem("memory").rm(f"/layerlab-scan-{os.getpid()}", recursive=True)


def test_bad_arguments_raise_layerlab_errors(fleet, tmp_path):
    with pytest.raises(ll.LayerlabError, match="not a string"):
        ll.scan([ll.load(fleet[0])], cache=tmp_path / "c", workers=1)
    with pytest.raises(ll.LayerlabError, match="matches nothing"):
        ll.scan([f"oci:{tmp_path}/nothing-*"], cache=tmp_path / "c", workers=1)
    with pytest.raises(ll.LayerlabError, match="fsspec cannot open"):
        ll.scan(fleet, cache="nosuchprotocol://x/y", workers=1)


def test_a_relative_cache_path_is_made_absolute(fleet, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = ll.scan(fleet[:1], cache="rel-cache", workers=1, progress=False)
    assert s.cache == str(tmp_path / "rel-cache") and len(files_dir_names(tmp_path / "rel-cache")) == 3


def test_readers_never_see_a_partial_file_while_writers_race(tmp_path):
    import pyarrow as pa

    from layerlab.contents.tarscan import LAYER_TABLE_SCHEMA

    n = 20_000
    table = pa.table({
        "path": [f"p/{i}" for i in range(n)], "type": ["file"] * n, "size": list(range(n)), "mode": [420] * n,
        "uid": [0] * n, "gid": [0] * n, "link_target": [None] * n,
        "mtime": pa.array([0] * n, pa.timestamp("ns", tz="UTC")), "hash": [None] * n, "warning": [None] * n,
    }, schema=LAYER_TABLE_SCHEMA)
    diff_id = "sha256:" + "ab" * 32
    cache = Cache(tmp_path / "c")
    stop = threading.Event()
    seen: list = []

    def write():
        while not stop.is_set():
            cache.put_layer(diff_id, table, {"diff_id": diff_id, "docker_size": str(sum(range(n)))})

    def read():
        while not stop.is_set():
            for p in (tmp_path / "c" / "files").glob("*.parquet") if (tmp_path / "c" / "files").exists() else ():
                seen.append(verify_file(cache.fs, str(p)))

    threads = [threading.Thread(target=write), threading.Thread(target=write), threading.Thread(target=read)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(seen) < 30 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    for t in threads:
        t.join()
    assert len(seen) >= 30 and all(s is not None and s.rows == n for s in seen)
    assert len(files_dir_names(tmp_path / "c")) == 1


def test_a_metadata_only_source_uses_the_cache_or_reports_its_layers(fleet, tmp_path):
    ll.load_many(fleet[:1]).save(tmp_path / "snap")
    cold = ll.scan(f"snapshot:{tmp_path / 'snap'}", cache=tmp_path / "c", workers=1, progress=False)
    assert cold.stats["failed"] == 3 and cold.stats["scanned"] == 0
    assert cold.failures["error"].str.contains("without layer contents").all()
    assert sorted(cold.failures["diff_id"]) == sorted(ll.load(fleet[0]).layers()["diff_id"])
    ll.scan(fleet[:1], cache=tmp_path / "c", workers=1, progress=False)
    warm = ll.scan(f"snapshot:{tmp_path / 'snap'}", cache=tmp_path / "c", workers=1, progress=False)
    assert warm.failures.empty and (warm.stats["reused"], warm.stats["scanned"]) == (3, 0)


def test_jobs_a_broken_pool_refuses_at_submit_go_back_to_the_queue():
    """A pool process can die while the scan is still submitting (the kill test above hits this
    at random): the pool then refuses the rest with BrokenProcessPool.  Those jobs are tried
    again in the next pool, and reported in failures once their retries are spent, never lost
    and never raised.  The pool here refuses every submit after its first."""
    from collections import namedtuple
    from concurrent.futures.process import BrokenProcessPool

    from layerlab.scan import engine

    class OneSubmitPool:
        def __init__(self):
            self.calls = 0

        def submit(self, fn, job):
            self.calls += 1
            if self.calls > 1:
                raise BrokenProcessPool("A child process terminated abruptly")
            return ("future", job.key)

    Job = namedtuple("Job", "key")
    a, b, c = Job("a"), Job("b"), Job("c")
    attempts, failed = {"a": 0, "b": 0, "c": 0}, []
    running, again = engine._submit_all(OneSubmitPool(), [a, b, c], attempts, 1, failed, None)
    assert list(running.values()) == [a] and again == [b, c] and failed == []
    assert attempts == {"a": 0, "b": 1, "c": 1}
    running, again = engine._submit_all(OneSubmitPool(), again, attempts, 1, failed, None)
    assert list(running.values()) == [b] and again == []
    assert [job for job, _ in failed] == [c] and "terminated abruptly" in failed[0][1]
