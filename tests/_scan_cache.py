"""Write scan caches by hand, in the documented layout of ``layerlab.scan.cache``,
for the query tests (independent of the scan engine that normally writes them).

    ROOT/files/<diff_id hex>.<rows>.<xxh64 of the file bytes>.parquet   one per layer
    ROOT/layers/<scan id>.parquet                                       (image, position) rows
    ROOT/images/<scan id>.parquet                                       image rows
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

FILE_FIELDS = [
    ("diff_id", pa.string()), ("path", pa.string()), ("type", pa.string()), ("size", pa.int64()),
    ("mode", pa.int64()), ("uid", pa.int64()), ("gid", pa.int64()), ("link_target", pa.string()),
    ("mtime", pa.timestamp("ns", tz="UTC")), ("hash", pa.string()), ("warning", pa.string()),
]
FILE_SCHEMA = pa.schema(FILE_FIELDS)
SCAN_ID = "20260101T000000000000Z-00000000"


def write_layer_file(root: Path, diff_id: str, rows: list[dict] | pd.DataFrame) -> Path:
    """One layer's file table; ``rows`` need path/type/size/hash (others default)."""
    frame = pd.DataFrame(rows)
    cols = {}
    for name, typ in FILE_FIELDS:
        if name == "diff_id":
            cols[name] = pa.array([diff_id] * len(frame), typ)
        elif name in frame:
            vals = frame[name].astype(object).where(frame[name].notna(), None).tolist()
            cols[name] = pa.array(vals, typ)
        else:
            cols[name] = pa.nulls(len(frame), typ)
    table = pa.table(cols, schema=FILE_SCHEMA).replace_schema_metadata({b"diff_id": diff_id.encode()})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    data = sink.getvalue().to_pybytes()
    d = Path(root) / "files"
    d.mkdir(parents=True, exist_ok=True)
    out = d / f"{diff_id.split(':', 1)[1]}.{len(frame)}.{xxhash.xxh64(data).hexdigest()}.parquet"
    out.write_bytes(data)
    return out


def write_rows(root: Path, kind: str, rows: pd.DataFrame, scan_id: str = SCAN_ID) -> Path:
    d = Path(root) / kind
    d.mkdir(parents=True, exist_ok=True)
    out = d / f"{scan_id}.parquet"
    rows.assign(scan_id=scan_id).to_parquet(out, index=False)
    return out


def write_cache_from_images(root: Path, images, *, source: str = "test:") -> None:
    """Each image's layer file tables (``img.files()``), one file per distinct
    diff_id, plus its layers and images rows, as a scan of ``source`` would write them."""
    from layerlab import Fleet

    fleet = Fleet(list(images))
    files = fleet.files(cache_dir=False, progress=False)
    first = files.drop_duplicates("diff_id")[["image", "diff_id"]]
    for image, diff_id in zip(first["image"], first["diff_id"]):
        rows = files.loc[(files["image"] == image) & (files["diff_id"] == diff_id)]
        # one layer position per (image, diff_id) is enough: a diff_id's rows are the same everywhere
        rows = rows.loc[rows["position"] == rows["position"].iloc[0]]
        write_layer_file(root, diff_id, rows.drop(columns=["image", "position"]))
    layers = fleet.layers()[["image", "position", "diff_id", "digest", "size", "compressed_size", "media_type"]]
    write_rows(root, "layers", layers.assign(source=source))
    write_rows(root, "images", fleet.images().assign(scan_source=source))


def pandas_dedup(stored: pd.DataFrame, layers: pd.DataFrame) -> dict:
    """The dedup figures in plain pandas, an oracle for the DuckDB queries.

    ``stored``: the file rows of each distinct layer once (columns diff_id,
    path, type, size, hash); ``layers``: one row per (image, position) with
    image and diff_id.  Content = regular file, size > 0, with a hash."""
    content = stored[(stored["type"] == "file") & (stored["size"] > 0) & stored["hash"].notna()]
    content = content.astype({"size": "int64"})
    per_layer = content.groupby("diff_id")["size"].agg(["count", "sum"])
    ref_counts = layers["diff_id"].value_counts().reindex(per_layer.index)
    groups = content.groupby(["hash", "size"]).size()
    img_of = layers.groupby("diff_id")["image"].agg(set)
    top = (content.groupby(["hash", "size"])
           .agg(copies=("path", "size"), layers=("diff_id", "nunique"), paths=("path", "nunique"),
                diff_ids=("diff_id", lambda x: set(x)))
           .reset_index())
    top = top[top["copies"] > 1].assign(saved_bytes=lambda t: (t["copies"] - 1) * t["size"])
    top["images"] = [len(set().union(*(img_of[x] for x in ids))) for ids in top["diff_ids"]]
    return {
        "layer_refs": len(layers), "distinct_layers": layers["diff_id"].nunique(),
        "ref_files": int((per_layer["count"] * ref_counts).sum()),
        "ref_bytes": int((per_layer["sum"] * ref_counts).sum()),
        "stored_files": len(content), "stored_bytes": int(content["size"].sum()),
        "distinct_contents": len(groups), "distinct_content_bytes": int(sum(groups.index.get_level_values(1))),
        "singletons": int((groups == 1).sum()), "distinct_paths": content["path"].nunique(),
        "top": top.sort_values(["saved_bytes", "hash", "size"], ascending=[False, True, True]).reset_index(drop=True),
    }
