"""Advice proven on realistic fleets built with the real engine (issue 11, "Proof").

Two families of apps on a Debian bookworm base (tests/realfleet.py): Python
apps installing overlapping apt and pip packages, and Node apps installing
nodejs from apt and packages with npm, each written by "different teams"
(other wording, order and grouping), with waste.  For each:

* the harness itself: its storage and pull figures are the engine's
  (``docker system df -v``'s numbers, through the same Engine API call);
* ``plan_bases`` with default options: it must propose bases; every proposed
  Dockerfile is built; the built fleet's storage and pulls are within 5% of the
  plan's prediction and at most 1.1x those of the hand-written layered design
  (f1 -> f2 -> f3 -> apps).  The by-effect planner proposes bases for both
  fleets, both built plans are within 5% of their predictions (install units
  cut from an app's mixed install sized from its layer split by package) and
  the apt-pip plan is within 1.1x of the design (a1's scratch step joined with
  its rm); what it does not reach yet is marked xfail(strict), per fleet, with
  the reason (``SHORT``);
* every chosen ``suggest_merges`` row and ``ll.improve``'s Dockerfile of the
  wasteful apps, rebuilt: the image is the size predicted.

Expected values come from ``docker image inspect``, the engine's layer records
and ``docker system df``, never from layerlab.  The base is debootstrapped once
per machine; later runs reuse the engine's build cache, so re-runs take seconds
to a minute; a first run a few minutes.
"""
from __future__ import annotations

import json
import uuid

import pandas as pd
import pytest
from conftest import docker_cli

import layerlab as ll

pytestmark = [pytest.mark.engine, pytest.mark.slow]

PREFIX = f"layerlab-test/fleet-{uuid.uuid4().hex[:8]}-"  # per run: concurrent runs never retag each other's images
# what the by-effect planner does not reach yet, per fleet (strict: a pass must lift the mark)
SHORT = {
    "within_5": {},
    "design": {},
}


def _short_of(request, test: str, fleet: str) -> None:
    why = SHORT[test].get(fleet)
    if why:
        request.applymarker(pytest.mark.xfail(strict=True, raises=AssertionError, reason=why))
FLEET_NAMES = ("apt-pip", "node-npm")
# Steps re-run after a changed step are not byte-for-byte reproducible when
# they write timings or logs (npm writes its own run log: 1 byte differed in a
# rebuild); the rebuilt image may differ from the prediction by that much
# and no more; the merged layer itself, and every layer below it, must be exact.
RERUN_NOISE = 4096
_built: dict[str, dict] = {}


@pytest.fixture(scope="session")
def fleet_os(engine):
    """The Debian base (kept: debootstrapped once per machine); this run's tags removed at the end
    (their layers stay in the build cache, so the next run rebuilds in seconds)."""
    from realfleet import build_os, docker, remove

    yield build_os()
    names = docker("images", "--format", "{{.Repository}}:{{.Tag}}").split()
    remove([n for n in names if n.startswith(PREFIX)])


@pytest.fixture(params=FLEET_NAMES)
def built(request, fleet_os, tmp_path_factory):
    """The fleet's apps as their teams wrote them, and the hand-written design (built once per session)."""
    from realfleet import FLEETS, build_design, build_fleet, write_context

    name = request.param
    if name not in _built:
        fleet = FLEETS[name]
        ctx = write_context(fleet, tmp_path_factory.mktemp(f"ctx-{name}"))
        apps = build_fleet(fleet, f"{PREFIX}{name}-", ctx)
        design = build_design(fleet, f"{PREFIX}{name}-", ctx)
        _built[name] = {"fleet": fleet, "ctx": ctx, "apps": apps, "design": design}
    return _built[name]


def _plan(b):
    if "plan" not in b:
        fleet = b["fleet"]
        images = {app: ll.load(f"docker-daemon:{tag}") for app, tag in b["apps"].items()}
        b["images"] = images
        b["plan"] = ll.plan_bases({app: fleet.dockerfile(app) for app in fleet.apps}, images=images)
    return b["plan"]


def _design_measure(b):
    from realfleet import measure

    d = b["design"]
    return measure({app: d[app] for app in b["fleet"].apps}, {n: d[n] for n in d if n not in b["fleet"].apps})


def _row(plan, app):
    s = plan.savings
    return s[(s["scope"] == "app") & (s["image"] == app)].iloc[0]


def _host(plan):
    s = plan.savings
    return s[s["scope"] == "host"].iloc[0]


# -- the harness ------------------------------------------------------------------
@pytest.mark.parametrize("built", ["apt-pip"], indirect=True)
def test_measure_is_docker_system_df(built, engine):
    """Per image, ``measure`` equals the engine's ``Size`` and ``SharedSize``
    (what ``docker system df -v`` prints), and over every image on the host
    its distinct layers add up to ``docker system df``'s image total."""
    from realfleet import FleetError, layers_of, measure

    for _ in range(5):  # other test runs may add or remove images meanwhile: retry on a quiet moment
        df = engine.df()
        ids = [i["Id"] for i in df["Images"]]
        try:
            stacks = layers_of(ids)
        except FleetError:  # an image removed while we read it
            continue
        again = engine.df()
        if {i["Id"] for i in again["Images"]} == set(ids) and again["LayersSize"] == df["LayersSize"]:
            break
    else:
        pytest.skip("the engine's image list kept changing (concurrent builds); cannot compare a snapshot")
    # every image on the host: its distinct layers are the engine's image total
    assert sum(dict(c for st in stacks.values() for c in st).values()) == df["LayersSize"]
    users: dict[str, int] = {}
    for st in stacks.values():
        for c, _ in st:
            users[c] = users.get(c, 0) + 1
    ours = list(built["apps"].values()) + list(built["design"].values())
    ids_of = dict(zip(ours, inspect_ids(ours)))
    by_id = {i["Id"]: i for i in df["Images"]}
    for tag in ours:
        engine_row = by_id[ids_of[tag]]
        assert measure({tag: tag}).stored_bytes == engine_row["Size"], tag
        shared = sum(s for c, s in stacks[ids_of[tag]] if users[c] > 1)
        assert shared == engine_row["SharedSize"], tag
    # the same figures as `docker system df -v` prints them (go-units: Size with 3 significant
    # digits, SharedSize and UniqueSize with 4, decimal units)
    rows = [json.loads(line) for line in docker_cli("system", "df", "-v", "--format", "{{json .}}").splitlines()]
    cli = {i["ID"]: i for i in rows[0]["Images"]} if rows else {}
    assert any(ids_of[t] in cli for t in ours), "docker system df -v lists none of this run's images"
    for tag in ours:
        if ids_of[tag] not in cli:
            continue  # (retagged meanwhile)
        row, size = cli[ids_of[tag]], measure({tag: tag}).stored_bytes
        shared = sum(s for c, s in stacks[ids_of[tag]] if users[c] > 1)
        assert (row["Size"], row["SharedSize"], row["UniqueSize"]) == (
            go_units(size, 3), go_units(shared, 4), go_units(size - shared, 4)), tag
    # and the fleet as a whole: its apps share the base's layers
    m = measure(built["apps"])
    assert m.stored_bytes < sum(by_id[ids_of[t]]["Size"] for t in built["apps"].values())


def go_units(n: int, precision: int) -> str:
    """docker's go-units HumanSizeWithPrecision: decimal units, ``%.*g``."""
    size, units = float(n), ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    return f"{size:.{precision}g}{units[i]}"


def inspect_ids(tags) -> list[str]:
    from realfleet import docker

    return docker("image", "inspect", "--format", "{{.Id}}", *tags).split()


def test_measure_pulls_by_layer_chain(built):
    """Cold = the image's Size; after the apps before it = its layers whose
    chain ids they lack; with the bases = its layers above the last base's."""
    from realfleet import image_size, layers, measure

    d, apps = built["design"], list(built["fleet"].apps)
    m = measure({a: d[a] for a in apps}, {"f3": d["f3"]})
    f3 = layers(d["f3"])
    for k, a in enumerate(apps):
        own = layers(d[a])
        assert own[: len(f3)] == f3  # the app stands on f3: its FROM
        assert m.apps[a]["pulled_cold_bytes"] == image_size(d[a])
        assert m.apps[a]["pulled_with_bases_bytes"] == image_size(d[a]) - image_size(d["f3"])
        if k == 0:
            assert m.apps[a]["pulled_after_bytes"] == image_size(d[a])
        else:
            assert m.apps[a]["pulled_after_bytes"] == image_size(d[a]) - image_size(d["f3"])
    assert m.stored_bytes == image_size(d["f3"]) + sum(image_size(d[a]) - image_size(d["f3"]) for a in apps)


def test_build_plan_builds_bases_first_and_points_from_at_them(built, tmp_path):
    """build_plan on a plan-shaped result whose Dockerfiles name each other
    (the hand-written design, listed apps first): bases are built before the
    apps that stand on them, every FROM points at the built tag."""
    from types import SimpleNamespace

    from realfleet import OS_TAG, build_plan, layers, measure

    fleet = built["fleet"]
    names = {n: n for n in fleet.design}
    files = {n: fleet.design[n].format(os=OS_TAG, **names) for n in reversed(list(fleet.design))}
    tags = build_plan(SimpleNamespace(dockerfiles=files), f"{PREFIX}{fleet.name}-viaplan-", built["ctx"])
    assert set(tags) == set(fleet.design)
    assert layers(tags["f2"])[: len(layers(tags["f1"]))] == layers(tags["f1"])
    for app in fleet.apps:
        assert layers(tags[app])[: len(layers(tags["f3"]))] == layers(tags["f3"])
    got = measure({a: tags[a] for a in fleet.apps}, {n: tags[n] for n in ("f1", "f2", "f3")})
    want = _design_measure(built)
    assert abs(got.stored_bytes - want.stored_bytes) <= 0.02 * want.stored_bytes


def test_plan_before_figures_are_the_engines(built):
    """The plan's *before* side is the apps as built: the engine's numbers, to the byte."""
    from realfleet import measure

    plan = _plan(built)
    m = measure(built["apps"])
    assert int(_host(plan)["stored_before_bytes"]) == m.stored_bytes
    for app in built["fleet"].apps:
        assert int(_row(plan, app)["size_before_bytes"]) == m.apps[app]["size_bytes"]
        assert int(_row(plan, app)["pulled_before_bytes"]) == m.apps[app]["pulled_after_bytes"]


def test_harness_on_a_plan_todays_planner_makes(fleet_os, tmp_path_factory):
    """End to end on a real BasePlan with a base: the apt-pip apps rewritten
    so that all start with a1's install steps word for word (what the planner
    matches today).  The plan proposes that base; built, the fleet's storage
    and pulls are the plan's prediction (within 5%)."""
    from realfleet import FLEETS, build, build_plan, measure, write_context

    fleet = FLEETS["apt-pip"]
    ctx = write_context(fleet, tmp_path_factory.mktemp("ctx-aligned"))
    head = "".join(fleet.dockerfile("a1").splitlines(keepends=True)[:4])  # FROM, ENV, apt-get, pip
    assert head.count("\n") == 4 and "pip install" in head
    files = {
        "a1": fleet.dockerfile("a1"),
        "a2": head + "COPY a2/ /app/\nRUN python3 -c \"import attrs, requests; print('a2 ok')\"\n",
        "a3": head + "RUN apt-get update && apt-get install -y --no-install-recommends less"
                     " && rm -rf /var/lib/apt/lists/*\nCOPY a3/ /app/\n",
    }
    tags = {a: build(f"{PREFIX}aligned-{a}:1", text, ctx) for a, text in files.items()}
    plan = ll.plan_bases(files, images={a: ll.load(f"docker-daemon:{t}") for a, t in tags.items()})
    assert plan.bases == ["f1", "f2"]  # by level: the shared apt install, then the pip install on it
    built = build_plan(plan, f"{PREFIX}aligned-plan-", ctx)
    got = measure({a: built[a] for a in plan.apps}, {n: built[n] for n in plan.bases})
    _all_close(got, plan)
    # the base holds what all three share, nothing of a1's own steps (its scratch file stays in a1)
    assert "scratch" not in plan.dockerfiles["f1"] and "COPY" not in plan.dockerfiles["f1"]


# -- the planner ---------------------------------------------------------------------
def test_default_plan_proposes_bases(built):
    plan = _plan(built)
    assert plan.bases, f"no base proposed for {built['fleet'].name}: {plan.notes}"
    for app in built["fleet"].apps:
        assert plan.dockerfiles[app].split("\n", 1)[0] != built["fleet"].dockerfile(app).split("\n", 1)[0], \
            f"{app} still starts FROM the OS image"


def _built_plan(b):
    from realfleet import build_plan, measure

    plan = _plan(b)
    assert plan.bases, f"no base proposed for {b['fleet'].name}: {plan.notes}"
    if "plan_tags" not in b:
        b["plan_tags"] = build_plan(plan, f"{PREFIX}{b['fleet'].name}-plan-", b["ctx"])
    tags = b["plan_tags"]
    return plan, measure({a: tags[a] for a in plan.apps}, {n: tags[n] for n in plan.bases})


def _all_close(got, plan, what: str = "") -> None:
    """The built fleet's storage and every app's pulls (cold, after the apps before it, with the
    bases present) within 5% of the plan's prediction."""
    _close(got.stored_bytes, _host(plan)["stored_after_bytes"], f"{what}storage on one host")
    for app in plan.apps:
        row = _row(plan, app)
        _close(got.apps[app]["size_bytes"], row["size_after_bytes"], f"{what}{app} cold pull")
        _close(got.apps[app]["pulled_after_bytes"], row["pulled_after_bytes"], f"{what}{app} pull after the apps before it")
        _close(got.apps[app]["pulled_with_bases_bytes"], row["pulled_with_bases_bytes"], f"{what}{app} pull with the bases")


def _close(got: int, predicted, what: str) -> None:
    """Within 5%, or within RERUN_NOISE for figures of a few bytes (an app's own COPY)."""
    assert predicted is not None and not pd.isna(predicted), f"{what}: no prediction"
    assert abs(got - int(predicted)) <= max(0.05 * got, RERUN_NOISE), \
        f"{what}: built {got:,} B, predicted {int(predicted):,} B"


def test_built_plan_is_within_5_percent_of_its_prediction(built, request):
    _short_of(request, "within_5", built["fleet"].name)
    plan, got = _built_plan(built)
    _all_close(got, plan)


def test_built_plan_is_at_most_1_1_times_the_hand_written_design(built, request):
    _short_of(request, "design", built["fleet"].name)
    _, got = _built_plan(built)
    want = _design_measure(built)
    assert got.stored_bytes <= 1.1 * want.stored_bytes
    for key in ("pulled_cold_bytes", "pulled_after_bytes", "pulled_with_bases_bytes"):
        assert got.app_total(key) <= 1.1 * want.app_total(key), key


def _wire_measure(refs: dict[str, str], bases: dict[str, str]):
    """Storage and pulls on the wire, read from the registry with skopeo (an independent
    witness): each image's manifest layer sizes, its config's diff_ids for the chain ids."""
    from realfleet import Measure, chain_ids
    from registrykit import inspect_config_raw, inspect_raw

    stacks = {}
    for ref in [*refs.values(), *bases.values()]:
        manifest = json.loads(inspect_raw(ref))
        diff_ids = json.loads(inspect_config_raw(ref))["rootfs"]["diff_ids"]
        stacks[ref] = list(zip(chain_ids(diff_ids), [int(lay["size"]) for lay in manifest["layers"]]))
    base_chains = {c for ref in bases.values() for c, _ in stacks[ref]}
    have: dict[str, int] = {}
    per = {}
    for app, ref in refs.items():
        ls = stacks[ref]
        per[app] = {"size_bytes": sum(n for _, n in ls),
                    "pulled_after_bytes": sum(n for c, n in ls if c not in have),
                    "pulled_with_bases_bytes": sum(n for c, n in ls if c not in base_chains)}
        have.update(ls)
    for ref in bases.values():
        have.update(stacks[ref])
    return Measure(sum(have.values()), per)


@pytest.mark.parametrize("built", ["node-npm"], indirect=True)
def test_wire_prediction_from_estimates_holds_in_a_registry(built, registry):
    """Planned with ``size_column="compressed_size_estimate"`` (the apps' layers gzipped at
    Docker's level by ``ll.estimate_wire_sizes``), the plan's bytes on the wire are within 5% of
    what the registry holds once the engine pushes the built plan (``docker push``: the
    compression the estimate follows; skopeo's blobs were 3.3% larger there)."""
    from realfleet import docker

    fleet = built["fleet"]
    _plan(built)
    images = built["images"]
    assert ll.estimate_wire_sizes(list(images.values()), progress=False)
    plan = ll.plan_bases({app: fleet.dockerfile(app) for app in fleet.apps}, images=images,
                         size_column="compressed_size_estimate")
    assert plan.dockerfiles == built["plan"].dockerfiles  # the size column changes no Dockerfile
    _built_plan(built)
    tags = built["plan_tags"]
    refs = {}
    for name in [*plan.bases, *plan.apps]:
        refs[name] = registry.ref(f"wire/{name}:1")
        docker("tag", tags[name], refs[name])
        docker("push", "--quiet", refs[name])
        docker("rmi", refs[name])
    got = _wire_measure({a: refs[a] for a in plan.apps}, {b: refs[b] for b in plan.bases})
    print(f"wire, stored: pushed {got.stored_bytes:,} B, predicted {int(_host(plan)['stored_after_bytes']):,} B; "
          + "; ".join(f"{a}: cold {got.apps[a]['size_bytes']:,} vs {int(_row(plan, a)['size_after_bytes']):,}, "
                      f"with bases {got.apps[a]['pulled_with_bases_bytes']:,} vs "
                      f"{int(_row(plan, a)['pulled_with_bases_bytes']):,}" for a in plan.apps))
    _all_close(got, plan, "wire: ")


# -- merges and the improved Dockerfile --------------------------------------------
WASTEFUL = [("apt-pip", "a1"), ("apt-pip", "a2"), ("node-npm", "b2")]


@pytest.fixture(params=WASTEFUL, ids=[f"{f}-{a}" for f, a in WASTEFUL])
def wasteful(request, fleet_os, tmp_path_factory):
    from realfleet import FLEETS, build, write_context

    name, app = request.param
    b = _built.get(name)
    if b is None:
        fleet = FLEETS[name]
        ctx = write_context(fleet, tmp_path_factory.mktemp(f"ctx-{name}"))
        b = {"fleet": fleet, "ctx": ctx, "apps": {}, "design": None}
    tag = b["apps"].get(app) or build(f"{PREFIX}{name}-{app}:1", b["fleet"].dockerfile(app), b["ctx"])
    return b["fleet"], app, tag, b["ctx"]


def test_every_chosen_merge_rebuilds_to_its_predicted_size(wasteful):
    from realfleet import build, image_size, layers

    fleet, app, tag, ctx = wasteful
    text = fleet.dockerfile(app)
    sugg = ll.suggest_merges(ll.load(f"docker-daemon:{tag}"), dockerfile=text, progress=False)
    chosen = sugg[sugg["chosen"].astype(bool)]
    assert len(chosen), f"{app}: no merge chosen"
    size, before = image_size(tag), layers(tag)
    for k, r in enumerate(chosen.itertuples(index=False)):
        first, last = int(r.first), int(r.last)
        assert isinstance(r.dockerfile_after, str), f"{app} merge {first}-{last}: no Dockerfile lines ({r.reason})"
        assert text.count(r.dockerfile_before) == 1
        new = build(f"{PREFIX}{fleet.name}-{app}-merge{k}:1", text.replace(r.dockerfile_before, r.dockerfile_after), ctx)
        after = layers(new)
        assert len(after) == len(before) - (last - first)
        assert after[:first] == before[:first]  # the layers below: the same (build cache)
        assert after[first][1] == int(r.size_after_bytes), f"{app} merge {first}-{last}: the merged layer"
        predicted = size - int(r.saved_bytes)
        assert abs(image_size(new) - predicted) <= RERUN_NOISE, (
            f"{app} merge {first}-{last} ({r.kind}): built {image_size(new):,} B, predicted {predicted:,} B")


def test_improved_dockerfile_rebuilds_to_its_predicted_size(wasteful):
    from realfleet import build, image_size

    fleet, app, tag, ctx = wasteful
    imp = ll.improve(ll.load(f"docker-daemon:{tag}"), fleet.dockerfile(app), progress=False)
    assert imp.size_bytes == image_size(tag)
    assert imp.saved_bytes > 0
    new = build(f"{PREFIX}{fleet.name}-{app}-improved:1", imp.dockerfile, ctx)
    assert abs(image_size(new) - imp.predicted_size_bytes) <= RERUN_NOISE, (
        f"{app}: built {image_size(new):,} B, predicted {imp.predicted_size_bytes:,} B")
