"""history: saved `docker history` output, generated for real from the engine.

The image is built here (busybox rootfs `docker import`-ed, then a BuildKit
and a legacy `docker build` with RUN/COPY/ENV steps and a RUN that deletes a
file); the history files are what `/usr/bin/docker history` prints in each
format.  Expected values come from elsewhere: `docker image inspect`
(RootFS.Layers, Size), the `--human=false` JSON read with json.loads, and the
image config's empty_layer flags read by hand from `docker save` (tarfile).
"""
from __future__ import annotations

import json
import tarfile

import pandas as pd
import pytest

import layerlab as ll
from layerlab.errors import FormatError, SourceError
from layerlab.sources import split_source
from layerlab.sources.history_text import parse_size, parse_time

from conftest import ROOT
from enginekit import build, docker, inspect, save

DOCKERFILE = """FROM {base}
RUN echo hello > /hello && mkdir -p /opt/app && dd if=/dev/zero of=/opt/app/blob bs=1k count=300
COPY app.txt /opt/app/app.txt
ENV MODE=history-test
RUN dd if=/dev/zero of=/big bs=1k count=64
RUN rm /big
WORKDIR /opt/app
RUN touch /opt/app/x && echo '<b>"x"</b>' > /opt/app/y
LABEL org.example.layerlab=history
RUN true
"""
APP_TXT = b"layerlab history test\n" * 100

FORMATS = {
    # name: (docker history args, exact sizes?, full commands?)
    "json-notrunc": (["--no-trunc", "--format", "{{json .}}"], False, True),
    "json-notrunc-bytes": (["--no-trunc", "--human=false", "--format", "{{json .}}"], True, True),
    "json-trunc": (["--format", "{{json .}}"], False, False),
    "table": ([], False, False),
    "table-notrunc": (["--no-trunc"], False, True),
    "table-bytes": (["--human=false"], True, False),
    "table-notrunc-bytes": (["--no-trunc", "--human=false"], True, True),
}


@pytest.fixture(scope="module")
def built(busybox_base):
    tags = {"bk": "layerlab-test/history:buildkit", "legacy": "layerlab-test/history:legacy"}
    build(tags["bk"], DOCKERFILE.format(base=busybox_base), {"app.txt": APP_TXT}, buildkit=True)
    build(tags["legacy"], DOCKERFILE.format(base=busybox_base), {"app.txt": APP_TXT}, buildkit=False)
    return tags


@pytest.fixture(scope="module")
def saved(built, tmp_path_factory):
    """Every format's output for both images, in files; plus the facts to compare with."""
    d = tmp_path_factory.mktemp("history")
    out = {}
    for kind, tag in built.items():
        files = {}
        for name, (args, _, _) in FORMATS.items():
            p = d / f"{kind}-{name}.{'jsonl' if name.startswith('json') else 'txt'}"
            p.write_text(docker("history", *args, tag))
            files[name] = p
        rows = [json.loads(l) for l in files["json-notrunc-bytes"].read_text().splitlines() if l.strip()]
        rows.reverse()  # oldest first
        tar = save(tag, d / f"{kind}.tar")
        with tarfile.open(tar) as tf:
            manifest = json.load(tf.extractfile("manifest.json"))
            config = json.load(tf.extractfile(manifest[0]["Config"]))
        info = inspect(tag)
        out[kind] = {"files": files, "rows": rows, "config": config, "inspect": info}
    return out


def _expected_positions(config) -> list[int | None]:
    pos, out = 0, []
    for h in config["history"]:
        if h.get("empty_layer"):
            out.append(None)
        else:
            out.append(pos)
            pos += 1
    return out


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_buildkit_history_every_format(saved, fmt):
    facts = saved["bk"]
    _, exact, full = FORMATS[fmt]
    img = ll.load(f"history:{facts['files'][fmt]}")
    info, rows, config = facts["inspect"], facts["rows"], facts["config"]
    assert img.reference == facts["files"][fmt].stem
    # layers: one per layer-making step; the count is the engine's
    assert len(img.layer_list) == len(info["RootFS"]["Layers"])
    assert all(l.diff_id is None for l in img.layer_list)
    h = img.history()
    assert len(h) == len(rows) == len(config["history"])
    # the pairing equals the config's empty_layer flags (read by hand from docker save)
    assert [None if pd.isna(p) else int(p) for p in h["layer_position"]] \
        == _expected_positions(config)
    # commands, oldest first
    if full:
        assert list(h["created_by"].fillna("")) == [r["CreatedBy"] for r in rows]
        assert not h["truncated"].any()
    else:
        for got, want, trunc in zip(h["created_by"].fillna(""), [r["CreatedBy"] for r in rows], h["truncated"]):
            if trunc:
                assert got.endswith("…") and want.startswith(got[:-1]) and len(got) < len(want)
            else:
                assert got == want
        assert h["truncated"].any()
    # sizes
    exact_sizes = [int(r["Size"]) for r in rows]
    if exact:
        assert list(h["size"]) == exact_sizes
        assert [int(s) for s in img.layers()["size"]] == \
            [s for s, hh in zip(exact_sizes, config["history"]) if not hh.get("empty_layer")]
        assert img.size == info["Size"]
        assert not any("--human=false" in w for w in img.warnings)
    else:
        for got, want in zip(h["size"], exact_sizes):
            assert abs(int(got) - want) <= want * 0.005 + 0.5     # 3 significant digits
        lay = img.layers()
        for s, want in zip(lay["size"], [s for s, hh in zip(exact_sizes, config["history"])
                                         if not hh.get("empty_layer")]):
            if want >= 1000:
                assert pd.isna(s)                                # rounded: unknown, never guessed
            else:
                assert int(s) == want                            # whole bytes under 1 kB are exact
        assert img.size is None
        assert any("--human=false" in w for w in img.warnings)
    # dates: RFC 3339 in JSON and in the --human=false table; none for "x minutes ago"
    if fmt.startswith("json") or fmt.endswith("bytes"):
        assert h["created"].notna().all()
        assert h["created"].iloc[-1].isoformat().replace("+00:00", "Z") == rows[-1]["CreatedAt"]
    else:
        assert h["created"].isna().all()
    # the image id, when the top row shows it in full
    if "notrunc" in fmt:
        assert img.id == info["Id"]


@pytest.mark.parametrize("fmt", ["json-notrunc-bytes", "table"])
def test_legacy_history_flags_zero_byte_steps(saved, fmt):
    """The legacy builder drops a layer when a step changed nothing (RUN true, WORKDIR of an
    existing dir) but keeps 0-byte layers (RUN rm): without the layer count that is ambiguous."""
    facts = saved["legacy"]
    config, rows, info = facts["config"], facts["rows"], facts["inspect"]
    expected = _expected_positions(config)
    img = ll.load(f"history:{facts['files'][fmt]}")
    h = img.history()
    unpaired = h[h["pairing"] == "unpaired"]
    assert len(unpaired) > 0 and img.warnings
    assert all(int(rows[i]["Size"]) == 0 for i in unpaired["index"])   # only 0-byte steps are in doubt
    # with the layer count the alignment may settle more; whatever it decides agrees with the config
    n = len(info["RootFS"]["Layers"])
    img2 = ll.load(f"history:{facts['files'][fmt]}", layers=n)
    assert len(img2.layer_list) == n
    decided = 0
    for s in img2.history_list:
        if s.pairing != "unpaired":
            assert s.layer_position == expected[s.index], s
            decided += 1
    assert decided >= len(h) - len(unpaired) - 2
    # steps the config marks empty that made nothing are never given a layer
    for s in img2.history_list:
        if expected[s.index] is None:
            assert s.layer_position is None


def test_api_array_format(built, engine, tmp_path):
    tag = built["bk"]
    p = tmp_path / "api.json"
    p.write_text(json.dumps(engine.images.get(tag).history()))
    img = ll.load(f"history:{p}", reference="from-api")
    info = inspect(tag)
    assert img.reference == "from-api"
    assert len(img.layer_list) == len(info["RootFS"]["Layers"]) and img.size == info["Size"]
    assert img.id == info["Id"]


def test_bundled_sample_histories_match_their_inspect_files():
    """data/sample-raw holds, per image, the --human=false JSON history and `docker image inspect`
    saved side by side when the sample was built: the history alone gives the engine's layer count
    and size."""
    raw = ROOT / "data" / "sample-raw"
    files = sorted(raw.glob("*.history.jsonl"))
    if not files:
        pytest.skip(f"no {raw}/*.history.jsonl")
    for f in files:
        name = f.name[: -len(".history.jsonl")]
        info = json.loads((raw / f"{name}.inspect.json").read_text())
        info = info[0] if isinstance(info, list) else info
        img = ll.load(str(f))
        assert img.reference == name
        assert len(img.layer_list) == len(info["RootFS"]["Layers"]), name
        assert img.size == info["Size"], name
        assert img.id == info["Id"], name
        assert not img.warnings, name


# ---------------------------------------------------------------------------
# hand-written fixtures: no engine needed
# ---------------------------------------------------------------------------
TABLE = """\
IMAGE          CREATED        CREATED BY                                      SIZE      COMMENT
8d2b2a0c4b24   2 hours ago    CMD ["python3"]                                 0B        buildkit.dockerfile.v0
<missing>      2 hours ago    RUN /bin/sh -c set -eux;  for src in idle3 p…   36B       buildkit.dockerfile.v0
<missing>      2 hours ago    RUN /bin/sh -c set -eux;   savedAptMark="$(a…   31.5MB    buildkit.dockerfile.v0
<missing>      2 hours ago    ENV PYTHON_VERSION=3.12.7                       0B        buildkit.dockerfile.v0
<missing>      2 hours ago    WORKDIR /app                                    0B        buildkit.dockerfile.v0
<missing>      2 hours ago    COPY <script>alert(1)</script> /x # buildkit    102kB     buildkit.dockerfile.v0
<missing>      3 weeks ago    /bin/sh -c #(nop)  CMD ["bash"]                 0B
<missing>      3 weeks ago    /bin/sh -c #(nop) ADD file:2b6c9e5bf3b7d9f6e…   74.8MB
"""


def test_table_fixture(tmp_path):
    p = tmp_path / "python-3.12.txt"
    p.write_text(TABLE)
    assert split_source(str(p))[0] == "history"
    img = ll.load(str(p))
    assert img.reference == "python-3.12"  # the file name without its suffix
    h = img.history()
    assert list(h["created_by"].str[:12]) == [
        '/bin/sh -c #', '/bin/sh -c #', 'COPY <script', 'WORKDIR /app', 'ENV PYTHON_V',
        'RUN /bin/sh ', 'RUN /bin/sh ', 'CMD ["python']
    assert list(h["truncated"]) == [True, False, False, False, False, True, True, False]
    assert list(h["size"]) == [74_800_000, 0, 102_000, 0, 0, 31_500_000, 36, 0]
    assert h["step_id"].isna().sum() == 7 and h["step_id"].iloc[-1] == "8d2b2a0c4b24"
    assert h["created"].isna().all()
    # ADD, COPY, WORKDIR (BuildKit), the two RUNs: 5 layers; sizes only where exact
    lay = img.layers()
    assert len(lay) == 5
    assert [None if pd.isna(v) else int(v) for v in lay["size"]] \
        == [None, None, 0, None, 36]
    assert list(h["pairing"]) == ["size", "no_layer", "size", "alignment", "no_layer", "size", "size", "no_layer"]
    assert img.id is None  # a 12-character id is not the full config digest
    assert any("--human=false" in w for w in img.warnings)
    assert any("--no-trunc" in w for w in img.warnings)
    assert "<script>" not in img._repr_html_()


def test_table_saved_as_utf16_with_crlf(tmp_path):
    p = tmp_path / "ps.txt"
    p.write_bytes(TABLE.replace("\n", "\r\n").encode("utf-16"))  # PowerShell 5: docker history > ps.txt
    img = ll.load(f"history:{p}")
    assert len(img.history_list) == 8 and len(img.layer_list) == 5
    assert img.history_list[-1].created_by == 'CMD ["python3"]'


def test_parse_size():
    assert parse_size("1.98MB") == (1_980_000, False)
    assert parse_size("102kB") == (102_000, False)
    assert parse_size("0B") == (0, True)
    assert parse_size("999B") == (999, True)
    assert parse_size("65536") == (65536, True)
    assert parse_size(65536) == (65536, True)
    assert parse_size("1e+03kB") == (1_000_000, False)
    assert parse_size("lots") == (None, False)


def test_parse_time():
    want = "2026-11-28T02:03:10+00:00"
    assert parse_time("2026-11-28T02:03:10Z").isoformat() == want
    assert parse_time("2026-11-28 02:03:10 +0000 UTC").isoformat() == want      # Go's default layout
    assert parse_time("2026-11-28T03:03:10+01:00").isoformat() == want
    assert parse_time("2026-11-28T02:03:10.123456789Z").isoformat() == "2026-11-28T02:03:10.123456+00:00"
    assert parse_time(1795831390).isoformat() == want                          # the API's epoch seconds
    assert parse_time("10 minutes ago") is None and parse_time(None) is None


def test_bad_input(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(FormatError, match="empty.jsonl"):
        ll.load(f"history:{empty}")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"CreatedBy": "RUN x", "Size": "0B"}\n{"CreatedBy": \n')
    with pytest.raises(FormatError, match=r"broken.jsonl: line 2"):
        ll.load(f"history:{broken}")
    garbage = tmp_path / "garbage.txt"
    garbage.write_bytes(b"\x00\xff" * 100)
    with pytest.raises(FormatError, match="not docker history output"):
        ll.load(f"history:{garbage}")
    with pytest.raises(SourceError, match="no such file"):
        ll.load(f"history:{tmp_path / 'absent.jsonl'}")
    arr = tmp_path / "arr.json"
    arr.write_text("[1, 2]")
    with pytest.raises(FormatError, match="not an object"):
        ll.load(f"history:{arr}")
    # odd values are tolerated, not crashed on
    odd = tmp_path / "odd.jsonl"
    odd.write_text('{"CreatedBy": null, "Size": true, "CreatedAt": 12, "ID": 5}\n')
    img = ll.load(f"history:{odd}")
    assert len(img.history_list) == 1
    with pytest.raises(SourceError, match="layers="):
        ll.load(f"history:{odd}", layers=-1)
