"""Defects the fuzz suite's long mode found in the frame builder (sizes past 2**53 and
2**63, dates outside pandas' nanosecond range), kept as regression tests now that they are
fixed.  The default fuzz run keeps clear of these ranges (tests/_fuzz/strategies.py stays below 2**53
and inside pandas' datetime range unless ``LAYERLAB_FUZZ_WIDE=1``); ``scripts/fuzz`` finds them.

Each test passes when the input loads and every frame builds, or when only a
LayerlabError escapes.
"""
from __future__ import annotations

import json

import pytest

import layerlab as ll
from layerlab.errors import LayerlabError

from _archive_helpers import config_for, layer_tar, sha, write_legacy_archive

pytestmark = pytest.mark.fuzz


def _frames_or_layerlab_error(source: str) -> None:
    try:
        img = ll.load(source)
        img.layers()
        img.history()
        img.images()
    except LayerlabError:
        pass


def _history(tmp_path, sizes: list) -> str:
    rows = [{"Id": "<missing>", "Created": 1764295389, "CreatedBy": f"ADD f{i} /", "Size": s} for i, s in enumerate(sizes)]
    p = tmp_path / "app.txt"
    p.write_text(json.dumps(rows))
    return f"history:{p}"


def test_history_size_above_2_53_beside_an_unknown_size(tmp_path):
    _frames_or_layerlab_error(_history(tmp_path, [2**63 - 1, None]))


def test_history_size_of_2_70(tmp_path):
    _frames_or_layerlab_error(_history(tmp_path, [2**70, 5]))


def test_repo_info_layer_size_past_2_63(tmp_path):
    from _archive_helpers import repo_info_text

    text = repo_info_text("fuzz:1", ["linux/amd64"]).replace(
        "-\tImage ID", f"-\tLayers:\n\t-\t`{sha(b'l')}`  \n\t\tSize: 9 EB ({2**64} bytes)  \n\n-\tImage ID", 1)
    p = tmp_path / "repos" / "fuzz" / "remote" / "1.md"
    p.parent.mkdir(parents=True)
    p.write_text(text)
    try:
        for img in ll.load_many(f"repo-info:{p}", platform=None):
            img.layers()
    except LayerlabError:
        pass


@pytest.mark.parametrize("where", ["config.created", "history.created", "saved history"])
def test_date_outside_the_frames_range(tmp_path, where):
    if where == "saved history":
        p = tmp_path / "app.jsonl"
        p.write_text(json.dumps({"ID": "<missing>", "CreatedAt": "3000-01-01T00:00:00Z", "CreatedBy": "ADD x /",
                                 "Size": "5"}))
        return _frames_or_layerlab_error(f"history:{p}")
    layer = layer_tar({"a": b"1"})
    cfg = config_for([sha(layer)])
    if where == "config.created":
        cfg["created"] = "3000-01-01T00:00:00Z"
    else:
        cfg["history"][0]["created"] = "1600-01-01T00:00:00Z"
    p = tmp_path / "a.tar"
    write_legacy_archive(p, [layer], config_bytes=json.dumps(cfg).encode())
    _frames_or_layerlab_error(f"docker-archive:{p}")
