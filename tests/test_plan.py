"""The base planner on Dockerfiles and histories written in the test; expected
Dockerfiles, tries and byte counts are worked out by hand below."""
from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd
import pytest

import layerlab as ll
from layerlab.analysis.plan import PlanError, normalise_created_by, parse_dockerfile
from layerlab.model import HistoryStep, Image, Layer, pair_by_empty_layer

# The article's two applications: same OS, security tools, general tools and libraries,
# different code and config.
APP1 = """\
# syntax=docker/dockerfile:1
ARG OS=debian:bookworm
FROM ${OS}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y  openssl \\
        ca-certificates
RUN apt-get install -y curl git
LABEL team=one
RUN pip install numpy
COPY app1 /app
CMD ["python", "/app/main.py"]
"""
APP2 = """\
ARG OS=debian:bookworm
FROM $OS AS final
ENV DEBIAN_FRONTEND noninteractive
RUN apt-get update && apt-get install -y openssl ca-certificates
RUN apt-get install -y curl git
RUN pip install numpy
RUN pip install flask
COPY app2 /app
"""


# the install units of APP1/APP2 as the planner writes them (by hand: both apps install
# openssl, ca-certificates, curl and git with apt, numpy with pip; app2 also flask)
APT_UNIT = (
    "RUN apt-get update \\\n"
    "    && DEBIAN_FRONTEND=noninteractive apt-get install -y ca-certificates curl git openssl \\\n"
    "    && apt-get clean \\\n"
    "    && rm -rf /var/lib/apt/lists/*\n"
)


def test_two_apps_one_base_at_the_branch_point():
    # by effect (the default): the two apt steps of each app are one install unit, written
    # with its cleanup; the ENV (not needed by the units, which set DEBIAN_FRONTEND themselves)
    # keeps its place among the apps' other steps
    plan = ll.plan_bases({"app1": APP1, "app2": APP2}, split="branch")
    assert plan.dockerfiles["f1"] == "FROM debian:bookworm\n" + APT_UNIT + "RUN pip install --no-cache-dir numpy\n"
    assert plan.dockerfiles["app1"] == (
        'FROM f1\nENV DEBIAN_FRONTEND=noninteractive\nCOPY app1 /app\nLABEL team=one\nCMD ["python", "/app/main.py"]\n'
    )
    assert plan.dockerfiles["app2"] == (
        "FROM f1\nRUN pip install --no-cache-dir flask\nENV DEBIAN_FRONTEND noninteractive\nCOPY app2 /app\n"
    )
    assert list(plan.dockerfiles) == ["f1", "app1", "app2"]
    trie = plan.trie
    # root + FROM + 2 shared units + app1's ENV and COPY + app2's unit, ENV and COPY
    assert len(trie) == 9
    shared = trie[trie["n_apps"] == 2]
    assert list(shared["instruction"]) == ["ROOT", "FROM", "RUN", "RUN"]
    assert "LABEL" not in set(trie["instruction"])  # metadata goes to the app, not the trie
    assert set(trie.columns) >= {"node", "parent", "instruction", "apps"}
    assert repr(plan).startswith("<layerlab.BasePlan: 2 apps, 1 base images (f1)")


def test_by_default_one_base_per_level():
    # the default for Dockerfiles: the trunk cut where it moves from the OS's packages to the
    # Python libraries (here also one step each, so the same bases as split="step")
    plan = ll.plan_bases({"app1": APP1, "app2": APP2})
    assert plan.bases == ["f1", "f2"]
    assert plan.dockerfiles["f1"] == "FROM debian:bookworm\n" + APT_UNIT
    assert plan.dockerfiles["f2"] == "FROM f1\nRUN pip install --no-cache-dir numpy\n"
    assert plan.dockerfiles["app1"].startswith("FROM f2\nENV DEBIAN_FRONTEND=noninteractive\n")
    assert plan.dockerfiles["app2"].startswith("FROM f2\nRUN pip install --no-cache-dir flask\n")


def test_split_per_step_gives_the_article_hierarchy():
    plan = ll.plan_bases({"app1": APP1, "app2": APP2}, split="step")
    assert plan.bases == ["f1", "f2"]  # the OS packages, then the Python libraries
    assert plan.dockerfiles["f1"] == "FROM debian:bookworm\n" + APT_UNIT
    assert plan.dockerfiles["f2"] == "FROM f1\nRUN pip install --no-cache-dir numpy\n"
    assert plan.dockerfiles["app2"].startswith("FROM f2\n")
    assert list(plan.images.set_index("image").loc[["f1", "f2"], "parent"].fillna("-")) == ["-", "f1"]
    # by text (the old comparison), each install step is its own level
    text = ll.plan_bases({"app1": APP1, "app2": APP2}, split="step", by_effect=False)
    assert text.bases == ["f1", "f2", "f3"]
    assert text.dockerfiles["f2"] == "FROM f1\nRUN apt-get install -y curl git\n"
    assert text.dockerfiles["f3"] == "FROM f2\nRUN pip install numpy\n"


def _img(name, steps, base_diff="sha256:" + "b" * 64):
    """An Image from (created_by, size or None for an empty step) pairs; the
    first layer is a docker import with diff_id ``base_diff``."""
    layers, hist = [], []
    for i, (cmd, size) in enumerate(steps):
        empty = size is None
        hist.append(HistoryStep(index=i, created_by=cmd, empty_layer=empty))
        if not empty:
            diff = base_diff if not layers else "sha256:" + format(abs(hash((name, i, cmd))), "064x")[:64]
            if cmd.startswith("RUN"):
                # a RUN makes the same content in both apps here (same command, same bytes)
                diff = "sha256:" + format(abs(hash((cmd, size))), "064x")[:64]
            layers.append(Layer(position=len(layers), diff_id=diff, size=size))
    pair_by_empty_layer(hist, len(layers))
    return Image(reference=name, source="test", layer_list=layers, history_list=hist)


NAIVE1 = [
    ("", 1000),
    ("ENV DEBIAN_FRONTEND=noninteractive", None),
    ("RUN /bin/sh -c apt-get update && apt-get install -y openssl ca-certificates # buildkit", 300),
    ("RUN /bin/sh -c apt-get install -y curl git # buildkit", 200),
    ("RUN /bin/sh -c pip install numpy # buildkit", 100),
    ("COPY app1 /app # buildkit", 7),
    ('CMD ["python", "/app/main.py"]', None),
]
NAIVE2 = [
    ("", 1000),
    ("/bin/sh -c #(nop)  ENV DEBIAN_FRONTEND=noninteractive", None),
    ("/bin/sh -c apt-get update && apt-get install -y openssl ca-certificates", 300),
    ("|1 V=2 /bin/sh -c apt-get install -y curl git", 200),
    ("RUN /bin/sh -c pip install numpy # buildkit", 100),
    ("RUN /bin/sh -c pip install flask # buildkit", 50),
    ("COPY app2 /app # buildkit", 11),
]


def test_histories_and_savings_by_hand():
    a, b = _img("app1", NAIVE1), _img("app2", NAIVE2)
    plan = ll.plan_bases([a, b])
    # legacy, BuildKit and build-arg forms normalise to the same steps: base = import + ENV + 3 RUNs
    assert plan.bases == ["f1"]
    f1 = plan.images.set_index("image").loc["f1"]
    assert int(f1["size"]) == 1000 + 300 + 200 + 100
    s = plan.savings.set_index("image")
    assert int(s.loc["app1", "pulled_after_bytes"]) == 1000 + 300 + 200 + 100 + 7
    assert int(s.loc["app2", "pulled_after_bytes"]) == 50 + 11
    assert int(s.loc["app2", "pulled_with_bases_bytes"]) == 50 + 11
    assert int(s.loc["(one host, all apps)", "stored_after_bytes"]) == 1600 + 7 + 50 + 11


def test_histories_with_different_layers_show_the_saving():
    # naive builds: the same steps built separately make different diff_ids (timestamps)
    a = _img("app1", NAIVE1)
    b = _img("app2", [(c, s) for c, s in NAIVE2])
    for l in b.layer_list[1:]:
        l.diff_id = l.diff_id[:-4] + "beef"
    b.refresh_chain_ids()
    plan = ll.plan_bases({"app1": a, "app2": b})
    s = plan.savings.set_index("image")
    host = s.loc["(one host, all apps)"]
    assert int(host["stored_before_bytes"]) == (1000 + 300 + 200 + 100 + 7) + (300 + 200 + 100 + 50 + 11)
    assert int(host["stored_after_bytes"]) == 1000 + 300 + 200 + 100 + 7 + 50 + 11
    assert int(s.loc["app2", "pulled_before_bytes"]) == 300 + 200 + 100 + 50 + 11
    assert int(s.loc["app2", "pulled_after_bytes"]) == 50 + 11
    assert int(s.loc["app2", "saved_bytes"]) == 600


def test_dockerfiles_sized_from_images():
    a = _img("app1", NAIVE1)
    b = _img("app2", NAIVE2)
    plan = ll.plan_bases({"app1": APP1, "app2": APP2}, images={"app1": a, "app2": b})
    trie = plan.trie.set_index("step")
    assert int(trie.loc["RUN pip install --no-cache-dir numpy", "size"]) == 100
    # the apt unit replaces each app's two apt steps (300 + 200 bytes), which installed nothing else
    apt = trie[trie.index.str.contains("apt-get install")]
    assert list(apt["size"]) == [300 + 200]
    assert int(trie.loc["FROM debian:bookworm", "size"]) == 1000  # the layers below the first matched step
    assert int(plan.images.set_index("image").loc["app2", "size"]) == 1000 + 300 + 200 + 100 + 50 + 11


def test_unknown_sizes_stay_unknown():
    plan = ll.plan_bases({"app1": APP1, "app2": APP2})
    s = plan.savings
    assert s["pulled_after_bytes"].isna().all() and s["stored_after_bytes"].isna().all()


def test_multistage_final_chain_and_copy_from():
    text = """\
FROM busybox AS build
RUN make
FROM busybox AS unused
RUN echo unused
FROM build AS final
RUN make install
COPY --from=build /out /usr/bin/
"""
    p = parse_dockerfile(text, name="m")
    assert p.base == "busybox"
    assert [s.text for s in p.steps] == ["RUN make", "RUN make install", "COPY --from=build /out /usr/bin/"]
    assert "[stage " in p.steps[-1].key
    assert any("unused" in n for n in p.notes)


def test_arg_env_substitution_and_exec_form():
    text = 'ARG V=3.12\nFROM python:${V}-slim\nARG DIR=/srv\nENV HOME=${DIR}/h\nWORKDIR $HOME\nRUN ["pip", "install", "x"]\n'
    p = parse_dockerfile(text)
    assert p.base == "python:3.12-slim"
    assert [s.text for s in p.steps] == ["ARG DIR=/srv", "ENV HOME=/srv/h", "WORKDIR /srv/h", "RUN pip install x"]
    p2 = parse_dockerfile(text, build_args={"V": "3.11"})
    assert p2.base == "python:3.11-slim"


@pytest.mark.parametrize(
    "text,line,match",
    [
        ("FROM a\nRUN x\nFROOB y\n", 3, "unknown instruction"),
        ("FROM a\nRUN <<EOF\necho hi\nEOF\n", 2, "heredoc"),
        ("RUN x\nFROM a\n", 1, "before the first FROM"),
        ("# only a comment\n", None, "no FROM"),
    ],
)
def test_bad_dockerfiles_name_file_and_line(tmp_path, text, line, match):
    f = tmp_path / "Dockerfile"
    f.write_text(text)
    with pytest.raises(ll.LayerlabError, match=match) as e:
        ll.plan_bases({"a": f, "b": APP2})
    assert str(f) in str(e.value)
    if line is not None:
        assert f"{f}:{line}:" in str(e.value)


def test_missing_path_and_too_few_apps(tmp_path):
    with pytest.raises(PlanError, match="no such Dockerfile"):
        ll.plan_bases({"a": str(tmp_path / "nope"), "b": APP2})
    with pytest.raises(PlanError, match="at least two"):
        ll.plan_bases({"a": APP1})


@pytest.mark.parametrize(
    "created_by,expected",
    [
        ("/bin/sh -c #(nop)  ENV A=1", ("ENV", "ENV A=1")),
        ('/bin/sh -c #(nop)  CMD ["sh"]', ("CMD", 'CMD ["sh"]')),
        ("/bin/sh -c apt-get   update", ("RUN", "RUN apt-get update")),
        ("RUN /bin/sh -c make # buildkit", ("RUN", "RUN make")),
        ("RUN |2 A=1 B=2 /bin/sh -c make all # buildkit", ("RUN", "RUN make all")),
        ("|1 V=2 /bin/sh -c make", ("RUN", "RUN make")),
        ("COPY app /app # buildkit", ("COPY", "COPY app /app")),
        ("WORKDIR /srv", ("WORKDIR", "WORKDIR /srv")),
        ("", ("IMPORT", "IMPORT")),
    ],
)
def test_normalise_created_by(created_by, expected):
    assert normalise_created_by(created_by) == expected


def test_html_is_escaped():
    evil = APP2.replace("COPY app2 /app", 'RUN echo "<script>alert(1)</script>" "><img src=x onerror=alert(2)>')
    plan = ll.plan_bases({"app1": APP1, "<b>app2</b>": evil})
    h = plan._repr_html_()
    assert "<script>" not in h and "<img" not in h and "<b>app2" not in h
    assert "&lt;script&gt;" in h


def test_reorder_overlays_apps_that_run_shared_steps_in_other_orders():
    one = "FROM os\nRUN sec\nRUN tools\nRUN libs\nENV P=1\nCOPY a /a\n"
    two = "FROM os\nRUN tools\nRUN libs\nRUN sec\nENV P=1\nCOPY b /b\n"
    plain = ll.plan_bases({"one": one, "two": two})
    assert plain.bases == []  # only FROM is shared in order: no base worth building
    assert plain.dockerfiles["two"].startswith("FROM os\nRUN tools\n")
    plan = ll.plan_bases({"one": one, "two": two}, reorder=True)
    # the shared ENV goes into the base (inherited by the apps)
    assert plan.dockerfiles["f1"] == "FROM os\nRUN sec\nRUN tools\nRUN libs\nENV P=1\n"
    assert plan.dockerfiles["one"] == "FROM f1\nCOPY a /a\n"
    assert plan.dockerfiles["two"] == "FROM f1\nCOPY b /b\n"
    assert any("two: steps reordered" in n for n in plan.notes)
    assert not any("one: steps reordered" in n for n in plan.notes)
    # per step, a trailing shared ENV makes no base of its own: each app repeats it
    step = ll.plan_bases({"one": one, "two": two}, reorder=True, split="step")
    assert step.bases == ["f1", "f2", "f3"]
    assert step.dockerfiles["one"] == "FROM f3\nENV P=1\nCOPY a /a\n"
    assert step.trie.set_index("step").loc["ENV P=1", "image"] == "one,two"


def test_run_mount_flags_are_not_part_of_the_step():
    p = parse_dockerfile("FROM a\nRUN --mount=type=secret,id=ca --network=host pip install x\n")
    assert p.steps[0].text == "RUN pip install x"
    assert p.steps[0].raw.startswith("RUN --mount=type=secret,id=ca")


def test_image_apps_on_a_known_base_image_and_valid_metadata_lines():
    base = _img("os", [("", 1000), ('CMD ["bash"]', None)])
    a = _img("app1", [("", 1000), ('CMD ["bash"]', None), ("LABEL role=app one", None)] + NAIVE1[2:5]
             + [("COPY app1 /app # buildkit", 7), ('CMD ["python" "/app/main.py"]', None)])
    b = _img("app2", [("", 1000), ('CMD ["bash"]', None)] + NAIVE1[2:5] + [("COPY app2 /app # buildkit", 11)])
    plan = ll.plan_bases({"app1": a, "app2": b}, base_images=[base, a, b])
    assert plan.dockerfiles["f1"] == (
        "FROM os\n"
        "RUN apt-get update && apt-get install -y openssl ca-certificates\n"
        "RUN apt-get install -y curl git\n"
        "RUN pip install numpy\n"
    )
    # BuildKit's comma-less exec form and unquoted label values become valid Dockerfile lines
    assert plan.dockerfiles["app1"] == 'FROM f1\nCOPY app1 /app\nLABEL role="app one"\nCMD ["python", "/app/main.py"]\n'
    assert plan.dockerfiles["app2"] == "FROM f1\nCOPY app2 /app\n"
    assert int(plan.images.set_index("image").loc["f1", "size"]) == 1000 + 300 + 200 + 100


def test_a_base_image_known_by_blob_digests_only_is_found():
    """Images read from manifests or repo-info have no diff_ids: their layers are known by
    digest, and a base image whose digests start an app's is still the app's base."""
    def by_digest(img):
        for layer in img.layer_list:
            layer.digest, layer.diff_id = "sha256:" + layer.diff_id[7:][::-1], None
        img.refresh_chain_ids()
        return img

    base = by_digest(_img("os", [("", 1000), ('CMD ["bash"]', None)]))
    a = by_digest(_img("app1", [("", 1000), ('CMD ["bash"]', None)] + NAIVE1[2:5] + [("COPY app1 /app # buildkit", 7)]))
    b = by_digest(_img("app2", [("", 1000), ('CMD ["bash"]', None)] + NAIVE1[2:5] + [("COPY app2 /app # buildkit", 11)]))
    assert all(l.chain_id is None for img in (base, a, b) for l in img.layer_list)
    plan = ll.plan_bases({"app1": a, "app2": b}, base_images=[base])
    assert plan.dockerfiles["f1"].startswith("FROM os\nRUN apt-get update")
    assert plan.dockerfiles["app1"] == "FROM f1\nCOPY app1 /app\n"


def test_emitted_dockerfiles_carry_the_stages_their_copy_from_needs():
    one = "ARG GO=1.22\nFROM golang:${GO} AS build\nRUN go build -o /out ./one\nFROM debian\nRUN apt-get install -y ca-certificates\nCOPY --from=build /out /usr/bin/one\n"
    two = "ARG GO=1.22\nFROM golang:${GO} AS build\nRUN go build -o /out ./two\nFROM debian\nRUN apt-get install -y ca-certificates\nCOPY --from=build /out /usr/bin/two\n"
    plan = ll.plan_bases({"one": one, "two": two})
    assert plan.dockerfiles["f1"] == (
        "FROM debian\nRUN apt-get update \\\n    && DEBIAN_FRONTEND=noninteractive apt-get install -y ca-certificates \\\n"
        "    && apt-get clean \\\n    && rm -rf /var/lib/apt/lists/*\n"
    )
    # the app's Dockerfile holds the build stage its COPY --from needs (with the global ARG), then FROM f1
    assert plan.dockerfiles["one"] == (
        "ARG GO=1.22\nFROM golang:${GO} AS build\nRUN go build -o /out ./one\n\nFROM f1\nCOPY --from=build /out /usr/bin/one\n"
    )
    # the same COPY text from stages that build different things is not the same step
    same = ll.plan_bases({"one": one.replace("/usr/bin/one", "/usr/bin/app"), "two": two.replace("/usr/bin/two", "/usr/bin/app")})
    copies = same.trie[same.trie["instruction"] == "COPY"]
    assert len(copies) == 2 and set(copies["n_apps"]) == {1}
    # ... while identical stages make it one shared step
    twin = ll.plan_bases({"one": one, "two": one})
    assert list(twin.trie.loc[twin.trie["instruction"] == "COPY", "n_apps"]) == [2]
