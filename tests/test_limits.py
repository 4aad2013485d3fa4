"""Hostile inputs stop at a documented limit (``ll.limits``) with a LimitError,
or complete with work that grows with the bytes of their paths: deep paths,
many entries, decompression bombs, a layer listed over and over, oversized
documents.  Work is asserted through what the engine builds (codes, strings,
shared scans), never through seconds."""
from __future__ import annotations

import gzip
import io
import json
import tarfile

import pyarrow as pa
import pytest

import layerlab as ll
from layerlab.contents import dive, merge
from layerlab.contents.scan import scan_image
from layerlab.errors import FormatError, LimitError

from _archive_helpers import write_legacy_archive
from _contents_helpers import d, f, layer_tar, mem_image, sym
from _reference import merge_table_reference


def deep_layer(components: int, name: str = "d") -> tuple[bytes, str]:
    """A layer with one file under ``components`` unlisted directories (a PAX path)."""
    path = "/".join([name] * components) + "/f"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        ti = tarfile.TarInfo(path)
        ti.size = 1
        tf.addfile(ti, io.BytesIO(b"x"))
    return buf.getvalue(), path


def empty_entries(n: int) -> bytes:
    """A plain tar of ``n`` empty regular files (ustar headers written directly: tarfile is slow)."""
    out = bytearray()
    for i in range(n):
        h = bytearray(512)
        name = f"e{i}".encode()
        h[0:len(name)] = name
        h[100:108] = b"0000644\0"
        h[108:116] = h[116:124] = b"0000000\0"
        h[124:136] = b"00000000000\0"
        h[136:148] = b"14533147600\0"
        h[156:157] = b"0"
        h[257:265] = b"ustar\x0000"
        h[148:156] = b" " * 8
        h[148:156] = b"%06o\0 " % sum(h)
        out += h
    return bytes(out + bytes(1024))


# -- the API --------------------------------------------------------------------------
def test_limits_returns_the_limits_in_force_and_a_with_block_restores_them():
    before = ll.limits()
    assert isinstance(before, ll.Limits)
    assert before.entries_per_layer == 2_000_000 and before.layers_per_image == 1000
    with ll.limits(entries_per_layer=5, layer_bytes=7) as inside:
        assert ll.limits() is inside
        assert (inside.entries_per_layer, inside.layer_bytes) == (5, 7)
        assert inside.path_bytes == before.path_bytes
    assert ll.limits() == before
    set_now = ll.limits(layers_per_image=3)
    try:
        assert ll.limits().layers_per_image == 3 and set_now.layers_per_image == 3
    finally:
        set_now.__exit__(None, None, None)
    assert ll.limits() == before


@pytest.mark.parametrize("kw", [{"layer_bytes": 0}, {"layer_bytes": -1},
                                {"layer_bytes": 1.5}, {"layer_bytes": True}])
def test_a_bad_limit_is_refused(kw):
    with pytest.raises(LimitError):
        ll.limits(**kw)


def test_limits_are_real_parameters():
    """Each limit is a keyword of ll.limits (help() and tab completion list them); a name that
    is not a limit is a TypeError, as for any Python function."""
    import inspect
    from dataclasses import fields

    assert set(inspect.signature(ll.limits).parameters) == {f.name for f in fields(ll.Limits)}
    with pytest.raises(TypeError):
        ll.limits(no_such_limit=1)


def test_limit_error_is_a_format_error_and_says_how_to_raise_the_limit():
    img = mem_image([empty_entries(20)])
    with ll.limits(entries_per_layer=10), pytest.raises(LimitError) as e:
        img.files(cache_dir=False, progress=False)
    assert isinstance(e.value, FormatError)
    msg = str(e.value)
    assert "test/mem:1" in msg and "entries_per_layer" in msg and "10" in msg and "ll.limits(" in msg


# -- deep paths (issue 14, defect 1) --------------------------------------------------------
def test_a_path_longer_than_path_max_is_refused_by_default():
    layer, _path = deep_layer(3000)  # 6,001 bytes: more than Linux's PATH_MAX
    img = mem_image([layer])
    with pytest.raises(LimitError, match="path_bytes"):
        img.files(cache_dir=False, progress=False)


def test_a_900_kb_path_is_refused_before_it_is_built():
    layer, _path = deep_layer(450_000, "a")
    assert len(layer) < 1_000_000
    img = mem_image([layer])
    with pytest.raises(LimitError, match="path_bytes"):
        img.files(cache_dir=False, progress=False)


def test_a_3000_component_path_within_a_raised_limit_costs_its_length():
    layer, path = deep_layer(3000)
    img = mem_image([layer])
    with ll.limits(path_bytes=1 << 16):
        files = img.files(cache_dir=False, progress=False)
        eff = ll.efficiency(img, cache_dir=False, progress=False)
    assert files["path"].tolist() == [path]
    assert eff.score == 1.0
    # dive's universe: one code per node (the file and its 3,000 unlisted parents), but the
    # only string is the listed path: no prefix of it is materialised
    codes, universe, parent, _extra = dive._universe(pa.array([path]), [])
    assert len(universe) == 3001
    assert sum(len(s) for s in universe.to_pylist() if s is not None) == len(path)
    assert universe.null_count == 3000
    # the parent chain is the path's: 3,000 steps from the file to the top
    steps, c = 0, int(codes[0])
    while parent[c] >= 0:
        c = int(parent[c])
        steps += 1
    assert steps == 3000


def test_deep_layers_give_the_same_dive_figures_by_sets_and_by_trees():
    """Implied parents without strings (the set formulation) against dive's trees."""
    rows0 = [("a/b/c/d/e/f", "file", 5), ("a/b/x", "file", 3), ("z/y", "dir", 0)]
    rows1 = [("a/b/c/d/e/f", "file", 7), ("a/b/c/q/r", "file", 2), ("a/b/x", "whiteout", 0), ("z/y/w/v", "file", 1)]
    table = pa.table({
        "position": pa.array([0] * len(rows0) + [1] * len(rows1), pa.int64()),
        "path": [r[0] for r in rows0 + rows1],
        "type": [r[1] for r in rows0 + rows1],
        "size": pa.array([r[2] for r in rows0 + rows1], pa.int64()),
    })
    by_sets = dive._by_sets(table.column("position").to_numpy(), table.column("path").combine_chunks(),
                            table.column("type").combine_chunks(), table.column("size").combine_chunks(), 2)
    by_trees = dive.dive_efficiency([rows0, rows1])
    # dive's rules: the file copied twice (5 + 7) and the whited-out file (3, its whiteout 0)
    assert by_sets.score == by_trees.score == 8 / 18
    assert by_sets.inefficient_bytes == by_trees.inefficient_bytes == 15
    want = ["/a/b/c/d/e/f", "/a/b/x"]
    assert by_sets.inefficient_files["path"].tolist() == by_trees.inefficient_files["path"].tolist() == want


def test_a_deep_path_in_a_layer_dive_visits_by_trees_does_not_recurse():
    """A whiteout in the base layer sends dive's figures to the tree traversal."""
    layer, path = deep_layer(3000)
    base = layer_tar([f("gone"), f(".wh.gone")])
    img = mem_image([base, layer])
    with ll.limits(path_bytes=1 << 16):
        eff = ll.efficiency(img, cache_dir=False, progress=False)
    assert eff.score == 1.0


def test_a_chain_of_3000_listed_directories_merges_like_the_reference():
    """Each directory's first child used to walk every ancestor (cubic in the depth)."""
    depth = 3000
    paths = ["/".join(["d"] * i) for i in range(1, depth + 1)]
    table = pa.table({
        "position": pa.array([0] * depth, pa.int64()), "path": paths, "type": ["dir"] * depth,
        "size": pa.array([0] * depth, pa.int64()), "link_target": pa.nulls(depth, pa.string()),
    })
    with ll.limits(path_bytes_per_layer=1):  # no implied directory: the budget is never touched
        m = merge.merge_table(table)
    assert len(m.final) == depth and not any(m.hidden_by)


@pytest.mark.parametrize("layers", [
    [[d("a"), d("a/b"), f("a/b/c")], [sym("a/b", "/x"), f("a/b/c/d/e")]],
    [[sym("s", "/t"), d("s/x"), d("s/x/y"), f("s/x/y/z")], [f("s/x/y/q/r")]],
    [[f("p"), f("p/q/r")], [d("p/q/r/s"), f("p/q/r/s/t")]],
    [[d("a"), d("a/b"), d("a/b/c"), f("a/b/c/d")], [f("a/b"), f("a/b/c/e/f")]],
])
def test_the_merge_walk_that_stops_early_matches_the_reference(layers):
    img = mem_image([layer_tar(entries) for entries in layers])
    from layerlab.contents.scan import image_table

    table = image_table(img, scan_image(img, cache_dir=False, progress=False))
    got, want = merge.merge_table(table), merge_table_reference(table)
    assert (got.hidden_by, got.how, got.notes, got.final) == (want.hidden_by, want.how, want.notes, want.final)


def test_many_deep_unlisted_chains_stop_at_the_implied_directory_budget():
    """Parents no entry lists are strings the merge must build: they count."""
    n, depth = 50, 1000
    paths = [f"t{k}/" + "/".join(["d"] * depth) + "/f" for k in range(n)]
    table = pa.table({
        "position": pa.array([0] * n, pa.int64()), "path": paths, "type": ["file"] * n,
        "size": pa.array([0] * n, pa.int64()), "link_target": pa.nulls(n, pa.string()),
    })
    with ll.limits(path_bytes_per_layer=1 << 20), pytest.raises(LimitError, match="implied parent"):
        merge.merge_table(table)
    m = merge.merge_table(table)  # the default budget lets it through
    assert len(m.final) == n


# -- amplification (issue 14, defect 6) --------------------------------------------------------
@pytest.mark.parametrize("compressed", [False, True])
def test_entries_per_layer_stops_both_tar_walkers(compressed, tmp_path):
    layer = empty_entries(3000)
    write_legacy_archive(tmp_path / "a.tar", [layer], compress_with="gzip" if compressed else None)
    with ll.limits(entries_per_layer=2000), pytest.raises(LimitError, match="entries_per_layer"):
        img = ll.load(f"docker-archive:{tmp_path / 'a.tar'}")
        img.files(cache_dir=False, progress=False, workers=1)
    img = ll.load(f"docker-archive:{tmp_path / 'a.tar'}")
    assert len(img.files(cache_dir=False, progress=False, workers=1)) == 3000


def test_path_bytes_per_layer_counts_every_entry():
    img = mem_image([empty_entries(1000)])  # names e0..e999: 3,890 bytes
    with ll.limits(path_bytes_per_layer=3000), pytest.raises(LimitError, match="path_bytes_per_layer"):
        img.files(cache_dir=False, progress=False)
    with ll.limits(path_bytes_per_layer=3890):
        assert len(img.files(cache_dir=False, progress=False)) == 1000


def test_a_gzip_bomb_stops_at_the_layer_bytes_limit():
    inner = layer_tar([f("zeros", bytes(64 << 20))])
    bomb = gzip.compress(inner, compresslevel=9, mtime=0)
    assert len(bomb) < (1 << 20) < len(inner)
    img = mem_image([inner], blobs=[bomb])
    with ll.limits(layer_bytes=16 << 20), pytest.raises(LimitError, match="layer_bytes") as e:
        img.files(cache_dir=False, progress=False)
    assert "gzip" in str(e.value)


def test_a_plain_layer_longer_than_layer_bytes_is_refused_before_it_is_walked(tmp_path):
    write_legacy_archive(tmp_path / "a.tar", [empty_entries(100)])
    img = ll.load(f"docker-archive:{tmp_path / 'a.tar'}")
    with ll.limits(layer_bytes=10_000), pytest.raises(LimitError, match="layer_bytes"):
        img.files(cache_dir=False, progress=False)


def test_image_bytes_bounds_the_sum_of_the_layers():
    a, b = empty_entries(40), empty_entries(41)
    img = mem_image([a, b])
    with ll.limits(image_bytes=len(a) + len(b) - 1), pytest.raises(LimitError, match="image_bytes"):
        img.files(cache_dir=False, progress=False)
    assert len(mem_image([a, b]).files(cache_dir=False, progress=False)) == 81


def test_one_layer_listed_many_times_is_read_once_and_bounded_by_layers_per_image():
    layer = layer_tar([d("etc"), f("etc/x", b"x" * 3000)])
    img = mem_image([layer] * 500)
    scans = scan_image(img, cache_dir=False, progress=False)
    assert len({id(s) for s in scans}) == 1  # one walk, shared by all 500 positions
    big = mem_image([layer] * 1001)
    with pytest.raises(LimitError, match="layers_per_image"):
        big.files(cache_dir=False, progress=False)
    with ll.limits(layers_per_image=2000):
        assert len(scan_image(big, cache_dir=False, progress=False)) == 1001


def test_an_archive_listing_one_layer_200000_times_stops_at_load(tmp_path):
    import hashlib

    from _archive_helpers import add_bytes, config_for, sha

    layer = layer_tar([d("etc"), f("etc/x", b"x" * 3000)])
    n = 200_000
    cfg = json.dumps(config_for([sha(layer)] * n)).encode()
    cfg_name = hashlib.sha256(cfg).hexdigest() + ".json"
    with tarfile.open(tmp_path / "a.tar", "w") as tf:
        add_bytes(tf, "l/layer.tar", layer)
        add_bytes(tf, cfg_name, cfg)
        add_bytes(tf, "manifest.json", json.dumps([{"Config": cfg_name, "RepoTags": ["t/many:1"],
                                                     "Layers": ["l/layer.tar"] * n}]).encode())
    with pytest.raises(LimitError, match="layers_per_image") as e:
        ll.load(f"docker-archive:{tmp_path / 'a.tar'}")
    assert "200,000" in str(e.value) and "1,000" in str(e.value)


def test_a_config_larger_than_document_bytes_is_refused(tmp_path):
    layer = layer_tar([f("x", b"1")])
    from _archive_helpers import config_for, sha

    cfg = config_for([sha(layer)])
    cfg["padding"] = "p" * 5000
    write_legacy_archive(tmp_path / "a.tar", [layer], config_bytes=json.dumps(cfg).encode())
    with ll.limits(document_bytes=4000), pytest.raises(LimitError, match="document_bytes"):
        ll.load(f"docker-archive:{tmp_path / 'a.tar'}")
    assert ll.load(f"docker-archive:{tmp_path / 'a.tar'}").layer_list[0].diff_id == sha(layer)


def test_limits_reach_the_worker_processes(tmp_path):
    write_legacy_archive(tmp_path / "a.tar", [empty_entries(300), empty_entries(301)], compress_with="gzip")
    img = ll.load(f"docker-archive:{tmp_path / 'a.tar'}")
    with ll.limits(entries_per_layer=200), pytest.raises(LimitError, match="entries_per_layer"):
        img.files(cache_dir=False, progress=False, workers=2)


def test_many_whiteouts_take_dives_trees_with_the_same_figures(monkeypatch):
    """Each whiteout costs the set formulation a scan of the universe: past a bound the
    figures come from dive's traversal, linear in the nodes, and are the same."""
    n = 5000
    from _contents_helpers import wh

    img = mem_image([layer_tar([f(f"f{i}", b"xy") for i in range(n)]), layer_tar([wh(f"f{i}") for i in range(n)])])
    from layerlab.contents.scan import image_table

    table = image_table(img, scan_image(img, cache_dir=False, progress=False))
    assert n * n > dive._SET_WHITEOUT_WORK
    by_trees = dive.dive_efficiency_table(table)
    monkeypatch.setattr(dive, "_SET_WHITEOUT_WORK", 10 ** 12)
    by_sets = dive.dive_efficiency_table(table)
    # dive's rules: every path seen twice, 2 bytes then 0 (a whiteout of a file counts 0)
    for res in (by_trees, by_sets):
        assert res.inefficient_bytes == 2 * n and res.score == 0.0 and len(res.inefficient_files) == n
    assert by_trees.inefficient_files.equals(by_sets.inefficient_files)


@pytest.mark.slow
def test_a_layer_of_a_million_empty_entries_finishes_under_the_default_limits(tmp_path):
    """The full-size case of issue 14 (a few MB compressed, a million rows): within the
    defaults it is read; one entry under it, refused before the table is built."""
    import hashlib

    from _archive_helpers import config_for

    n = 1_000_000
    layer_path = tmp_path / "layer.tar"
    h = hashlib.sha256()
    with open(layer_path, "wb") as out:
        for start in range(0, n, 50_000):
            chunk = empty_entries(min(50_000, n - start))[:-1024]  # headers only; the end marker once below
            out.write(chunk)
            h.update(chunk)
        out.write(bytes(1024))
        h.update(bytes(1024))
    diff_id = "sha256:" + h.hexdigest()
    cfg = json.dumps(config_for([diff_id])).encode()
    with tarfile.open(tmp_path / "a.tar", "w") as tf:
        tf.add(layer_path, "l/layer.tar")
        ti = tarfile.TarInfo("c.json")
        ti.size = len(cfg)
        tf.addfile(ti, io.BytesIO(cfg))
        man = json.dumps([{"Config": "c.json", "RepoTags": ["t/million:1"], "Layers": ["l/layer.tar"]}]).encode()
        ti = tarfile.TarInfo("manifest.json")
        ti.size = len(man)
        tf.addfile(ti, io.BytesIO(man))
    layer_path.unlink()
    img = ll.load(f"docker-archive:{tmp_path / 'a.tar'}", progress=False)
    files = img.files(cache_dir=False, progress=False)
    assert len(files) == n  # names repeat across chunks (e0..e49999): rows, not unique paths
    with ll.limits(entries_per_layer=n - 1), pytest.raises(LimitError, match="entries_per_layer"):
        ll.load(f"docker-archive:{tmp_path / 'a.tar'}", progress=False).files(cache_dir=False, progress=False)


def _resolve_before(state, m, path):
    """The symlink resolution as it was (a string per prefix): the reference."""
    parts = path.split("/")
    cur: list[str] = []
    hops = 0
    while parts:
        name = parts.pop(0)
        if name in ("", "."):
            continue
        if name == "..":
            if cur:
                cur.pop()
            continue
        cand = "/".join(cur + [name])
        r = state.get(cand)
        if r is not None and m.types[r] == "symlink":
            hops += 1
            if hops > 40:
                return None
            target = m.link_targets[r] or ""
            if target.startswith("/"):
                cur = []
            parts = target.split("/") + parts
            continue
        cur.append(name)
    return "/".join(cur)


@pytest.mark.parametrize("entries", [
    [sym("a", "b"), sym("b", "a"), sym("lib", "usr/lib"), d("usr"), d("usr/lib"), sym("ok", "usr"),
     f("lib/x.so", b"so"), sym("usr/lib/up", "../../ok/lib/up2"), sym("usr/lib/up2", "/a")],
    [d("x"), sym("x/s", "/x/t"), sym("x/t", "./s/../u"), d("x/u"), sym("x/u/v", "..//./t"), sym("y", "x/u/v/v")],
    [sym("s", "/" + "/".join(["d"] * 200) + "/s"), d("d"), sym("d/d", "."), sym("deep", "s/" + "../" * 30 + "deep")],
])
def test_symlink_resolution_walks_only_symlink_prefixes_with_the_same_answers(entries):
    img = mem_image([layer_tar(entries)])
    from layerlab.contents.scan import image_table

    m = merge.merge_table(image_table(img, scan_image(img, cache_dir=False, progress=False)))
    trie = merge._symlink_trie(m.final, m)
    probes = list(m.final) + ["lib/x.so/..", "x/u/v/v/v/w", "/".join(["d"] * 300), "a/b/c"]
    for p in probes:
        assert merge._resolve(m.final, m, p, trie) == _resolve_before(m.final, m, p), p


def test_a_loop_through_a_2000_component_symlink_is_found():
    depth = 2000
    paths = ["/".join(["d"] * depth) + "/s", "t"]
    table = pa.table({
        "position": pa.array([0, 0], pa.int64()), "path": paths, "type": ["symlink", "symlink"],
        "size": pa.array([0, 0], pa.int64()), "link_target": ["/t", "/" + paths[0]],
    })
    m = merge.merge_table(table)
    assert all("symlink loop" in " ".join(m.notes.get(r, [])) for r in (0, 1))
