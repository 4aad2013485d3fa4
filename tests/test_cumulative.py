"""Cumulative sizes: hand-worked fleets and the engine's own image size."""
from __future__ import annotations

import pandas as pd
import pytest

import layerlab as ll
from layerlab.analysis import cumulative, step_label
from layerlab.errors import AnalysisError
from layerlab.model import Fleet, HistoryStep, Image, Layer


def mk(name, sizes, csizes=None, cmds=None):
    csizes = csizes or [None] * len(sizes)
    img = Image(name, "test", [Layer(i, "sha256:%064x" % (i + 1), size=s, compressed_size=c)
                               for i, (s, c) in enumerate(zip(sizes, csizes))])
    if cmds:
        img.history_list = [HistoryStep(i, created_by=c, layer_position=i, pairing="config") for i, c in enumerate(cmds)]
    return img


def test_running_sizes_and_shares_by_hand():
    f = Fleet([mk("a", [600, 300, 100], [200, 90, 10], ["ADD x", "RUN y", "COPY z"]), mk("b", [50])])
    c = cumulative(f)
    a = c[c.image == "a"]
    assert a["position"].tolist() == [0, 1, 2]
    assert a["cumulative_size"].tolist() == [600, 900, 1000]
    assert a["start_bytes"].tolist() == [0, 600, 900]
    assert a["share"].tolist() == pytest.approx([0.6, 0.3, 0.1])
    assert a["cumulative_compressed_bytes"].tolist() == [200, 290, 300]
    assert a["compressed_start_bytes"].tolist() == [0, 200, 290]
    assert a["compressed_share"].tolist() == pytest.approx([200 / 300, 90 / 300, 10 / 300])
    assert set(a["image_bytes"]) == {1000} and set(a["image_compressed_bytes"]) == {300}
    assert a["created_by"].tolist() == ["ADD x", "RUN y", "COPY z"]
    b = c[c.image == "b"]
    assert b["cumulative_size"].tolist() == [50] and b["share"].tolist() == [1.0]
    assert b["compressed_size"].isna().all() and b["compressed_share"].isna().all()
    assert str(c["size"].dtype) == "Int64" and str(c["share"].dtype) == "Float64"


def test_rows_sorted_by_position_even_if_frame_is_not():
    f = Fleet([mk("a", [5, 7, 11])])
    shuffled = f.layers().iloc[[2, 0, 1]]
    assert cumulative(shuffled)["cumulative_size"].tolist() == [5, 12, 23]


def test_unknown_size_is_never_guessed():
    c = cumulative(Fleet([mk("a", [10, None, 5])]))
    assert c["cumulative_size"].tolist()[0] == 10
    assert c["cumulative_size"].isna().tolist() == [False, True, True]
    assert c["start_bytes"].isna().tolist() == [False, False, True]
    assert c["image_bytes"].isna().all() and c["share"].isna().all()


def test_step_labels():
    got = step_label([
        '/bin/sh -c #(nop)  CMD ["sh"]',
        "/bin/sh -c apt-get update &&     apt-get install -y curl",
        "RUN /bin/sh -c apk add --no-cache x # buildkit",
        "COPY app /app # buildkit",
        None,
        "x" * 100,
    ], width=30).tolist()
    assert got[0] == 'CMD ["sh"]'
    # shortened in the middle: the start (instruction, first words) and the end stay
    assert got[1] == "RUN apt-get update … -y curl"
    assert got[2] == "RUN apk add --no-cache x"
    assert got[3] == "COPY app /app"
    assert got[4] == "base layer"  # no command, position unknown: never null
    assert got[5] == "x" * 18 + " … " + "x" * 9
    assert all(len(g) <= 30 for g in got)


def test_step_labels_of_buildkit_with_build_args_and_base():
    """The cumulative frame's ``step``: BuildKit's ``|2 ARG=…`` prefix removed, the
    base layer named after the base the image's config labels give."""
    layers = pd.DataFrame({
        "image": ["app", "app", "app"],
        "position": [0, 1, 2],
        "size": [100, 10, 1],
        "created_by": [
            "ADD file:e7ac45803c3ab9b7023933b75f5a88eda1f3edca97c7e462401860777cf312f7 in / ",
            "RUN |2 DEBIAN_FRONTEND=noninteractive VER=1.2 /bin/sh -c apt-get install -y curl # buildkit",
            None,
        ],
    })
    assert cumulative(layers)["step"].tolist() == [
        "base layer (ADD file:e7ac45803c3a… in /)", "RUN apt-get install -y curl", "(no history step)"]
    layers.attrs["base_names"] = {"app": "debian:bookworm"}
    assert cumulative(layers)["step"].tolist()[0] == "base: debian:bookworm"


def test_bad_input():
    with pytest.raises(AnalysisError, match="no column"):
        cumulative(pd.DataFrame({"image": ["a"]}))


@pytest.mark.engine
def test_image_size_equals_engine(engine):
    """The running total at the top layer is the engine's own image Size
    (`docker image inspect`), and each step matches `docker history`."""
    enginekit = pytest.importorskip("enginekit")
    pytest.importorskip("layerlab.sources.daemon")
    enginekit.import_base(enginekit.BASE_TAG)
    tag = "layerlab-test/cumulative:1"
    enginekit.build(tag, f"FROM {enginekit.BASE_TAG}\n"
                         "RUN dd if=/dev/zero of=/a bs=1k count=40 2>/dev/null\n"
                         "ENV X=1\n"
                         "RUN dd if=/dev/zero of=/b bs=1k count=12 2>/dev/null && rm /a\n")
    c = cumulative(ll.load(f"docker-daemon:{tag}"))
    inspected = enginekit.inspect(tag)
    assert int(c["cumulative_size"].iloc[-1]) == inspected["Size"]
    assert len(c) == len(inspected["RootFS"]["Layers"])
    hist = [h for h in reversed(enginekit.history_json(tag))]
    steps_with_bytes = [int(h["Size"]) for h in hist if int(h["Size"]) > 0]
    assert [int(s) for s in c["size"] if s > 0] == steps_with_bytes
