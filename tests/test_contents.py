"""Layer contents on inputs generated here: compressions, the file table,
whiteouts (OCI rules), the diff_id cache, and bad input."""
from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import subprocess
import sys
import tarfile

import pytest
import xxhash
import zstandard

import layerlab as ll
from layerlab.contents.cache import LayerCache, default_cache_dir
from layerlab.contents.schema import FILE_COLUMNS, FILESYSTEM_COLUMNS
from layerlab.contents.tarscan import scan_blob

from _contents_helpers import d, f, hard, layer_tar, mem_image, opq, sha256, sym, wh

BASIC = [
    d("./etc/"),
    f("./etc/passwd", b"root:x:0:0::/root:/bin/sh\n", mode=0o644),
    d("./usr/"),
    d("./usr/bin/"),
    f("./usr/bin/tool", b"\x7fELF" + b"x" * 5000, mode=0o4755, uid=12, gid=34),
    sym("./usr/bin/alias", "tool"),
    hard("./usr/bin/tool2", "./usr/bin/tool"),
    f("./empty", b""),
    {**f("dev/null"), "type": tarfile.CHRTYPE, "data": None},
    {**f("dev/fifo"), "type": tarfile.FIFOTYPE, "data": None},
]


def _scan(data: bytes, **kw):
    return scan_blob(io.BytesIO(data), label="t", **kw)


def test_file_table_matches_tarfile_reading():
    tar = layer_tar(BASIC)
    s = _scan(tar, expected_diff_id=sha256(tar))
    assert s.verified and s.diff_id == sha256(tar)
    rows = s.table.to_pylist()
    # independent reading with tarfile
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        members = tf.getmembers()
        want_paths = [m.name.lstrip("./") for m in members]
        want_sizes = [m.size for m in members]
        contents = {m.name.lstrip("./"): tf.extractfile(m).read() for m in members if m.isreg()}
    assert [r["path"] for r in rows] == want_paths
    assert [r["size"] for r in rows] == want_sizes
    assert s.size == sum(want_sizes)
    by = {r["path"]: r for r in rows}
    assert [by[p]["type"] for p in ("etc", "etc/passwd", "usr/bin/alias", "usr/bin/tool2", "dev/null", "dev/fifo")] == [
        "dir", "file", "symlink", "hardlink", "char", "fifo"]
    assert by["usr/bin/tool"]["mode"] == 0o4755 and by["usr/bin/tool"]["uid"] == 12 and by["usr/bin/tool"]["gid"] == 34
    assert by["usr/bin/alias"]["link_target"] == "tool"
    assert by["usr/bin/tool2"]["link_target"] == "usr/bin/tool"
    for p, data in contents.items():
        assert by[p]["hash"] == "xxh128:" + xxhash.xxh3_128(data).hexdigest()
    assert by["usr/bin/alias"]["hash"] is None and by["etc"]["hash"] is None
    assert by["etc/passwd"]["mtime"].timestamp() == 1_700_000_000
    assert all(r["warning"] is None for r in rows)


def test_sha256_and_no_hash():
    tar = layer_tar(BASIC)
    s = _scan(tar, hash="sha256")
    by = {r["path"]: r for r in s.table.to_pylist()}
    assert by["etc/passwd"]["hash"] == "sha256:" + hashlib.sha256(b"root:x:0:0::/root:/bin/sh\n").hexdigest()
    s = _scan(tar, hash=None)
    assert set(s.table.column("hash").to_pylist()) == {None}


def _gzip_members(data: bytes, n: int = 3) -> bytes:
    """Like estargz/pigz: several gzip members, concatenated."""
    step = max(1, len(data) // n)
    return b"".join(gzip.compress(data[i:i + step]) for i in range(0, len(data), step))


@pytest.mark.parametrize(
    "kind,compress",
    [
        ("none", lambda b: b),
        ("gzip", gzip.compress),
        ("gzip", _gzip_members),
        ("zstd", lambda b: zstandard.ZstdCompressor().compress(b)),
        ("zstd", lambda b: zstandard.ZstdCompressor().compress(b[:3000]) + zstandard.ZstdCompressor().compress(b[3000:])),
        ("bzip2", bz2.compress),
        ("xz", lzma.compress),
    ],
)
def test_compressions_give_the_same_table(kind, compress):
    tar = layer_tar(BASIC)
    blob = compress(tar)
    s = _scan(blob, expected_diff_id=sha256(tar))
    assert s.compression == kind
    assert s.verified and s.uncompressed_bytes == len(tar) and s.compressed_bytes == len(blob)
    assert s.table.equals(_scan(tar).table)


def test_media_type_that_lies_is_noted_not_trusted():
    tar = layer_tar(BASIC)
    s = _scan(gzip.compress(tar), media_type="application/vnd.oci.image.layer.v1.tar+zstd")
    assert s.compression == "gzip"
    assert any("says zstd" in n for n in s.notes)


def test_whiteouts_and_opaque_rows():
    tar = layer_tar([wh("etc/old.conf"), opq("var/cache"), wh(".hidden"), f("a/.wh..wh.plnk/x", b"")])
    rows = {(r["path"], r["type"]) for r in _scan(tar).table.to_pylist()}
    assert ("etc/old.conf", "whiteout") in rows
    assert ("var/cache", "opaque") in rows
    assert (".hidden", "whiteout") in rows


def test_hostile_names_are_normalised_and_flagged(tmp_path):
    tar = layer_tar([f("/abs/file", b"a"), f("../../escape", b"b"), f("a/../b", b"c"), f("a/b", b"1"),
                     f("a/b", b"2")], fmt=tarfile.GNU_FORMAT)
    before = set(os.listdir(tmp_path))
    rows = _scan(tar).table.to_pylist()
    assert set(os.listdir(tmp_path)) == before  # nothing extracted anywhere
    assert [r["path"] for r in rows] == ["abs/file", "escape", "b", "a/b", "a/b"]
    w = [r["warning"] or "" for r in rows]
    assert "absolute path" in w[0]
    assert "climbs above the root" in w[1]
    assert "'..'" in w[2]
    assert w[3] == "" and "more than once" in w[4]


def test_non_utf8_name_is_kept_readably():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT, encoding="latin-1") as tf:
        ti = tarfile.TarInfo("caf\xe9")
        tf.addfile(ti)
    row = _scan(buf.getvalue()).table.to_pylist()[0]
    assert row["path"] == "caf\\xe9" and "UTF-8" in row["warning"]


# -- bad input ----------------------------------------------------------------------
def _big_tar() -> bytes:
    return layer_tar([f(f"dir/file{i}", os.urandom(3000)) for i in range(20)])


def test_truncated_gzip_is_a_clear_error():
    blob = gzip.compress(_big_tar())
    with pytest.raises(ll.FormatError, match="t: .*(truncated|ends early)"):
        _scan(blob[: len(blob) // 2])


def test_corrupt_gzip_is_a_clear_error():
    blob = bytearray(gzip.compress(_big_tar()))
    for i in range(200, 260):
        blob[i] ^= 0xFF
    # the decoder streams 64 KiB at a time: the tar reader may meet the garbled bytes before zlib's check does
    with pytest.raises(ll.FormatError, match="corrupt gzip|truncated|damaged|layer is corrupt"):
        _scan(bytes(blob))


def test_truncated_zstd_is_a_clear_error():
    tar = _big_tar()
    blob = zstandard.ZstdCompressor().compress(tar)
    with pytest.raises(ll.FormatError):
        _scan(blob[: len(blob) - 2000], expected_diff_id=sha256(tar))


def test_garbage_after_gzip_is_an_error():
    with pytest.raises(ll.FormatError, match="garbage"):
        _scan(gzip.compress(_big_tar()) + b"not a gzip member at all")


def test_size_past_the_end_is_an_error():
    tar = layer_tar([f("big", b"x" * 10000)])
    # cut inside the file's data: the header claims more than there is
    with pytest.raises(ll.FormatError, match="claims 10000 bytes"):
        _scan(tar[:512 + 4000])


def test_corrupt_header_mid_archive_is_an_error():
    tar = bytearray(layer_tar([f("one", b"1" * 100), f("two", b"2" * 100), f("three", b"3")]))
    tar[1024 + 10] ^= 0x55  # second header's name: its checksum no longer matches
    with pytest.raises(ll.FormatError, match="invalid tar header"):
        _scan(bytes(tar))


def test_not_a_tar_is_an_error():
    with pytest.raises(ll.FormatError, match="not a tar"):
        _scan(b"hello, this is plainly not a tar archive" * 40)


def test_diff_id_mismatch():
    tar = layer_tar(BASIC)
    wrong = "sha256:" + "0" * 64
    with pytest.raises(ll.DigestMismatchError, match=f"expected {wrong}"):
        _scan(tar, expected_diff_id=wrong)
    s = _scan(tar, expected_diff_id=wrong, verify=False)
    assert not s.verified and any("not its diff_id" in n for n in s.notes)


def test_one_thread_scan_hashes_in_the_calling_thread(monkeypatch):
    """threads=1 (a fleet scan's task): the same diff_id check and table, no helper thread."""
    import layerlab.contents.compression as compression

    tar = layer_tar(BASIC)
    blob = gzip.compress(tar)
    two = _scan(blob, expected_diff_id=sha256(tar))

    def no_thread(*a, **kw):
        raise AssertionError("threads=1 started a thread")

    monkeypatch.setattr(compression.threading, "Thread", no_thread)
    one = _scan(blob, expected_diff_id=sha256(tar), threads=1)
    assert one.verified and one.diff_id == sha256(tar) and one.table.equals(two.table)
    wrong = "sha256:" + "0" * 64
    with pytest.raises(ll.DigestMismatchError, match=f"expected {wrong}"):
        _scan(blob, expected_diff_id=wrong, threads=1)


def test_empty_blob_is_an_empty_layer():
    s = _scan(b"")
    assert s.entries == 0 and s.notes


# -- Image.files(), the cache ----------------------------------------------------------
def test_files_frame_schema_and_values(tmp_path):
    l0 = layer_tar(BASIC)
    l1 = layer_tar([f("etc/passwd", b"changed\n")])
    img = mem_image([l0, gzip.compress(l1)], blobs=[l0, gzip.compress(l1)], diff_ids=[sha256(l0), sha256(l1)])
    df = img.files(cache_dir=tmp_path, progress=False)
    assert list(df.columns) == list(FILE_COLUMNS)
    assert {c: str(t) for c, t in df.dtypes.items()} == FILE_COLUMNS
    assert df["position"].tolist() == [0] * len(BASIC) + [1]
    assert df.loc[df.position == 1, "diff_id"].tolist() == [sha256(l1)]
    # the size of the gzip layer is now known (it was None), by the engine's rule
    assert img.layer_list[1].size == len(b"changed\n")


def test_cache_is_used_and_keyed_by_diff_id(tmp_path):
    tar = layer_tar(BASIC)
    img = mem_image([tar])
    first = img.files(cache_dir=tmp_path, progress=False)
    assert img.blobs.reads == [0]
    cache = LayerCache(tmp_path)
    p = cache.path_for(sha256(tar), "xxh128")
    assert p.is_file() and tmp_path in p.parents
    # a second image sharing the layer (another name, another provider) is served by the cache
    other = mem_image([tar], name="other/img:2")
    second = other.files(cache_dir=tmp_path, progress=False)
    assert other.blobs.reads == []
    assert first.drop(columns="image").equals(second.drop(columns="image"))
    # hash=None may use any cached table; sha256 needs its own
    other.files(cache_dir=tmp_path, progress=False, hash=None)
    assert other.blobs.reads == []
    other = mem_image([tar], name="other/img:3")
    other.files(cache_dir=tmp_path, progress=False, hash="sha256")
    assert other.blobs.reads == [0]


def test_cache_without_blobs_and_missing_blobs(tmp_path):
    tar = layer_tar(BASIC)
    img = mem_image([tar])
    img.files(cache_dir=tmp_path, progress=False)
    img = mem_image([tar])
    img.blobs = None  # e.g. a snapshot or history source: metadata only
    assert len(img.files(cache_dir=tmp_path, progress=False)) == len(BASIC)
    with pytest.raises(ll.AnalysisError, match="layer contents are not available"):
        img.files(cache_dir=tmp_path / "empty", progress=False)


def test_corrupt_cache_file_is_a_miss(tmp_path):
    tar = layer_tar(BASIC)
    img = mem_image([tar])
    img.files(cache_dir=tmp_path, progress=False)
    p = LayerCache(tmp_path).path_for(sha256(tar), "xxh128")
    p.write_bytes(b"PAR1 garbage")
    img = mem_image([tar])
    df = img.files(cache_dir=tmp_path, progress=False)
    assert img.blobs.reads == [0] and len(df) == len(BASIC)
    assert LayerCache(tmp_path).get(sha256(tar), "xxh128") is not None  # rewritten


def test_unverifiable_or_hostile_diff_ids_are_never_cached(tmp_path):
    tar = layer_tar(BASIC)
    cache_dir = tmp_path / "cache"
    img = mem_image([tar], diff_ids=["sha256:../../../../escape"])
    with pytest.raises(ll.DigestMismatchError):
        img.files(cache_dir=cache_dir, progress=False)
    img.files(cache_dir=cache_dir, progress=False, verify=False)
    assert not (tmp_path / "escape").exists()
    assert not cache_dir.exists() or not any(p.suffix == ".parquet" for p in cache_dir.rglob("*"))


def test_default_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LAYERLAB_CACHE", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x"
    monkeypatch.delenv("LAYERLAB_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "layerlab"


_WRITER = """
import io, sys
sys.path.insert(0, sys.argv[3])
from layerlab.contents.cache import LayerCache
from layerlab.contents.tarscan import scan_blob
data = open(sys.argv[1], 'rb').read()
for _ in range(15):
    s = scan_blob(io.BytesIO(data), expected_diff_id=sys.argv[2])
    LayerCache(sys.argv[4]).put(s)
"""


def test_cache_is_safe_between_processes(tmp_path):
    tar = layer_tar([f(f"f{i}", os.urandom(2000)) for i in range(300)])
    src = tmp_path / "layer.tar"
    src.write_bytes(tar)
    root = os.path.dirname(os.path.dirname(os.path.abspath(ll.__file__)))
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(src), sha256(tar), root, str(tmp_path / "c")])
        for _ in range(3)
    ]
    cache = LayerCache(tmp_path / "c")
    reads = 0
    while any(p.poll() is None for p in procs):
        got = cache.get(sha256(tar), "xxh128")
        if got is not None:  # whenever a file is there, it is whole
            assert got.entries == 300 and got.table.num_rows == 300
            reads += 1
    assert all(p.returncode == 0 for p in procs)
    assert cache.get(sha256(tar), "xxh128").entries == 300
    leftovers = [p for p in (tmp_path / "c").rglob("*") if p.is_file() and p.name.startswith(".tmp-")]
    assert leftovers == []


# -- the merged filesystem (OCI whiteout rules) ------------------------------------------
def _fs(layers, **kw):
    img = mem_image([layer_tar(x) for x in layers], **kw)
    return img, img.filesystem(cache_dir=False, progress=False)


def test_filesystem_whiteout_rules():
    base = [d("etc/"), f("etc/a", b"A" * 10), f("etc/b", b"B" * 20), d("var/"), d("var/lib/"),
            f("var/lib/x", b"X" * 30), d("var/lib/sub/"), f("var/lib/sub/y", b"Y" * 40),
            d("opt/"), f("opt/keep", b"k"), f("opt/drop", b"d" * 5), f("data", b"payload" * 3)]
    l1 = [wh("etc/a"), wh("var/lib"), opq("opt"), f("opt/new", b"n" * 7),
          f("etc/b", b"b2"),             # overwritten
          wh("etc/b2"), f("etc/b2", b"same layer")]  # whiteout and entry in one layer: the entry stays
    l2 = [f("etc/a", b"again"),          # re-created after its deletion
          d("var/lib/"), f("var/lib/z", b"z"),
          hard("hl", "data"),            # hard link to a file in a lower layer
          f("opt", b"now a file")]       # a directory replaced by a file
    img, fs = _fs([base, l1, l2])
    assert list(fs.columns) == list(FILESYSTEM_COLUMNS)
    assert {c: str(t) for c, t in fs.dtypes.items()} == FILESYSTEM_COLUMNS
    got = {p: (int(pos), t) for p, pos, t in zip(fs.path, fs.position, fs.type)}
    assert got == {
        "etc": (0, "dir"), "etc/a": (2, "file"), "etc/b": (1, "file"), "etc/b2": (1, "file"),
        "var": (0, "dir"), "var/lib": (2, "dir"), "var/lib/z": (2, "file"),
        "data": (0, "file"), "hl": (2, "hardlink"), "opt": (2, "file"),
    }
    hl = fs.set_index("path").loc["hl"]
    assert hl["content_size"] == 21 and hl["hash"] == "xxh128:" + xxhash.xxh3_128(b"payload" * 3).hexdigest()


def test_waste_names_the_steps(tmp_path):
    base = [d("var/"), d("var/lib/"), d("var/lib/apt/"), f("var/lib/apt/lists", b"L" * 1000), f("bin/app", b"a" * 50)]
    l1 = [d("var/lib/apt/"), wh("var/lib/apt/lists")]
    l2 = [f("bin/app", b"b" * 60)]
    img = mem_image([layer_tar(x) for x in (base, l1, l2)],
                    history=["RUN apt-get update", "RUN rm -rf /var/lib/apt/lists", "RUN chmod +x /bin/app"])
    w = ll.waste(img, cache_dir=False, progress=False)
    assert w[["path", "wasted_bytes", "position", "hidden_by_position", "how"]].values.tolist() == [
        ["var/lib/apt/lists", 1000, 0, 1, "deleted"],
        ["bin/app", 50, 0, 2, "overwritten"],
    ]
    by = ll.waste(img, by="step", cache_dir=False, progress=False)
    assert by.message.iloc[0] == ("RUN apt-get update (layer 0) left 1 kB that RUN rm -rf /var/lib/apt/lists "
                                  "(layer 1) hid (1 file, deleted)")
    assert by.above_base.tolist() == [True, True]
    eff = ll.efficiency(img, cache_dir=False, progress=False)
    assert eff.reclaimable_bytes == 1050 and eff.reclaimable_bytes_above_base == 1050
    assert ll.efficiency(img, base=2, cache_dir=False, progress=False).reclaimable_bytes_above_base == 50


def test_symlink_loop_and_parent_symlink_are_flagged():
    base = [sym("a", "b"), sym("b", "a"), sym("lib", "usr/lib"), d("usr/"), d("usr/lib/"), sym("ok", "usr")]
    l1 = [f("lib/x.so", b"so")]
    _img, fs = _fs([base, l1])
    w = dict(zip(fs.path, fs.warning.fillna("")))
    assert "symlink loop" in w["a"] and "symlink loop" in w["b"]
    assert w["ok"] == ""
    assert "parent /lib is a symlink" in w["lib/x.so"]


def test_one_read_and_merge_per_image_across_analyses(tmp_path):
    img = mem_image([layer_tar(BASIC), layer_tar([wh("etc/passwd")])])
    img.files(cache_dir=False, progress=False)
    ll.efficiency(img, cache_dir=False, progress=False)
    ll.waste(img, cache_dir=False, progress=False)
    img.filesystem(cache_dir=False, progress=False)
    assert img.blobs.reads == [0, 1]


def test_duplicates_count_distinct_layers_once():
    payload = os.urandom(5000)
    l0 = layer_tar([f("a", payload), f("b", payload), f("c", b"unique" * 10)])
    l1 = layer_tar([f("d", payload)])
    img1 = mem_image([l0, l1], name="one")
    img2 = mem_image([l0], name="two")  # shares layer 0: stored once
    dup = ll.duplicates([img1, img2], cache_dir=False, progress=False)
    row = dup.iloc[0]
    assert (row["copies"], row["layers"], row["images"], row["saved_bytes"]) == (3, 2, 2, 10000)
    assert row["hash"] == "xxh128:" + xxhash.xxh3_128(payload).hexdigest()
    s = dup.attrs["summary"]
    assert s["files"] == 4 and s["stored_bytes"] == 3 * 5000 + 60 and s["saved_bytes"] == 10000
    assert s["unique_files"] == 1


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_header_reader_agrees_with_tarfile(fmt):
    """Long names (ustar prefix, GNU L/K records, PAX path/linkpath), big ids, unicode."""
    long_dir = "/".join(["d" * 40] * 3)
    entries = [
        d(long_dir + "/"),
        f(long_dir + "/" + "f" * 60, b"long name"),
        f("ü/ñame", b"unicode", uid=7, gid=8),
        sym("link", "t" * 150 if fmt != tarfile.USTAR_FORMAT else "t" * 90),
        f("big-ids", b"x", uid=2_000_000 if fmt != tarfile.USTAR_FORMAT else 7, gid=3),
    ]
    if fmt == tarfile.USTAR_FORMAT:
        entries = [e for e in entries if not e["name"].startswith("ü")]
    tar = layer_tar(entries, fmt=fmt)
    rows = _scan(tar, hash="sha256").table.to_pylist()
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        want = [(m.name, m.size, m.uid, m.gid, m.mode, m.linkname if m.issym() else None,
                 "sha256:" + hashlib.sha256(tf.extractfile(m).read()).hexdigest() if m.isreg() else None)
                for m in tf.getmembers()]
    got = [(r["path"], r["size"], r["uid"], r["gid"], r["mode"], r["link_target"], r["hash"]) for r in rows]
    assert got == want


def test_efficiency_html_escapes_hostile_paths():
    evil = '"><img src=x onerror=alert(1)><script>x</script>'
    l0 = layer_tar([f(evil, b"a" * 100)])
    l1 = layer_tar([f(evil, b"b" * 100)])
    img = mem_image([l0, l1], name="<b>img</b>")
    eff = ll.efficiency(img, cache_dir=False, progress=False)
    html = eff._repr_html_()
    assert "<script>" not in html and "<img" not in html and "<b>img" not in html
    assert "&lt;script&gt;" in html
    assert eff.inefficient_bytes == 200 and eff.reclaimable_bytes == 100
    assert "layerlab.Efficiency" in repr(eff)


def test_efficiency_is_a_result_with_frames_notes_and_a_real_signature():
    """Efficiency follows the one result convention (analysis._result.Result): frames by name,
    notes from the merge, short repr, HTML; and efficiency() shows its real parameters."""
    import inspect

    from layerlab.analysis import efficiency as E
    from layerlab.analysis._result import Result

    img = mem_image([layer_tar([f("a", b"x" * 10)]), layer_tar([f("a", b"y" * 5)]), layer_tar([wh("ghost<i>")])])
    eff = ll.efficiency(img, cache_dir=False, progress=False)
    assert isinstance(eff, Result)
    assert eff.notes == ["layer 2: whiteout of /ghost<i>, which no lower layer has"]
    frames = eff.frames()
    assert list(frames) == ["figures", "inefficient_files"]
    row = eff.to_frame()
    assert row.to_dict("records") == frames["figures"].to_dict("records")
    assert row[["image", "size_bytes", "inefficient_bytes", "reclaimable_bytes", "base_layers"]].values.tolist() == [
        ["test/mem:1", 15, 15, 10, 1]]  # dive: every copy of /a (10 + 5); squashing frees the old one (10)
    assert frames["inefficient_files"].values.tolist() == [["/a", 2, 15]]
    text = repr(eff)
    # dive's score: smallest copies (/a: 5; the whiteout of nothing: -1) over all copies (15)
    assert text.startswith("<layerlab.Efficiency: 'test/mem:1': dive score 0.2667") and text.endswith("; 1 note>")
    page = eff._repr_html_()
    assert "ghost&lt;i&gt;" in page and "ghost<i>" not in page
    params = inspect.signature(E.efficiency).parameters
    assert list(params) == ["img", "base", "hash", "cache_dir", "progress", "verify", "workers"]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for name, p in params.items() if name != "img")
    assert (params["hash"].default, params["verify"].default, params["workers"].default) == (None, True, None)
    with pytest.raises(TypeError):
        E.efficiency(img, cache_dirr=False)  # a misspelt option is an error, not ignored


def test_the_engines_memo_is_a_declared_field_outside_the_images_identity():
    """What files()/efficiency() computed is kept in Image._memo only: not in __dict__ under
    other names, not in repr or equality, and not carried over by dataclasses.replace."""
    import dataclasses

    img = mem_image([layer_tar(BASIC), layer_tar([wh("etc/passwd")])])
    assert img._memo is None
    img.files(cache_dir=False, progress=False)
    ll.efficiency(img, cache_dir=False, progress=False)
    assert img._memo.contents is not None and img._memo.results is not None
    assert [k for k in vars(img) if k.startswith("_")] == ["_memo"]
    copy = dataclasses.replace(img)
    assert copy._memo is None and copy == img
    assert "_memo" not in repr(img) and "ImageMemo" not in repr(img)

# -- the one place for compression magic and layer media types ------------------------------
@pytest.mark.parametrize("level, want", [(9, 9), (1, 1), (6, 6), (5, 6)])
def test_detect_level_reads_gzip_xfl(level, want):
    from layerlab.contents.compression import detect, detect_level

    head = gzip.compress(b"layer" * 100, compresslevel=level, mtime=0)[:16]
    assert detect(head) == "gzip"
    assert detect_level(head)[:2] == ("gzip", want)


def test_detect_level_zstd_and_plain():
    from layerlab.contents.compression import detect, detect_level

    z = zstandard.ZstdCompressor(level=19).compress(b"layer" * 100)[:16]
    assert detect(z) == "zstd" and detect_level(z)[:2] == ("zstd", 3)
    assert detect(bz2.compress(b"x")[:8]) == "bzip2" and detect(lzma.compress(b"x")[:8]) == "xz"
    assert detect(b"usr/bin/") == "none" and detect_level(b"usr/bin/")[:2] == ("none", 6)


def test_layer_media_types_and_their_compression():
    from layerlab.contents import compression as C

    assert C.kind_from_media_type("application/vnd.oci.image.layer.v1.tar+zstd") == "zstd"
    assert C.kind_from_media_type("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip") == "gzip"
    assert C.kind_from_media_type("application/vnd.oci.image.layer.nondistributable.v1.tar") == "none"
    assert C.kind_from_media_type("application/vnd.example.layer+tar") == "none"
    assert C.kind_from_media_type("application/json") is None and C.kind_from_media_type(None) is None
    assert len(C.LAYER_COMPRESSION) == 10
    assert C.layer_media_type("gzip") == "application/vnd.docker.image.rootfs.diff.tar.gzip"
    assert C.layer_media_type("none", oci=True) == "application/vnd.oci.image.layer.v1.tar"
    assert C.layer_media_type("xz") is None


# -- the OCI path rules -------------------------------------------------------------------------
def test_whiteout_name_rules():
    from layerlab.contents import whiteouts as W

    assert [W.classify(b) for b in ("x", ".wh.x", ".wh..wh..opq", ".wh..wh.plnk", ".wh.")] == \
        [None, "whiteout", "opaque", "meta", "empty"]
    assert W.whiteout_name("a/b") == "a/.wh.b" and W.whiteout_name("b") == ".wh.b"
    assert W.opaque_name("a/b") == "a/b/.wh..wh..opq" and W.opaque_name("") == ".wh..wh..opq"
    assert W.is_marker("./a/.wh.b") and W.is_marker("a/.wh..wh..opq")
    assert not W.is_marker("a/.wh..wh.plnk") and not W.is_marker("a/.wh.") and not W.is_marker("a/b")
    assert W.is_meta_name("u/.wh..wh.plnk") and not W.is_meta_name(".wh..wh.plnk/x")
    assert W.normalise_path("./a/../../b/") == ("b", ["'..' climbs above the root; clamped to /b"])
    assert W.shown_utf8("caf\udce9") == ("caf\\xe9", False) and W.shown_utf8("café") == ("café", True)
