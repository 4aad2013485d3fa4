"""Hostile snapshots and integers (issue 14, defects 3 and 4): a damaged or
altered snapshot is a FormatError naming the file, never different frames;
integers beyond 64 bits are a FormatError naming the input."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import layerlab as ll
from layerlab import snapshot
from layerlab.errors import FormatError

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"


@pytest.fixture
def snap(tmp_path) -> Path:
    out = tmp_path / "snap"
    ll.load_many(f"snapshot:{SAMPLE}").save(out)
    return out


def test_saved_snapshot_loads_verified_and_equal(snap):
    fleet = ll.load_many(f"snapshot:{snap}")
    assert not any("checksums" in w for img in fleet for w in img.warnings)
    assert fleet.layers().equals(ll.load_many(f"snapshot:{SAMPLE}").layers())


def test_bundled_sample_is_sealed():
    doc = json.loads((SAMPLE / "snapshot.json").read_text())
    assert {"images.parquet", "layers.parquet", "history.parquet", "configs.parquet"} <= set(doc["checksums"])
    assert any(k.startswith("files/") for k in doc["checksums"])
    fleet = ll.load_many(f"snapshot:{SAMPLE}")
    assert not any("checksums" in w for img in fleet for w in img.warnings)


@pytest.mark.parametrize("name", ["images.parquet", "layers.parquet", "history.parquet", "configs.parquet"])
def test_bit_flip_is_refused_naming_the_file(snap, name):
    p = snap / name
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))
    with pytest.raises(FormatError, match=f"{name} does not match its checksum"):
        ll.load_many(f"snapshot:{snap}")


def test_bit_flip_in_a_file_table_is_refused(tmp_path):
    out = tmp_path / "s"
    shutil.copytree(SAMPLE, out)
    table = sorted((out / "files").rglob("*.parquet"))[0]
    data = bytearray(table.read_bytes())
    data[100] ^= 0x04
    table.write_bytes(bytes(data))
    with pytest.raises(FormatError, match=table.name):
        ll.load_many(f"snapshot:{out}")


def test_old_snapshot_without_checksums_loads_with_a_warning(snap):
    (snap / "snapshot.json").unlink()
    fleet = ll.load_many(f"snapshot:{snap}")
    assert all(any("no checksums" in w for w in img.warnings) for img in fleet)
    (snap / "snapshot.json").write_text(json.dumps({"format": 1, "images": len(fleet)}))
    assert all(any("no checksums" in w for w in img.warnings) for img in ll.load_many(f"snapshot:{snap}"))


def test_damaged_snapshot_json_is_refused(snap):
    (snap / "snapshot.json").write_text('{"format": 1, "images": 8, "checksums": ')
    with pytest.raises(FormatError, match="snapshot.json"):
        ll.load_many(f"snapshot:{snap}")


def _rewrite(snap: Path, name: str, change) -> None:
    """Alter one table, then seal again: the checksums match, the content is what is wrong."""
    df = pd.read_parquet(snap / name)
    df = change(df)
    if isinstance(df, pa.Table):
        pq.write_table(df, snap / name)
    else:
        df.to_parquet(snap / name, index=False)
    snapshot.seal(snap)


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


CASES = {
    "missing column": ("layers.parquet", lambda df: df.drop(columns=["diff_id"]), "lacks the column"),
    "text for sizes": ("layers.parquet", lambda df: df.assign(size=df["size"].astype(str)), "'size'"),
    "history over images": ("images.parquet", lambda df: pd.read_parquet(SAMPLE / "history.parquet"),
                            "lacks the column"),
    "null image name": ("images.parquet", lambda df: df.assign(image=[None] + list(df["image"][1:])),
                        "without an image name"),
    "gap in positions": ("layers.parquet", lambda df: df.assign(position=df["position"].where(df["position"] != 1, 7)),
                         "not 0.."),
    "repeated index": ("history.parquet", lambda df: df.assign(index=df["index"].where(df["index"] != 1, 0)),
                       "not 0.."),
    "bad config JSON": ("configs.parquet", lambda df: df.assign(config=["{not json"] * len(df)), "config"),
    "nested config JSON": ("configs.parquet", lambda df: df.assign(config=[_nested(200_000)] * len(df)),
                           "config"),
    "config not an object": ("configs.parquet", lambda df: df.assign(config=["[1, 2]"] * len(df)), "config"),
    "uint64 size": ("layers.parquet",
                    lambda df: pa.Table.from_pandas(df.assign(size=pd.array([2 ** 63 + 5] * len(df), dtype="UInt64")),
                                                    preserve_index=False), "'size'"),
    "negative size": ("images.parquet", lambda df: df.assign(size=-df["size"]), "negative"),
    "duplicate image": ("images.parquet", lambda df: pd.concat([df, df.iloc[:1]]), "twice"),
    "layer count lies": ("images.parquet", lambda df: df.assign(layer_count=df["layer_count"] + 1), "layers but"),
    "step paired with a missing layer": ("history.parquet",
                                         lambda df: df.assign(layer_position=df["layer_position"] + 100),
                                         "does not have"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_wrong_content_is_a_format_error_naming_the_file(snap, case):
    name, change, words = CASES[case]
    _rewrite(snap, name, change)
    with pytest.raises(FormatError) as e:
        ll.load_many(f"snapshot:{snap}")
    assert name in str(e.value) and words in str(e.value)


# -- integers beyond 64 bits (defect 3) ---------------------------------------------------------
@pytest.mark.parametrize("size", [2 ** 63, 2 ** 64 + 3])
def test_history_json_size_beyond_64_bits(tmp_path, size):
    p = tmp_path / "h.jsonl"
    rows = [{"CreatedBy": "/bin/sh -c #(nop) ADD file:x in /", "ID": "<missing>", "Size": str(size),
             "CreatedAt": "2024-01-01T00:00:00Z", "Comment": ""},
            {"CreatedBy": "/bin/sh -c x", "ID": "<missing>", "Size": "10", "CreatedAt": "2024-01-01T00:00:00Z",
             "Comment": ""}]
    p.write_text("".join(json.dumps(r) + "\n" for r in reversed(rows)))
    img = ll.load(f"history:{p}")
    for frame, value in ((img.layers, size), (img.history, size), (ll.Fleet([img]).images, size + 10)):
        with pytest.raises(FormatError) as e:
            frame()
        assert str(p) in str(e.value) and f"size '{value}'" in str(e.value) and "64-bit" in str(e.value)


def test_api_history_array_size_beyond_64_bits(tmp_path):
    p = tmp_path / "h.json"
    p.write_text(json.dumps([{"Id": "<missing>", "Created": 1700000000, "CreatedBy": "/bin/sh -c x",
                              "Size": 2 ** 63, "Comment": ""}]))
    img = ll.load(f"history:{p}")
    with pytest.raises(FormatError, match="size"):
        img.layers()


def test_sizes_that_sum_beyond_64_bits(tmp_path):
    """Each size fits, their running total does not: the cumulative column says so."""
    p = tmp_path / "h.jsonl"
    rows = [{"CreatedBy": f"/bin/sh -c step{i}", "ID": "<missing>", "Size": str(2 ** 62 + i),
             "CreatedAt": "2024-01-01T00:00:00Z", "Comment": ""} for i in range(2)]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(FormatError, match="cumulative_size"):
        ll.load(f"history:{p}").layers()


@pytest.mark.parametrize("trick", ["outside", "device", "unlisted table"])
def test_checksum_list_cannot_point_elsewhere_or_skip_a_table(snap, trick):
    meta = json.loads((snap / "snapshot.json").read_text())
    if trick == "outside":
        meta["checksums"]["../secret.parquet"] = "sha256:" + "0" * 64
    elif trick == "device":
        (snap / "files").mkdir()
        (snap / "files" / "zero.parquet").symlink_to("/dev/zero")  # hashing it would never end
        meta["checksums"]["files/zero.parquet"] = "sha256:" + "0" * 64
    else:
        del meta["checksums"]["layers.parquet"]
    (snap / "snapshot.json").write_text(json.dumps(meta))
    with pytest.raises(FormatError, match="snapshot.json"):
        ll.load_many(f"snapshot:{snap}")


def test_old_pairing_values_load_with_current_names(snap):
    # the bundled sample was written before the rename: its history.parquet
    # says empty_layer/empty; loading says how the step was paired instead
    raw = pd.read_parquet(SAMPLE / "history.parquet")
    assert {"empty_layer", "empty"} <= set(raw["pairing"]), (
        "data/sample was rewritten with the current names: keep a snapshot written before the rename for this test")
    expected = raw["pairing"].map({"empty_layer": "config", "empty": "no_layer"}).tolist()
    old = ll.load_many(f"snapshot:{SAMPLE}").history()
    assert old["pairing"].tolist() == expected
    # a snapshot saved now keeps the current names
    assert set(pd.read_parquet(snap / "history.parquet")["pairing"]) == {"config", "no_layer"}
    assert ll.load_many(f"snapshot:{snap}").history()["pairing"].tolist() == expected
