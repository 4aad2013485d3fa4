"""Every notebook in layerlab/notebooks/ runs top to bottom on the bundled data.

Notebooks are documentation that runs: each must declare a `parameters` cell,
explain itself in prose, and execute without errors on `data/sample` (their
defaults).  Until the bundled sample exists, notebooks that take `sources` run
on a small fleet built from the model instead.
"""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from _browser import ARTIFACTS, Visit, assert_charts_drawn, launch_browser
from _report_fleet import article_fleet
from layerlab import report

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "layerlab" / "notebooks").glob("*.ipynb"))
SAMPLE = ROOT / "data" / "sample"
RENDERED: dict[str, Path] = {}  # notebook stem -> its report HTML, for the browser test


def test_there_are_notebooks():
    names = [p.stem for p in NOTEBOOKS]
    for want in ("01-tour", "02-fleet-overlap", "03-official-images"):
        assert want in names


@pytest.fixture(scope="module")
def fallback_sources(tmp_path_factory):
    if (SAMPLE / "images.parquet").exists():
        return None
    d = tmp_path_factory.mktemp("nb") / "snap"
    article_fleet().save(d)
    return [str(d)]


def _outputs(nb, kind):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == kind]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, fallback_sources, tmp_path_factory):
    raw = nbformat.read(path, as_version=4)
    tagged = [c for c in raw.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and tagged[0].cell_type == "code", "one code cell tagged 'parameters'"
    n_md = sum(1 for c in raw.cells if c.cell_type == "markdown")
    n_code = sum(1 for c in raw.cells if c.cell_type == "code")
    assert n_md >= 3 and n_md * 2 >= n_code, "notebooks are documentation: prose cells explain the steps"
    # committed notebooks carry no stale outputs from someone's machine
    assert all(not c.get("outputs") for c in raw.cells if c.cell_type == "code"), "clear outputs before committing"

    params = {}
    if fallback_sources and "sources" in report.notebook_parameters(raw):
        params["sources"] = fallback_sources
    # executed as `layerlab report` executes it, so the HTML can be checked in a browser below
    nb = report.execute_notebook(path, params, for_report=True, progress=False, timeout=300)
    assert _outputs(nb, "error") == []
    # every code cell ran, in order (the report's hidden setup cell was the first)
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    assert counts == list(range(2, len(counts) + 2))
    out = tmp_path_factory.mktemp("nbhtml") / f"{path.stem}.html"
    out.write_text(report.notebook_to_html(nb, notebook_label=f"notebooks/{path.name}", parameters=params))
    RENDERED[path.stem] = out


@pytest.fixture(scope="module")
def browser():
    yield from launch_browser()


@pytest.mark.browser
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_report_draws_offline(path, browser):
    """Each notebook's report (rendered above) in headless Chromium, network blocked:
    charts drew, no request left the file, no console error."""
    html_path = RENDERED.get(path.stem)
    if html_path is None:
        pytest.skip(f"{path.name} did not execute above (see its failure)")
    v = Visit(browser, html_path)
    try:
        assert_charts_drawn(v.page)
        ARTIFACTS.mkdir(exist_ok=True)
        v.page.screenshot(path=str(ARTIFACTS / f"notebook-{path.stem}.png"), full_page=True)
        v.assert_clean()
    finally:
        v.page.close()


def test_tour_shows_the_fleet_it_loaded(fallback_sources):
    params = {"use_engine": False}
    if fallback_sources:
        params["data_dir"] = fallback_sources[0]
    nb = report.execute_notebook("01-tour", params, progress=False)
    html_out = " ".join(
        o["data"].get("text/html", "") for o in _outputs(nb, "execute_result") + _outputs(nb, "display_data")
    )
    if fallback_sources:
        names = [i.reference for i in article_fleet()]
    else:
        import pyarrow.parquet as pq

        names = pq.read_table(SAMPLE / "images.parquet", columns=["image"]).column("image").to_pylist()
    for name in names:
        assert name in html_out


def test_official_images_skips_cleanly_without_the_corpus(tmp_path):
    missing = tmp_path / "no-such-corpus <b>x</b>"
    nb = report.execute_notebook("03-official-images", {"repo_info_dir": str(missing)}, progress=False)
    md = [o["data"]["text/markdown"] for o in _outputs(nb, "display_data") if "text/markdown" in o.get("data", {})]
    assert any("no-such-corpus &lt;b&gt;x&lt;/b&gt;" in m and "skipped" in m.lower() for m in md), md
    assert not any("<b>x</b>" in m for m in md), "a path is text, not markup"
    assert _outputs(nb, "error") == []


def test_06_pull_time_on_another_fleet(tmp_path):
    """06 on the article's fleet in miniature (tests/_report_fleet.py), not the sample: other names,
    compressed sizes known.  Its layered app2 differs from app1 only in its code layer, so the prose
    written from the numbers must name the layered design as the faster one."""
    snap = tmp_path / "snap"
    article_fleet().save(snap)
    params = {"sources": [str(snap)], "image": "layered/app2:1", "present": ["layered/app1:1"],
              "bandwidth": "5MB/s", "engine": "containerd"}
    nb = report.execute_notebook("06-pull-time", params, progress=False, timeout=300)
    assert _outputs(nb, "error") == []
    md = " ".join(o["data"].get("text/markdown", "") for o in _outputs(nb, "display_data"))
    assert "At 5 MB/s (containerd)" in md
    assert "the **layered** design's pulls take" in md and "for **naive**" in md
    assert "The article's warm pull of 1 min 33 s matches an app" in md
    html_out = " ".join(o["data"].get("text/html", "") for o in _outputs(nb, "execute_result"))
    assert "layered/app2:1" in html_out and "<svg" in html_out  # the PullTime's view, timeline drawn


# --- 07-fleet-scale on two fleets with layer contents (and on none) ----------------------------

SHARED_REAL = ROOT.parent / "shared" / "data" / "real-images"


def _built_fleet(d: Path) -> list[str]:
    """Three docker-save archives sharing a base layer.

    base: etc/os-release (10 B), bin/tool (500 B)     x = base + app_a: app/a.py (300 B), app/lib.py (200 B)
    z = base                                          y = base + app_b: app/b.py (300 B), app/lib.py (200 B),
                                                                         opt/tool-copy (bin/tool's 500 B)
    -> 3 images, 5 layer references, 3 distinct layers; 7 stored files of 5 distinct contents;
       a file store saves lib.py (200 B) + the tool copy (500 B) = 700 B.
    """
    from _archive_helpers import layer_tar, write_legacy_archive

    base = layer_tar({"etc/os-release": b"debian 12\n", "bin/tool": b"T" * 500})
    app_a = layer_tar({"app/a.py": b"A" * 300, "app/lib.py": b"L" * 200})
    app_b = layer_tar({"app/b.py": b"B" * 300, "app/lib.py": b"L" * 200, "opt/tool-copy": b"T" * 500})
    out = []
    for name, layers in (("x", [base, app_a]), ("y", [base, app_b]), ("z", [base])):
        p = d / f"{name}.tar"
        write_legacy_archive(p, layers, tags=(f"fleet/{name}:1",))
        out.append(str(p))
    return out


def _texts(nb) -> str:
    outs = _outputs(nb, "execute_result") + _outputs(nb, "display_data") + _outputs(nb, "stream")
    return " ".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") +
                    o.get("data", {}).get("text/html", "") + o.get("data", {}).get("text/markdown", "")
                    for o in outs)


@pytest.mark.parametrize("fleet", ["built", "real-images"])
def test_fleet_scale_notebook_measures_the_fleet(fleet, tmp_path):
    if fleet == "built":
        sources = _built_fleet(tmp_path)
        want = "3 images, 5 layer references → 3 distinct layers; 7 stored files → 5 distinct contents"
    else:
        if not SHARED_REAL.is_dir():
            pytest.skip(f"needs ../shared ({SHARED_REAL} is not there)")
        import layerlab as ll

        sources = sorted(str(p) for p in SHARED_REAL.glob("*.tar"))
        layers = ll.load_many(sources).layers()  # the figures from the loaded model, not from the cache
        want = (f"{layers['image'].nunique()} images, {len(layers)} layer references → "
                f"{layers['diff_id'].nunique()} distinct layers")
    cache = tmp_path / "cache"
    nb = report.execute_notebook("07", {"sources": sources, "cache": str(cache)}, progress=False, timeout=300)
    assert _outputs(nb, "error") == []
    text = _texts(nb)
    assert want in text
    assert "No fleet with layer contents" not in text
    assert any(cache.glob("files/*.parquet")), "the cache given is kept"


def test_fleet_scale_notebook_without_a_fleet(tmp_path):
    missing = tmp_path / "no-archives <b>x</b>"
    nb = report.execute_notebook("07", {"archives_dir": str(missing)}, progress=False)
    assert _outputs(nb, "error") == []
    md = [o["data"]["text/markdown"] for o in _outputs(nb, "display_data") if "text/markdown" in o.get("data", {})]
    assert any("No fleet with layer contents" in m and "no-archives &lt;b&gt;x&lt;/b&gt;" in m for m in md), md


# --- parameters checked first; runs on fleets other than data/sample -----------------------------

@pytest.fixture(scope="module")
def article_snapshot(tmp_path_factory) -> str:
    d = tmp_path_factory.mktemp("article") / "snap"
    article_fleet().save(d)
    return str(d)


ARTICLE_NAMES = ", ".join(i.reference for i in article_fleet())


@pytest.mark.parametrize("notebook, params, message", [
    ("04", {"image": "nope:1"},
     f"ParameterError: parameter image: image 'nope:1' is not in the fleet; images: {ARTICLE_NAMES}"),
    # two numbers alone: one group or two positions? the notebook refuses to guess
    ("04", {"image": "layered/app1:1", "groups": [1, 10]},
     "ParameterError: parameter groups: [1, 10] is ambiguous"),
    ("04", {"image": "layered/app1:1", "groups": "1-10"},
     "ParameterError: parameter groups: group '1-10' is outside layered/app1:1's layers (positions 0-4)"),
    ("06", {"image": "layered/app2:1", "present": [], "engine": "mobi"},
     "ParameterError: parameter engine: 'mobi' is not one of 'moby', 'containerd', 'podman' (did you mean 'moby'?)"),
    ("05", {"dockerfiles": None, "images": {"a": "layered/app1:1", "b": "naive/app3:1"}, "layered": []},
     "ParameterError: parameter images['b']: image 'naive/app3:1' is not in the fleet (did you mean 'naive/app2:1'?)"),
    ("01", {"use_engine": "no"}, "ParameterError: parameter use_engine: 'no' is not true or false"),
    ("02", {"groups": {"naive": "naiv/*", "layered": "layered/*"}},
     "ParameterError: parameter groups: group 'naive': pattern 'naiv/*' matches no image"),
    ("02", {"groups": {"x": "*/app1:1", "y": ["layered/app1:1"]}},
     "ParameterError: parameter groups: image 'layered/app1:1' is in two groups, 'x' and 'y'"),
])
def test_a_bad_parameter_stops_the_notebook_with_what_exists(notebook, params, message, article_snapshot):
    key = "data_dir" if notebook == "01" else "sources"
    with pytest.raises(report.ReportError) as e:
        report.execute_notebook(notebook, {key: article_snapshot, **params}, progress=False, timeout=300)
    assert message in str(e.value)


def _no_sample_prose(nb):
    """Nothing the notebook shows (markdown or outputs) speaks of the sample's images or narrates its cells."""
    shown = _texts(nb) + " ".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for phrase in ("layerlab-sample/", "demo/merge", "The next cell is tagged", "## Parameters"):
        assert phrase not in shown, phrase


@pytest.fixture(scope="module")
def real_images():
    if not SHARED_REAL.is_dir():
        pytest.skip(f"needs ../shared ({SHARED_REAL} is not there)")
    return sorted(str(p) for p in SHARED_REAL.glob("*.tar"))


@pytest.mark.shared
@pytest.mark.parametrize("notebook", ["01", "04", "05"])
def test_notebooks_on_the_real_images(notebook, real_images):
    """dive's test image (14 layers, contents in the archive) and its kaniko build, among the other real archives."""
    params = {
        "01": {"sources": real_images, "image": "dive-test:latest", "use_engine": False, "files_cache": None,
               "efficiency_max_bytes": 1000},
        "04": {"sources": real_images, "image": "dive-test:latest", "groups": "1-3, 5-6"},
        "05": {"sources": real_images, "dockerfiles": None, "layered": [],
               "images": ["dive-test:latest", "dive-test:kaniko-latest"]},
    }[notebook]
    nb = report.execute_notebook(notebook, params, for_report=True, progress=False, timeout=300)
    assert _outputs(nb, "error") == []
    _no_sample_prose(nb)
    text = _texts(nb)
    if notebook == "01":
        # the archive holds the contents; the limit (1 kB) is what kept them unread, and the note says so
        assert "over efficiency_max_bytes (1 kB), so they were not read" in text
        assert "not available" not in text
    if notebook == "05":
        assert "==> dive-test:latest (history of dive-test:latest)" in text
        assert "no images built with shared bases to compare with" in text


@pytest.fixture(scope="module")
def engine_fleet(busybox_base):
    """Three unlabelled images built by the engine on the busybox base: a base with a tool, and two apps on it."""
    from enginekit import build

    build("layerlab-test/nb-base:1", f"FROM {busybox_base}\nRUN head -c 1000 /dev/zero > /tool\n")
    build("layerlab-test/nb-app-a:1", "FROM layerlab-test/nb-base:1\nRUN head -c 5000 /dev/zero > /x\n"
          "RUN rm /x && echo 12345 > /y\n")
    build("layerlab-test/nb-app-b:1", "FROM layerlab-test/nb-base:1\nRUN echo b > /b\n")
    return [f"docker-daemon:layerlab-test/nb-{n}:1" for n in ("base", "app-a", "app-b")]


@pytest.mark.engine
@pytest.mark.parametrize("notebook", ["02", "04"])
def test_notebooks_on_an_unlabelled_engine_fleet(notebook, engine_fleet):
    params = {
        "02": {"sources": engine_fleet, "key": "diff_id", "compressed": False, "role_label": "no.such.label"},
        "04": {"sources": engine_fleet, "image": "layerlab-test/nb-app-a:1", "groups": [[2, 3]]},
    }[notebook]
    nb = report.execute_notebook(notebook, params, for_report=True, progress=False, timeout=300)
    assert _outputs(nb, "error") == []
    _no_sample_prose(nb)
    text = _texts(nb)
    if notebook == "02":
        # unlabelled: the base (its layers start both apps') is not an app; the apps form the
        # variant named by the repository prefix
        assert "**layerlab-test**: 2 apps" in text
        assert "naive" not in text and "layered" not in text


@pytest.mark.engine
def test_groups_say_which_image_belongs_where(engine_fleet):
    """Groups given by the caller (a pattern and a list) decide the variants: two groups, compared."""
    params = {"sources": engine_fleet, "key": "diff_id", "role_label": "no.such.label",
              "groups": {"first": "nb-app-a*", "second": ["layerlab-test/nb-app-b:1"]}}
    nb = report.execute_notebook("02", params, for_report=True, progress=False, timeout=300)
    assert _outputs(nb, "error") == []
    text = _texts(nb)
    assert "**first**: 1 app" in text and "**second**: 1 app" in text
    assert "**layerlab-test**" not in text


# --- a registry fleet: the engine fleet above pushed to a docker-registry on 127.0.0.1 ------------

@pytest.fixture(scope="module")
def registry_fleet(engine_fleet, registry):
    """The three engine images copied by skopeo into the registry: ``docker://HOST/nbreg/NAME:1`` sources,
    and per image its manifest's layer blobs (digest, size) as skopeo reads them from the registry."""
    from registrykit import inspect_raw, skopeo

    sources, blobs = {}, {}
    for name in ("base", "app-a", "app-b"):
        ref = registry.ref(f"nbreg/{name}:1")
        skopeo("copy", "--quiet", "--dest-tls-verify=false", f"docker-daemon:layerlab-test/nb-{name}:1", f"docker://{ref}")
        sources[name] = f"docker://{ref}"
        blobs[name] = [(l["digest"], l["size"]) for l in json.loads(inspect_raw(ref))["layers"]]
    return sources, blobs


@pytest.mark.engine
@pytest.mark.registry
@pytest.mark.parametrize("notebook", ["02", "06"])
def test_notebooks_on_a_registry_fleet(notebook, registry_fleet):
    sources, blobs = registry_fleet
    import layerlab as ll

    # the names layerlab gives the registry's images (host/repository:tag), to pass as parameters
    names = {n: img.reference for n, img in zip(sources, ll.load_many(list(sources.values())))}
    params = {
        "02": {"sources": list(sources.values()), "key": "digest", "compressed": True, "role_label": "no.such.label",
               "groups": {"apps": [names["app-a"], names["app-b"]]}},
        "06": {"sources": list(sources.values()), "image": names["app-a"], "present": [names["base"]],
               "bandwidth": "1MB/s", "engine": "podman", "unknown_wire": "refuse", "role_label": "no.such.label"},
    }[notebook]
    nb = report.execute_notebook(notebook, params, for_report=True, progress=False, timeout=300)
    assert _outputs(nb, "error") == []
    _no_sample_prose(nb)
    text = _texts(nb)
    base, app_a, app_b = ({d: s for d, s in blobs[n]} for n in ("base", "app-a", "app-b"))
    if notebook == "02":
        # after app-a, app-b downloads its blobs app-a lacks (sizes from the registry's manifests, via skopeo)
        extra = sum(s for d, s in app_b.items() if d not in app_a)
        assert 0 < extra < 1000  # shown in bytes, no unit to convert
        assert f"after the first app the others download {extra} B" in text
    else:
        # app-a onto a host holding base: the blobs base lacks are downloaded, the rest are on the host
        new = [s for d, s in app_a.items() if d not in base]
        assert 0 < len(new) < len(app_a)
        assert f"(podman; {len(new)} of {len(app_a)} layers, {sum(new)} bytes to download)" in text


# --- the repo-info record: four official images of 2018 on the buildpack-deps chain ---------------

REPO_INFO = ROOT.parent / "shared" / "data" / "repo-info-2018"
RECORD_APPS = {"python": "3.6-stretch", "node": "8-stretch", "ruby": "2.5-stretch", "golang": "1.9-stretch"}


def _record_amd64(md: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """(Dockerfile steps, [(digest, compressed bytes)]) of a repo-info tag file's linux/amd64 section,
    read by this test's own parser (whitespace collapsed as `docker history` shows it)."""
    import re

    text = md.read_text()
    start = text.index(" - linux; amd64")
    end = text.find("\n### ", start)
    section = text[start:end if end > 0 else None]
    block = section.split("```dockerfile\n", 1)[1].split("```", 1)[0]
    steps = [" ".join(line.split()) for line in block.splitlines() if line and not line.startswith("# ")]
    layers = [(d, int(n)) for d, n in re.findall(r"`(sha256:[0-9a-f]{64})`\s+Last Modified:[^\n]*\n\s+Size: [^(\n]*\((\d+) bytes\)",
                                                  section)]
    return steps, layers


@pytest.fixture(scope="module")
def record_sources():
    repos = REPO_INFO / "repos"
    if not repos.is_dir():
        pytest.skip(f"needs ../shared ({repos} is not there)")
    return {f"{n}:{t}": repos / n / "remote" / f"{t}.md" for n, t in RECORD_APPS.items()}


def _plain(text: str) -> str:
    import html as _html
    import re

    return " ".join(_html.unescape(re.sub(r"<[^>]+>", " ", text)).split())


@pytest.mark.shared
@pytest.mark.parametrize("notebook", ["02", "03", "05"])
def test_notebooks_on_the_repo_info_record(notebook, record_sources):
    sources = [f"repo-info:{p}" for p in record_sources.values()]
    params = {
        "02": {"sources": sources, "key": "digest", "compressed": True, "role_label": "no.such.label"},
        "03": {"repo_info_dir": str(REPO_INFO), "platform": "linux/arm64/v8", "top_families": 5},
        # with buildpack-deps' own tags in the fleet (not apps): the bases are recognised as them
        "05": {"sources": sources + [f"repo-info:{REPO_INFO / 'repos' / 'buildpack-deps' / 'remote' / t}.md"
                                     for t in ("stretch-scm", "stretch")],
               "dockerfiles": None, "layered": [], "split": "branch", "images": list(record_sources)},
    }[notebook]
    nb = report.execute_notebook(notebook, params, for_report=True, progress=False, timeout=300)
    assert _outputs(nb, "error") == []
    _no_sample_prose(nb)
    text = _plain(_texts(nb))
    layers = {image: _record_amd64(md)[1] for image, md in record_sources.items()}
    if notebook == "02":
        # one host stores each distinct blob once: the record's sizes, summed by this test
        stored = sum(dict(pair for ls in layers.values() for pair in ls).values())
        assert 100e6 <= stored < 999.5e6  # three significant digits in MB
        assert "4 apps, " in text and f"{stored / 1e6:.0f} MB stored on one host" in text
    elif notebook == "03":
        # one tag per tag file with a linux/arm64/v8 section
        n = sum("- linux; arm64 variant v8\n" in p.read_text() for p in (REPO_INFO / "repos").glob("*/remote/*.md"))
        assert f"{n:,} tags," in text
        assert "Reading it: the **" in text and "debian's `buildpack-deps` chain" not in text
    else:
        # planned from the histories alone, the bases are the buildpack-deps chain: f1 ends where
        # buildpack-deps:stretch-scm ends (golang stands on it), f2 where buildpack-deps:stretch does
        bp = REPO_INFO / "repos" / "buildpack-deps" / "remote"
        scm, full = _record_amd64(bp / "stretch-scm.md")[0], _record_amd64(bp / "stretch.md")[0]
        f1 = text.split(" f1 FROM scratch", 1)[1].split(" f2 FROM f1", 1)[0]
        f2 = text.split(" f2 FROM f1", 1)[1].split(" FROM f2", 1)[0]
        assert scm[-1] in f1 and scm[0] in f1 and full[-1] not in f1
        assert full[-1] in f2 and full[len(scm)] in f2
        assert "golang:1.9-stretch FROM f1" in text
        assert all(f"{a} FROM f2" in text for a in ("python:3.6-stretch", "node:8-stretch", "ruby:2.5-stretch"))
        assert "f1 holds exactly the layers of buildpack-deps:stretch-scm" in text
        assert "f2 holds exactly the layers of buildpack-deps:stretch" in text


@pytest.mark.engine
def test_fleet_scale_notebook_on_the_engine_fleet(engine_fleet, tmp_path):
    """07 with contents streamed from the engine (not archives); layer counts from `docker image inspect`."""
    from conftest import docker_cli

    refs = [s.split(":", 1)[1] for s in engine_fleet]
    diff_ids = [json.loads(docker_cli("image", "inspect", r))[0]["RootFS"]["Layers"] for r in refs]
    want = (f"{len(refs)} images, {sum(map(len, diff_ids))} layer references → "
            f"{len({d for ids in diff_ids for d in ids})} distinct layers")
    nb = report.execute_notebook("07", {"sources": engine_fleet, "cache": str(tmp_path / "cache")},
                                 for_report=True, progress=False, timeout=300)
    assert _outputs(nb, "error") == []
    _no_sample_prose(nb)
    assert want in _texts(nb)
