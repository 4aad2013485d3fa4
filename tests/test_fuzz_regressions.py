"""Defects the fuzz suite found, fixed, and pinned here (each with the input that showed it).

* saved docker history whose JSON nests past the parser's recursion limit (an API
  array, or a JSON line) let ``RecursionError`` escape (history_text.py);
* a schema 1 manifest whose signature's protected header nests that deep let
  ``RecursionError`` escape while computing the manifest digest (manifest.py).
"""
from __future__ import annotations

import base64
import json

import pytest

import layerlab as ll
from layerlab.errors import FormatError

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("text,suffix", [(DEEP, ".txt"), ("[" + DEEP + "]", ".txt"),
                                         ('{"ID": ' + DEEP + "}", ".jsonl"), ("{\"a\":" * 100_000, ".jsonl")])
def test_deeply_nested_history_json_is_a_format_error(tmp_path, text, suffix):
    p = tmp_path / ("app" + suffix)
    p.write_text(text)
    with pytest.raises(FormatError) as ei:
        ll.load(f"history:{p}")
    assert str(p) in str(ei.value)
    msg = str(ei.value)
    assert "nests too deeply" in msg and ("docker history" in msg or "history entries" in msg)


def test_history_json_line_error_still_says_which_line(tmp_path):
    good = json.dumps({"ID": "<missing>", "CreatedBy": "ADD x /", "Size": "5"})
    p = tmp_path / "app.jsonl"
    p.write_text(good + "\n" + '{"ID": ' + DEEP + "}\n")
    with pytest.raises(FormatError, match=r"line 2 .*nests too deeply"):
        ll.load(f"history:{p}")


def test_schema1_with_deeply_nested_protected_header_loads_without_a_digest(tmp_path):
    """The layers and history come from the manifest; only the signed payload's digest
    cannot be computed, so it stays unknown (as for any unreadable signature)."""
    v1 = {"id": "a" * 64, "created": "2018-01-01T00:00:00Z", "container_config": {"Cmd": ["/bin/sh", "-c", "x"]}}
    doc = {"schemaVersion": 1, "name": "fuzz/app", "tag": "1", "architecture": "amd64",
           "fsLayers": [{"blobSum": "sha256:" + "b" * 64}], "history": [{"v1Compatibility": json.dumps(v1)}],
           "signatures": [{"protected": base64.urlsafe_b64encode(DEEP.encode()).decode().rstrip("="),
                           "signature": "x"}]}
    p = tmp_path / "m.json"
    p.write_text(json.dumps(doc))
    img = ll.load(f"manifest:{p}")
    assert img.manifest_digest is None
    assert [l.digest for l in img.layer_list] == ["sha256:" + "b" * 64]
    assert img.reference == "fuzz/app:1"
