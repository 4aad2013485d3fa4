"""The byte-range scan (tarindex + rangescan) against the streaming scan.

The streaming scan (TarReader, checked against ``tarfile`` in test_contents)
with the row-wise table rules is the reference; the byte-range scan of the
same tar stored inside a file must give the same table, the same layer
notes, and the same errors.  And the vectorised table builder must agree
with the row-wise one on every odd row."""
from __future__ import annotations

import hashlib
import io
import os
import tarfile

import pytest

import layerlab as ll
from layerlab.contents import rangescan as R
from layerlab.contents import tarscan
from layerlab.contents.tarindex import docker_size, index_range
from layerlab.contents.tarscan import RawColumns, build_table, build_table_rowwise, scan_blob

from _contents_helpers import d, f, hard, layer_tar, opq, sha256, sym, wh


def _reference(data: bytes, monkeypatch, **kw):
    with monkeypatch.context() as m:
        m.setattr(tarscan, "build_table", build_table_rowwise)
        return scan_blob(io.BytesIO(data), label="t", **kw)


def _ranged(tmp_path, data: bytes, *, pad: int = 1536, expected: str | None = None, hash="fast", verify=True):
    """Scan ``data`` stored at an odd offset of a bigger file, by byte range."""
    p = tmp_path / "container.bin"
    p.write_bytes(b"\xaa" * pad + data + b"\xbb" * 700)
    fd = os.open(p, os.O_RDONLY)
    try:
        job = R.RangeJob(fd, pad, len(data), "t", expected)
        raw = R.walk(job, hash, verify)
        return R.finish(job, raw, hash, verify)
    finally:
        R.cancel([job]) if "job" in locals() else None
        os.close(fd)


def _gnu_sparse() -> bytes:
    # a GNU sparse member, written by GNU tar itself when available, else by hand-free tarfile trick
    ti = tarfile.TarInfo("sparse")
    ti.type = tarfile.GNUTYPE_SPARSE
    ti.size = 5
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        tf.addfile(ti, io.BytesIO(b"12345"))
    return buf.getvalue()


def _v7_dir_and_base256() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        big = tarfile.TarInfo("bigid")
        big.uid = 8 ** 8 + 5   # too big for octal: GNU writes base-256
        big.size = 3
        tf.addfile(big, io.BytesIO(b"abc"))
    data = bytearray(buf.getvalue())
    # a V7 directory: type NUL, name ending in "/"
    v7 = bytearray(512)
    v7[0:5] = b"olddir/"[:5]
    v7[0:7] = b"olddir/"
    v7[100:108] = b"0000755\0"
    v7[108:116] = b"0000000\0"
    v7[116:124] = b"0000000\0"
    v7[124:136] = b"00000000000\0"
    v7[136:148] = b"14000000000\0"
    v7[156] = 0
    v7[148:156] = b" " * 8
    v7[148:156] = b"%06o\0 " % sum(v7)
    # old-style fields: "   644 \0" with leading spaces
    old = bytearray(512)
    old[0:3] = b"old"
    old[100:108] = b"   644 \0"
    old[108:116] = b"     0 \0"
    old[116:124] = b"     0 \0"
    old[124:136] = b"          2 "
    old[136:148] = b"14000000000 "
    old[156:157] = b"0"
    old[148:156] = b" " * 8
    old[148:156] = b"%06o\0 " % sum(old)
    return bytes(v7) + bytes(old) + b"hi".ljust(512, b"\0") + bytes(data)


def _global_pax() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT,
                      pax_headers={"comment": "global", "uid": "4242"}) as tf:
        ti = tarfile.TarInfo("g/file")
        ti.size = 2
        ti.mtime = 1_700_000_000.5
        tf.addfile(ti, io.BytesIO(b"ok"))
    return buf.getvalue()


CASES = {
    "basic": layer_tar([
        d("./etc/"), f("./etc/passwd", b"root\n"), sym("./etc/alias", "passwd"), hard("./etc/hl", "./etc/passwd"),
        {**f("dev/null"), "type": tarfile.CHRTYPE, "data": None}, {**f("dev/fifo"), "type": tarfile.FIFOTYPE,
                                                                      "data": None},
        f("big", os.urandom(5 << 20)),   # hashed on its own, in chunks
    ]),
    "root-and-dup": layer_tar([d("./"), f("a", b"1"), f("a", b"22"), d("dir/"), d("dir/")]),
    "whiteouts": layer_tar([wh("gone"), opq("opaque/"), f(".wh..wh.plnk/1.2", b"aufs"), f("x/.wh.", b""),
                            f(".hidden", b"h"), f("x/.profile", b"p"), f("a//b", b"")]),
    "dotdot-abs": layer_tar([f("/abs", b"a"), f("../../up", b"u"), f("a/../b", b"b"), hard("h", "../../abs")]),
    "long-names-pax": layer_tar([d("/".join(["d" * 40] * 3) + "/"), f("/".join(["d" * 40] * 3) + "/" + "f" * 60, b"x"),
                                 f("ü/ñame", b"unicode", uid=7, gid=8), sym("link", "t" * 150),
                                 f("big-ids", b"x", uid=2_000_000)]),
    "gnu-long": layer_tar([f("g" * 200, b"gnu"), sym("s" * 120, "t" * 130)], fmt=tarfile.GNU_FORMAT),
    "ustar-prefix": layer_tar([f("p" * 80 + "/" + "q" * 90, b"ustar")], fmt=tarfile.USTAR_FORMAT),
    "gnu-sparse": _gnu_sparse(),
    "v7-base256-oldfields": _v7_dir_and_base256(),
    "global-pax-float-mtime": _global_pax(),
    "no-end-marker": layer_tar([f("a", b"1")])[:1024],
    "empty": b"",
    "bad-utf8": layer_tar([f("caf\udce9".encode("utf-8", "surrogateescape").decode("latin-1"), b"x")],
                          fmt=tarfile.GNU_FORMAT),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("hash", ["fast", "sha256", None])
def test_range_scan_equals_streaming_scan(tmp_path, monkeypatch, name, hash):
    data = CASES[name]
    want = _reference(data, monkeypatch, expected_diff_id=sha256(data), hash=hash)
    got = _ranged(tmp_path, data, expected=sha256(data), hash=hash)
    assert got.table.to_pylist() == want.table.to_pylist()
    assert got.table.schema.equals(want.table.schema)
    assert (got.diff_id, got.size, got.entries, got.verified) == (want.diff_id, want.size, want.entries, True)
    assert got.notes == want.notes


def test_every_odd_row_kind_builds_the_same_table():
    """The vectorised builder against the row-wise rules, row by row, on one mixed layer."""
    raw = RawColumns()
    rows = [
        ("usr/", b"5", 0, 0o40755, 0, 0, 1, "", None, None),
        ("./usr/bin/", b"5", 0, 0o755, 0, 0, 1, "", None, None),
        ("usr/bin/a", b"0", 3, 0o100644, 1, 2, 1_700_000_000, "", None, "xxh128:1"),
        ("usr/bin/a", b"0", 4, 0o644, 1, 2, 1_700_000_001, "", None, "xxh128:2"),
        ("usr/.wh.gone", b"0", 0, 0o644, 0, 0, 1, "", None, None),
        ("usr/.wh..wh..opq", b"0", 0, 0o644, 0, 0, 1, "", None, None),
        ("./", b"5", 0, 0o755, 0, 0, 1, "", None, None),
        ("x", b"Z", 2, 0o644, 0, 0, 1, "", None, "xxh128:3"),
        ("sp", b"S", 2, 0o644, 0, 0, 1, "", None, "xxh128:4"),
        ("t", b"0", 0, 0o644, 0, 0, 1.25, "", None, "xxh128:5"),
        ("huge-time", b"0", 0, 0o644, 0, 0, 10 ** 30, "", None, "xxh128:6"),
        ("l", b"2", 0, 0o777, 0, 0, 1, "t\udcff", None, None),
        ("h", b"1", 0, 0o644, 0, 0, 1, "../usr/bin/a", None, None),
        ("n", b"0", 0, 0o644, 0, 0, 1, "", ["PAX sparse file: the hash covers the stored data only"], "x:7"),
        ("usr/bin/a", b"2", 0, 0o777, 0, 0, 10 ** 30, "z", None, None),
        ("/", b"5", 0, 0o755, 0, 0, 1, "", None, None),
    ]
    for r in rows * 3:
        raw.add(*r)
    fast, n1 = build_table(raw)
    ref, n2 = build_table_rowwise(raw)
    assert fast.to_pylist() == ref.to_pylist() and n1 == n2
    # and when plain rows dominate (the vectorised path proper)
    for i in range(200):
        raw.add(f"plain/{i}", b"0", i, 0o644, 0, 0, 1_600_000_000 + i, "", None, f"xxh128:{i}")
    fast, n1 = build_table(raw)
    ref, n2 = build_table_rowwise(raw)
    assert fast.to_pylist() == ref.to_pylist() and n1 == n2


@pytest.mark.parametrize("plain", [0, 200])
def test_deferred_hashes_give_the_same_table(plain):
    """A table built before the hashes are known, then given them, equals the one built with them
    (on the odd rows, mostly row-wise, and with plain rows dominating: the vectorised path)."""
    from layerlab.contents.tarscan import build_table_deferred

    raw = RawColumns()
    rows = [
        ("./", b"5", 0, 0o755, 0, 0, 1, "", None, None),
        ("usr/bin/a", b"0", 3, 0o100644, 1, 2, 1_700_000_000, "", None, None),
        ("usr/.wh.gone", b"0", 0, 0o644, 0, 0, 1, "", None, None),
        ("x", b"Z", 2, 0o644, 0, 0, 1, "", None, None),
        ("h", b"1", 0, 0o644, 0, 0, 1, "usr/bin/a", None, None),
        ("l", b"2", 0, 0o777, 0, 0, 1, "usr/bin/a", None, None),
        ("usr/bin/a", b"0", 5, 0o644, 0, 0, 1.5, "", None, None),
    ]
    for r in rows:
        raw.add(*r)
    for i in range(plain):
        raw.add(f"plain/{i}", b"0", i, 0o644, 0, 0, 1_600_000_000 + i, "", None, None)
    table, total, attach = build_table_deferred(raw)
    assert table.column("hash").null_count == table.num_rows
    raw.digest = [f"xxh128:{i:032x}" for i in range(len(raw.name))]
    ref, n_ref = build_table(raw)
    got = attach()
    assert got.equals(ref) and total == n_ref
    assert got.column("hash").null_count < got.num_rows  # the hashes did arrive


BAD = {
    "truncated-data": layer_tar([f("a", b"x" * 10000)])[:3000],
    "truncated-header": layer_tar([f("a", b"x")])[:700],
    "garbage": b"hello, this is plainly not a tar archive" * 40,
    "bad-checksum-later": None,
    "meta-too-long": None,
}


def _bad(name: str) -> bytes:
    if BAD[name] is not None:
        return BAD[name]
    if name == "bad-checksum-later":
        tar = bytearray(layer_tar([f("a", b"1"), f("b", b"2"), f("c", b"3")]))
        tar[1024 + 5] ^= 0x40  # flip a bit in b's header name
        return bytes(tar)
    tar = bytearray(layer_tar([f("x" * 200, b"1")], fmt=tarfile.GNU_FORMAT))
    tar[124:136] = b"%011o\0" % (2 << 20)  # an L record claiming 2 MiB
    tar[148:156] = b" " * 8
    tar[148:156] = b"%06o\0 " % sum(tar[:512])
    return bytes(tar)


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_tars_fail_the_same_way(tmp_path, monkeypatch, name):
    data = _bad(name)
    with pytest.raises(ll.LayerlabError) as ref:
        _reference(data, monkeypatch, hash="fast", verify=False)
    with pytest.raises(ll.LayerlabError) as got:
        _ranged(tmp_path, data, hash="fast", verify=False)
    assert type(got.value) is type(ref.value)
    if name != "truncated-data":  # streaming reads the data and says which entry fell short
        assert str(got.value) == str(ref.value)
    else:
        assert "truncated" in str(got.value)


def test_mismatching_diff_id_is_refused_unless_verify_false(tmp_path):
    data = CASES["basic"]
    wrong = "sha256:" + "0" * 64
    with pytest.raises(ll.DigestMismatchError, match="does not match its diff_id"):
        _ranged(tmp_path, data, expected=wrong)
    s = _ranged(tmp_path, data, expected=wrong, verify=False)
    assert not s.verified  # not hashed at all: nothing may be cached under the claimed diff_id


def test_docker_size_from_the_index_matches_tarfile(tmp_path):
    data = CASES["basic"] + b""
    p = tmp_path / "l.tar"
    p.write_bytes(data)
    fd = os.open(p, os.O_RDONLY)
    try:
        idx = index_range(fd, 0, len(data), "t")
    finally:
        os.close(fd)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        want = {}
        for m in tf:
            want[m.name.removeprefix("./").rstrip("/")] = (
                m.size if m.isreg() else len(m.linkname.encode()) if m.issym() else 0)
    assert docker_size(idx) == sum(want.values())
    assert len(idx) == len(tarfile.open(fileobj=io.BytesIO(data)).getmembers())


def test_docker_size_rule_by_hand():
    """The one rule: files their size, symlinks their target's UTF-8 length, the rest 0,
    the last listing of a path wins."""
    from layerlab.contents.sizes import docker_size_of

    paths = ["a", "l", "d", "h", "a", "u"]
    types = ["file", "symlink", "dir", "hardlink", "file", "symlink"]
    sizes = [5, 0, 4096, 9, 7, None]
    links = [None, "tgt", None, "a", None, "caf\u00e9"]
    assert docker_size_of(paths, types, sizes, links) == 7 + 3 + 5
    assert docker_size_of(paths[:4], types[:4], sizes[:4], links[:4]) == 5 + 3
    assert docker_size_of([], [], [], []) == 0


@pytest.mark.parametrize("case", ["basic", "whiteouts"])
def test_docker_size_of_a_file_table_matches_the_headers(tmp_path, case):
    """``table_docker_size`` (a scanned layer's file table, Arrow or pandas) and the
    header walk's ``docker_size`` give tarfile's figure."""
    from layerlab.contents.sizes import table_docker_size

    data = CASES[case]
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        want = {}
        for m in tf:
            want[m.name.removeprefix("./").rstrip("/")] = (
                m.size if m.isreg() else len(m.linkname.encode()) if m.issym() else 0)
    table = scan_blob(io.BytesIO(data), label="t").table
    assert table_docker_size(table) == table_docker_size(table.to_pandas()) == sum(want.values()) > 0


def test_docker_archive_scan_uses_the_range_path_and_matches_streaming(tmp_path, monkeypatch):
    """End to end: a docker-archive layer is scanned by byte range (no stream decoding)."""
    from _contents_helpers import mem_image  # noqa: F401  (helpers import check)
    layer = CASES["basic"]
    diff_id = sha256(layer)
    import json
    import tarfile as tf_

    config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]},
              "history": [{"created_by": "ADD x /"}]}
    cfg = json.dumps(config).encode()
    cfg_name = hashlib.sha256(cfg).hexdigest() + ".json"
    manifest = json.dumps([{"Config": cfg_name, "RepoTags": ["t/range:1"], "Layers": ["l/layer.tar"]}]).encode()
    path = tmp_path / "img.tar"
    with tf_.open(path, "w") as tf:
        for name, data in ((cfg_name, cfg), ("l/layer.tar", layer), ("manifest.json", manifest)):
            ti = tf_.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    from layerlab.contents import scan, verify

    calls = []
    real = verify.scan_checked  # the streaming scan (tarscan.scan_blob plus the blob-digest check)
    monkeypatch.setattr(scan, "scan_checked", lambda *a, **k: calls.append(1) or real(*a, **k))
    img = ll.load(f"docker-archive:{path}", progress=False, cache_dir=False)
    files = img.files(cache_dir=False, progress=False)
    assert not calls  # the streaming scanner was not used
    want = _reference(layer, monkeypatch, expected_diff_id=diff_id)
    assert files["path"].tolist() == [r["path"] for r in want.table.to_pylist()]
    import pandas as pd

    assert [None if h is pd.NA else h for h in files["hash"].tolist()] == [r["hash"] for r in want.table.to_pylist()]


def _child_scan(path: str, q) -> None:
    try:
        rows = len(ll.load(f"docker-archive:{path}", progress=False, cache_dir=False).files(
            cache_dir=False, progress=False))
        q.put(rows)
    except BaseException as e:  # noqa: BLE001
        q.put(repr(e))


def test_a_forked_child_scans_with_its_own_pool(tmp_path):
    import multiprocessing

    from test_local_cache import _archive

    layer = CASES["basic"]
    path = _archive(tmp_path / "img.tar", layer, sha256(layer))
    rows = len(ll.load(f"docker-archive:{path}", progress=False, cache_dir=False).files(cache_dir=False,
                                                                                         progress=False))
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child_scan, args=(str(path), q))
    p.start()
    p.join(30)
    assert p.exitcode == 0, "the forked child hung or died"
    assert q.get(timeout=5) == rows


def _two_layer_archive(tmp_path, l0: bytes, l1: bytes, name="two.tar"):
    import json

    config = {"architecture": "amd64", "os": "linux",
              "rootfs": {"type": "layers", "diff_ids": [sha256(l0), sha256(l1)]},
              "history": [{"created_by": "ADD a /"}, {"created_by": "RUN b"}]}
    cfg = json.dumps(config).encode()
    cfg_name = hashlib.sha256(cfg).hexdigest() + ".json"
    manifest = json.dumps([{"Config": cfg_name, "RepoTags": ["t/two:1"],
                            "Layers": ["0/layer.tar", "1/layer.tar"]}]).encode()
    path = tmp_path / name
    with tarfile.open(path, "w") as tf:
        for n, data in ((cfg_name, cfg), ("0/layer.tar", l0), ("1/layer.tar", l1), ("manifest.json", manifest)):
            ti = tarfile.TarInfo(n)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return path


def test_a_worker_process_walks_the_biggest_layers(tmp_path, monkeypatch):
    from layerlab.sources import _sizing as _blobs

    l0 = CASES["basic"]
    l1 = CASES["long-names-pax"]
    path = _two_layer_archive(tmp_path, l0, l1)
    alone = ll.load(f"docker-archive:{path}", progress=False, cache_dir=False)
    started = []
    real = _blobs._WalkWorker

    class Spy(real):
        def __init__(self, blobs):
            started.append([b.length for b, _ in blobs])
            super().__init__(blobs)

    monkeypatch.setattr(_blobs, "PARALLEL_WALK_BYTES", 0)
    monkeypatch.setattr(_blobs, "_WalkWorker", Spy)
    img = ll.load(f"docker-archive:{path}", progress=False, cache_dir=False)
    assert started == [[len(l0)]]  # the bigger layer went to the worker
    assert [x.size for x in img.layer_list] == [x.size for x in alone.layer_list]
    assert img.files(cache_dir=False, progress=False).equals(alone.files(cache_dir=False, progress=False))
    # a damaged layer walked by the worker fails as it does here
    bad = bytearray(l0)
    bad[5] ^= 0x40  # the first header's name: its checksum no longer matches
    broken = _two_layer_archive(tmp_path, bytes(bad), l1, "broken.tar")
    monkeypatch.setattr(_blobs, "_WalkWorker", real)
    with pytest.raises(ll.FormatError) as worker_err:
        ll.load(f"docker-archive:{broken}", progress=False, cache_dir=False)
    monkeypatch.setattr(_blobs, "PARALLEL_WALK_BYTES", 1 << 60)
    with pytest.raises(ll.FormatError) as local_err:
        ll.load(f"docker-archive:{broken}", progress=False, cache_dir=False)
    assert str(worker_err.value) == str(local_err.value)


def test_special_rows_vectorised_matches_the_python_tests():
    """The Arrow-regex / numpy pick of odd rows equals the plain Python tests it replaces."""
    from layerlab.contents import tarscan

    names = ["usr/bin/a", "", "/abs", ".hidden", "a/.wh.b", "a//b", "tab\there", "caf\u00e9", "sp ace",
             "tilde~", "del\x7f", "nl\n", "a/b/", "x" * 300, "\u2028sep", "ok-_+=,;:!@#$%^&*()[]{}<>?|'\"`"]
    raw = RawColumns()
    for k, nm in enumerate(names):
        flag = [b"0", b"5", b"2", b"1", b"S", b"7", b"Z", b"6"][k % 8]
        mt = [1, 1.5, 10 ** 30, -5][k % 4]
        raw.add(nm, flag, 0, 0o644, 0, 0, mt, "t\u00e9" if k % 3 else "t", None if k % 5 else ["n"], None)
    kinds = list(map(tarscan._TYPE_MAP.get, raw.type))

    def python_pick(stripped):
        out = {i for i, nm in enumerate(stripped)
               if not nm or nm[0] in "/." or "/." in nm or "//" in nm or not (nm.isascii() and nm.isprintable())}
        out.update(i for i, k in enumerate(kinds) if k not in (tarscan.FILE, tarscan.DIR, tarscan.SYMLINK,
                                                               tarscan.CHAR, tarscan.BLOCK, tarscan.FIFO))
        out.update(i for i, t in enumerate(raw.type) if t == b"S")
        out.update(i for i, x in enumerate(raw.notes) if x)
        out.update(i for i, m in enumerate(raw.mtime) if type(m) is not int or not -tarscan._S_MAX <= m <= tarscan._S_MAX)
        out.update(i for i, (k, ln) in enumerate(zip(kinds, raw.link)) if k == tarscan.SYMLINK and not ln.isascii())
        return out

    assert tarscan._special_rows(names, kinds, raw) == python_pick(names)
    # integer times only (the numpy path), and a name Arrow cannot encode (the Python fallback)
    raw.mtime = [7] * len(names)
    assert tarscan._special_rows(names, kinds, raw) == python_pick(names)
    odd = names[:-1] + ["bad\udcffbytes"]
    assert tarscan._special_rows(odd, kinds, raw) == python_pick(odd)
