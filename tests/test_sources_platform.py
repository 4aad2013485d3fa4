"""One platform rule in every source: an OCI layout index built here, the same
index pushed to a real registry (skopeo copy --all), and repo-info sections.

The rule (OCI image-index spec, containerd's ``platforms`` normalisation,
containers/image's defaults): ``linux/arm64`` and ``linux/arm64/v8`` are one
platform; arm without a variant is ``arm/v7``; ``linux/arm/v7`` never takes
``linux/arm/v6``; an entry spelt exactly as asked wins; attestation manifests
(``unknown/unknown``, ``vnd.docker.reference.type: attestation-manifest``)
are never images.  Expected picks are written out by hand in the tables.
"""
from __future__ import annotations

import pytest

import layerlab as ll
from layerlab.errors import SourceError
from layerlab.sources import _platform
from _archive_helpers import platform_layout, repo_info_text, sha
from registrykit import skopeo

SPELLED = ["linux/amd64", "linux/arm64/v8", "linux/arm/v7", "linux/arm/v6"]
BARE = ["linux/amd64", "linux/arm64", "linux/arm", "linux/arm/v6"]
BOTH = ["linux/arm64", "linux/arm64/v8"]
LAYOUTS = {"spelled": SPELLED, "bare": BARE, "both": BOTH}

# (layout, platform asked for, the entry every source must pick; None: none may be picked)
CASES = [
    ("spelled", "linux/arm64", "linux/arm64/v8"),
    ("spelled", "linux/arm64/v8", "linux/arm64/v8"),
    ("spelled", "linux/arm/v7", "linux/arm/v7"),
    ("spelled", "linux/arm", "linux/arm/v7"),
    ("spelled", "linux/arm/v6", "linux/arm/v6"),
    ("spelled", "linux/amd64", "linux/amd64"),
    ("spelled", "linux/arm/v5", None),
    ("spelled", "linux/s390x", None),
    ("spelled", "unknown/unknown", None),
    ("bare", "linux/arm64", "linux/arm64"),
    ("bare", "linux/arm64/v8", "linux/arm64"),
    ("bare", "linux/aarch64", "linux/arm64"),
    ("bare", "linux/arm/v7", "linux/arm"),
    ("bare", "linux/arm", "linux/arm"),
    ("bare", "linux/arm/v6", "linux/arm/v6"),
    ("both", "linux/arm64", "linux/arm64"),
    ("both", "linux/arm64/v8", "linux/arm64/v8"),
]


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    out = {}
    for name, plats in LAYOUTS.items():
        root = tmp_path_factory.mktemp(f"layout-{name}")
        out[name] = (root, platform_layout(root, plats))
    return out


@pytest.fixture(scope="module")
def pushed(layouts, registry):
    refs = {}
    for name, (root, _facts) in layouts.items():
        refs[name] = registry.ref(f"layerlab/platforms-{name}:1")
        skopeo("copy", "--quiet", "--all", "--dest-tls-verify=false", f"oci:{root}:multi", f"docker://{refs[name]}")
    return refs


@pytest.fixture(scope="module")
def repo_info_files(tmp_path_factory):
    out = {}
    for name, plats in LAYOUTS.items():
        path = tmp_path_factory.mktemp(f"repo-info-{name}") / "app.md"
        path.write_text(repo_info_text("app:1", plats))
        out[name] = path
    return out


def _check(load, want: str, expected: str | None, ident) -> None:
    """``load(want)`` picks the image of platform ``expected`` (its id is ``ident(expected)``), or none."""
    if expected is None:
        with pytest.raises(SourceError, match="no .*image"):
            load(want)
        return
    img = load(want)
    assert img.platform == expected
    assert img.id == ident(expected)


@pytest.mark.parametrize("layout, want, expected", CASES)
def test_oci_layout(layouts, layout, want, expected):
    root, facts = layouts[layout]
    _check(lambda p: ll.load(f"oci:{root}:multi", platform=p), want, expected,
           lambda plat: facts[plat]["config_digest"])


@pytest.mark.parametrize("layout, want, expected", CASES)
def test_registry_index(layouts, pushed, layout, want, expected):
    _root, facts = layouts[layout]
    _check(lambda p: ll.load(f"docker://{pushed[layout]}", platform=p), want, expected,
           lambda plat: facts[plat]["config_digest"])


@pytest.mark.parametrize("layout, want, expected", CASES)
def test_repo_info_sections(repo_info_files, layout, want, expected):
    path = repo_info_files[layout]
    _check(lambda p: ll.load(f"repo-info:{path}", platform=p), want, expected,
           lambda plat: sha(plat.encode()))


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_platform_but_no_attestation(layouts, repo_info_files, layout):
    root, _facts = layouts[layout]
    want = sorted(LAYOUTS[layout])
    assert sorted(i.platform for i in ll.load_many(f"oci:{root}:multi", platform="all")) == want
    assert sorted(i.platform for i in ll.load_many(f"repo-info:{repo_info_files[layout]}", platform=None)) == want


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_platform_but_no_attestation_from_the_registry(pushed, layout):
    got = ll.load_many(f"docker://{pushed[layout]}", platform="all")
    assert sorted(i.platform for i in got) == sorted(LAYOUTS[layout])


HOSTS = [
    ("armv7l", "spelled", "linux/arm/v7"),
    ("armv7l", "bare", "linux/arm"),
    ("armv6l", "bare", "linux/arm/v6"),
    ("aarch64", "spelled", "linux/arm64/v8"),
    ("aarch64", "bare", "linux/arm64"),
    ("x86_64", "bare", "linux/amd64"),
]


@pytest.mark.parametrize("machine, layout, expected", HOSTS)
def test_host_default(monkeypatch, layouts, machine, layout, expected):
    """Without platform=, the host's platform (``uname -m``) is taken: arm/v7 on an ARMv7 host."""
    monkeypatch.setattr(_platform._platform, "machine", lambda: machine)
    root, facts = layouts[layout]
    assert ll.load(f"oci:{root}:multi").id == facts[expected]["config_digest"]


@pytest.mark.parametrize("machine, layout, expected", HOSTS)
def test_host_default_from_the_registry(monkeypatch, layouts, pushed, machine, layout, expected):
    monkeypatch.setattr(_platform._platform, "machine", lambda: machine)
    _root, facts = layouts[layout]
    assert ll.load(f"docker://{pushed[layout]}").id == facts[expected]["config_digest"]


@pytest.mark.parametrize("have, want, same", [
    ("linux/arm64/v8", "linux/arm64", True),
    ("linux/arm64", "linux/arm64/v8", True),
    ("linux/arm64/8", "linux/arm64/v8", True),
    ("linux/aarch64", "linux/arm64", True),
    ("linux/arm64/v9", "linux/arm64", False),
    ("linux/arm", "linux/arm/v7", True),
    ("linux/arm/7", "linux/arm/v7", True),
    ("linux/arm/v6", "linux/arm/v7", False),
    ("linux/arm/v7", "linux/arm/v6", False),
    ("linux/armhf", "linux/arm/v7", True),
    ("linux/x86_64", "linux/amd64", True),
    ("linux/amd64/v1", "linux/amd64", True),
    ("linux/amd64/v2", "linux/amd64", False),
    ("Linux/AMD64", "linux/amd64", True),
    ("windows/amd64", "linux/amd64", False),
    (None, "linux/amd64", False),
    ("linux/amd64", "amd64", False),
])
def test_matches(have, want, same):
    assert _platform.matches(have, want) is same


def test_attestation_rule():
    assert _platform.is_attestation("unknown/unknown")
    assert _platform.is_attestation(None, {"vnd.docker.reference.type": "attestation-manifest"})
    assert _platform.is_attestation("linux/amd64", {"vnd.docker.reference.type": "attestation-manifest"})
    assert not _platform.is_attestation("linux/amd64", {"vnd.docker.reference.type": "other"})
    assert not _platform.is_attestation("linux/amd64")
    assert not _platform.is_attestation(None)
