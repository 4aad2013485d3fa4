"""The pull-time model on hand-made layer frames, with expectations worked out by hand.

Conventions in these tests unless a test says otherwise: every layer blob is
10 bytes on the wire and 20 bytes uncompressed; the link is 10 B/s; round
trips, setup, per-layer overhead and the config cost nothing; the host
inflates gzip at 20 B/s and hashes and writes instantly (1e30 B/s), with
``inflate_speed=1`` — so one layer's extraction takes exactly 1 s.
"""
from __future__ import annotations

import json
import socket
import threading

import pandas as pd
import pytest

from layerlab._throttle import Throttle
from layerlab.analysis.hostrates import HostRates, measure_host
from layerlab.analysis.pull import (
    PullTime,
    compression_of,
    parse_bandwidth,
    pull_time,
    share_link,
)
from layerlab.analysis.rollout import rollout
from layerlab.analysis.totals import pull_table
from layerlab.errors import AnalysisError, LayerlabError

GZ = "application/vnd.docker.image.rootfs.diff.tar.gzip"
HOST = HostRates(gzip=20, zstd=40, write=1e30, sha256=1e30, plain=1e30)
IDEAL = dict(rtt=0, setup=0, extract_overhead=0, inflate_speed=1, config_bytes=0, host=HOST)


def frame(images: dict[str, list[tuple[str, str]]], wire: int | None = 10, size: int | None = 20,
          media_type: str = GZ) -> pd.DataFrame:
    """images: name -> [(digest suffix, chain suffix), …] from the base up."""
    rows = []
    for name, layers in images.items():
        for pos, (d, c) in enumerate(layers):
            rows.append({"image": name, "position": pos, "digest": f"sha256:{d}" if d else None,
                         "chain_id": f"sha256:{c}", "diff_id": f"sha256:x{c}", "size": size,
                         "compressed_size": wire, "media_type": media_type})
    df = pd.DataFrame(rows)
    return df.astype({"size": "Int64", "compressed_size": "Int64", "digest": "string"})


# -- bandwidth ---------------------------------------------------------------

@pytest.mark.parametrize("text, rate", [
    ("20MB/s", 20_000_000), ("20mb/s", 20_000_000), ("20 MB/s", 20_000_000), ("1.5GB/s", 1_500_000_000),
    ("500kB/s", 500_000), ("500KB/s", 500_000), ("1KiB/s", 1024), ("2MiB/s", 2 * 1024 * 1024),
    ("100Mbit/s", 12_500_000), ("8bit/s", 1), ("20MB", 20_000_000), ("300B/s", 300), ("300", 300),
    (1234, 1234), (0.5, 0.5),
])
def test_parse_bandwidth(text, rate):
    assert parse_bandwidth(text) == pytest.approx(rate)


@pytest.mark.parametrize("bad", ["fast", "20MB/h", "20 MBs", "20Mbps", "100Mbitps", "-5MB/s", "0MB/s", "", "MB/s", -1, 0,
                                 float("inf"), float("nan"), True, None, [20]])
def test_parse_bandwidth_rejects(bad):
    with pytest.raises(AnalysisError, match="bandwidth"):
        parse_bandwidth(bad)


def test_compression_of_media_types():
    assert compression_of(GZ) == "gzip"
    assert compression_of("application/vnd.oci.image.layer.v1.tar+zstd") == "zstd"
    assert compression_of("application/vnd.oci.image.layer.v1.tar") == "plain"
    assert compression_of(None) == "unknown"


# -- the shared link -----------------------------------------------------------

def test_two_layers_share_the_link():
    # 10 B each at 10 B/s together: 5 B/s each, both done at 2 s
    assert share_link([10, 10], 0, 10, 0, 3) == ([0, 0], [2.0, 2.0])


def test_the_short_download_finishes_first_then_the_other_gets_the_whole_link():
    # both at 5 B/s until t=2 (10 B done); the rest (10 B of 20) at 10 B/s: t=3
    assert share_link([10, 20], 0, 10, 0, 3) == ([0, 0], [2.0, 3.0])


def test_a_fourth_download_waits_for_a_slot():
    starts, ends = share_link([10, 10, 10, 10], 0, 10, 0, 3)
    assert ends[:3] == [3.0, 3.0, 3.0] and starts[3] == 3.0 and ends[3] == 4.0


def test_round_trip_before_the_bytes():
    assert share_link([10, 10], 0, 10, 1, 3) == ([0, 0], [3.0, 3.0])
    assert share_link([10, 20], 5, 10, 0, 1) == ([5, 6.0], [6.0, 8.0])


# -- one pull -------------------------------------------------------------------

def test_moby_downloads_together_then_extracts_in_order():
    df = frame({"base": [("d0", "c0")], "app": [("d0", "c0"), ("d1", "c1"), ("d2", "c2")]})
    p = pull_time(df, "app", present=["base"], bandwidth=10, **IDEAL)
    t = p.timeline
    assert isinstance(p, PullTime) and p.seconds == pytest.approx(4.0)
    assert list(t["skipped"]) == [True, False, False]
    assert list(t["bytes"]) == [0, 10, 10]
    assert list(t["download_end"].iloc[1:]) == [2.0, 2.0]
    assert list(t["extract_start"].iloc[1:]) == [2.0, 3.0]
    assert list(t["extract_end"].iloc[1:]) == [3.0, 4.0]
    assert p.bytes == 20 and p.download_seconds == 2.0


def test_the_engine_inflates_slower_than_the_host():
    df = frame({"app": [("d1", "c1"), ("d2", "c2")]})
    p = pull_time(df, "app", bandwidth=10, **{**IDEAL, "inflate_speed": 0.5})
    assert list(p.timeline["extract_end"]) == [4.0, 6.0]  # 2 s each after the downloads end at 2 s


def test_round_trips_and_the_config():
    df = frame({"app": [("d1", "c1"), ("d2", "c2")]})
    # moby: ping + manifest = 1.0; layers and config start there; bytes flow at 1.5, end 3.5
    p = pull_time(df, "app", bandwidth=10, **{**IDEAL, "rtt": 0.5})
    assert p.seconds == pytest.approx(5.5)
    # containerd fetches the config (one more round trip) before the layers: everything 0.5 s later
    q = pull_time(df, "app", bandwidth=10, engine="containerd", **{**IDEAL, "rtt": 0.5})
    assert q.seconds == pytest.approx(6.0)
    # setup adds to everything; the config's bytes count when nothing else is pulled
    r = pull_time(df, "app", present=["sha256:c0"], bandwidth=10, **{**IDEAL, "setup": 2.0})
    assert r.seconds == pytest.approx(6.0)
    empty = pull_time(frame({"a": [("d1", "c1")], "b": [("d1", "c1")]}), "a", present=["b"], bandwidth=10,
                      **{**IDEAL, "config_bytes": 30})
    assert empty.seconds == pytest.approx(3.0) and empty.bytes == 0


def test_a_known_engine_extraction_rate_replaces_the_host_rates():
    df = frame({"app": [("d1", "c1"), ("d2", "c2")]})
    slow_host = HostRates(gzip=1, zstd=1, write=1, sha256=1, plain=1)
    p = pull_time(df, "app", bandwidth=10, **{**IDEAL, "host": slow_host, "extract_rate": "40B/s"})
    assert list(p.timeline["extract_end"]) == [2.5, 3.0]  # 20 B at 40 B/s: 0.5 s each after 2 s
    with pytest.raises(AnalysisError, match="extract_rate"):
        pull_time(df, "app", bandwidth=10, extract_rate="-1MB/s")


def test_one_download_at_a_time():
    df = frame({"app": [("d1", "c1"), ("d2", "c2")]})
    p = pull_time(df, "app", bandwidth="10B/s", max_concurrent_downloads=1, **IDEAL)
    assert list(p.timeline["download_end"]) == [1.0, 2.0]
    assert list(p.timeline["extract_end"]) == [2.0, 3.0]


def test_parallel_unpack_when_a_limiter_allows_it():
    df = frame({"app": [("d1", "c1"), ("d2", "c2")]})
    p = pull_time(df, "app", bandwidth=10, engine="containerd", max_concurrent_extractions=2, **IDEAL)
    assert list(p.timeline["extract_start"]) == [2.0, 2.0] and p.seconds == pytest.approx(3.0)


def test_moby_skips_only_a_bottom_run_containerd_reuses_blobs_by_digest():
    # the host's image has blobs d0 and d2, but d2 sits on another parent (another chain id)
    df = frame({"host": [("d0", "c0"), ("dx", "cx"), ("d2", "cy")],
                "app": [("d0", "c0"), ("d1", "c1"), ("d2", "c2")]})
    moby = pull_time(df, "app", present=["host"], bandwidth=10, **IDEAL)
    assert list(moby.timeline["bytes"]) == [0, 10, 10] and moby.seconds == pytest.approx(4.0)
    # containerd: d1 alone on the link (0 -> 1 s), extracted 1 -> 2; d2's blob is there, unpacked 2 -> 3
    ctd = pull_time(df, "app", present=["host"], bandwidth=10, engine="containerd", **IDEAL)
    t = ctd.timeline
    assert list(t["bytes"]) == [0, 10, 0]
    assert list(t["download"]) == [False, True, False] and list(t["extract"]) == [False, True, True]
    assert list(t["skipped"]) == [True, False, False]
    assert ctd.seconds == pytest.approx(3.0)
    # moby matching on digests still stops at the first missing layer
    assert pull_time(df, "app", present=["host"], bandwidth=10, key="digest", **IDEAL).bytes == 20


def test_a_blob_twice_in_one_image_downloads_once():
    df = frame({"app": [("d1", "c1"), ("d1", "c2")]})
    p = pull_time(df, "app", bandwidth=10, **IDEAL)
    assert list(p.timeline["bytes"]) == [10, 0]
    assert list(p.timeline["extract_end"]) == [2.0, 3.0] and p.seconds == pytest.approx(3.0)


def test_locally_built_fleet_matches_on_chain_ids():
    df = frame({"base": [(None, "c0")], "app": [(None, "c0"), (None, "c1")]})
    p = pull_time(df, "app", present=["base"], bandwidth=10, engine="podman", **IDEAL)
    assert p.params["key"] == "chain_id"
    assert list(p.timeline["skipped"]) == [True, False]


def test_presence_by_raw_digest():
    df = frame({"app": [("d0", "c0"), ("d1", "c1")]})
    p = pull_time(df, "app", present=["sha256:d0"], bandwidth=10, engine="containerd", **IDEAL)
    assert list(p.timeline["download"]) == [False, True]


def test_an_unknown_wire_size_is_refused_unless_asked_for_or_estimated():
    df = frame({"app": [("d1", "c1"), ("d2", "c2")]}, wire=None, size=20)
    with pytest.raises(AnalysisError, match=r"wire size of 2 layer\(s\) of 'app'.*positions \[0, 1\].*estimate_wire_sizes"):
        pull_time(df, "app", bandwidth=10, **IDEAL)
    p = pull_time(df, "app", bandwidth=10, unknown_wire="uncompressed", **IDEAL)
    assert p.bytes == 40 and any("upper bound" in n for n in p.notes)
    df["compressed_size_estimate"] = pd.array([7, 5], dtype="Int64")
    p = pull_time(df, "app", bandwidth=10, **IDEAL)
    assert p.bytes == 12 and any("2 layer(s)" in n and "estimate" in n for n in p.notes)
    with pytest.raises(AnalysisError, match="unknown_wire"):
        pull_time(df, "app", bandwidth=10, unknown_wire="guess", **IDEAL)
    df = frame({"app": [("d1", "c1")]}, wire=10, size=None)
    p = pull_time(df, "app", bandwidth=10, **IDEAL)
    assert p.seconds == pytest.approx(1.5) and any("no uncompressed size" in n for n in p.notes)  # 10 B at 20 B/s
    with pytest.raises(AnalysisError, match="neither size nor compressed_size"):
        pull_time(frame({"app": [("d1", "c1")]}, wire=None, size=None), "app", bandwidth=10,
                  unknown_wire="uncompressed", **IDEAL)


def test_default_host_rates_are_noted():
    p = pull_time(frame({"app": [("d1", "c1")]}), "app", bandwidth="1MB/s")
    assert any("defaults" in n for n in p.notes)
    assert "PullTime" in repr(p) and "1 MB/s" in repr(p)
    assert "<table" in p._repr_html_()


def test_html_repr_draws_the_timeline_as_escaped_svg():
    df = frame({"base": [("d0", "c0")], "app<script>": [("d0", "c0"), ("d1", "c1"), ("d2", "c2")]})
    p = pull_time(df, "app<script>", present=["base"], bandwidth=10, **IDEAL)
    page = p._repr_html_()
    svg = page[page.index("<svg"):page.index("</svg>")]
    assert "<script" not in page and "app&lt;script&gt;" in svg
    # one grey mark for the layer on the host, two downloads and two extractions as bars
    assert svg.count('fill="#bab0ac"') == 2  # the mark and its legend swatch
    assert svg.count('fill="#4c78a8"><title>download') == 2 and svg.count('fill="#f58518"><title>extract') == 2
    assert ">#0 on the host<" in svg and ">#2<" in svg
    assert page.index("<svg") < page.index("<table")  # the chart comes before the table


@pytest.mark.parametrize("kwargs, match", [
    ({"engine": "rkt"}, "engine"),
    ({"key": "size"}, "key"),
    ({"rtt": -1}, "rtt"),
    ({"max_concurrent_downloads": 0}, "max_concurrent_downloads"),
    ({"max_concurrent_downloads": 1.5}, "max_concurrent_downloads"),
    ({"setup": -0.1}, "setup"),
    ({"inflate_speed": 0}, "inflate_speed"),
    ({"host": "fast"}, "host"),
    ({"bandwidth": "-20MB/s"}, "bandwidth"),
    ({"present": ["nope"]}, "nope"),
])
def test_bad_arguments(kwargs, match):
    df = frame({"app": [("d1", "c1")]})
    args = {"bandwidth": 10, **kwargs}
    with pytest.raises(LayerlabError, match=match):
        pull_time(df, "app", **args)


def test_unknown_image_and_bad_data():
    df = frame({"app": [("d1", "c1")]})
    with pytest.raises(AnalysisError, match="'nope' is not in the data"):
        pull_time(df, "nope", bandwidth=10)
    with pytest.raises(AnalysisError, match="Fleet"):
        pull_time(42, "app", bandwidth=10)


# -- several pulls, rollout ----------------------------------------------------------

def test_pull_table_adds_the_models_seconds():
    df = frame({"base": [("d0", "c0")], "app": [("d0", "c0"), ("d1", "c1")]})
    t = pull_table(df, ["base", "app"], present="previous", bandwidth=10, **IDEAL)
    assert list(t["present"]) == ["", "base"]
    assert list(t["pull_bytes"]) == [10, 10] and list(t["model_bytes"]) == [10, 10]
    assert list(t["seconds"]) == [2.0, 2.0]  # 1 s download + 1 s extraction each
    assert list(t["download_seconds"]) == [1.0, 1.0]
    assert "seconds" not in pull_table(df, ["base", "app"], present="previous").columns
    # placement: every image on every host
    h = pull_table(df, ["app"], hosts={"warm": ["base"], "cold": []}, bandwidth=10, **IDEAL)
    assert list(h["host"]) == ["warm", "cold"]
    assert list(h["model_bytes"]) == [10, 20]
    assert list(h["seconds"]) == [2.0, 4.0]  # cold: both 2 s downloads, then 1 s + 1 s extraction
    # a fleet dict and another image column name go through as well
    named = df.rename(columns={"image": "ref"})
    n = pull_table({"x": named}, ["app"], present=["base"], image="ref", bandwidth="10B/s", **IDEAL)
    assert list(n["fleet"]) == ["x"] and list(n["seconds"]) == [2.0]
    with pytest.raises(AnalysisError, match="present"):
        pull_table(df, present="everything", bandwidth=10)
    with pytest.raises(AnalysisError, match="bandwidth"):
        pull_table(df, bandwidth="fast")
    with pytest.raises(AnalysisError, match="engine"):
        pull_table(df, bandwidth=10, engine="rkt")


def test_pull_table_counts_bytes_by_key_the_model_by_the_engines_rule():
    # the host holds blobs d0 and d2, d2 on another parent: by digest only d1 is missing,
    # but moby skips only the bottom run (d0) and downloads d1 and d2; containerd reuses d2's blob
    df = frame({"host": [("d0", "c0"), ("dx", "cx"), ("d2", "cy")],
                "app": [("d0", "c0"), ("d1", "c1"), ("d2", "c2")]})
    moby = pull_table(df, ["app"], present=["host"], bandwidth=10, **IDEAL)
    assert int(moby["pull_bytes"].iloc[0]) == 10 and int(moby["model_bytes"].iloc[0]) == 20
    ctd = pull_table(df, ["app"], present=["host"], bandwidth=10, engine="containerd", **IDEAL)
    assert int(ctd["model_bytes"].iloc[0]) == 10 and float(ctd["seconds"].iloc[0]) == pytest.approx(3.0)
    by_digest = pull_table(df, ["app"], present=["host"], bandwidth=10, engine_key="digest", **IDEAL)
    assert int(by_digest["model_bytes"].iloc[0]) == 20  # moby still stops at the first missing layer


def test_rollout_shares_the_registry():
    df = frame({"app": [("d1", "c1")]})
    # 4 hosts at once, registry 20 B/s: 5 B/s each: 2 s download + 1 s extraction
    r = rollout(df, "app", 4, bandwidth=10, registry_bandwidth=20, **IDEAL)
    assert r.bytes == 40 and r.seconds == pytest.approx(3.0)
    # two waves of two hosts, each at its full 10 B/s: 2 s per wave
    r2 = rollout(df, "app", 4, bandwidth=10, registry_bandwidth=20, parallel=2, **IDEAL)
    assert r2.seconds == pytest.approx(4.0)
    assert int(r2.table["bytes"].iloc[0]) == 40
    with pytest.raises(AnalysisError, match="hosts"):
        rollout(df, "app", 0, bandwidth=10)


# -- host rates --------------------------------------------------------------------

def test_host_rates_validate_and_cache(tmp_path):
    with pytest.raises(AnalysisError, match="gzip"):
        HostRates(gzip=-1, zstd=1, write=1, sha256=1)
    fake = {"gzip": 1.0, "zstd": 2.0, "write": 3.0, "sha256": 4.0, "plain": 5.0, "source": "hand"}
    (tmp_path / "hostrates-v1.json").write_text(json.dumps(fake))
    assert measure_host(cache_dir=tmp_path) == HostRates(**fake)
    fresh = measure_host(cache_dir=tmp_path, refresh=True, sample_bytes=1 << 20)
    assert fresh.gzip > 1.0 and fresh.source.startswith("measured")
    assert json.loads((tmp_path / "hostrates-v1.json").read_text())["gzip"] == fresh.gzip


# -- the throttling proxy (bytes, not timing) ----------------------------------------

def _echo_server() -> tuple[socket.socket, int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            with c:
                data = b""
                while not data.endswith(b"\n"):
                    chunk = c.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                c.sendall(data * 3)

    threading.Thread(target=serve, daemon=True).start()
    return srv, srv.getsockname()[1]


def test_throttle_forwards_bytes_intact_and_counts_them():
    srv, port = _echo_server()
    payload = bytes(range(256)) * 400 + b"\n"
    try:
        with Throttle("127.0.0.1", port, rate=50_000_000) as t:
            with socket.create_connection(("127.0.0.1", t.port)) as c:
                c.sendall(payload)
                got = b""
                while len(got) < 3 * len(payload):
                    chunk = c.recv(65536)
                    if not chunk:
                        break
                    got += chunk
            assert got == payload * 3
            assert t.bytes_through == 3 * len(payload)  # only the replies are throttled
            with pytest.raises(ValueError):
                t.set_rate(-1)
    finally:
        srv.close()



def test_html_repr_of_a_fleet_without_digests():
    df = frame({"base": [(None, "c0")], "app": [(None, "c0"), (None, "c1")]})
    page = pull_time(df, "app", present=["base"], bandwidth=10, **IDEAL)._repr_html_()
    assert "bytes downloaded; sha256:c1" in page  # the chain id names the layer when there is no digest
