"""``ll.improve``: the improved Dockerfile of one image, its predicted size
proven by building it with the real engine.

The image uses a stand-in for apt-get (a shell script in the build context)
that writes what the real one leaves behind — package lists on ``update``,
``.deb`` files and ``pkgcache.bin`` on ``install`` — at sizes this test
chooses; ``install`` fails without the lists, as the real one does.  Every
expected saving is worked out from those sizes by hand."""
from __future__ import annotations

import pytest

import layerlab as ll

FAKE_APT = b"""#!/bin/sh
# a stand-in for apt-get: it leaves behind what the real one does, at sizes the test chooses
cmd=""; pkgs=""
for a in "$@"; do case "$a" in -*) ;; *) if [ -z "$cmd" ]; then cmd=$a; else pkgs="$pkgs $a"; fi;; esac; done
case "$cmd" in
  update)
    mkdir -p /var/lib/apt/lists/partial
    dd if=/dev/zero of=/var/lib/apt/lists/deb.debian.org_Packages bs=1000 count=120 2>/dev/null
    : > /var/lib/apt/lists/lock ;;
  install)
    [ -s /var/lib/apt/lists/deb.debian.org_Packages ] || { echo "E: Unable to locate package" >&2; exit 100; }
    mkdir -p /var/cache/apt/archives/partial /usr/local/pkgs
    for p in $pkgs; do
      dd if=/dev/zero of=/var/cache/apt/archives/${p}_1.0_amd64.deb bs=1000 count=30 2>/dev/null
      head -c 4000 /bin/busybox > /usr/local/pkgs/$p
    done
    dd if=/dev/zero of=/var/cache/apt/pkgcache.bin bs=1000 count=10 2>/dev/null ;;
esac
"""
STEPS = """COPY --chmod=755 apt-get /usr/bin/apt-get
RUN apt-get update
# two packages; the install line is continued on purpose
RUN apt-get install -y --no-install-recommends \\
      foo bar
RUN mkdir -p /root/.cache/pip/http /app && dd if=/dev/zero of=/root/.cache/pip/http/wheel bs=1000 count=50 2>/dev/null && head -c 3000 /bin/busybox > /app/main
RUN echo done > /done
"""
LISTS, DEBS_AND_BIN, PIP = 120_000, 2 * 30_000 + 10_000, 50_000
APT_CLEAN = "rm -rf /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/* /var/cache/apt/*.bin"


@pytest.fixture(scope="module")
def built(busybox_base):
    from enginekit import build

    text = f"FROM {busybox_base}\n{STEPS}"
    tag = "layerlab-test/improve:orig"
    build(tag, text, context_files={"apt-get": FAKE_APT})
    return tag, text


@pytest.mark.engine
def test_improved_dockerfile_builds_to_the_predicted_size(built, engine, monkeypatch, tmp_path):
    from enginekit import build, docker, inspect

    monkeypatch.setenv("LAYERLAB_CACHE", str(tmp_path / "cache"))
    tag, text = built
    img = ll.load(f"docker-daemon:{tag}")
    imp = ll.improve(img, text, progress=False)

    merged_run = ("RUN apt-get update && apt-get install -y --no-install-recommends foo bar"
                  f" && rm -rf /var/lib/apt/lists/* && {APT_CLEAN}")
    pip_run = STEPS.splitlines()[5] + " && rm -rf /root/.cache/pip"
    base = text.splitlines()[0]
    assert imp.dockerfile == "\n".join([
        base, "COPY --chmod=755 apt-get /usr/bin/apt-get", merged_run,
        "# two packages; the install line is continued on purpose", pip_run, "RUN echo done > /done"]) + "\n"
    saved = LISTS + DEBS_AND_BIN + PIP
    assert imp.saved_bytes == saved
    assert imp.size_bytes == int(inspect(tag)["Size"])
    assert imp.predicted_size_bytes == int(inspect(tag)["Size"]) - saved
    ch = imp.changes
    assert ch["change"].tolist() == ["merge", "cleanup", "cleanup", "cleanup"]
    assert ch["saved_bytes"].tolist() == [0, LISTS, DEBS_AND_BIN, PIP]
    assert ch["first_line"].tolist()[:1] == [3] and ch["last_line"].tolist()[:1] == [6]

    new_tag = "layerlab-test/improve:improved"
    build(new_tag, imp.dockerfile, context_files={"apt-get": FAKE_APT})
    assert int(inspect(new_tag)["Size"]) == imp.predicted_size_bytes
    assert len(inspect(new_tag)["RootFS"]["Layers"]) == len(inspect(tag)["RootFS"]["Layers"]) - 1
    # the improved image still has what the install put there
    out = docker("run", "--rm", new_tag, "ls", "/usr/local/pkgs")
    assert out.split() == ["bar", "foo"]
    written = imp.write(tmp_path / "Dockerfile.improved")
    assert written.read_text() == imp.dockerfile
    assert repr(imp).startswith("<layerlab.Improvement: 'layerlab-test/improve:orig': 4 changes")
    assert "rm -rf /root/.cache/pip" in imp._repr_html_()


def _build_and_improve(tag: str, text: str):
    """Build ``text`` (with the apt-get stand-in) as ``tag`` and improve it."""
    from enginekit import build

    build(tag, text, context_files={"apt-get": FAKE_APT})
    return ll.improve(ll.load(f"docker-daemon:{tag}"), text, progress=False)


@pytest.mark.engine
def test_a_cache_a_later_step_needs_is_left_alone(busybox_base, engine, monkeypatch, tmp_path):
    """`apt-get update` alone and an install with a step in between that
    cannot join a RUN (a COPY): the lists stay (the install needs them)."""
    monkeypatch.setenv("LAYERLAB_CACHE", str(tmp_path / "cache"))
    text = (f"FROM {busybox_base}\nCOPY --chmod=755 apt-get /usr/bin/apt-get\nRUN apt-get update\n"
            "COPY apt-get /opt/copy\nRUN apt-get install -y foo\n")
    imp = _build_and_improve("layerlab-test/improve:needs-lists", text)
    assert "/var/lib/apt/lists" not in imp.dockerfile
    assert imp.dockerfile.splitlines()[-1] == f"RUN apt-get install -y foo && {APT_CLEAN}"
    assert imp.saved_bytes == 30_000 + 10_000


@pytest.mark.engine
def test_a_later_step_that_only_names_the_manager_does_not_keep_its_cache(busybox_base, engine, monkeypatch,
                                                                          tmp_path):
    """A later RUN that mentions apt-get without running it (an ``echo``) does
    not need the lists: both caches are removed in the RUN that wrote them."""
    from enginekit import build, inspect

    monkeypatch.setenv("LAYERLAB_CACHE", str(tmp_path / "cache"))
    text = (f"FROM {busybox_base}\nCOPY --chmod=755 apt-get /usr/bin/apt-get\n"
            "RUN apt-get update && apt-get install -y foo\nRUN echo 'apt-get install: done' > /notes\n")
    imp = _build_and_improve("layerlab-test/improve:names-apt", text)
    assert imp.dockerfile.splitlines()[-2] == (
        f"RUN apt-get update && apt-get install -y foo && {APT_CLEAN} && rm -rf /var/lib/apt/lists/*")
    assert imp.saved_bytes == LISTS + 30_000 + 10_000
    build("layerlab-test/improve:names-apt-improved", imp.dockerfile, context_files={"apt-get": FAKE_APT})
    assert int(inspect("layerlab-test/improve:names-apt-improved")["Size"]) == imp.predicted_size_bytes


@pytest.mark.engine
def test_a_dockerfile_that_is_not_the_images_is_refused(built, engine, monkeypatch, tmp_path):
    monkeypatch.setenv("LAYERLAB_CACHE", str(tmp_path / "cache"))
    tag, text = built
    img = ll.load(f"docker-daemon:{tag}")
    with pytest.raises(ll.AnalysisError, match="improve.*not history step"):
        ll.improve(img, text.replace("RUN apt-get update", "RUN apt-get update -q"), progress=False)
    with pytest.raises(ll.AnalysisError, match="cannot read the Dockerfile"):
        ll.improve(img, tmp_path / "missing" / "Dockerfile", progress=False)


@pytest.mark.engine
def test_the_cli_writes_the_improved_dockerfile(built, engine, tmp_path, monkeypatch):
    """`layerlab improve SOURCE DOCKERFILE -o FILE`: the same Dockerfile as ll.improve, the changes and
    sizes on stderr, and it refuses to overwrite its input."""
    from test_cli import run

    monkeypatch.setenv("LAYERLAB_CACHE", str(tmp_path / "cache"))
    tag, text = built
    (tmp_path / "Dockerfile").write_text(text)
    p = run("improve", f"docker-daemon:{tag}", "Dockerfile", "-o", "Dockerfile.improved", "--no-progress",
            cwd=tmp_path)
    got = (tmp_path / "Dockerfile.improved").read_text()
    assert "rm -rf /var/lib/apt/lists/*" in got and "rm -rf /root/.cache/pip" in got
    assert got.count("\nRUN ") == text.count("\nRUN ") - 1
    assert "# merge (lines 3-6)" in p.stderr
    saved = LISTS + DEBS_AND_BIN + PIP
    from enginekit import inspect

    size = int(inspect(tag)["Size"])
    assert f"({size:,} B) -> predicted" in p.stderr and f"({size - saved:,} B)" in p.stderr
    q = run("improve", f"docker-daemon:{tag}", "Dockerfile", "-o", "Dockerfile", cwd=tmp_path, check=False)
    assert q.returncode == 2 and "that is the input Dockerfile" in q.stderr
    assert (tmp_path / "Dockerfile").read_text() == text
