"""repo-info: (docker-library markdown) against the published figures and readings by hand.

Expected values come from ../shared/README.md (an independent parser's
figures), from simple regexes written here over the markdown (not layerlab's
parser), and for the pairing rules from small hand-made histories.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

import layerlab as ll
from layerlab.errors import FormatError, LayerlabError, SourceError
from layerlab.model import HistoryStep
from layerlab.sources import split_source
from layerlab.sources._pairing import EMPTY_GZIP_DIGEST, pair_by_evidence
from layerlab.sources.repo_info import normalise_platform, parse_size

from conftest import REPO_INFO_2018, REPO_INFO_2026


@pytest.fixture(scope="module")
def corpus(shared_dir) -> Path:
    if not REPO_INFO_2018.is_dir():
        pytest.skip(f"{REPO_INFO_2018} is absent")
    return REPO_INFO_2018


@pytest.fixture(scope="module")
def amd64(corpus):
    fleet = ll.load_many(f"repo-info:{corpus}", progress=False)
    return fleet, fleet.images(), fleet.layers(), fleet.history()


# ---------------------------------------------------------------------------
# the published figures (../shared/README.md), linux/amd64
# ---------------------------------------------------------------------------
def test_published_figures(amd64):
    fleet, images, layers, _ = amd64
    assert images["image"].str.split(":").str[0].nunique() == 142       # images
    assert len(images) == 3086                                          # tags
    assert images["id"].nunique() == 976                                # distinct Image IDs
    assert len(layers) == 26163                                         # tag-layer rows
    assert layers["digest"].nunique() == 3167                           # distinct layer digests
    per_image = images.drop_duplicates("id")["compressed_size"]
    assert per_image.notna().all()
    assert round(int(per_image.sum()) / 1e9, 2) == 171.25               # GB over distinct images
    per_digest = layers.drop_duplicates("digest")["compressed_size"]
    assert per_digest.notna().all()
    assert round(int(per_digest.sum()) / 1e9, 2) == 63.39               # GB over distinct digests
    assert set(images["platform"]) == {"linux/amd64"}
    assert layers["diff_id"].isna().all() and layers["size"].isna().all()  # unknown here, never guessed


def test_frames_types_and_unique_keys(amd64):
    _, images, layers, history = amd64
    assert images["image"].is_unique
    assert str(layers["compressed_size"].dtype) == "Int64"
    assert str(history["created"].dtype) == "datetime64[ns, UTC]"
    assert history["created"].notna().all()
    assert set(history["pairing"]) <= {"alignment", "no_layer", "unpaired"}


def test_total_size_equals_sum_of_layers(corpus, amd64):
    """Every amd64 section's 'Total Size' bytes (regex here) equals the sum of layerlab's layer sizes:
    this also proves the sub-KB sizes ('249.0 B') that layerlab keeps as exact are exact."""
    _, images, _, _ = amd64
    totals: dict[str, int] = {}
    for f in corpus.glob("repos/*/remote/*.md"):
        text = f.read_text()
        for m in re.finditer(r"^### `([^`]+)` - linux; amd64\n(.*?)(?=^### |\Z)", text, re.M | re.S):
            t = re.search(r"Total Size: \*\*[^(*]*\((\d+) bytes\)", m.group(2))
            if t:
                totals[m.group(1)] = int(t.group(1))
    got = dict(zip(images["image"], images["compressed_size"].astype("int64")))
    assert len(totals) > 3000
    assert {k: got[k] for k in totals} == totals


# ---------------------------------------------------------------------------
# spot checks by hand: independent regexes over one section
# ---------------------------------------------------------------------------
def _section(path: Path, platform_line: str) -> str:
    text = path.read_text()
    m = re.search(r"^### `[^`]+` - " + re.escape(platform_line) + r"\n(.*?)(?=^### |\Z)", text, re.M | re.S)
    assert m, (path, platform_line)
    return m.group(1)


@pytest.mark.parametrize("rel, platform, platform_line", [
    ("repos/busybox/remote/latest.md", "linux/amd64", "linux; amd64"),
    ("repos/busybox/remote/latest.md", "linux/arm/v7", "linux; arm variant v7"),
    ("repos/zookeeper/remote/3.4.11.md", "linux/amd64", "linux; amd64"),
    ("repos/hello-world/remote/latest.md", "linux/amd64", "linux; amd64"),
])
def test_spot_check_against_the_markdown(corpus, rel, platform, platform_line):
    path = corpus / rel
    sec = _section(path, platform_line)
    img = ll.load(f"repo-info:{path}", platform=platform)
    assert img.id == re.search(r"Image ID: `(sha256:[0-9a-f]{64})`", sec).group(1)
    assert img.manifest_digest == re.search(r"docker pull \S+@(sha256:[0-9a-f]{64})", sec).group(1)
    digests = re.findall(r"^\t-\t`(sha256:[0-9a-f]{64})`", sec, re.M)
    sizes = [int(b) if b else int(float(s)) for s, b in
             re.findall(r"^\t\tSize: ([\d.]+) [KMG]?B(?: \((\d+) bytes\))?", sec, re.M)]
    lay = img.layers()
    assert list(lay["digest"]) == digests
    assert [int(x) for x in lay["compressed_size"]] == sizes
    cmds = re.findall(r"^# \w{3}, .* GMT\n(?:# ARGS: .*\n)?(.*)$", sec, re.M)
    h = img.history()
    assert list(h["created_by"]) == [c.rstrip() for c in cmds]
    assert img.platform == platform
    assert img.reference == path.read_text().split("`")[1]  # "image:tag" from the title


def test_args_lines_and_dates(corpus):
    img = ll.load(f"repo-info:{corpus / 'repos/zookeeper/remote/3.4.11.md'}")
    h = img.history()
    with_args = h[h["comment"].notna()]
    assert len(with_args) >= 1
    assert with_args["comment"].str.startswith("ARGS: DISTRO_NAME=zookeeper-3.4.11").all()
    assert with_args["created_by"].str.startswith("RUN ").all()
    first = h.iloc[0]
    sec = _section(corpus / "repos/zookeeper/remote/3.4.11.md", "linux; amd64")
    date = re.search(r"^# \w{3}, (\d\d \w{3} \d{4} \d\d:\d\d:\d\d) GMT", sec, re.M).group(1)
    assert first["created"] == pd.Timestamp(date, tz="UTC")


def test_single_platform_file_takes_the_file_digest(corpus):
    path = corpus / "repos/java/remote/openjdk-6.md"
    text = path.read_text()
    assert "### " in text and text.count("docker pull") == 1
    img = ll.load(f"repo-info:{path}")
    assert img.manifest_digest == re.search(r"@(sha256:[0-9a-f]{64})", text).group(1)


def test_missing_platform_lists_the_platforms(corpus):
    path = corpus / "repos/busybox/remote/latest.md"
    with pytest.raises(SourceError) as e:
        ll.load(f"repo-info:{path}", platform="linux/mips64le")
    msg = str(e.value)
    assert "linux/mips64le" in msg and "linux/arm64/v8" in msg and "linux/s390x" in msg


def test_all_platforms_of_one_image_dir(corpus):
    fleet = ll.load_many(f"repo-info:{corpus / 'repos/busybox'}", platform=None)
    n_sections = sum(len(re.findall(r"^### ", f.read_text(), re.M))
                     for f in (corpus / "repos/busybox/remote").glob("*.md"))
    assert len(fleet) == n_sections
    refs = fleet.images()["image"]
    assert refs.is_unique
    assert "busybox:latest@linux/arm/v7" in set(refs)


def test_whole_2018_corpus_loads_every_platform(corpus):
    fleet = ll.load_many(f"repo-info:{corpus}", platform=None, progress=False)
    n_sections = sum(len(re.findall(r"^### ", f.read_text(), re.M)) for f in corpus.glob("repos/*/remote/*.md"))
    assert len(fleet) == n_sections == 11216
    im = fleet.images()
    assert im["image"].is_unique
    windows = im[im["platform"] == "windows/amd64"]
    assert len(windows) == 165 + 96 + 6  # sections headed "windows version …; amd64" (grep)
    assert windows["image"].str.contains(r"@windows/amd64:10\.0\.").all()


def test_process_pool_gives_the_same_frames(corpus):
    sub = corpus / "repos/python"
    a = ll.load_many(f"repo-info:{sub}", progress=False)
    b = ll.load_many(f"repo-info:{sub}", workers=2, progress=False)
    pd.testing.assert_frame_equal(a.layers(), b.layers())
    pd.testing.assert_frame_equal(a.history(), b.history())


# ---------------------------------------------------------------------------
# the current format (2026 sample)
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sample_2026(shared_dir) -> Path:
    path = REPO_INFO_2026 / "repos/python/remote/3.12-slim.partial.md"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


def test_2026_sample_drops_attestations(sample_2026):
    text = sample_2026.read_text()
    assert "unknown; unknown" in text
    fleet = ll.load_many(f"repo-info:{REPO_INFO_2026}", platform=None)
    assert [i.platform for i in fleet] == ["linux/amd64"]  # the attestation section is not an image
    img = ll.load(f"repo-info:{sample_2026}")
    sec = _section(sample_2026, "linux; amd64")
    assert img.id == re.search(r"Image ID: `(sha256:[0-9a-f]{64})`", sec).group(1)
    lay = img.layers()
    assert list(lay["digest"]) == re.findall(r"^\t-\t`(sha256:[0-9a-f]{64})`", sec, re.M)
    assert [int(x) for x in lay["compressed_size"]] == [29780765, 1293276, 12113733, 249]
    assert set(lay["media_type"]) == {"application/vnd.oci.image.layer.v1.tar+gzip"}
    h = img.history()
    assert h["created_by"].str.endswith("# buildkit").sum() == 3
    # 4 RUNs, 4 layers: each RUN its layer, in order
    runs = h[h["created_by"].str.startswith("RUN")]
    assert list(runs["layer_position"]) == [0, 1, 2, 3]
    assert set(h.loc[~h["created_by"].str.startswith("RUN"), "pairing"]) == {"no_layer"}


def test_2026_sample_other_platform_error_lists_platforms(sample_2026):
    with pytest.raises(SourceError, match=r"linux/arm64.*lists linux/amd64"):
        ll.load(f"repo-info:{sample_2026}", platform="linux/arm64")


# ---------------------------------------------------------------------------
# pairing: invariants over the corpus, rules on hand-made histories
# ---------------------------------------------------------------------------
META = {"ENV", "CMD", "LABEL", "EXPOSE", "ENTRYPOINT", "VOLUME", "USER", "ARG", "ONBUILD",
        "MAINTAINER", "STOPSIGNAL", "SHELL"}


def test_pairing_never_contradicts_the_text(amd64):
    fleet, _, _, history = amd64
    kind = history["created_by"].str.split(" ").str[0]
    # COPY/ADD always write files: never "empty"
    assert not (kind.isin(["COPY", "ADD"]) & (history["pairing"] == "no_layer")).any()
    for img in fleet:
        claimed = [s.layer_position for s in img.history_list if s.layer_position is not None]
        assert claimed == sorted(set(claimed)), img.reference           # each layer once, in order
        for s in img.history_list:
            # metadata takes a layer only when the layer is the empty gzip tar (pre-1.10 builders)
            if s.layer_position is not None and s.created_by.split(" ")[0] in META:
                assert img.layer_list[s.layer_position].digest == EMPTY_GZIP_DIGEST, img.reference
        # every unclaimed layer is explained by an unpaired step and a warning
        if img.unpaired_layers:
            assert any(s.pairing == "unpaired" for s in img.history_list), img.reference
            assert img.warnings and "unpaired" in img.warnings[0]
    share = (history["pairing"] == "unpaired").mean()
    assert share < 0.05, f"{share:.1%} of history rows unpaired"


def test_old_builder_empty_layers_pair_with_metadata(corpus):
    """hipache (Docker 1.9.1): every step made a layer, the metadata ones the 32-byte empty gzip."""
    path = corpus / "repos/hipache/remote/latest.md"
    sec = _section(path, "linux; amd64")
    n_steps = len(re.findall(r"^# \w{3}, .* GMT$", sec, re.M))
    n_layers = len(re.findall(r"^\t-\t`sha256:", sec, re.M))
    assert n_steps == n_layers == 15
    img = ll.load(f"repo-info:{path}")
    h = img.history()
    assert list(h["layer_position"]) == list(range(15))
    for _, row in h.iterrows():
        if row["created_by"].split(" ")[0] in ("CMD", "ENV", "EXPOSE"):
            assert img.layer_list[row["layer_position"]].digest == EMPTY_GZIP_DIGEST


def test_base_images_localise_the_ambiguity(corpus, tmp_path):
    """node:9.4.0-onbuild has one RUN more than layers; node:9.4.0 (its base, same steps and layers
    up to 'CMD ["node"]') fixes the steps above the base."""
    files = [corpus / "repos/node/remote/9.4.0-onbuild.md", corpus / "repos/node/remote/9.4.0.md"]
    tree = tmp_path / "repos" / "node" / "remote"
    tree.mkdir(parents=True)
    for f in files:
        (tree / f.name).write_text(f.read_text())
    alone = ll.load(f"repo-info:{files[0]}")
    together = ll.load_many(f"repo-info:{tmp_path}")
    assert "node:9.4.0-onbuild" in [i.reference for i in together]
    onbuild = together["node:9.4.0-onbuild"]
    base = together["node:9.4.0"]
    # the premise, read from the markdown: the base's layers are the onbuild's first ones
    sec = _section(files[0], "linux; amd64")
    assert len(re.findall(r"^\t-\t`sha256:", sec, re.M)) == len(base.layer_list) + 1
    n_unpaired_alone = sum(s.pairing == "unpaired" for s in alone.history_list)
    n_unpaired = sum(s.pairing == "unpaired" for s in onbuild.history_list)
    assert n_unpaired < n_unpaired_alone
    mkdir = next(s for s in onbuild.history_list if s.created_by == "RUN mkdir -p /usr/src/app")
    assert mkdir.pairing == "alignment" and mkdir.layer_position == len(base.layer_list)


def _steps(*cmds: str) -> list[HistoryStep]:
    return [HistoryStep(index=i, created_by=c) for i, c in enumerate(cmds)]


def test_pairing_extra_run_is_flagged_not_guessed():
    steps = _steps("ADD file:a in /", "CMD [\"sh\"]", "RUN a", "RUN b", "COPY file:c in /c")
    pair_by_evidence(steps, 3)
    assert [s.pairing for s in steps] == ["alignment", "no_layer", "unpaired", "unpaired", "alignment"]
    assert [s.layer_position for s in steps] == [0, None, None, None, 2]


def test_pairing_workdir_cannot_take_a_big_layer():
    steps = _steps("ADD file:a in /", "WORKDIR /app", "RUN make", "WORKDIR /srv")
    pair_by_evidence(steps, 3, compressed_sizes=[1000000, 150, 5000000])
    assert [s.layer_position for s in steps] == [0, 1, 2, None]
    pair_by_evidence(steps, 3, compressed_sizes=[1000000, 5000000, 150])
    assert [s.layer_position for s in steps] == [0, None, 1, 2]
    pair_by_evidence(steps, 3)  # no sizes: the two WORKDIRs are interchangeable
    assert [s.pairing for s in steps] == ["alignment", "unpaired", "unpaired", "unpaired"]


def test_pairing_cuts_and_contradictions():
    steps = _steps("ADD file:a in /", "RUN a", "RUN b", "ENV X=1", "RUN c", "RUN d")
    pair_by_evidence(steps, 4, cuts=[(3, 2)])  # a base of 3 steps made 2 layers
    assert [s.layer_position for s in steps] == [0, None, None, None, 2, 3]
    assert [s.pairing for s in steps][:3] == ["alignment", "unpaired", "unpaired"]
    # more layer-making steps than layers, none droppable: all flagged, nothing claimed
    steps = _steps("ADD file:a in /", "COPY x in /x", "ENV A=1")
    pair_by_evidence(steps, 1)
    assert [s.pairing for s in steps] == ["unpaired", "unpaired", "no_layer"]
    # a reported size > 0 decides (method 'size')
    steps = [HistoryStep(0, "WORKDIR /a", size=12), HistoryStep(1, "WORKDIR /b", size=0)]
    pair_by_evidence(steps, 1)
    assert [(s.layer_position, s.pairing) for s in steps] == [(0, "size"), (None, "no_layer")]


# ---------------------------------------------------------------------------
# small helpers and bad input
# ---------------------------------------------------------------------------
def test_parse_size_and_platforms():
    assert parse_size("1.3 MB (1293276 bytes)") == 1293276
    assert parse_size("249.0 B") == 249
    assert parse_size("249.5 B") is None
    assert parse_size("1.3 MB") is None
    assert normalise_platform("linux; arm variant v7") == ("linux/arm/v7", None)
    assert normalise_platform("windows version 10.0.14393.2007; amd64") == ("windows/amd64", "10.0.14393.2007")


def test_bare_paths_are_detected(corpus, sample_2026):
    assert split_source(str(sample_2026))[0] == "repo-info"
    assert split_source(str(corpus))[0] == "repo-info"


def test_bad_input(tmp_path):
    bad = tmp_path / "notes.md"
    bad.write_text("# hello\n<script>alert(1)</script>\n")
    with pytest.raises(FormatError, match="notes.md"):
        ll.load(f"repo-info:{bad}")
    with pytest.raises(SourceError, match="no such file"):
        ll.load(f"repo-info:{tmp_path / 'absent.md'}")
    binary = tmp_path / "x.md"
    binary.write_bytes(bytes(range(256)) * 10)
    with pytest.raises(LayerlabError):
        ll.load(f"repo-info:{binary}")
    empty_dir = tmp_path / "repos"
    empty_dir.mkdir()
    with pytest.raises(SourceError, match="no repos/<image>/remote/<tag>.md"):
        ll.load_many(f"repo-info:{empty_dir}")


def test_truncated_file_loads_what_is_there(corpus, tmp_path):
    text = (corpus / "repos/busybox/remote/latest.md").read_text()
    cut = text[: text.index("Size: 723.1 KB")]  # inside the amd64 section's only layer
    p = tmp_path / "busybox-cut.md"
    p.write_text(cut)
    img = ll.load(f"repo-info:{p}")
    assert img.layer_list == [] and len(img.history_list) == 2
    assert img.id == "sha256:5b0d59026729b68570d99bc4f3f7c31a2e4f2a5736435641565d93e7c25bd2c3"
