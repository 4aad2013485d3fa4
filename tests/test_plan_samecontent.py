"""The planner matches differently worded steps by the files their layers hold
(``layerlab.analysis.plan.samecontent``), with images built by the real engine.

Two apps on the busybox base write the same tool directory: ``x`` in one RUN,
``y`` in three (a scratch file written, copied into place, deleted).  Both
copy the same 100,000-byte vendored file, in a different order among their
own files.  Expected values are written by hand from the Dockerfiles (the
bytes ``dd``, ``printf`` and the context files write) and compared with
``docker image inspect`` of the built plan; none comes from layerlab.
"""
from __future__ import annotations

import hashlib
import uuid

import pytest
from enginekit import BASE_TAG, build, import_base, inspect

import layerlab as ll

pytestmark = pytest.mark.engine

BLOB = 200_000                       # dd bs=1000 count=200
VERSION = len(b"tool v1\n")          # 8
VENDOR = bytes(hashlib.sha256(str(i).encode()).digest()[0] for i in range(100_000))  # 100,000 bytes
X = """FROM {base}
RUN mkdir -p /opt/t && dd if=/dev/zero of=/opt/t/blob bs=1000 count=200 && printf 'tool v1\\n' > /opt/t/VERSION && ln -s /opt/t/blob /opt/t/link
COPY vendor.bin /opt/vendor.bin
COPY x.txt /app/x.txt
"""
Y = """FROM {base}
RUN dd if=/dev/zero of=/tmp/blob bs=1000 count=200
RUN mkdir -p /opt/t && cp /tmp/blob /opt/t/blob && echo 'tool v1' > /opt/t/VERSION && ln -s /opt/t/blob /opt/t/link
RUN rm /tmp/blob
COPY y.txt /app/y.txt
COPY vendor.bin /opt/vendor.bin
"""


@pytest.fixture(scope="module")
def fleet(engine):
    import_base()
    base = BASE_TAG
    run = uuid.uuid4().hex[:8]
    ctx = {"vendor.bin": VENDOR, "x.txt": b"x\n", "y.txt": b"y\n"}
    tags = {}
    for app, text in {"x": X, "y": Y}.items():
        tags[app] = f"layerlab-test/samecontent-{run}-{app}:1"
        build(tags[app], text.format(base=base), ctx)
    images = {app: ll.load(f"docker-daemon:{tag}") for app, tag in tags.items()}
    dockerfiles = {app: text.format(base=base) for app, text in {"x": X, "y": Y}.items()}
    yield {"base": base, "run": run, "ctx": ctx, "images": images, "dockerfiles": dockerfiles}
    from enginekit import docker

    docker("rmi", "-f", *tags.values())


def test_steps_writing_the_same_files_become_one_base_step(fleet):
    plan = ll.plan_bases(fleet["dockerfiles"], images=fleet["images"])
    assert plan.bases == ["f1"]
    f1 = plan.dockerfiles["f1"]
    # x's wording (the first app's) in the base, y's three steps gone from y
    assert "RUN mkdir -p /opt/t && dd if=/dev/zero of=/opt/t/blob" in f1
    assert "/tmp/blob" not in f1
    assert plan.dockerfiles["x"].splitlines()[1:] == ["COPY vendor.bin /opt/vendor.bin", "COPY x.txt /app/x.txt"]
    assert plan.dockerfiles["y"].splitlines()[1:] == ["COPY y.txt /app/y.txt", "COPY vendor.bin /opt/vendor.bin"]
    assert any("same files written by differently worded steps" in n and "x line 2; y line 2" in n
               for n in plan.notes)


def test_shared_content_names_the_steps_that_wrote_the_shared_bytes(fleet):
    plan = ll.plan_bases(fleet["dockerfiles"], images=fleet["images"])
    sc = plan.shared_content
    assert list(sc.columns) == ["image", "step", "line", "other_image", "other_step", "other_line",
                                "shared_files", "shared_bytes", "step_bytes", "other_step_bytes",
                                "same_content", "merged"]
    tool = sc[sc["line"] == 2].iloc[0]
    # the tool: blob + VERSION + the symlink (a tar entry of size 0), y's steps as y wrote them (joined)
    assert (tool["image"], tool["other_image"], int(tool["other_line"])) == ("x", "y", 2)
    assert tool["other_step"].startswith("RUN dd if=/dev/zero of=/tmp/blob bs=1000 count=200 && mkdir -p /opt/t")
    assert tool["other_step"].endswith("&& rm /tmp/blob")
    assert (int(tool["shared_files"]), int(tool["shared_bytes"])) == (3, BLOB + VERSION)
    assert (int(tool["step_bytes"]), int(tool["other_step_bytes"])) == (BLOB + VERSION, BLOB + VERSION)
    assert bool(tool["same_content"]) and bool(tool["merged"])
    vendor = sc[sc["step"] == "COPY vendor.bin /opt/vendor.bin"].iloc[0]
    # the same vendored file, copied by both apps after their own files in a different order: listed, not merged
    assert (int(vendor["line"]), int(vendor["other_line"])) == (3, 6)
    assert (int(vendor["shared_files"]), int(vendor["shared_bytes"])) == (1, len(VENDOR))
    assert bool(vendor["same_content"]) and not bool(vendor["merged"])
    assert len(sc) == 2  # the apps' own files (2 bytes each) share nothing worth listing


def test_the_plan_builds_to_its_predicted_sizes(fleet):
    """Built with the engine: every planned image is the size the plan predicts."""
    prefix = f"layerlab-test/samecontent-{fleet['run']}-plan-"
    plan = ll.plan_bases(fleet["dockerfiles"], images=fleet["images"], base_prefix=prefix)
    sizes = plan.images.set_index("image")["size"]
    built = {}
    try:
        for name, text in plan.dockerfiles.items():
            tag = (name if name.startswith(prefix) else prefix + name) + ":1"
            text = text.replace(f"FROM {prefix}f1\n", f"FROM {prefix}f1:1\n")
            build(tag, text, fleet["ctx"])
            built[name] = tag
        for name, tag in built.items():
            assert int(sizes[name]) == int(inspect(tag)["Size"]), name
        # by hand: the base is busybox + the tool; each app adds the vendored file and its own 2 bytes
        base_size = int(inspect(fleet["base"])["Size"])
        assert int(inspect(built[f"{prefix}f1"])["Size"]) == base_size + BLOB + VERSION
        assert int(inspect(built["x"])["Size"]) == base_size + BLOB + VERSION + len(VENDOR) + 2
    finally:
        if built:
            from enginekit import docker

            docker("rmi", "-f", *built.values())


def test_without_images_the_steps_stay_apart(fleet):
    plan = ll.plan_bases(fleet["dockerfiles"])
    assert plan.bases == []
    assert plan.shared_content.empty and list(plan.shared_content.columns)[:2] == ["image", "step"]
