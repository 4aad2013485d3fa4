"""The public face of ``import layerlab``: every name in ``__all__`` is the real
object of the module that defines it (so ``help()``/``inspect.signature`` show
its parameters), ``dir(layerlab)`` lists only the public API, and the import
itself stays light (no pandas, altair, ipywidgets or docker SDK)."""
from __future__ import annotations

import importlib
import inspect
import json
import subprocess
import sys

import layerlab

# where each public function or class is defined: written here by hand, not read
# from layerlab, so a wrapper or a stale re-export cannot pass unnoticed
DEFINED_IN = {
    "Fleet": "layerlab.model",
    "measure_sizes": "layerlab.analysis.layersizes",
    "estimate_wire_sizes": "layerlab.analysis.layersizes",
    "registry_wire_sizes": "layerlab.sources.wire",
    "reference_key": "layerlab.sources._refs",
    "HistoryStep": "layerlab.model",
    "Image": "layerlab.model",
    "Layer": "layerlab.model",
    "chain_ids": "layerlab.model",
    "human_bytes": "layerlab.frames",
    "load": "layerlab.sources",
    "load_many": "layerlab.sources",
    "cumulative": "layerlab.analysis.cumulative",
    "fleet_totals": "layerlab.analysis.totals",
    "pull_cost": "layerlab.analysis.totals",
    "pull_table": "layerlab.analysis.totals",
    "pull_time": "layerlab.analysis.pull",
    "PullTime": "layerlab.analysis.pull",
    "parse_bandwidth": "layerlab.analysis.pull",
    "rollout": "layerlab.analysis.rollout",
    "measure_host": "layerlab.analysis.hostrates",
    "HostRates": "layerlab.analysis.hostrates",
    "image_sharing": "layerlab.analysis.overlap",
    "layer_usage": "layerlab.analysis.overlap",
    "overlap": "layerlab.analysis.overlap",
    "overlap_matrix": "layerlab.analysis.overlap",
    "sharing_tree": "layerlab.analysis.sharing",
    "efficiency": "layerlab.analysis.efficiency",
    "waste": "layerlab.analysis.waste",
    "visible_waste": "layerlab.analysis.visible_waste",
    "VisibleWaste": "layerlab.analysis.visible_waste",
    "improve": "layerlab.analysis.improve",
    "Improvement": "layerlab.analysis.improve",
    "duplicates": "layerlab.analysis.duplicates",
    "what_if_merge": "layerlab.analysis.merge",
    "suggest_merges": "layerlab.analysis.merge",
    "plan_bases": "layerlab.analysis.plan",
    "scan": "layerlab.scan",
    "secrets": "layerlab.analysis.secrets",
    "AnalysisError": "layerlab.errors",
    "DigestMismatchError": "layerlab.errors",
    "EngineError": "layerlab.errors",
    "FormatError": "layerlab.errors",
    "LayerlabError": "layerlab.errors",
    "LimitError": "layerlab.errors",
    "Limits": "layerlab._limits",
    "limits": "layerlab._limits",
    "SourceError": "layerlab.errors",
    "verify": "layerlab.analysis.verify",
    "offline_charts": "layerlab.charts.offline",
    "human_tables": "layerlab.frames",
}


def test_all_is_the_documented_api():
    assert sorted(layerlab.__all__) == sorted(DEFINED_IN)
    assert len(layerlab.__all__) == len(set(layerlab.__all__))


def test_every_public_name_is_the_defining_modules_object():
    for name in layerlab.__all__:
        obj = getattr(layerlab, name)
        real = getattr(importlib.import_module(DEFINED_IN[name]), name)
        assert obj is real, f"layerlab.{name} is not {DEFINED_IN[name]}.{name}"
        # defined in a real module, not a forwarding wrapper in layerlab/__init__.py
        assert obj.__module__ != "layerlab", name
        if inspect.isfunction(obj):
            assert inspect.signature(obj) == inspect.signature(real)


def test_public_functions_have_real_signatures():
    # every option is a named parameter (help() and tab completion show it), never a **options catch-all
    for name in layerlab.__all__:
        obj = getattr(layerlab, name)
        if inspect.isfunction(obj):
            kinds = [p.kind for p in inspect.signature(obj).parameters.values()]
            assert inspect.Parameter.VAR_KEYWORD not in kinds, f"layerlab.{name} takes **kwargs"


def test_pull_model_options_agree_across_its_functions():
    # pull_table and rollout pass the model's options on to pull_time: same names, same defaults
    own = {"data", "target", "present", "bandwidth", "key"}
    model = {n: p.default for n, p in inspect.signature(layerlab.pull_time).parameters.items() if n not in own}
    for fn in (layerlab.pull_table, layerlab.rollout):
        params = inspect.signature(fn).parameters
        for n, default in model.items():
            assert n in params and params[n].default == default, (fn.__name__, n)


def test_dir_lists_only_the_public_api():
    names = dir(layerlab)
    assert sorted(names) == sorted([*layerlab.__all__, "__version__"])
    for hidden in ("_WHERE", "_LAZY", "annotations", "TYPE_CHECKING", "importlib"):
        assert hidden not in names


def test_unknown_names_raise_attribute_error():
    try:
        layerlab.no_such_thing  # noqa: B018
    except AttributeError as e:
        assert "no_such_thing" in str(e)
    else:  # pragma: no cover
        raise AssertionError("layerlab.no_such_thing resolved")


def test_import_layerlab_is_light():
    code = (
        "import json, sys; import layerlab; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pandas', 'numpy', 'pyarrow', 'altair', 'ipywidgets', 'docker', 'requests', 'nbformat', 'layerlab'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = json.loads(out)
    heavy = [m for m in loaded if not m.startswith("layerlab")]
    assert heavy == [], f"import layerlab imported {heavy}"
    assert set(loaded) == {"layerlab", "layerlab.errors"}


def test_first_use_imports_only_what_it_needs():
    code = (
        "import json, sys; import layerlab; layerlab.human_bytes; "
        "print(json.dumps(['altair' in sys.modules, 'docker' in sys.modules, 'layerlab.frames' in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == [False, False, True]
