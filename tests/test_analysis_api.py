"""The fleet analyses' public face: real signatures, one result convention
(BasePlan is a ``Result``), and one column vocabulary (``image`` /
``other_image``; byte columns end in ``_bytes`` except the model's own
``size``, ``compressed_size`` and ``cumulative_size``)."""
from __future__ import annotations

import inspect

import pandas as pd
import pytest

from layerlab.analysis import (
    cumulative,
    fleet_totals,
    image_sharing,
    layer_usage,
    overlap,
    pull_table,
    sharing_tree,
)
from layerlab.analysis._result import Result
from layerlab.analysis.duplicates import duplicates
from layerlab.analysis.plan import BasePlan, plan_bases
from layerlab.analysis.totals import pull_cost
from layerlab.model import Fleet, Image, Layer


def D(n):
    return "sha256:%064x" % n


def mk(name, layers):
    return Image(name, "test", [Layer(i, D(n), digest=D(1000 + n), size=s, compressed_size=c)
                                for i, (n, s, c) in enumerate(layers)])


FLEET = Fleet([mk("a", [(1, 100, 40), (2, 10, 4)]), mk("b", [(1, 100, 40), (3, 7, 3)])])
ONE = "FROM os\nRUN tools\nCOPY a /a\n"
TWO = "FROM os\nRUN tools\nCOPY b /b\n"


@pytest.mark.parametrize(
    "fn,params",
    [
        (plan_bases, ["apps", "images", "names", "build_args", "base_prefix", "size_column", "split", "reorder",
                      "base_images", "by_effect", "levels", "known"]),
        (duplicates, ["data", "hash", "cache_dir", "progress", "verify", "workers"]),
        (pull_cost, ["data", "target", "present", "key", "size", "image", "same_repo"]),
    ],
)
def test_real_signatures(fn, params):
    sig = inspect.signature(fn)
    assert list(sig.parameters) == params
    assert not any(p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) for p in sig.parameters.values())


def test_base_plan_is_a_result():
    plan = plan_bases({"one": ONE, "two": TWO})
    assert isinstance(plan, Result) and isinstance(plan, BasePlan)
    assert list(plan.frames()) == ["savings", "images", "trie", "layers", "shared_content"]
    assert plan.to_frame() is plan.savings
    assert plan.bases == ["f1"] and plan.dockerfiles["f1"] == "FROM os\nRUN tools\n"
    assert len(plan.notes) == 1 and plan.notes[0].startswith("sizes:")  # no image tells a size
    assert repr(plan) == "<layerlab.BasePlan: 2 apps, 1 base images (f1); one host stores ? -> ?; 1 note>"
    assert "FROM os" in plan._repr_html_()


def _byte_columns_ok(df: pd.DataFrame) -> list[str]:
    """Names that break the vocabulary: ``bytes``/``saved``/``other``, and
    integer columns named ``*_size`` (other than the model's) or
    ``*_before``/``*_after`` (layer counts aside) instead of ``*_bytes``."""
    model = {"size", "compressed_size", "cumulative_size"}
    wrong = [c for c in df.columns if c in {"bytes", "saved", "other", "size_bytes"}]
    for c in df.columns:
        if not pd.api.types.is_integer_dtype(df[c]) or c in model:
            continue
        if c.endswith("_size") or (c.endswith(("_before", "_after")) and not c.startswith("layers_")):
            wrong.append(c)
    return wrong


def test_one_column_vocabulary():
    lay = FLEET.layers()
    plan = plan_bases({"one": ONE, "two": TWO})
    frames = {
        "overlap": overlap(lay), "image_sharing": image_sharing(lay), "layer_usage": layer_usage(lay),
        "sharing_tree": sharing_tree(lay), "cumulative": cumulative(lay), "fleet_totals": fleet_totals(FLEET),
        "pull_table": pull_table(lay), **{f"plan.{k}": v for k, v in plan.frames().items()},
    }
    for name, df in frames.items():
        assert _byte_columns_ok(df) == [], name
    o = overlap(lay)
    assert list(o.columns[:2]) == ["image", "other_image"]
    assert set(image_sharing(lay).columns) >= {"image", "shared_bytes", "unique_bytes"}
    assert int(image_sharing(lay).set_index("image").loc["a", "shared_bytes"]) == 100
