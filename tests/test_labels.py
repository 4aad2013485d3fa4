"""Step and image labels (layerlab.labels): the ``created_by`` strings below are
copied from real histories — ``docker history --no-trunc`` of images built here
by BuildKit and by the legacy builder (Docker 2x), docker-library's repo-info
record (../shared/data/repo-info-2018) and the dive test image — and every
expected label is written by hand."""
from __future__ import annotations

import pandas as pd
import pytest

import layerlab as ll
from layerlab.labels import (
    base_name, distinct_labels, normalise_created_by, shorten_middle, short_image_names, step_label, step_labels,
)

LONG = ('echo $VER > /v && echo "a very long command that goes on and on with many words in it to make it long '
        'enough for shortening in the middle of the text" > /long')

# (created_by as recorded, label at width 60)
BUILDKIT = [
    ('CMD ["sh"]', 'CMD ["sh"]'),
    ("LABEL org.opencontainers.image.base.name=busybox:local", "LABEL org.opencontainers.image.base.name=busybox:local"),
    ("WORKDIR /app", "WORKDIR /app"),
    ("ENV PATH=/x:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
     "ENV PATH=/x:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"[:38] + " … " + "/usr/bin:/sbin:/bin"),
    ("ADD a.txt /b.txt # buildkit", "ADD a.txt /b.txt"),
    ("COPY a.txt /app/ # buildkit", "COPY a.txt /app/"),
    ("RUN |2 DEBIAN_FRONTEND=noninteractive VER=1.2 /bin/echo hi # buildkit", "RUN /bin/echo hi"),
    (f"RUN |2 DEBIAN_FRONTEND=noninteractive VER=1.2 /bin/sh -c {LONG} # buildkit",
     'RUN echo $VER > /v && echo "a very … the text" > /long'),
    ("RUN |1 DEBIAN_FRONTEND=noninteractive /bin/sh -c apt-get install -y curl # buildkit",
     "RUN apt-get install -y curl"),
    ("ARG VER=1.2", "ARG VER=1.2"),
    ("COPY hello / # buildkit", "COPY hello /"),
]
LEGACY = [
    ('/bin/sh -c #(nop)  CMD ["sh"]', 'CMD ["sh"]'),
    ("/bin/sh -c #(nop) WORKDIR /app", "WORKDIR /app"),
    ("/bin/sh -c #(nop) ADD file:7a379d0ef3d363574f9a38cf03a78aa104889c30582434cdb486f5c62436edb0 in /b.txt ",
     "ADD file:7a379d0ef3d3… in /b.txt"),
    ("/bin/sh -c #(nop) COPY file:7a379d0ef3d363574f9a38cf03a78aa104889c30582434cdb486f5c62436edb0 in /app/ ",
     "COPY file:7a379d0ef3d3… in /app/"),
    ("|2 DEBIAN_FRONTEND=noninteractive VER=1.2 /bin/echo hi", "RUN /bin/echo hi"),
    (f"|2 DEBIAN_FRONTEND=noninteractive VER=1.2 /bin/sh -c {LONG}",
     'RUN echo $VER > /v && echo "a very … the text" > /long'),
    ("/bin/sh -c #(nop)  ARG VER=1.2", "ARG VER=1.2"),
    ("/bin/sh -c apt-get update && apt-get install -y curl", "RUN apt-get update && apt-get install -y curl"),
]
REPO_INFO = [  # python:3.6-slim, 2017 (tabs as published)
    ("RUN cd /usr/local/bin \t&& ln -s idle3 idle \t&& ln -s pydoc3 pydoc \t&& ln -s python3 python "
     "\t&& ln -s python3-config python-config",
     "RUN cd /usr/local/bin && ln -s idle3 … python-config"),
    ("RUN set -ex; \t\tapt-get update; \tapt-get install -y --no-install-recommends wget; "
     "\trm -rf /var/lib/apt/lists/*;", "RUN apt-get update; apt-get install -y … /lib/apt/lists/*;"),
    ("ENV PYTHON_VERSION=3.6.4", "ENV PYTHON_VERSION=3.6.4"),
]


@pytest.mark.parametrize("created_by, label", BUILDKIT + LEGACY + REPO_INFO)
def test_step_label_of_real_history(created_by, label):
    got = step_label(created_by, 60, position=3)
    assert got == label
    assert len(got) <= 60


def test_buildkit_and_legacy_spell_one_step_alike():
    """The same Dockerfile built twice: BuildKit's and the legacy builder's texts get one label."""
    bk = dict(BUILDKIT)
    legacy = dict(LEGACY)
    assert step_label(f"RUN |2 DEBIAN_FRONTEND=noninteractive VER=1.2 /bin/sh -c {LONG} # buildkit") == \
        step_label(f"|2 DEBIAN_FRONTEND=noninteractive VER=1.2 /bin/sh -c {LONG}")
    assert bk['CMD ["sh"]'] == legacy['/bin/sh -c #(nop)  CMD ["sh"]']


@pytest.mark.parametrize("created_by, position, base, label", [
    # debian:stretch in repo-info 2018: the base is an ADD of a file into /
    ("ADD file:eb2519421c9794ccc99d483c07f59ba305531bc9b4dc294e74d2ddb7de69e52a in / ", 0, None,
     "base layer (ADD file:eb2519421c97… in /)"),
    ("ADD file:eb2519421c9794ccc99d483c07f59ba305531bc9b4dc294e74d2ddb7de69e52a in / ", 0, "debian:stretch",
     "base: debian:stretch"),
    ("/bin/sh -c #(nop) ADD file:eb2519421c9794ccc99d483c07f59ba305531bc9b4dc294e74d2ddb7de69e52a in / ", None,
     None, "base layer (ADD file:eb2519421c97… in /)"),
    ("", 0, None, "base layer (imported)"),            # `docker import` (comment "Imported from -")
    ("", 0, "busybox:local", "base: busybox:local"),
    (None, 0, None, "base layer"),                   # no step paired with layer 0
    # repo-info 2026 (python:3.12-slim): docker-library's debian rootfs says its suite
    ("RUN # debian.sh --arch 'amd64' out/ 'trixie' '@1785715200'", 0, None, "base: debian:trixie"),
    ("# debian.sh --arch 'amd64' out/ 'trixie' '@1785715200'", 0, None, "base: debian:trixie"),
    # alpine's official image, built by BuildKit: a tarball added at /
    ("ADD alpine-minirootfs-3.20.3-x86_64.tar.gz / # buildkit", 0, None,
     "base layer (ADD alpine-minirootfs-3.20.3-x86_64.tar.gz /)"),
    ("ADD alpine-minirootfs-3.20.3-x86_64.tar.gz / # buildkit", 2, None, "ADD alpine-minirootfs-3.20.3-x86_64.tar.gz /"),
    (None, 4, None, "(no history step)"),
    ("", 2, None, "(no command recorded)"),
])
def test_base_layer_is_named_never_null(created_by, position, base, label):
    assert step_label(created_by, 60, position=position, base=base) == label


def test_step_labels_vectorised():
    got = step_labels(["ADD file:eb2519421c9794ccc99d483c07f59ba305531bc9b4dc294e74d2ddb7de69e52a in / ",
                       "RUN |1 A=b /bin/sh -c make # buildkit", None, pd.NA],
                      positions=[0, 1, 2, pd.NA], bases=["debian:stretch", None, None, None])
    assert str(got.dtype) == "string"
    assert got.tolist() == ["base: debian:stretch", "RUN make", "(no history step)", "base layer"]


def test_normalise_created_by():
    assert normalise_created_by("/bin/sh -c #(nop)  ENV A=1") == ("ENV", "ENV A=1")
    assert normalise_created_by("RUN |1 V=2 /bin/sh -c make # buildkit") == ("RUN", "RUN make")
    assert normalise_created_by(None) == ("IMPORT", "IMPORT")
    assert normalise_created_by("bazel build //x") == ("UNKNOWN", "bazel build //x")


@pytest.mark.parametrize("created_by, expected", [
    # Windows images' legacy history, as repo-info prints it (docker-library's nats, 2018)
    ('RUN cmd /S /C #(nop)  EXPOSE 4222/tcp 8222/tcp', ("EXPOSE", "EXPOSE 4222/tcp 8222/tcp")),
    ('cmd /S /C #(nop)  CMD ["gnatsd"]', ("CMD", 'CMD ["gnatsd"]')),
    ("cmd /S /C mkdir C:\\app", ("RUN", "RUN mkdir C:\\app")),
    ("powershell -Command Invoke-WebRequest $url -OutFile x.zip",
     ("RUN", "RUN Invoke-WebRequest $url -OutFile x.zip")),
    ("#(nop) ENV A=1", ("ENV", "ENV A=1")),
])
def test_normalise_windows_and_bare_metadata_steps(created_by, expected):
    """The same instruction the sources pair steps by (sources/_pairing.instruction_of uses this rule)."""
    from layerlab.sources._pairing import instruction_of

    assert normalise_created_by(created_by) == expected
    assert instruction_of(created_by) == expected[0]


def test_shorten_middle():
    assert shorten_middle("short", 10) == "short"
    assert shorten_middle("abcdefghijklmnopqrstuvwxyz", 15) == "abcdefgh … wxyz"
    assert shorten_middle("abcdefghij", 5) == "abcd…"


def test_base_name_from_config_label():
    cfg = {"config": {"Labels": {"org.opencontainers.image.base.name": "docker.io/library/debian:bookworm"}}}
    assert base_name(cfg) == "debian:bookworm"
    assert base_name({"config": {"Labels": None}}) is None
    assert base_name(None, {"org.opencontainers.image.base.name": "ghcr.io/x/base:1"}) == "ghcr.io/x/base:1"


@pytest.mark.parametrize("names, expected", [
    (["docker.io/library/debian:bookworm", "docker.io/library/debian:latest", "docker.io/library/python:3.12"],
     ["debian:bookworm", "debian", "python:3.12"]),
    (["localhost:5000/team/app:1", "localhost:5000/team/web:latest"], ["app:1", "web"]),
    # the same repository on two registries: the registry must stay
    (["reg-a:5000/app:1", "reg-b:5000/app:1"], ["reg-a:5000/app:1", "reg-b:5000/app:1"]),
    # ":latest" dropped only where the bare name is not taken
    (["app", "app:latest"], ["app", "app:latest"]),
    (["only/one:latest"], ["only/one"]),
])
def test_short_image_names(names, expected):
    got = short_image_names(names)
    assert [got[n] for n in names] == expected
    assert len(set(got.values())) == len(names)


def test_distinct_labels_never_merge_two_keys():
    got = distinct_labels(["RUN make", "RUN make", "COPY . /", "RUN make"],
                          ["sha256:aaaaaaaaaaaaaaaa", "sha256:bbbbbbbbbbbbbbbb", "sha256:c", "sha256:aaaaaaaaaaaaaaaa"])
    assert got == ["RUN make [aaaaaaaaaaaa]", "RUN make [bbbbbbbbbbbb]", "COPY . /", "RUN make [aaaaaaaaaaaa]"]


def test_layer_usage_bars_keep_layers_apart():
    """Two different layers made by the same command (two images' ``RUN apt-get update``)
    are two bars, not one stacked bar."""
    from layerlab import charts

    usage = pd.DataFrame({
        "chain_id": ["sha256:" + "1" * 64, "sha256:" + "2" * 64],
        "size": pd.array([10, 20], dtype="Int64"), "images": pd.array([1, 1], dtype="Int64"),
        "position": pd.array([1, 1], dtype="Int64"),
        "created_by": ["RUN |1 A=1 /bin/sh -c apt-get update # buildkit", "/bin/sh -c apt-get update"],
    })
    spec = charts.layer_usage_bars(usage).to_dict()
    rows = next(iter(spec["datasets"].values()))
    assert sorted(r["command"] for r in rows) == ["RUN apt-get update [111111111111]",
                                                  "RUN apt-get update [222222222222]"]


@pytest.mark.engine
def test_engine_image_labels(engine):
    """An image built here by BuildKit with build args and an
    ``org.opencontainers.image.base.name`` label: its cumulative steps read as
    the Dockerfile, the base named after that label."""
    enginekit = pytest.importorskip("enginekit")
    enginekit.import_base(enginekit.BASE_TAG)
    tag = "layerlab-test/labels:1"
    enginekit.build(tag, f"FROM {enginekit.BASE_TAG}\n"
                         "ARG DEBIAN_FRONTEND=noninteractive\n"
                         "RUN echo hi > /hi\n"
                         "COPY a.txt /app/\n"
                         "LABEL org.opencontainers.image.base.name=docker.io/library/busybox:local\n",
                    {"a.txt": b"a\n"})
    c = ll.cumulative(ll.load(f"docker-daemon:{tag}").layers())
    assert c["step"].tolist() == ["base: busybox:local", "RUN echo hi > /hi", "COPY a.txt /app/"]


def test_mode_text_reads_as_ls(tmp_path):
    """Modes as people read them: the expected text is what `ls -ld` prints for
    real files given those bits."""
    import os
    import subprocess

    from layerlab.labels import mode_text, mode_texts

    cases = []
    for name, bits, kind in (("f755", 0o755, "file"), ("f644", 0o644, "file"), ("suid", 0o4755, "file"),
                             ("d755", 0o755, "dir"), ("tmp", 0o1777, "dir"), ("g2750", 0o2750, "dir")):
        p = tmp_path / name
        p.mkdir() if kind == "dir" else p.write_bytes(b"")
        os.chmod(p, bits)
        ls = subprocess.run(["ls", "-ld", str(p)], capture_output=True, text=True, check=True).stdout.split()[0]
        cases.append((bits, kind, ls.rstrip(".+")))
    (tmp_path / "link").symlink_to("f755")
    ls = subprocess.run(["ls", "-ld", str(tmp_path / "link")], capture_output=True, text=True, check=True).stdout
    cases.append((0o777, "symlink", ls.split()[0].rstrip(".+")))
    for bits, kind, want in cases:
        assert mode_text(bits, kind) == want, (oct(bits), kind)
    assert mode_texts(pd.array([0o755, None], dtype="Int64"), ["file", "dir"]).tolist() == [cases[0][2], ""]
