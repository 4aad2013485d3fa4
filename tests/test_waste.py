"""waste(): its signature and the columns it promises."""
from __future__ import annotations

import inspect

import layerlab as ll
from _contents_helpers import f, layer_tar, mem_image, wh
from layerlab.analysis.waste import WASTE_BY_STEP_COLUMNS, WASTE_COLUMNS, waste


def test_real_signature():
    params = inspect.signature(waste).parameters
    assert list(params) == ["img", "by", "base", "cache_dir", "progress", "verify", "workers", "hash"]
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def test_columns_and_dtypes():
    img = mem_image([layer_tar([f("a", b"x" * 30), f("b", b"y" * 4)]), layer_tar([wh("a"), f("b", b"z" * 2)])],
                    history=["RUN make", "RUN rm /a && touch /b"])
    w = ll.waste(img, cache_dir=False, progress=False)
    assert {c: str(t) for c, t in w.dtypes.items()} == WASTE_COLUMNS
    assert w[["path", "wasted_bytes"]].values.tolist() == [["a", 30], ["b", 4]]
    by = ll.waste(img, by="step", cache_dir=False, progress=False)
    assert {c: str(t) for c, t in by.dtypes.items()} == WASTE_BY_STEP_COLUMNS
    assert by[["files", "wasted_bytes"]].values.tolist() == [[2, 34]]
