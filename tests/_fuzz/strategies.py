"""Hypothesis strategies for every text format layerlab reads, and for tar streams.

Each strategy builds a *nearly valid* document (so the parser gets past its
first check) in which any field may be replaced by a hostile value: the wrong
JSON type, an extreme integer, a long or odd string, deep nesting.  Digests
are kept consistent where a source checks them, so the fuzz reaches the code
behind the check.

``WIDE`` (set by ``scripts/fuzz``; off in the default run): integers reach
past 2**63 and strings and nesting grow larger.  Known-open defects that only
the wide range hits are kept out of the default run (they have their own
xfail tests in ``tests/test_fuzz_known.py``).
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import struct

from hypothesis import strategies as st

WIDE = os.environ.get("LAYERLAB_FUZZ_WIDE") == "1"
# past 2**53 a column of sizes with a gap turns float64 and cannot be cast back (a known-open
# defect of the frame builder, with its own xfail test): the default run stays below it
INT_MAX = 2**70 if WIDE else 2**53
EXTREMES = [0, -1, 2**31, 2**32, 2**53] + ([2**53 + 1, 2**63 - 1, -(2**63), 2**63, 2**64] if WIDE else [])


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def dump(doc) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()


DEEP = "[" * 100_000 + "]" * 100_000  # nesting past any JSON parser's recursion limit


# -- JSON values -------------------------------------------------------------------------------
ints = st.one_of(st.integers(-10, 10**6), st.integers(-INT_MAX, INT_MAX),
                 st.sampled_from(EXTREMES))
texts = st.one_of(st.text(max_size=40), st.sampled_from(["", "<missing>", "sha256:", "\x00", "…", "../../etc",
                                                          "1.5MB", "0B", "-3kB", "NaN", "9" * (30 if WIDE else 15)]))
scalars = st.one_of(st.none(), st.booleans(), ints, st.floats(allow_nan=True, allow_infinity=True), texts)
json_values = st.recursive(scalars, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                            st.dictionaries(texts, kids, max_size=4)),
                           max_leaves=12)
digests = st.one_of(st.binary(max_size=8).map(sha), st.just("sha256:" + "0" * 64), texts)


def perturb(doc):
    """A strategy: ``doc`` (a dict) with some of its keys replaced by hostile values, dropped, or added."""
    keys = sorted(doc)

    @st.composite
    def _p(draw):
        out = dict(doc)
        for k in draw(st.lists(st.sampled_from(keys), max_size=3, unique=True)) if keys else []:
            if draw(st.booleans()):
                out[k] = draw(json_values)
            else:
                del out[k]
        if draw(st.integers(0, 4)) == 0:
            out[draw(texts)] = draw(json_values)
        return out

    return _p()


def sometimes(draw, doc, strategy_for):
    return draw(strategy_for(doc)) if draw(st.integers(0, 2)) == 0 else doc


# -- saved docker history ----------------------------------------------------------------------
sizes = st.one_of(ints, st.sampled_from(["0B", "6B", "1.98MB", "102kB", "1.5GiB", "3e5kB", "", "12 MB", "1.2.3kB"]),
                  st.integers(0, INT_MAX).map(str), json_values)
FAR_DATES = ["3000-01-01T00:00:00Z", "1600-01-01T00:00:00Z", "9999-12-31T23:59:59Z"] if WIDE else []
times = st.one_of(st.sampled_from(["2026-11-28T02:03:10Z", "2026-11-28 02:03:10 +0000 UTC", "2 hours ago",
                                   "0000-00-00T00:00:00Z", "9999-12-31T23:59:59+99:99", "2026-02-30T25:61:61Z",
                                   *FAR_DATES]),
                  st.integers(-10**6, 2**31) if not WIDE else ints, st.floats(allow_nan=True), texts)
commands = st.one_of(st.sampled_from(["/bin/sh -c #(nop)  CMD [\"sh\"]", "/bin/sh -c #(nop) ADD file:abc in / ",
                                      "RUN /bin/sh -c apt-get install x # buildkit", "COPY . . # buildkit",
                                      "WORKDIR /app", "ENV A=b", "|1 X=y /bin/sh -c make", "RUN a…"]), texts)
ids = st.one_of(st.just("<missing>"), st.binary(min_size=1, max_size=4).map(lambda b: sha(b)),
                st.binary(min_size=1, max_size=4).map(lambda b: hashlib.sha256(b).hexdigest()[:12]), texts)


@st.composite
def history_entry(draw, api: bool):
    keys = ("Id", "Created", "CreatedBy", "Size", "Comment") if api else \
        ("ID", "CreatedAt", "CreatedBy", "Size", "Comment", "CreatedSince")
    vals = (ids, times, commands, sizes, texts, times)
    return {k: draw(v) for k, v in zip(keys, vals) if draw(st.integers(0, 9))}


@st.composite
def history_jsonl(draw) -> bytes:
    lines = [json.dumps(e) for e in draw(st.lists(history_entry(False), max_size=8))]
    if draw(st.integers(0, 5)) == 0 and lines:
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(["[1]", "{", "null", "\"x\"", "{}",
                                                                            DEEP, '{"ID": ' + DEEP + "}"])))
    return "\n".join(lines).encode()


@st.composite
def history_api(draw) -> bytes:
    arr = draw(st.lists(st.one_of(history_entry(True), json_values), max_size=8))
    if draw(st.integers(0, 9)) == 0:
        return ("[" + DEEP + "]").encode()
    return json.dumps(arr).encode()


TABLE_HEADERS = [("IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"),
                 ("IMAGE", "CREATED AT", "CREATED BY", "SIZE", "COMMENT"),
                 ("CREATED BY", "SIZE"), ("IMAGE", "CREATED BY")]


@st.composite
def history_table(draw) -> bytes:
    cols = draw(st.sampled_from(TABLE_HEADERS))
    widths = [draw(st.integers(len(c) + 2, 30)) for c in cols]
    cell = {"IMAGE": ids, "CREATED": times, "CREATED AT": times, "CREATED BY": commands, "SIZE": sizes,
            "COMMENT": texts}
    rows = ["".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip()]
    for _ in range(draw(st.integers(0, 6))):
        cells = [str(draw(cell[c])).replace("\n", " ") for c in cols]
        if draw(st.integers(0, 3)) == 0:
            rows.append("".join(x[:w].ljust(w) for x, w in zip(cells, widths)))
        else:  # cells overflowing their column, as a hostile or hand-edited file has
            rows.append("  ".join(cells))
    return "\n".join(rows).encode("utf-8", "surrogatepass")


history_files = st.one_of(
    st.tuples(history_jsonl(), st.just(".jsonl")),
    st.tuples(history_api(), st.just(".txt")),
    st.tuples(history_table(), st.just(".txt")),
)


# -- a small real layer (for documents that must point at real blobs) ----------------------------
def tiny_layer(name: str = "hello", data: bytes = b"hi\n") -> bytes:
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        ti = tarfile.TarInfo(name)
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


LAYER = tiny_layer()
LAYER_GZ = gzip.compress(LAYER, mtime=0)
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
layer_types = st.one_of(st.sampled_from([OCI_LAYER_GZ, "application/vnd.oci.image.layer.v1.tar",
                                         "application/vnd.oci.image.layer.v1.tar+zstd",
                                         "application/vnd.docker.image.rootfs.diff.tar.gzip",
                                         "application/vnd.in-toto+json", "application/octet-stream"]), texts)


def base_config(diff_ids: list[str]) -> dict:
    return {"architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05Z",
            "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": "2024-01-02T03:04:05Z", "created_by": "ADD x /"}] * len(diff_ids)}


@st.composite
def config_doc(draw, diff_ids: list[str]) -> dict:
    cfg = base_config(diff_ids)
    if draw(st.integers(0, 3)) == 0:
        cfg["created"] = draw(times)
    cfg = sometimes(draw, cfg, perturb)
    if draw(st.integers(0, 3)) == 0:
        cfg["rootfs"] = draw(perturb({"type": "layers", "diff_ids": diff_ids}))
    if draw(st.integers(0, 3)) == 0:
        cfg["history"] = draw(st.lists(perturb({"created": draw(times), "created_by": "RUN x",
                                                "empty_layer": False}), max_size=4))
    return cfg


@st.composite
def layer_descriptor(draw, blob: bytes = LAYER_GZ, media_type: str = OCI_LAYER_GZ) -> dict:
    d = {"mediaType": media_type, "digest": sha(blob), "size": len(blob)}
    if draw(st.integers(0, 3)) == 0:
        d = draw(perturb(d))
        if draw(st.booleans()):
            d["mediaType"] = draw(layer_types)
        if draw(st.integers(0, 3)) == 0:  # a digest of nothing stored, a zero digest, not a digest
            d["digest"] = draw(digests)
    return d


@st.composite
def manifest_pair(draw) -> tuple[bytes, bytes | None]:
    """(manifest bytes, config bytes): schema 2 / OCI, the config's digest matching as a rule."""
    n = draw(st.integers(0, 3))
    cfg = draw(config_doc([sha(LAYER)] * n))
    cfg_bytes = dump(cfg) if draw(st.integers(0, 9)) else draw(st.binary(max_size=64))
    man = {"schemaVersion": 2, "mediaType": draw(st.sampled_from([OCI_MANIFEST, DOCKER_MANIFEST])),
           "config": {"mediaType": OCI_CONFIG, "digest": sha(cfg_bytes), "size": len(cfg_bytes)},
           "layers": [draw(layer_descriptor()) for _ in range(n)]}
    man = sometimes(draw, man, perturb)
    if draw(st.integers(0, 4)) == 0:
        man["config"] = draw(perturb(man.get("config") if isinstance(man.get("config"), dict) else {}))
    return dump(man), cfg_bytes


@st.composite
def schema1_manifest(draw) -> bytes:
    n = draw(st.integers(0, 3))
    hist = []
    for i in range(n):
        v1 = draw(sometimes_st({"id": f"{i:064x}", "created": "2018-01-01T00:00:00Z", "architecture": "amd64",
                                "os": "linux", "container_config": {"Cmd": ["/bin/sh", "-c", "x"]},
                                "throwaway": i % 2 == 0}))
        hist.append({"v1Compatibility": json.dumps(v1) if draw(st.integers(0, 5)) else draw(json_values)})
    doc = {"schemaVersion": 1, "name": "fuzz/app", "tag": "1", "architecture": "amd64",
           "fsLayers": [draw(sometimes_st({"blobSum": sha(LAYER_GZ)})) for _ in range(n)], "history": hist}
    if draw(st.booleans()):
        doc["signatures"] = [draw(sometimes_st({"protected": draw(st.sampled_from(
            ["eyJmb3JtYXRMZW5ndGgiOjEwLCJmb3JtYXRUYWlsIjoiZlEifQ", "W1tbW1tbW1tbXV1dXV1dXV1d", "!!", "",
             base64.urlsafe_b64encode(DEEP.encode()).decode()])),
            "signature": "x"}))]
    return dump(sometimes_st_value(draw, doc))


def sometimes_st(doc):
    @st.composite
    def _s(draw):
        return sometimes(draw, doc, perturb)

    return _s()


def sometimes_st_value(draw, doc):
    return sometimes(draw, doc, perturb)


manifest_inputs = st.one_of(manifest_pair(), st.tuples(schema1_manifest(), st.none()))


# -- OCI layouts --------------------------------------------------------------------------------
@st.composite
def oci_layout(draw) -> dict[str, bytes]:
    """``{relative path: bytes}`` of an OCI layout: index (maybe nested), manifests, configs, one layer."""
    files: dict[str, bytes] = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}'}

    def put(data: bytes) -> str:
        d = sha(data)
        files["blobs/sha256/" + d[7:]] = data
        return d

    put(LAYER_GZ)
    entries = []
    for _ in range(draw(st.integers(0, 3))):
        n = draw(st.integers(0, 2))
        cfg = dump(draw(config_doc([sha(LAYER)] * n)))
        man = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
               "config": {"mediaType": OCI_CONFIG, "digest": put(cfg), "size": len(cfg)},
               "layers": [draw(layer_descriptor()) for _ in range(n)]}
        mb = dump(sometimes_st_value(draw, man))
        desc = {"mediaType": OCI_MANIFEST, "digest": put(mb), "size": len(mb),
                "platform": draw(st.one_of(st.just({"os": "linux", "architecture": "amd64"}), json_values)),
                "annotations": {"org.opencontainers.image.ref.name": draw(st.sampled_from(["v1", "v2", "", "a:b"]))}}
        entries.append(sometimes_st_value(draw, desc))
    if entries and draw(st.integers(0, 3)) == 0:  # nest: the top index names an index
        inner = dump({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
        entries = [{"mediaType": OCI_INDEX, "digest": put(inner), "size": len(inner)}]
    if entries and draw(st.integers(0, 5)) == 0:  # a cycle: an index that names itself is impossible by
        entries.append({"mediaType": OCI_INDEX, "digest": sha(b"x"), "size": 1})  # digest; a dangling one is not
    index = sometimes_st_value(draw, {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    files["index.json"] = dump(index)
    return files


# -- repo-info ----------------------------------------------------------------------------------
@st.composite
def repo_info_file(draw) -> bytes:
    """A repo-info tag file (built by tests/_archive_helpers.repo_info_text, with layers and history
    added), then line-mutated: lines dropped, duplicated, or their numbers and digests replaced."""
    from _archive_helpers import repo_info_text

    plats = draw(st.lists(st.sampled_from(["linux/amd64", "linux/arm64/v8", "linux/arm/v7", "windows/amd64"]),
                          min_size=1, max_size=3, unique=True))
    text = repo_info_text("fuzz:1", plats)
    extra = ["", "```dockerfile", "# Wed, 24 Jan 2018 04:29:35 GMT", "ADD file:abc in / ",
             "# Wed, 24 Jan 2018 04:29:36 GMT", "# ARGS: A=1", "CMD [\"sh\"]", "```", "",
             "-\tLayers:", f"\t-\t`{sha(b'l1')}`  ", "\t\tLast Modified: Wed, 24 Jan 2018 04:30:00 GMT",
             "\t\tSize: 29.8 MB (29780765 bytes)  ", "\t\tMIME: application/vnd.docker.image.rootfs.diff.tar.gzip",
             f"\t-\t`{sha(b'l2')}`  ", "\t\tSize: 249.0 B", "", "-\tTotal Size: **29.8 MB (29781014 bytes)**"]
    lines = []
    for line in text.split("\n"):
        lines.append(line)
        if line.startswith("-\tImage ID"):
            lines += extra
    for _ in range(draw(st.integers(0, 6))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.integers(0, 3))
        if op == 0:
            del lines[i]
        elif op == 1:
            lines.insert(i, lines[i])
        elif op == 2:
            lines[i] = draw(st.sampled_from(["9" * 15, "-1", "0"] + (["9" * 30, "99999999999999999999999"] if WIDE else []))).join(
                lines[i].split("29780765")) if "29780765" in lines[i] else lines[i] + draw(texts)
        else:
            lines[i] = draw(texts)
    return "\n".join(lines).encode("utf-8", "surrogatepass")


# -- tar streams --------------------------------------------------------------------------------
def _octal(n: int, width: int) -> bytes:
    """A tar number field: octal when it fits, else GNU base-256 (negative too)."""
    if 0 <= n < 8 ** (width - 1):
        return f"{n:0{width - 1}o}".encode() + b"\0"
    return bytes([0xFF if n < 0 else 0x80]) + (n % 256 ** (width - 1)).to_bytes(width - 1, "big")


def tar_header(name: bytes, size: int, typeflag: bytes, *, mode=0o644, uid=0, gid=0, mtime=0, linkname=b"",
               magic=b"ustar\x0000", prefix=b"", checksum_ok=True, raw_size: bytes | None = None) -> bytes:
    h = bytearray(512)
    h[0:100] = name[:100].ljust(100, b"\0")
    h[100:108] = _octal(mode, 8)
    h[108:116] = _octal(uid, 8)
    h[116:124] = _octal(gid, 8)
    h[124:136] = raw_size[:12].ljust(12, b"\0") if raw_size is not None else _octal(size, 12)
    h[136:148] = _octal(mtime, 12)
    h[148:156] = b" " * 8
    h[156:157] = typeflag[:1] or b"\0"
    h[157:257] = linkname[:100].ljust(100, b"\0")
    h[257:265] = magic[:8].ljust(8, b"\0")
    h[345:500] = prefix[:155].ljust(155, b"\0")
    chk = sum(h) if checksum_ok else (sum(h) + 1) % 0o1000000
    h[148:156] = f"{chk:06o}".encode() + b"\0 "
    return bytes(h)


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 512)


def pax_record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    n = len(body) + 1
    while len(str(n).encode()) + len(body) != n:
        n = len(str(n).encode()) + len(body)
    return str(n).encode() + body


names = st.one_of(st.sampled_from([b"a", b"dir/", b"dir/file", b"./x", b"/abs", b"../up", b"a/../../b",
                                   b".wh.a", b"dir/.wh..wh..opq", b"dir/.wh.file", b"", b"a//b", b"\xff\xfe"]),
                  st.binary(min_size=1, max_size=120),
                  st.lists(st.sampled_from([b"a", b"bb", b"..", b".", b"x" * 50]), min_size=1,
                           max_size=12).map(b"/".join))
typeflags = st.sampled_from([b"0", b"\0", b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"x", b"g", b"L", b"K",
                             b"S", b"D", b"V", b"M", b"Z"])
pax_keys = st.sampled_from([b"path", b"linkpath", b"size", b"uid", b"mtime", b"GNU.sparse.size",
                            b"GNU.sparse.map", b"GNU.sparse.major", b"GNU.sparse.name",
                            b"SCHILY.xattr.user.x", b"LIBARCHIVE.xattr.x", b"hdrcharset", b"comment"])
pax_values = st.one_of(names, st.integers(-2**64, 2**70).map(lambda n: str(n).encode()),
                       st.sampled_from([b"0,1,2,3", b"1", b"0", b"-1", b"1e9", b"", b"BINARY"]))


@st.composite
def tar_entry(draw) -> bytes:
    """One member: maybe a PAX (x) or GNU long-name (L/K) header before it, then a
    header whose fields may lie, then some data (maybe not the size it claims)."""
    out = b""
    kind = draw(st.integers(0, 3))
    if kind == 1:
        recs = b"".join(pax_record(k, v) for k, v in draw(st.lists(st.tuples(pax_keys, pax_values), max_size=4)))
        if draw(st.integers(0, 5)) == 0:
            recs = draw(st.sampled_from([b"99 path=x\n", b"5 a=b\n", b"x", b"0 =\n", b"10 path\n"])) + recs
        out += tar_header(b"././@PaxHeader", len(recs), b"x") + _pad(recs)
    elif kind == 2:
        long = draw(names) * draw(st.integers(1, 3))
        flag = draw(st.sampled_from([b"L", b"K"]))
        out += tar_header(b"././@LongLink", len(long) + 1, flag, magic=b"ustar  \0") + _pad(long + b"\0")
    data = draw(st.binary(max_size=700))
    claimed = draw(st.one_of(st.just(len(data)), st.integers(0, 2000), st.integers(-5, 2**40)))
    raw_size = draw(st.one_of(st.none(), st.sampled_from([b"", b"xyz", b"   12", b"\x80" + b"\xff" * 11,
                                                          b"77777777777", b"-1"])))
    out += tar_header(draw(names), claimed, draw(typeflags), mode=draw(st.integers(0, 0o7777)),
                      uid=draw(st.integers(-1, 2**40)), mtime=draw(st.integers(-2**33, 2**40)),
                      linkname=draw(names), magic=draw(st.sampled_from([b"ustar\x0000", b"ustar  \0", b"\0" * 8,
                                                                        b"garbage!"])),
                      prefix=draw(st.sampled_from([b"", b"pre/fix", b"\xff"])),
                      checksum_ok=draw(st.integers(0, 15)) > 0, raw_size=raw_size)
    return out + _pad(data)


@st.composite
def tar_stream(draw) -> bytes:
    """A layer tar: a few hostile members, the end-of-archive zeros (or not), maybe cut short."""
    out = b"".join(draw(st.lists(tar_entry(), max_size=5)))
    out += draw(st.sampled_from([b"\0" * 1024, b"\0" * 512, b"", b"\0" * 512 + b"junk"]))
    if draw(st.integers(0, 4)) == 0 and out:
        out = out[: draw(st.integers(0, len(out)))]
    return out
