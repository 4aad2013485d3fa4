"""suggest_merges' advice: reasons, the best non-overlapping set, the rewritten
Dockerfile lines — checked against a real build of the rewritten Dockerfile.

The image is built with the real engine from busybox steps whose file sizes
the test chooses (zeros from dd, slices of /bin/busybox); every expected
saving below is worked out from those sizes by hand."""
from __future__ import annotations

import pandas as pd
import pytest

import layerlab as ll
from _archive_helpers import write_legacy_archive
from test_merge import BASE, history, layer

SECRET_RUN = ("RUN --mount=type=secret,id=tok mkdir -p /var/lib/apt/lists /root/.cache/pip/http "
              "&& test -s /run/secrets/tok "
              "&& dd if=/dev/zero of=/var/lib/apt/lists/deb_bookworm_Packages bs=1000 count=200 2>/dev/null "
              "&& dd if=/dev/zero of=/root/.cache/pip/http/x bs=1000 count=50 2>/dev/null")
LINES = [
    SECRET_RUN,                                                                       # 1: 250,000 of caches
    "RUN rm -rf /var/lib/apt/lists/* /root/.cache/pip",                               # 2: cleans them up
    "RUN mkdir -p /opt && dd if=/dev/zero of=/opt/big bs=1000 count=300 2>/dev/null",  # 3: 300,000
    "RUN rm /opt/big && dd if=/dev/zero of=/opt/tmp2 bs=1000 count=20 2>/dev/null",   # 4: 20,000
    "RUN rm /opt/tmp2 && head -c 5000 /bin/busybox > /opt/conf",                      # 5: 5,000
    "ENV MODE=prod",
    "RUN head -c 100 /bin/busybox > /opt/conf",                                       # 6: 100, new content
    "RUN head -c 8000 /bin/busybox > /opt/tool && chmod 644 /opt/tool",               # 7: 8,000
    "RUN chmod 700 /opt/tool",                                                        # 8: same bytes, new mode
    "RUN echo done > /done",                                                          # 9: 5
]
# hand-worked savings of merging (first, last): what the group writes minus what survives it
SAVED = {
    (1, 2): 250_000,                # both caches created and deleted inside the group
    (3, 4): 300_000,                # /opt/big
    (4, 5): 20_000,                 # /opt/tmp2
    (5, 6): 5_000,                  # /opt/conf's first version
    (7, 8): 8_000,                  # /opt/tool's first copy
    (3, 6): 300_000 + 20_000 + 5_000,
}
BEST = {(1, 2), (3, 6), (7, 8)}     # 325,000 for 3..6 beats 3..4 + 5..6 (305,000)


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("secret") / "tok"
    p.write_text("not-a-real-token")
    return p


@pytest.fixture(scope="module")
def built(busybox_base, secret_file):
    from enginekit import build

    text = f"FROM {busybox_base}\n" + "\n".join(LINES) + "\n"
    tag = "layerlab-test/merge-advice:orig"
    build(tag, text, extra_args=("--secret", f"id=tok,src={secret_file}"))
    return tag, text


@pytest.mark.engine
def test_reasons_chosen_set_and_rebuild(built, engine, secret_file, monkeypatch, tmp_path):
    from enginekit import build, inspect

    monkeypatch.setenv("LAYERLAB_CACHE", str(tmp_path / "cache"))
    tag, text = built
    img = ll.load(f"docker-daemon:{tag}")
    s = ll.suggest_merges(img, dockerfile=text, limit=20, progress=False)
    by = {(int(r.first), int(r.last)): r for r in s.itertuples(index=False)}
    for key, saved in SAVED.items():
        assert int(by[key].saved_bytes) == saved, key
    assert by[(1, 2)].kind == "cache left behind"
    assert by[(3, 4)].kind == "created then deleted"
    assert by[(5, 6)].kind == "overwritten"
    assert by[(7, 8)].kind == "permissions-only change"

    chosen = s[s["chosen"].astype(bool)]
    assert {(int(a), int(b)) for a, b in zip(chosen["first"], chosen["last"])} == BEST
    total = int(chosen["saved_bytes"].sum())
    assert total == 250_000 + 325_000 + 8_000
    # the chosen savings add up to what merging them all at once saves
    pred = ll.what_if_merge(img, sorted(BEST), compressed=False, progress=False)
    assert pred.metric("size_bytes", "before") - pred.metric("size_bytes") == total

    # the Dockerfile lines: the secret mount kept (from dockerfile=), the ENV moved above
    after12 = by[(1, 2)].dockerfile_after
    assert after12.startswith("RUN --mount=type=secret,id=tok mkdir -p /var/lib/apt/lists")
    assert after12.endswith("&& rm -rf /var/lib/apt/lists/* /root/.cache/pip")
    assert by[(5, 6)].dockerfile_after == ("ENV MODE=prod\nRUN rm /opt/tmp2 && head -c 5000 /bin/busybox > /opt/conf"
                                           " && head -c 100 /bin/busybox > /opt/conf")
    # rebuild the Dockerfile with the chosen rows' lines swapped in: the engine's size is the prediction
    new = text
    for r in chosen.itertuples(index=False):
        assert r.dockerfile_before in new
        new = new.replace(r.dockerfile_before, r.dockerfile_after)
    assert new.count("\nRUN ") == text.count("\nRUN ") - (1 + 3 + 1)
    merged_tag = "layerlab-test/merge-advice:merged"
    build(merged_tag, new, extra_args=("--secret", f"id=tok,src={secret_file}"))
    assert int(inspect(tag)["Size"]) - int(inspect(merged_tag)["Size"]) == total
    assert int(inspect(merged_tag)["Size"]) == pred.metric("size_bytes")
    assert len(inspect(merged_tag)["RootFS"]["Layers"]) == pred.metric("layers")


@pytest.mark.engine
def test_history_alone_cannot_keep_the_secret_mount(built, engine, monkeypatch, tmp_path):
    monkeypatch.setenv("LAYERLAB_CACHE", str(tmp_path / "cache"))
    tag, _text = built
    img = ll.load(f"docker-daemon:{tag}")
    s = ll.suggest_merges(img, limit=20, progress=False)
    row = s[(s["first"] == 1) & (s["last"] == 2)].iloc[0]
    # BuildKit leaves --mount out of the history: the line is the commands only
    assert row["dockerfile_after"] == ("RUN " + SECRET_RUN.split(" ", 2)[2]
                                       + " && rm -rf /var/lib/apt/lists/* /root/.cache/pip")
    # a Dockerfile that is not this image's is refused, with a note
    s2 = ll.suggest_merges(img, dockerfile="FROM scratch\nRUN echo other\n", progress=False)
    assert any("not used" in n for n in s2.attrs["notes"])


def test_lines_that_cannot_join(tmp_path):
    cmds = ["", "RUN /bin/sh -c head -c 900 /bin/x > /a # buildkit", "COPY file:abc in /b ",
            "RUN /bin/sh -c rm /a # buildkit",
            "RUN /bin/sh -c dd of=/c # note # buildkit", "RUN /bin/sh -c rm /c # buildkit",
            "RUN /bin/sh -c dd of=/d # buildkit", "USER app", "RUN /bin/sh -c rm /d # buildkit"]
    layers = [BASE, layer(("f", "a", 900)), layer(("f", "b", 10)), layer(("wh", "a")),
              layer(("f", "c", 700)), layer(("wh", "c")), layer(("f", "d", 600)), layer(("wh", "d"))]
    hist = history(cmds)
    hist[7]["empty_layer"] = True
    p = tmp_path / "x.tar"
    write_legacy_archive(p, layers, tags=("t/join:1",), history=hist)
    img = ll.load(f"docker-archive:{p}")
    s = ll.suggest_merges(img, progress=False)
    by = {(int(r.first), int(r.last)): r for r in s.itertuples(index=False)}
    assert {k: int(r.saved_bytes) for k, r in by.items()} == {(1, 3): 900, (4, 5): 700, (6, 7): 600}
    # limit= cuts the ranking, never the chosen set
    assert len(ll.suggest_merges(img, limit=1, progress=False)) == 3
    assert pd.isna(by[(1, 3)].dockerfile_after) and "not a shell-form RUN" in by[(1, 3)].reason
    assert by[(1, 3)].dockerfile_before.splitlines()[1] == "COPY file:abc in /b"
    assert pd.isna(by[(4, 5)].dockerfile_after) and "shell comment" in by[(4, 5)].reason
    assert pd.isna(by[(6, 7)].dockerfile_after) and "USER app" in by[(6, 7)].reason
    assert s["chosen"].all()


def test_a_rewritten_cache_is_a_cache_left_behind(tmp_path):
    # apt rewrites /var/cache/apt/pkgcache.bin on every run: the first copy stays stored below
    cmds = ["", "RUN /bin/sh -c apt-get update && apt-get install -y a # buildkit",
            "RUN /bin/sh -c apt-get update && apt-get install -y b # buildkit"]
    layers = [BASE, layer(("f", "var/cache/apt/pkgcache.bin", 4000), ("f", "etc/a.conf", 100)),
              layer(("f", "var/cache/apt/pkgcache.bin", 4100), ("f", "etc/a.conf", 50))]
    p = tmp_path / "c.tar"
    write_legacy_archive(p, layers, tags=("t/cache:1",), history=history(cmds))
    s = ll.suggest_merges(ll.load(f"docker-archive:{p}"), progress=False)
    assert len(s) == 1
    row = s.iloc[0]
    assert (int(row["first"]), int(row["last"]), int(row["saved_bytes"])) == (1, 2, 4000 + 100)
    assert row["kind"] == "cache left behind" and "apt-get clean" in row["reason"]
    assert "overwrote with new content" in row["reason"]          # etc/a.conf, 100 bytes
