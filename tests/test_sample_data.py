"""The bundled sample (data/sample, made by scripts/build-sample) against the
engine's own records of the same images (data/sample-raw, read here by hand
with json — not through layerlab), and the facts of the article's scenario.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

import layerlab as ll

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"
RAW = ROOT / "data" / "sample-raw"

BUILD_INFO = json.loads((RAW / "build-info.json").read_text())
NAMES = [e["name"] for e in BUILD_INFO["images"]]


def raw(name: str) -> dict:
    """The engine's records of one sample image, read with plain json."""
    inspect = json.loads((RAW / f"{name}.inspect.json").read_text())
    assert len(inspect) == 1
    history = [json.loads(line) for line in (RAW / f"{name}.history.jsonl").read_text().splitlines() if line.strip()]
    config_bytes = (RAW / f"{name}.config.json").read_bytes()
    return {"inspect": inspect[0], "history": history, "config": json.loads(config_bytes), "config_bytes": config_bytes}


def layer_sizes_from_raw(r: dict) -> list[int]:
    """Layer sizes, base first, by hand: `docker history` (newest first, exact
    bytes with --human=false) lined up with the config's history (oldest first);
    steps without ``empty_layer`` made the layers, in order."""
    steps = r["config"]["history"]
    hist = list(reversed(r["history"]))
    assert len(hist) == len(steps)
    for h, s in zip(hist, steps):
        assert h["CreatedBy"] == s.get("created_by", "")
    return [int(h["Size"]) for h, s in zip(hist, steps) if not s.get("empty_layer", False)]


def chain_ids_by_hand(diff_ids: list[str]) -> list[str]:
    out = [diff_ids[0]]
    for d in diff_ids[1:]:
        out.append("sha256:" + hashlib.sha256(f"{out[-1]} {d}".encode()).hexdigest())
    return out


@pytest.fixture(scope="module")
def fleet():
    return ll.load_many(f"snapshot:{SAMPLE}")


@pytest.fixture(scope="module")
def by_name(fleet):
    """name in build-info -> (image key in the snapshot, raw records), matched on the image id."""
    keys = {row.id: row.image for row in fleet.images().itertuples()}
    out = {}
    for name in NAMES:
        r = raw(name)
        assert r["inspect"]["Id"] in keys, f"{name}: image id {r['inspect']['Id']} not in the snapshot"
        out[name] = (keys[r["inspect"]["Id"]], r)
    return out


def layers_of(fleet, key):
    lay = fleet.layers()
    return lay[lay["image"] == key].sort_values("position")


def test_snapshot_is_small_and_loads_from_a_bare_path():
    size = sum(p.stat().st_size for p in SAMPLE.glob("*") if p.is_file())
    assert size < 200_000, f"data/sample is {size} bytes; it must stay metadata only"
    tables = sum(p.stat().st_size for p in (SAMPLE / "files").rglob("*") if p.is_file())
    assert tables < 2_000_000, f"data/sample/files is {tables} bytes; file tables only, no contents"
    f = ll.load_many(str(SAMPLE))  # a bare directory holding images.parquet is a snapshot
    assert len(f) == len(NAMES) == 8


def test_every_image_matches_the_engine_records(fleet, by_name):
    assert len(fleet) == len(NAMES)
    imgs = fleet.images().set_index("image")
    for name, (key, r) in by_name.items():
        lay = layers_of(fleet, key)
        diff_ids = r["inspect"]["RootFS"]["Layers"]
        assert list(lay["diff_id"]) == diff_ids, name
        assert list(lay["diff_id"]) == r["config"]["rootfs"]["diff_ids"], name
        assert len(lay) == len(diff_ids) == imgs.loc[key, "layer_count"], name
        sizes = layer_sizes_from_raw(r)
        assert [int(s) for s in lay["size"]] == sizes, name
        assert int(imgs.loc[key, "size"]) == sum(sizes) == r["inspect"]["Size"], name
        assert list(lay["chain_id"]) == chain_ids_by_hand(diff_ids), name
        # the image id is the sha256 of the config blob as the engine stores it
        assert imgs.loc[key, "id"] == "sha256:" + hashlib.sha256(r["config_bytes"]).hexdigest(), name
        assert r["inspect"]["RepoTags"] == [key], name


def test_history_rows_match_the_config_history(fleet, by_name):
    his = fleet.history()
    for name, (key, r) in by_name.items():
        h = his[his["image"] == key].sort_values("index")
        steps = r["config"]["history"]
        assert len(h) == len(steps), name
        assert [x if isinstance(x, str) else "" for x in h["created_by"]] == [s.get("created_by", "") for s in steps]
        made = [not s.get("empty_layer", False) for s in steps]
        assert [bool(x) for x in h["layer_position"].notna()] == made, name
        # each layer-making step points at the next layer, in order
        positions = [int(p) for p in h["layer_position"].dropna()]
        assert positions == list(range(len(r["inspect"]["RootFS"]["Layers"]))), name


def test_system_df_agrees_with_chain_id_sharing(fleet, by_name):
    """The engine's /system/df (what `docker system df -v` shows) counts a layer
    as shared when another image has the same chain id; recompute that from the
    snapshot's chain_id column and compare, image by image."""
    df_rows = {row["Id"]: row for row in json.loads((RAW / "system-df.json").read_text())}
    lay = fleet.layers()
    users = lay.groupby("chain_id")["image"].nunique()
    for name, (key, r) in by_name.items():
        row = df_rows[r["inspect"]["Id"]]
        mine = layers_of(fleet, key)
        shared = int(mine[mine["chain_id"].map(users) > 1]["size"].sum())
        assert row["Size"] == int(mine["size"].sum()), name
        assert row["SharedSize"] == shared, name


def test_layered_apps_stand_on_f3_and_bases_stack(fleet, by_name):
    chains = {n: list(layers_of(fleet, by_name[n][0])["chain_id"]) for n in NAMES}
    assert chains["f1"][:1] == chains["os"]
    assert chains["f2"][: len(chains["f1"])] == chains["f1"]
    assert chains["f3"][: len(chains["f2"])] == chains["f2"]
    n3 = len(chains["f3"])
    for app in ("app1", "app2"):
        assert chains[app][:n3] == chains["f3"], app
        assert len(chains[app]) == n3 + 2, app  # code + config on top
    # the two layered apps differ only in their top two layers
    assert set(chains["app1"]) & set(chains["app2"]) == set(chains["f3"])


def test_naive_apps_share_only_the_os_layer(fleet, by_name):
    chains = {n: list(layers_of(fleet, by_name[n][0])["chain_id"]) for n in NAMES}
    assert chains["naive-app1"][0] == chains["naive-app2"][0] == chains["os"][0]
    assert set(chains["naive-app1"]) & set(chains["naive-app2"]) == set(chains["os"])
    # and nothing above the OS with the layered family either (built with --no-cache)
    for naive in ("naive-app1", "naive-app2"):
        assert set(chains[naive]) & set(chains["f3"]) == set(chains["os"]), naive
    # the same installs, in another order: the steps are the same commands ...
    his = fleet.history()
    cmds = {n: sorted(his[(his["image"] == by_name[n][0]) & his["layer_position"].notna()]["created_by"].dropna()
                      .str.replace(r"apps/app\d", "apps/appN", regex=True))
            for n in ("naive-app1", "naive-app2")}
    assert cmds["naive-app1"] == cmds["naive-app2"]
    # ... but in a different order
    order = {n: list(layers_of(fleet, by_name[n][0])["created_by"].fillna("")) for n in ("naive-app1", "naive-app2")}
    assert [re.sub(r"app\d", "appN", c) for c in order["naive-app1"]] != \
           [re.sub(r"app\d", "appN", c) for c in order["naive-app2"]]


def unique_bytes(fleet, key, among):
    """Bytes of ``key``'s layers whose chain id no other image in ``among`` has."""
    lay = fleet.layers()
    others = set(lay[lay["image"].isin([k for k in among if k != key])]["chain_id"])
    mine = lay[lay["image"] == key]
    return int(mine[~mine["chain_id"].isin(others)]["size"].sum())


def test_layered_apps_add_little_beyond_the_shared_bases(fleet, by_name):
    k = {n: by_name[n][0] for n in NAMES}
    layered = [k["app1"], k["app2"]]
    naive = [k["naive-app1"], k["naive-app2"]]
    for a, b in ((k["app1"], k["naive-app1"]), (k["app2"], k["naive-app2"])):
        u_layered = unique_bytes(fleet, a, layered)
        u_naive = unique_bytes(fleet, b, naive)
        # independent reading of the layered app's own part: the steps above f3 in
        # its `docker history` (newest first: CMD, COPY config, COPY code)
        name = next(n for n in NAMES if k[n] == a)
        above_f3 = by_name[name][1]["history"][: len(by_name[name][1]["history"]) - len(by_name["f3"][1]["history"])]
        assert [h["CreatedBy"].split()[0] for h in above_f3] == ["CMD", "COPY", "COPY", "LABEL"]
        assert u_layered == sum(int(h["Size"]) for h in above_f3)
        assert u_layered < 10_000          # code + config: a few hundred bytes
        assert u_naive > 50_000_000        # everything above the OS
        assert u_layered * 1000 < u_naive


def test_no_mirror_host_is_written_into_the_sample():
    """The build reads the package mirror from the host's apt sources; none of
    those host names may end up in data/ or scripts/."""
    hosts = set()
    for f in list(Path("/etc/apt/sources.list.d").glob("*.sources")) + [Path("/etc/apt/sources.list")]:
        if f.is_file():
            hosts |= set(re.findall(r"[a-z]+://([^/\s]+)", f.read_text()))
    if not hosts:
        pytest.skip("no apt sources on this machine to compare with")
    for p in [*(ROOT / "data").rglob("*"), *(ROOT / "scripts").rglob("*")]:
        if p.is_file():
            text = p.read_bytes()
            for h in hosts:
                assert h.encode() not in text, f"{p} names the mirror host"


# -- per-layer file tables (data/sample/files: layerlab's diff_id-keyed cache) --------

FILES = SAMPLE / "files"


@pytest.fixture(scope="module")
def files_of(fleet):
    def get(key):
        return fleet[key].files(cache_dir=FILES, progress=False)
    return get


def test_file_tables_add_up_to_the_engine_layer_sizes(fleet, by_name, files_of):
    """Per layer, the tar entries' sizes sum to the size the engine reports —
    except for the `docker import`ed OS layer, where Docker's overlay2 driver
    measured the unpacked directory (moby's directory.Size), which also counts
    each symlink's target length; the difference is exactly those bytes."""
    for name, (key, r) in by_name.items():
        f = files_of(key)
        engine_sizes = layer_sizes_from_raw(r)
        by_pos = f.groupby("position")["size"].sum()
        links = f[f["type"] == "symlink"].groupby("position")["link_target"].agg(
            lambda s: sum(len(t.encode()) for t in s))
        steps = [s for s in r["config"]["history"] if not s.get("empty_layer", False)]
        for pos, want in enumerate(engine_sizes):
            got = int(by_pos.get(pos, 0))
            if steps[pos].get("comment", "").startswith("debootstrap"):  # the imported layer
                assert got + int(links.get(pos, 0)) == want, (name, pos)
                assert links.get(pos, 0) > 0
            else:
                assert got == want, (name, pos)


def test_app_layers_hold_the_repo_files(by_name, files_of):
    src = ROOT / "scripts" / "sample" / "apps"
    for app in ("app1", "app2"):
        for variant in (app, f"naive-{app}"):
            f = files_of(by_name[variant][0])
            regular = f[f["type"] == "file"].set_index("path")
            assert int(regular.loc["opt/app/app.py", "size"]) == (src / app / "src" / "app.py").stat().st_size
            assert int(regular.loc["etc/app/app.ini", "size"]) == (src / app / "app.ini").stat().st_size


def test_the_build_secret_is_in_no_layer(fleet, files_of):
    """pip's CA bundle was a BuildKit secret mounted at /run/secrets/ca for one RUN only."""
    for img in fleet:
        f = files_of(img.reference)
        assert not f["path"].str.startswith("run/secrets/").any(), img.reference


def test_saved_history_of_the_sample_loads_with_the_engines_sizes(by_name):
    """The `history:` source on the raw `docker history` lines: as many layers as
    the engine has, with the sizes it reported (all sample layers are non-empty,
    so the step sizes alone settle the pairing)."""
    for name, (key, r) in by_name.items():
        img = ll.load(f"history:{RAW / f'{name}.history.jsonl'}")
        assert [l.size for l in img.layer_list] == layer_sizes_from_raw(r), name
        assert len(img.history_list) == len(r["config"]["history"]), name
