"""A fleet scan whose cache is an S3 bucket, as the issue's ``cache="s3://bucket/…"``:
moto's S3 server on 127.0.0.1 (a real HTTP S3 API, no cloud), s3fs as fsspec's
``s3://``, and the tasks on a Dask cluster whose workers are other processes —
so the table files reach the bucket only over S3, never through a shared disk.

Expected tables come from a scan into a local directory (compared row for row)
and from the bucket's own listing read with boto3; none from the S3 code path.
"""
from __future__ import annotations

import socket
import uuid

import pandas as pd
import pytest

import layerlab as ll
from test_scan import client, fleet  # noqa: F401 - the same fleet and two-worker cluster fixtures

moto_server = pytest.importorskip("moto.server")
pytest.importorskip("s3fs")
boto3 = pytest.importorskip("boto3")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    opts = {"key": "testing", "secret": "testing", "endpoint_url": url,
            "client_kwargs": {"region_name": "us-east-1"}}
    bucket = f"layerlab-{uuid.uuid4().hex[:8]}"
    client = boto3.client("s3", endpoint_url=url, aws_access_key_id="testing", aws_secret_access_key="testing",
                          region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    try:
        yield {"bucket": bucket, "options": opts, "client": client}
    finally:
        server.stop()


def _keys(s3, prefix: str) -> list[str]:
    out = s3["client"].list_objects_v2(Bucket=s3["bucket"], Prefix=prefix).get("Contents", [])
    return sorted(o["Key"] for o in out)


def test_a_cluster_scan_into_an_s3_bucket_equals_a_local_scan(fleet, s3, client, tmp_path):
    from test_scan import cache_tables

    url = f"s3://{s3['bucket']}/cache"
    s = ll.scan(fleet, cache=url, client=client, storage_options=s3["options"], progress=False)
    here = ll.scan(fleet, cache=tmp_path / "here", workers=1, progress=False)
    assert (s.stats["distinct"], s.stats["scanned"], s.stats["failed"]) == (9, 9, 0), s.failures
    # the bucket holds one table per distinct layer, under the names a local cache gives them
    names = [k.rsplit("/", 1)[-1] for k in _keys(s3, "cache/files/")]
    assert sorted(names) == sorted(p.name for p in (tmp_path / "here" / "files").iterdir())
    pd.testing.assert_frame_equal(s.layers(), here.layers())
    pd.testing.assert_frame_equal(s.images(), here.images())
    want = cache_tables(tmp_path / "here")
    import s3fs

    fs = s3fs.S3FileSystem(**s3["options"])
    for key in _keys(s3, "cache/files/"):
        with fs.open(f"{s3['bucket']}/{key}", "rb") as fh:
            table = pd.read_parquet(fh)
        diff_id = table["diff_id"].iloc[0]
        pd.testing.assert_frame_equal(table.reset_index(drop=True),
                                      pd.read_parquet(next((tmp_path / "here" / "files").glob(f"{diff_id.split(':')[1]}*"))),
                                      check_dtype=True)
        assert diff_id in want
    # a second scan reads nothing again; DuckDB answers over the bucket
    again = ll.scan(fleet, cache=url, client=client, storage_options=s3["options"], progress=False)
    assert (again.stats["scanned"], again.stats["reused"]) == (0, 9)
    n = s.files_sql("SELECT count(*) AS n FROM files WHERE path = 'etc/os-release'")["n"].iloc[0]
    assert int(n) == 1  # the shared base layer: once
    d = s.dedup()
    local = here.dedup()
    pd.testing.assert_frame_equal(d.table, local.table)  # the study's table: the same over S3 as on disk
    assert d.summary["stored_bytes"] == local.summary["stored_bytes"]


def test_a_corrupt_object_in_the_bucket_is_rewritten(fleet, s3, tmp_path):
    url = f"s3://{s3['bucket']}/corrupt"
    ll.scan(fleet, cache=url, workers=1, storage_options=s3["options"], progress=False)
    key = _keys(s3, "corrupt/files/")[0]
    body = s3["client"].get_object(Bucket=s3["bucket"], Key=key)["Body"].read()
    s3["client"].put_object(Bucket=s3["bucket"], Key=key, Body=body[: len(body) // 2])  # truncated
    again = ll.scan(fleet, cache=url, workers=1, storage_options=s3["options"], progress=False)
    assert (again.stats["scanned"], again.stats["reused"]) == (1, 8)
    fixed = s3["client"].get_object(Bucket=s3["bucket"], Key=key)["Body"].read()
    assert fixed == body
