"""plan_bases on real images nobody here built: four official images of 2018
(the docker-library repo-info record in ../shared) that really share the
buildpack-deps chain.  Expected values are read from the record's markdown
by this test's own parser, not by layerlab."""
from __future__ import annotations

import re

import pandas as pd
import pytest

import layerlab as ll

APPS = {"python": "3.6-stretch", "node": "8-stretch", "ruby": "2.5-stretch", "golang": "1.9-stretch"}


def amd64_layers(md) -> list[tuple[str, int]]:
    """(digest, compressed bytes) of the linux/amd64 section's layers, in order."""
    text = md.read_text()
    start = text.index(" - linux; amd64")
    end = text.find("\n### ", start)
    section = text[start:end if end > 0 else None]
    layers = section.split("-\tLayers:", 1)[1]
    out = []
    for digest, size in re.findall(r"`(sha256:[0-9a-f]{64})`\s+Last Modified:[^\n]*\n\s+Size: ([^\n]*)", layers):
        m = re.search(r"\((\d+) bytes\)", size) or re.match(r"([\d.]+) B\b", size.strip())
        out.append((digest, int(float(m.group(1)))))
    return out


@pytest.fixture(scope="module")
def record(shared_dir):
    repos = shared_dir / "data" / "repo-info-2018" / "repos"
    if not repos.is_dir():
        pytest.skip(f"{repos} is absent")
    return repos


def test_plan_recovers_the_buildpack_deps_chain_and_stores_what_the_record_says(record):
    paths = {f"{name}:{tag}": record / name / "remote" / f"{tag}.md" for name, tag in APPS.items()}
    want = {image: amd64_layers(md) for image, md in paths.items()}
    fleet = ll.load_many([f"repo-info:{p}" for p in paths.values()])
    plan = ll.plan_bases(fleet, size_column="compressed_size")

    # one host stores every distinct (parent chain, blob) once, before and after
    stored = {}
    for layers in want.values():
        chain = ()
        for digest, size in layers:
            chain += (digest,)
            stored[chain] = size
    host = plan.savings[plan.savings["scope"] == "host"].iloc[0]
    assert int(host["stored_before_bytes"]) == sum(stored.values()) == int(host["stored_after_bytes"])
    assert sum(stored.values()) > 500_000_000      # 554 MB, not the 19 MB the old planner predicted
    # per app: a cold pull fetches all its layers; with the bases present only its own
    apps = plan.savings[plan.savings["scope"] == "app"].set_index("image")
    for image, layers in want.items():
        assert int(apps.loc[image, "size_after_bytes"]) == sum(s for _, s in layers)

    # the bases are buildpack-deps:stretch-scm (all four) and buildpack-deps:stretch (three)
    bp = record / "buildpack-deps" / "remote"
    scm, full = amd64_layers(bp / "stretch-scm.md"), amd64_layers(bp / "stretch.md")
    assert [d for d, _ in full[: len(scm)]] == [d for d, _ in scm]
    layers = plan.layers
    base_sizes = {b: layers[layers["image"] == b]["size"].astype(int).tolist() for b in ("f1", "f2")}
    assert base_sizes == {"f1": [s for _, s in scm], "f2": [s for _, s in full]}
    pulled = {image: int(apps.loc[image, "pulled_with_bases_bytes"]) for image in want}
    for image, layers_ in want.items():
        base = scm if image.startswith("golang") else full
        assert [d for d, _ in layers_[: len(base)]] == [d for d, _ in base]
        assert pulled[image] == sum(s for _, s in layers_[len(base):])
    assert any("already share" in n for n in plan.notes), plan.notes


def test_known_images_name_the_bases(record):
    """Given buildpack-deps' own tags as ``known``, the plan says which existing images its bases are
    (the record's digests decide; the curl tag, a shorter chain, is no base)."""
    paths = {f"{name}:{tag}": record / name / "remote" / f"{tag}.md" for name, tag in APPS.items()}
    fleet = ll.load_many([f"repo-info:{p}" for p in paths.values()])
    bp = record / "buildpack-deps" / "remote"
    known = ll.load_many([f"repo-info:{bp / t}.md" for t in ("stretch-curl", "stretch-scm", "stretch")])
    plan = ll.plan_bases(fleet, size_column="compressed_size", known=known)
    same = plan.images.set_index("image")["same_as"]
    assert same["f1"] == "buildpack-deps:stretch-scm" and same["f2"] == "buildpack-deps:stretch"
    assert all(pd.isna(same[a]) for a in paths)
    assert "f1 holds exactly the layers of buildpack-deps:stretch-scm: use that image as f1" in plan.notes
    # without known images nothing is named
    assert plan_bases_plain(fleet).images["same_as"].isna().all()


def plan_bases_plain(fleet):
    return ll.plan_bases(fleet, size_column="compressed_size")
