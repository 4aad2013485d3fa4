"""The notebooks' parameter checks (layerlab.analysis.notebook_params): the
forms they accept and the messages they give, written out by hand here."""
from __future__ import annotations

import pytest

from _report_fleet import OS, SEC, TOOLS, make_image
from layerlab.analysis import notebook_params as np_
from layerlab.analysis.notebook_params import ParameterError
from layerlab.errors import AnalysisError, LayerlabError
from layerlab.model import Fleet

FLEET = Fleet([make_image("team/alpha:1", [OS, SEC]), make_image("team/beta:1", [OS, TOOLS]),
               make_image("other/gamma:2", [OS])])


def test_parameter_errors_are_layerlab_errors():
    assert issubclass(ParameterError, AnalysisError) and issubclass(ParameterError, LayerlabError)


def test_an_image_not_in_the_fleet_names_what_exists():
    assert np_.check_image(FLEET, "team/beta:1") == "team/beta:1"
    with pytest.raises(ParameterError) as e:
        np_.check_image(FLEET, "team/alfa:1")
    assert str(e.value) == ("parameter image: image 'team/alfa:1' is not in the fleet (did you mean 'team/alpha:1'?); "
                            "images: team/alpha:1, team/beta:1, other/gamma:2")
    with pytest.raises(ParameterError, match=r"^parameter present: image 'zzz' is not in the fleet; images: "):
        np_.check_images(FLEET, ["team/alpha:1", "zzz"], "present")
    assert np_.check_images(FLEET, "other/gamma:2", "present") == ["other/gamma:2"]
    assert np_.check_images(FLEET, [], "present") == []


def test_a_long_fleet_is_listed_in_part():
    fleet = Fleet([make_image(f"r/i{k:02d}:1", [OS]) for k in range(20)])
    with pytest.raises(ParameterError) as e:
        np_.check_image(fleet, "nothing-like-it")
    assert str(e.value).endswith("r/i10:1, r/i11:1, … and 8 more")


@pytest.mark.parametrize("groups, n, want", [
    ("1-3", 5, [(1, 3)]),
    (" 1 - 3 , 6-7", 8, [(1, 3), (6, 7)]),
    ([[1, 10]], 11, [(1, 10)]),                 # a pair is first and last, never positions 1 and 10
    ([[6, 7], "1-2"], 8, [(1, 2), (6, 7)]),
    ([(0, 1)], 2, [(0, 1)]),
])
def test_groups_in_json_friendly_forms(groups, n, want):
    assert np_.check_groups(groups, n, "img") == want


@pytest.mark.parametrize("groups, message", [
    ([1, 10], "parameter groups: [1, 10] is ambiguous (one group or 2 positions?); write groups as \"1-3\""),
    ("1-10", "parameter groups: group '1-10' is outside img's layers (positions 0-4)"),
    ([[3, 1]], "parameter groups: group [3, 1] must span at least two layers, first < last"),
    ("2", "parameter groups: group '2' must span at least two layers"),
    ("1-3, 3-4", "parameter groups: groups 1-3 and 3-4 overlap"),
    ([[1, 2, 3]], "parameter groups: cannot read the group [1, 2, 3]; write groups as"),
    ("", "parameter groups: no group in ''"),
    (None, "parameter groups: no group in None"),
])
def test_bad_groups_say_what_is_wrong(groups, message):
    with pytest.raises(ParameterError) as e:
        np_.check_groups(groups, 5, "img")
    assert str(e.value).startswith(message), str(e.value)


def test_choices_flags_numbers_and_sources():
    assert np_.check_choice("moby", ["moby", "containerd"], "engine") == "moby"
    with pytest.raises(ParameterError) as e:
        np_.check_choice("mobi", ["moby", "containerd", "podman"], "engine")
    assert str(e.value) == ("parameter engine: 'mobi' is not one of 'moby', 'containerd', 'podman' "
                            "(did you mean 'moby'?)")
    assert np_.check_flag(False, "x") is False
    with pytest.raises(ParameterError, match=r"^parameter use_engine: 'yes' is not true or false$"):
        np_.check_flag("yes", "use_engine")
    assert np_.check_number(3, "top", minimum=1, integer=True) == 3
    assert np_.check_number(None, "workers", none_ok=True) is None
    with pytest.raises(ParameterError, match=r"^parameter top: 0 must be at least 1$"):
        np_.check_number(0, "top", minimum=1, integer=True)
    with pytest.raises(ParameterError, match=r"^parameter top: 2.5 is not a whole number$"):
        np_.check_number(2.5, "top", integer=True)
    with pytest.raises(ParameterError, match=r"^parameter app_shares: 1.5 must be at least 0.001 and at most 0.999$"):
        np_.check_numbers([0.2, 1.5], "app_shares", minimum=0.001, maximum=0.999)
    assert np_.check_sources("snap") == ["snap"]
    with pytest.raises(ParameterError, match=r"^parameter sources: expected a source string or a non-empty list"):
        np_.check_sources([])
    with pytest.raises(ParameterError, match=r"^parameter bandwidth: "):
        np_.check_bandwidth("fast")


def test_plan_apps_from_histories_or_dockerfiles(tmp_path):
    apps, refs = np_.check_plan_apps(FLEET, None, ["team/alpha:1", "team/beta:1"])
    assert refs == {"team/alpha:1": "team/alpha:1", "team/beta:1": "team/beta:1"}
    assert [a.reference for a in apps.values()] == ["team/alpha:1", "team/beta:1"]
    df = tmp_path / "a.Dockerfile"
    df.write_text("FROM scratch\n")
    apps, refs = np_.check_plan_apps(FLEET, {"a": str(df), "b": "FROM scratch\nRUN true\n"},
                                     {"a": "team/alpha:1", "b": "team/beta:1"})
    assert apps == {"a": str(df), "b": "FROM scratch\nRUN true\n"}
    with pytest.raises(ParameterError) as e:
        np_.check_plan_apps(FLEET, {"a": str(df), "c": str(df)}, {"a": "team/alpha:1", "b": "team/beta:1"})
    assert str(e.value) == "parameters dockerfiles and images name different apps: dockerfiles has a, c, images has a, b"
    with pytest.raises(ParameterError, match=r"^parameter dockerfiles\['b'\]: 'nope.Dockerfile' is not a file"):
        np_.check_plan_apps(FLEET, {"a": str(df), "b": "nope.Dockerfile"}, {"a": "team/alpha:1", "b": "team/beta:1"})
    with pytest.raises(ParameterError, match=r"^parameter images\['b'\]: image 'x:1' is not in the fleet"):
        np_.check_plan_apps(FLEET, None, {"a": "team/alpha:1", "b": "x:1"})
    with pytest.raises(ParameterError, match=r"^parameter images: expected at least two apps"):
        np_.check_plan_apps(FLEET, None, ["team/alpha:1"])


def test_layered_needs_two_apps_named_after_them():
    assert np_.check_layered(FLEET, [], ["alpha", "beta"]) == ([], [])
    refs, built = np_.check_layered(FLEET, ["other/gamma:2", "team/beta:1", "team/alpha:1"], ["alpha", "beta"])
    assert built == ["team/alpha:1", "team/beta:1"]
    with pytest.raises(ParameterError) as e:
        np_.check_layered(FLEET, ["other/gamma:2", "team/beta:1"], ["alpha", "beta"])
    assert "pass layered=[] to skip the comparison" in str(e.value) and "found team/beta:1 among" in str(e.value)
