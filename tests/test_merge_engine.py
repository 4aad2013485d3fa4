"""Predictions against reality: build the original, the merged variant and the
planned bases + apps with the real engine, and compare what layerlab predicted
with what the engine reports (``docker history --human=false``, ``docker image
inspect``, the ``/system/df`` answer behind ``docker system df -v``).

Small busybox-based images with fixed content (zeros, slices of /bin/busybox,
fixed strings), so sizes do not depend on times.
"""
from __future__ import annotations

import gzip
import io
import secrets
import tarfile
import tempfile
import zlib
from pathlib import Path

import pytest

import layerlab as ll
from enginekit import busybox_rootfs, build, docker, history_json, inspect, rootfs_tar, save

pytestmark = pytest.mark.engine

STEPS = [
    # 1: a big file, a kept file, a directory with contents in a lower layer for later
    "mkdir -p /data /data/cache && dd if=/dev/zero of=/data/big bs=1000 count=300 2>/dev/null "
    "&& head -c 7000 /bin/busybox > /data/keep && head -c 900 /bin/busybox > /data/cache/a",
    # 2: a temp file, a chmod copy-up of a lower file, a whiteout of a base file, a hardlink to a lower file
    "head -c 5000 /bin/busybox > /data/tmp && chmod 600 /data/keep && rm /bin/true && ln /data/big /data/link",
    # 3: delete the temp file and the link's target, re-create a deleted directory (opaque), overwrite
    "rm /data/tmp /data/big && rm -rf /data/cache && mkdir /data/cache && head -c 40 /bin/busybox > /data/cache/b "
    "&& head -c 1200 /bin/busybox > /data/keep",
    # 4: chmod again (same content, new mode)
    "chmod 644 /data/keep",
    # 5, 6: a second group: write then delete across steps
    "dd if=/dev/zero of=/tmp/scratch bs=1000 count=50 2>/dev/null && echo five > /five",
    "rm /tmp/scratch && echo six > /six",
]


def dockerfile(base: str, steps: list[str], tail: str = "") -> str:
    return f"FROM {base}\n" + "".join(f"RUN {s}\n" for s in steps) + tail


def layer_sizes(tag: str) -> list[int]:
    """Per-layer sizes from `docker history --human=false` (oldest first, layer-making steps only).

    BuildKit marks no step empty in `docker history`; a step made a layer when
    its size is > 0 or it is a RUN/COPY/ADD; ENV/CMD rows are metadata (size 0)."""
    rows = list(reversed(history_json(tag)))
    out = []
    for r in rows:
        cmd = r["CreatedBy"]
        if int(r["Size"]) > 0 or cmd.startswith(("RUN ", "COPY ", "ADD ")) or cmd == "":
            out.append(int(r["Size"]))
    return out


@pytest.fixture(scope="module")
def built(busybox_base):
    orig = "layerlab-test/merge:orig"
    merged = "layerlab-test/merge:merged"
    sibling = "layerlab-test/merge:sibling"
    build(orig, dockerfile(busybox_base, STEPS, "ENV X=1\n"))
    # the merged variant: steps 2..4 joined with && into one RUN, and 5..6 into another
    build(merged, dockerfile(busybox_base, [STEPS[0], " && ".join(STEPS[1:4]), " && ".join(STEPS[4:6])], "ENV X=1\n"))
    # an image sharing the first two layers with orig (BuildKit cache: same steps on the same base)
    build(sibling, dockerfile(busybox_base, STEPS[:2] + ["echo sibling > /sib"]))
    return {"orig": orig, "merged": merged, "sibling": sibling}


def test_merged_sizes_equal_the_engine(built, engine):
    img = ll.load(f"docker-daemon:{built['orig']}")
    sib = ll.load(f"docker-daemon:{built['sibling']}")
    # our reading of the original matches the engine layer by layer first
    assert [l.size for l in img.layer_list] == layer_sizes(built["orig"])
    pred = ll.what_if_merge(img, [(2, 4), (5, 6)], fleet=[img, sib])
    real = layer_sizes(built["merged"])
    info = inspect(built["merged"])
    # layer count, each layer's size (merged ones exactly), the image size
    assert pred.metric("layers") == len(info["RootFS"]["Layers"]) == len(real)
    assert [int(x) for x in pred.layers["size_bytes"]] == real
    assert list(pred.groups["status"]) == ["exact", "exact"]
    assert pred.metric("size_bytes") == int(info["Size"])
    assert pred.metric("size_bytes", "before") == int(inspect(built["orig"])["Size"])


def test_sharing_lost_equals_the_chains_the_engine_built(built, engine):
    img = ll.load(f"docker-daemon:{built['orig']}")
    sib = ll.load(f"docker-daemon:{built['sibling']}")
    merged = ll.load(f"docker-daemon:{built['merged']}")
    sib_chains = {l.chain_id for l in sib.layer_list}

    def shared_bytes(im):
        return sum(l.size for l in im.layer_list if l.chain_id in sib_chains)

    # merging 2..4 rewrites layer 2, which the sibling shares (same chain id), and everything above
    pred = ll.what_if_merge(img, (2, 4), fleet=[img, sib], compressed=False)
    assert int(pred.sharing.iloc[0]["shared_before_bytes"]) == shared_bytes(img)
    assert int(pred.sharing.iloc[0]["shared_after_bytes"]) == shared_bytes(merged)
    assert pred.metric("sharing_lost_bytes") == shared_bytes(img) - shared_bytes(merged) > 0


def test_compressed_estimate_is_close_to_gzip_of_the_engine_layer(built, engine, tmp_path):
    img = ll.load(f"docker-daemon:{built['orig']}")
    pred = ll.what_if_merge(img, (2, 4))
    g = pred.groups.iloc[0]
    assert "gzip level 6" in g["compressed_method"]
    # independent: the engine's own merged layer tar (docker save), gzipped at level 6 with zlib
    merged_img = inspect(built["merged"])
    diff_id = merged_img["RootFS"]["Layers"][2]
    arch = save(built["merged"], tmp_path / "m.tar")
    with tarfile.open(arch) as tf:
        import hashlib

        layer = None
        for m in tf.getmembers():
            if m.name.endswith("layer.tar") and m.isfile():
                data = tf.extractfile(m).read()
                if "sha256:" + hashlib.sha256(data).hexdigest() == diff_id:
                    layer = data
        assert layer is not None
    c = zlib.compressobj(6, zlib.DEFLATED, 31)
    real = len(c.compress(layer) + c.flush())
    # same files, same compressor; tar headers (PAX records, times, order) differ a little
    assert abs(int(g["compressed_after_bytes"]) - real) <= 0.1 * real + 300, (int(g["compressed_after_bytes"]), real)


APP_ONE = [
    "mkdir -p /opt && dd if=/dev/zero of=/opt/sec bs=1000 count=20 2>/dev/null",
    "mkdir -p /opt && head -c 3000 /bin/busybox > /opt/tools",
    "mkdir -p /opt && head -c 1500 /bin/busybox > /opt/libs",
    "mkdir -p /app && echo one > /app/code",
]
APP_TWO = [APP_ONE[1], APP_ONE[2], APP_ONE[0], "mkdir -p /app && echo second-app > /app/code && echo cfg > /app/cfg"]


def _import_unique(tag: str, nonce: str) -> None:
    with tempfile.TemporaryDirectory(prefix="layerlab-plan-") as d:
        root = busybox_rootfs(d)
        (root / "etc" / "nonce").write_text(nonce)  # fixed length: the chain is this test run's own
        data = rootfs_tar(root)
    docker("import", "-", tag, input=data)


def test_planned_fleet_matches_system_df(engine):
    run = secrets.token_hex(4)
    base_a = f"layerlab-test/plan-{run}-os-a:1"
    base_b = f"layerlab-test/plan-{run}-os-b:1"
    _import_unique(base_a, secrets.token_hex(16))
    _import_unique(base_b, secrets.token_hex(16))
    # the naive apps (different step orders) on base A: they give the step sizes
    t1 = dockerfile("{base}", APP_ONE, "ENV MODE=prod\n")
    t2 = dockerfile("{base}", APP_TWO, "ENV MODE=prod\n")
    build(f"layerlab-test/plan-{run}-naive1:1", t1.format(base=base_a))
    build(f"layerlab-test/plan-{run}-naive2:1", t2.format(base=base_a))
    n1 = ll.load(f"docker-daemon:layerlab-test/plan-{run}-naive1:1")
    n2 = ll.load(f"docker-daemon:layerlab-test/plan-{run}-naive2:1")
    # the plan, for the same Dockerfiles on base B (same bytes, a chain of its own)
    prefix = f"layerlab-test/plan-{run}-"
    plan = ll.plan_bases(
        {"app1": t1.format(base=base_b), "app2": t2.format(base=base_b)},
        images={"app1": n1, "app2": n2}, reorder=True, split="step", base_prefix=prefix,
    )
    assert plan.bases == [f"{prefix}f1", f"{prefix}f2", f"{prefix}f3"]
    tags = {}
    for name, text in plan.dockerfiles.items():  # bases first, each FROM the previous
        tag = name if name.startswith(prefix) else f"{prefix}{name}"
        build(tag + (":latest" if ":" not in tag.rsplit("/", 1)[-1] else ""), text)
        tags[name] = tag

    # sizes: each planned image's predicted size equals the engine's
    images = plan.images.set_index("image")
    for name, tag in tags.items():
        assert int(images.loc[name, "size"]) == int(inspect(tag)["Size"]), name

    # sharing: predicted per image from the plan's layers (node = layer identity), with the
    # imported base B as one more image holding the FROM layer; compared with /system/df
    layers = plan.layers
    users: dict[int, set[str]] = {}
    for r in layers.itertuples(index=False):
        users.setdefault(int(r.node), set()).add(r.image)
    from_node = int(plan.trie.loc[plan.trie["instruction"] == "FROM", "node"].iloc[0])
    users[from_node].add("(base B)")
    df = {i["Id"]: i for i in engine.df()["Images"]}
    for name, tag in tags.items():
        mine = layers[layers["image"] == name]
        shared = sum(int(r.size) for r in mine.itertuples(index=False) if len(users[int(r.node)]) > 1)
        total = sum(int(r.size) for r in mine.itertuples(index=False))
        got = df[inspect(tag)["Id"]]
        assert (got["SharedSize"], got["Size"] - got["SharedSize"]) == (shared, total - shared), name

    # chain ids: the two apps share exactly the layers the plan puts in the bases
    a1 = ll.load(f"docker-daemon:{tags['app1']}")
    a2 = ll.load(f"docker-daemon:{tags['app2']}")
    common = {l.chain_id for l in a1.layer_list} & {l.chain_id for l in a2.layer_list}
    assert len(common) == int(images.loc[f"{prefix}f3", "layers"])
    # and the savings table agrees with what a host holding app1 still needs for app2
    s = plan.savings.set_index("image")
    need = sum(l.size for l in a2.layer_list if l.chain_id not in {x.chain_id for x in a1.layer_list})
    assert int(s.loc["app2", "pulled_after_bytes"]) == need


def test_rebuild_cost_equals_the_layers_the_engine_rebuilds(built, busybox_base, engine):
    """Change step 5 (same length: sizes stay comparable) and let the engine rebuild:
    the layers with new chain ids are what the prediction says is rebuilt."""
    img = ll.load(f"docker-daemon:{built['orig']}")
    pred = ll.what_if_merge(img, [(2, 4), (5, 6)], compressed=False)
    rb = pred.rebuild.set_index("position")
    changed = [s.replace("echo five", "echo FIVE") for s in STEPS]
    before_tag, after_tag = "layerlab-test/merge:orig-changed", "layerlab-test/merge:merged-changed"
    build(before_tag, dockerfile(busybox_base, changed, "ENV X=1\n"))
    build(after_tag, dockerfile(busybox_base, [changed[0], " && ".join(changed[1:4]), " && ".join(changed[4:6])],
                                "ENV X=1\n"))
    merged = ll.load(f"docker-daemon:{built['merged']}")

    def rebuilt(old: ll.Image, new_tag: str) -> tuple[int, int]:
        new = ll.load(f"docker-daemon:{new_tag}")
        old_chains = {l.chain_id for l in old.layer_list}
        fresh = [l for l in new.layer_list if l.chain_id not in old_chains]
        return len(fresh), sum(l.size for l in fresh)

    assert rebuilt(img, before_tag) == (int(rb.loc[5, "layers_rebuilt_before"]), int(rb.loc[5, "rebuilt_before_bytes"]))
    assert rebuilt(merged, after_tag) == (int(rb.loc[5, "layers_rebuilt_after"]), int(rb.loc[5, "rebuilt_after_bytes"]))


def test_top_suggestion_saves_what_it_says(built, busybox_base, engine):
    img = ll.load(f"docker-daemon:{built['orig']}")
    top = ll.suggest_merges(img).iloc[0]
    a, b = int(top["first"]), int(top["last"])
    steps = STEPS[: a - 1] + [" && ".join(STEPS[a - 1 : b])] + STEPS[b:]
    tag = "layerlab-test/merge:suggested"
    build(tag, dockerfile(busybox_base, steps, "ENV X=1\n"))
    assert int(inspect(built["orig"])["Size"]) - int(inspect(tag)["Size"]) == int(top["saved_bytes"]) > 0


def test_merged_size_with_symlinks_equals_the_engine(busybox_base, engine):
    """A built layer's size leaves symlink target lengths out (the sum of the tar
    entries' sizes); the merged prediction must too, to equal what the engine builds."""
    target = "/opt/" + "t" * 200
    steps = [f"mkdir -p /opt && head -c 3000 /bin/busybox > {target} && ln -s {target} /opt/link1",
             f"ln -s {target} /opt/link2 && rm {target} && head -c 100 /bin/busybox > /opt/f"]
    orig, merged = "layerlab-test/merge:symlinks", "layerlab-test/merge:symlinks-merged"
    build(orig, dockerfile(busybox_base, steps))
    build(merged, dockerfile(busybox_base, [" && ".join(steps)]))
    img = ll.load(f"docker-daemon:{orig}")
    n = len(img.layer_list)
    pred = ll.what_if_merge(img, (n - 2, n - 1), compressed=False, progress=False)
    real = layer_sizes(merged)
    # the merged layer keeps /opt (dir), two symlinks and /opt/f: 100 bytes by the engine's count
    assert real[-1] == 100
    assert int(pred.groups.iloc[0]["size_after_bytes"]) == real[-1]
    assert [int(x) for x in pred.layers["size_bytes"]] == real
