"""The checks a snapshot's tables pass before they become the model
(:func:`check_tables`): every column of :mod:`layerlab.frames`' schema, with a
compatible type; image names present (and unique in ``images.parquet``);
layer positions and history indexes ``0..n-1`` without gaps or repeats;
byte counts non-negative 64-bit integers.  Anything else is a
:class:`~layerlab.errors.FormatError` naming the file and the column, never a
``KeyError``/``TypeError`` from deep inside the loader.
"""
from __future__ import annotations

import pandas as pd
from pandas.api import types as pdt

from ..errors import FormatError
from ..frames import HISTORY_COLUMNS, IMAGE_COLUMNS, LAYER_COLUMNS
from ..snapshot import CONFIGS_FILE, HISTORY_FILE, IMAGES_FILE, LAYERS_FILE

CONFIG_COLUMNS: dict[str, str] = {
    "image": "string",
    "config": "string",
    "repo_tags": "string",
    "repo_digests": "string",
    "reported_size": "Int64",
    "warnings": "string",
    "annotations": "string",
}
_SCHEMAS = {IMAGES_FILE: IMAGE_COLUMNS, LAYERS_FILE: LAYER_COLUMNS, HISTORY_FILE: HISTORY_COLUMNS,
            CONFIGS_FILE: CONFIG_COLUMNS}
_SIZES = {"layer_count", "size", "compressed_size", "compressed_size_estimate", "cumulative_size", "reported_size"}
OPTIONAL = {"compressed_size_estimate"}
"""Columns added after snapshots were first written: absent means null."""
_INT64_MAX = (1 << 63) - 1


def _type_ok(col: pd.Series, dtype: str) -> bool:
    values = col.dropna()
    if values.empty:
        return True
    if dtype == "string":
        return pdt.is_string_dtype(col) and all(isinstance(v, str) for v in values.tolist())
    if dtype == "Int64":
        if not pdt.is_integer_dtype(col) or pdt.is_bool_dtype(col):
            return False
        return not pdt.is_unsigned_integer_dtype(col) or int(values.max()) <= _INT64_MAX
    if dtype == "boolean":
        return pdt.is_bool_dtype(col) or all(isinstance(v, bool) for v in values.tolist())
    if dtype.startswith("datetime64"):
        return pdt.is_datetime64_any_dtype(col)
    return True  # pragma: no cover - every schema dtype is listed above


def _check_columns(df: pd.DataFrame, name: str, where: str) -> None:
    schema = _SCHEMAS[name]
    required = ["image"] if name == CONFIGS_FILE else [c for c in schema if c not in OPTIONAL]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise FormatError(f"{where}: {name} lacks the column(s) {', '.join(missing)}; it is not a layerlab "
                          "snapshot's (or another file was copied over it): re-create it with Fleet.save")
    for col, dtype in schema.items():
        if col in df.columns and not _type_ok(df[col], dtype):
            raise FormatError(f"{where}: {name} column {col!r} holds {df[col].dtype} values where {dtype} belongs; "
                              "the snapshot is damaged or not layerlab's")
        if col in _SIZES and col in df.columns and (df[col].dropna() < 0).any():
            raise FormatError(f"{where}: {name} column {col!r} holds a negative byte count; the snapshot is damaged")
    if df["image"].isna().any():
        raise FormatError(f"{where}: {name} has a row without an image name; the snapshot is damaged")


def _check_sequence(df: pd.DataFrame, col: str, name: str, where: str) -> dict[str, int]:
    """Each image's ``col`` must be 0..n-1; returns image -> n."""
    counts: dict[str, int] = {}
    for key, g in df.groupby("image", sort=False):
        got = sorted(int(v) for v in g[col].dropna().tolist())
        if len(got) != len(g) or got != list(range(len(g))):
            raise FormatError(f"{where}: {name}: the {col} values of {key!r} are not 0..{len(g) - 1} "
                              "(a gap, a repeat or a null); the snapshot is damaged")
        counts[str(key)] = len(g)
    return counts


def check_tables(tables: dict[str, pd.DataFrame | None], where: str) -> None:
    """Validate the snapshot's frames (``tables``: file name -> frame; a missing
    configs.parquet is None).  Raises FormatError naming the file."""
    for name, df in tables.items():
        if df is not None:
            _check_columns(df, name, where)
    images = tables[IMAGES_FILE]
    dup = images["image"][images["image"].duplicated()]
    if not dup.empty:
        raise FormatError(f"{where}: {IMAGES_FILE} lists {dup.iloc[0]!r} twice; the snapshot is damaged")
    n_layers = _check_sequence(tables[LAYERS_FILE], "position", LAYERS_FILE, where)
    _check_sequence(tables[HISTORY_FILE], "index", HISTORY_FILE, where)
    for key, count in zip(images["image"].tolist(), images["layer_count"].tolist()):
        if not pd.isna(count) and int(count) != n_layers.get(key, 0):
            raise FormatError(f"{where}: {IMAGES_FILE} says {key!r} has {int(count)} layers but {LAYERS_FILE} "
                              f"holds {n_layers.get(key, 0)}; the snapshot is damaged")
    history = tables[HISTORY_FILE]
    for key, pos in zip(history["image"].tolist(), history["layer_position"].tolist()):
        if not pd.isna(pos) and not 0 <= int(pos) < n_layers.get(key, 0):
            raise FormatError(f"{where}: {HISTORY_FILE} pairs a step of {key!r} with layer {int(pos)}, which it "
                              "does not have; the snapshot is damaged")


__all__ = ["CONFIG_COLUMNS", "check_tables"]
