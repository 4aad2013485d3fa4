"""Image config → model: diff_ids, history steps, times.

One reading of an image config's ``rootfs.diff_ids`` and ``history`` for
every source that has the config (``docker-archive:``, ``oci:``,
``manifest:``, ``docker://``, ``docker-daemon:`` when it reads the config).
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from .._limits import current as current_limits, exceeded
from ..errors import FormatError
from ..model import HistoryStep, pair_by_empty_layer
from ._digest import check_digest

_FRAC = re.compile(r"(\.\d{6})\d+")


def parse_time(value: Any) -> datetime | None:
    """RFC 3339 (Go's, with nanoseconds) → aware datetime; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    text = _FRAC.sub(r"\1", value.strip())
    if text.endswith("Z") or text.endswith("z"):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    if dt.year <= 1:  # Go's zero time
        return None
    return dt


def config_diff_ids(config: dict, where: str) -> list[str]:
    """The config's ``rootfs.diff_ids``, each checked to be a sha256 digest."""
    rootfs = config.get("rootfs")
    if not isinstance(rootfs, dict):
        raise FormatError(f"{where}: the image config has no 'rootfs' object; it is not an image config")
    ids = rootfs.get("diff_ids") or []
    if not isinstance(ids, list):
        raise FormatError(f"{where}: rootfs.diff_ids is not a list")
    limit = current_limits().layers_per_image
    if len(ids) > limit:  # before any per-layer work (a layer listed 200,000 times)
        raise exceeded(f"{where}: rootfs.diff_ids lists layers", "layers_per_image", limit, amount=len(ids))
    return [check_digest(d, f"{where}: rootfs.diff_ids[{i}]") for i, d in enumerate(ids)]


def history_from_config(config: dict, n_layers: int, where: str) -> list[HistoryStep]:
    """The config's history, paired with layers by the ``empty_layer`` flags."""
    raw = config.get("history") or []
    if not isinstance(raw, list):
        raise FormatError(f"{where}: the config's 'history' is not a list")
    steps: list[HistoryStep] = []
    for i, h in enumerate(raw):
        if not isinstance(h, dict):
            raise FormatError(f"{where}: history[{i}] is not an object")
        steps.append(
            HistoryStep(
                index=i,
                created_by=_str(h.get("created_by")),
                created=parse_time(h.get("created")),
                author=_str(h.get("author")),
                comment=_str(h.get("comment")),
                empty_layer=bool(h.get("empty_layer", False)),
            )
        )
    pair_by_empty_layer(steps, n_layers)
    return steps


def _str(x: Any) -> str | None:
    return x if isinstance(x, str) else None
