"""visible_waste(): caches and leftovers the final filesystem still shows.

Every expected size is one the test chose when writing the files (by hand in
tar layers, or with `dd`/`head -c` in RUN steps of a real build); positions and
commands are the test's own Dockerfile steps."""
from __future__ import annotations

import inspect

import pandas as pd
import pytest

import layerlab as ll
from _contents_helpers import d, f, layer_tar, mem_image, wh
from layerlab.analysis.visible_waste import VISIBLE_WASTE_COLUMNS, VISIBLE_WASTE_PATH_COLUMNS


def _by_kind(res) -> dict[str, tuple[int, int]]:
    f_ = res.findings
    return {k: (int(g["files"].sum()), int(g["wasted_bytes"].sum())) for k, g in f_.groupby("kind")}


def test_rules_on_hand_written_layers():
    base = layer_tar([d("usr"), f("usr/lib/python3.11/os.py", b"x" * 40),
                      f("usr/lib/python3.11/__pycache__/os.cpython-311.pyc", b"c" * 70)])
    one = layer_tar([
        f("var/lib/apt/lists/lock", b""),                      # the lock: never waste
        f("var/lib/apt/lists/partial/half", b"p" * 11),        # partial downloads dir: left out
        f("var/lib/apt/lists/deb_Packages", b"l" * 500),
        f("var/cache/apt/archives/a.deb", b"a" * 300),
        f("var/cache/apt/archives/lock", b""),
        f("var/cache/apt/pkgcache.bin", b"b" * 20),
        f("var/cache/apt/archives/not-a-deb.txt", b"n" * 9),   # not an archive, not a .bin
    ])
    two = layer_tar([
        f("root/.cache/pip/http/1/2/x", b"p" * 250),
        f("home/me/.cache/pip/wheels/w.whl", b"w" * 25),
        f("root/.npm/_cacache/index-v5/ab", b"n" * 60),
        f("var/cache/apk/APKINDEX.tar.gz", b"k" * 33),
        f("var/cache/dnf/repo.solv", b"s" * 44),
        f("tmp/build/x.o", b"o" * 17),
        f("var/tmp/left", b"t" * 5),
        f("app/m.py", b"m" * 3), f("app/__pycache__/m.cpython-311.pyc", b"y" * 7),
        f("app/lone.pyc", b"z" * 8),                           # no source: the only copy of the code
        f("src/obj/k.o", b"o" * 12),
        f("root/.cache/pip/gone", b"g" * 99),
    ])
    three = layer_tar([wh("root/.cache/pip/gone"), f("var/lib/apt/lists/deb_Packages", b"L" * 520)])
    img = mem_image([base, one, two, three], history=["", "RUN apt-get update", "RUN pip install x", "RUN fix"])
    res = ll.visible_waste(img, cache_dir=False, progress=False)
    assert {c: str(t) for c, t in res.findings.dtypes.items()} == VISIBLE_WASTE_COLUMNS
    assert {c: str(t) for c, t in res.paths.dtypes.items()} == VISIBLE_WASTE_PATH_COLUMNS
    assert _by_kind(res) == {
        "apt package lists": (1, 520),        # overwritten in layer 3: the visible copy counts
        "apt package cache": (2, 320),
        "pip cache": (2, 275),                # the deleted file is hidden, not visible
        "npm cache": (1, 60),
        "apk cache": (1, 33),
        "dnf/yum cache": (1, 44),
        "temporary files": (2, 22),
        "object files": (1, 12),
        "python byte code": (2, 77),          # stdlib pyc in the base (70) and app pyc (7); lone.pyc is not
    }
    lists = res.findings[res.findings["kind"] == "apt package lists"].iloc[0]
    assert (int(lists["position"]), int(lists["step"]), lists["created_by"]) == (3, 3, "RUN fix")
    pyc = res.findings[res.findings["kind"] == "python byte code"].set_index("position")
    assert not bool(pyc.loc[0, "above_base"]) and bool(pyc.loc[2, "above_base"])
    assert set(pyc["confidence"]) == {"low"}
    assert res.total_bytes == 520 + 320 + 275 + 60 + 33 + 44 + 22 + 12 + 77
    assert res.total_bytes_above_base == res.total_bytes - 70
    assert list(res.findings["wasted_bytes"]) == sorted(res.findings["wasted_bytes"], reverse=True)
    assert any("base image" in n for n in res.notes) and any("byte code" in n for n in res.notes)
    assert "visible waste" in repr(res) and "<table" in res._repr_html_()
    # min_bytes drops small findings; filesystem= reuses a frame
    small = ll.visible_waste(img, min_bytes=100, filesystem=img.filesystem(progress=False, cache_dir=False))
    assert sorted(small.findings["kind"]) == ["apt package cache", "apt package lists", "pip cache"]


def test_signature_and_errors():
    params = inspect.signature(ll.visible_waste).parameters
    assert list(params) == ["img", "base", "min_bytes", "filesystem", "cache_dir", "progress", "verify", "workers"]
    with pytest.raises(ll.AnalysisError, match="layerlab.Image"):
        ll.visible_waste("not an image")
    img = mem_image([layer_tar([f("a", b"1")])])
    with pytest.raises(ll.AnalysisError, match="min_bytes"):
        ll.visible_waste(img, min_bytes=-1)
    with pytest.raises(ll.AnalysisError, match="filesystem="):
        ll.visible_waste(img, filesystem=pd.DataFrame({"path": ["a"]}))
    assert len(ll.visible_waste(img, cache_dir=False, progress=False).findings) == 0


# -- a real build ----------------------------------------------------------------------------------
STEPS = [
    # 1: apt: an update's lists and downloaded archives, left behind
    "mkdir -p /var/lib/apt/lists/partial /var/cache/apt/archives/partial "
    "&& dd if=/dev/zero of=/var/lib/apt/lists/deb.debian.org_dists_bookworm_main_binary-amd64_Packages bs=1000 "
    "count=150 2>/dev/null && head -c 2000 /bin/busybox > /var/lib/apt/lists/deb.debian.org_dists_bookworm_InRelease "
    "&& touch /var/lib/apt/lists/lock && echo half > /var/lib/apt/lists/partial/x "
    "&& dd if=/dev/zero of=/var/cache/apt/archives/curl_8.0_amd64.deb bs=1000 count=200 2>/dev/null "
    "&& head -c 3000 /bin/busybox > /var/cache/apt/pkgcache.bin",
    # 2: pip's http cache and a scratch file removed in a later step
    "mkdir -p /root/.cache/pip/http/a/b && dd if=/dev/zero of=/root/.cache/pip/http/a/b/c0ffee bs=1000 count=120 "
    "2>/dev/null && dd if=/dev/zero of=/root/.cache/pip/selfcheck bs=1000 count=10 2>/dev/null",
    # 3: npm and build leftovers, python byte code with and without its source
    "mkdir -p /root/.npm/_cacache/content-v2 /tmp/build /app/__pycache__ "
    "&& head -c 7000 /bin/busybox > /root/.npm/_cacache/content-v2/blob && head -c 4000 /bin/busybox > /tmp/build/x.o "
    "&& echo 'print(1)' > /app/m.py && head -c 300 /bin/busybox > /app/__pycache__/m.cpython-311.pyc "
    "&& head -c 200 /bin/busybox > /app/__pycache__/gone.cpython-311.pyc",
    # 4: delete the scratch cache file (hidden now: waste(), not visible waste)
    "rm /root/.cache/pip/selfcheck",
]


@pytest.fixture(scope="module")
def built(busybox_base, tmp_path_factory):
    from enginekit import build

    tag = "layerlab-test/visible-waste:1"
    build(tag, f"FROM {busybox_base}\n" + "".join(f"RUN {s}\n" for s in STEPS))
    return tag


@pytest.mark.engine
def test_real_build(built, engine, monkeypatch, tmp_path):
    from enginekit import history_json

    monkeypatch.setenv("LAYERLAB_CACHE", str(tmp_path / "cache"))
    img = ll.load(f"docker-daemon:{built}")
    res = ll.visible_waste(img, progress=False)
    assert _by_kind(res) == {
        "apt package lists": (2, 150_000 + 2000),   # lock and partial/ left out
        "apt package cache": (2, 200_000 + 3000),
        "pip cache": (1, 120_000),                  # selfcheck was deleted by step 4
        "npm cache": (1, 7000),
        "temporary files": (1, 4000),
        "python byte code": (1, 300),               # gone.cpython-311.pyc has no source
    }
    by = res.findings.set_index("kind")
    # the layer and the step that wrote them: this Dockerfile's RUN lines (base = layer 0)
    assert [int(by.loc[k, "position"]) for k in ("apt package lists", "pip cache", "npm cache")] == [1, 2, 3]
    assert STEPS[0] in by.loc["apt package lists", "created_by"]
    assert STEPS[1] in by.loc["pip cache", "created_by"]
    assert by.loc["pip cache", "step_label"].startswith("RUN mkdir -p /root/.cache/pip")
    assert "--no-cache-dir" in by.loc["pip cache", "fix"]
    assert "rm -rf /var/lib/apt/lists/*" in by.loc["apt package lists", "fix"]
    assert "npm cache clean --force" in by.loc["npm cache", "fix"]
    assert by["above_base"].all()
    # the step numbers are docker history's rows, oldest first
    hist = list(reversed(history_json(built)))
    step = int(by.loc["npm cache", "step"])
    assert STEPS[2] in hist[step]["CreatedBy"]
    # dive-style waste does not see the visible cache, only the deleted scratch file
    w = ll.waste(img, progress=False)
    assert w["path"].tolist() == ["root/.cache/pip/selfcheck"] and int(w["wasted_bytes"].iloc[0]) == 10_000


@pytest.mark.engine
def test_the_cli_prints_and_writes_it(built, engine, tmp_path, monkeypatch):
    """`layerlab waste SOURCE`: a table with human units by default, every column with --format csv."""
    from test_cli import run

    monkeypatch.setenv("LAYERLAB_CACHE", str(tmp_path / "cache"))
    p = run("waste", f"docker-daemon:{built}", cwd=tmp_path, columns=200)
    lines = p.stdout.splitlines()
    assert lines[0].split()[:3] == ["image", "position", "step_label"]
    row = next(line for line in lines if "apt package cache" in line)
    assert row.split("  ")[-1].strip() == "203 kB" or " 203 kB " in row  # 200,000 + 3,000 bytes, with a unit
    assert "visible waste in 6 findings" in p.stderr
    run("waste", f"docker-daemon:{built}", "--format", "csv", "-o", "w.csv", cwd=tmp_path)
    got = pd.read_csv(tmp_path / "w.csv")
    assert list(got.columns) == list(VISIBLE_WASTE_COLUMNS)
    assert dict(zip(got["kind"], got["wasted_bytes"]))["apt package cache"] == 203_000
