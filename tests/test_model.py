import hashlib

import pandas as pd

import layerlab as ll
from layerlab import frames
from layerlab.model import HistoryStep, Image, Layer, pair_by_empty_layer


def _img(ref="a", diff_ids=("sha256:" + "1" * 64, "sha256:" + "2" * 64), sizes=(10, 5)):
    layers = [Layer(position=i, diff_id=d, size=s) for i, (d, s) in enumerate(zip(diff_ids, sizes))]
    steps = [
        HistoryStep(index=0, created_by="ADD rootfs", empty_layer=False),
        HistoryStep(index=1, created_by="ENV A=1", empty_layer=True),
        HistoryStep(index=2, created_by="RUN make", empty_layer=None),
    ]
    pair_by_empty_layer(steps, len(layers))
    return Image(reference=ref, source="test", layer_list=layers, history_list=steps)


def test_chain_id_follows_oci_definition():
    a, b, c = ("sha256:" + x * 64 for x in "abc")
    # written out by hand from the OCI image spec, not with layerlab's helper
    c1 = "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    c2 = "sha256:" + hashlib.sha256(f"{c1} {c}".encode()).hexdigest()
    assert ll.chain_ids([a, b, c]) == [a, c1, c2]
    assert ll.chain_ids([a, None, c]) == [a, None, None]


def test_empty_layer_pairing_and_frames():
    img = _img()
    h = img.history()
    assert list(h["layer_position"].astype("object").where(h["layer_position"].notna(), None)) == [0, None, 1]
    assert list(h["pairing"]) == ["config", "no_layer", "config"]
    lay = img.layers()
    assert list(lay.columns) == list(frames.LAYER_COLUMNS)
    assert lay["cumulative_size"].tolist() == [10, 15]
    assert lay["created_by"].tolist() == ["ADD rootfs", "RUN make"]
    for col, dtype in frames.LAYER_COLUMNS.items():
        assert str(lay[col].dtype) == str(pd.Series([], dtype=dtype).dtype), col


def test_more_steps_than_layers_are_kept_and_flagged():
    steps = [HistoryStep(index=i, created_by=f"RUN {i}") for i in range(3)]
    pair_by_empty_layer(steps, 2)
    assert [s.pairing for s in steps] == ["config", "config", "unpaired"]


def test_unknown_size_is_null_not_guessed():
    img = _img(sizes=(10, None))
    lay = img.layers()
    assert lay["size"].isna().tolist() == [False, True]
    assert lay["cumulative_size"].isna().tolist() == [False, True]
    assert pd.isna(img.images()["size"].iloc[0])


def test_fleet_keys_unique_and_snapshot_roundtrip(tmp_path):
    fleet = ll.Fleet([_img("x"), _img("x")])
    assert [i.reference for i in fleet] == ["x", "x#2"]
    fleet.save(tmp_path / "snap")
    back = ll.load_many(f"snapshot:{tmp_path / 'snap'}")
    pd.testing.assert_frame_equal(back.layers(), fleet.layers())
    pd.testing.assert_frame_equal(back.history(), fleet.history())
    pd.testing.assert_frame_equal(back.images(), fleet.images())
    # bare directory is detected as a snapshot too
    assert len(ll.load_many(str(tmp_path / "snap"))) == 2


def test_repr_is_short_and_html_escapes():
    img = _img()
    img.history_list[0].created_by = '<script>alert(1)</script>"><img onerror=x>'
    assert len(repr(img)) < 120
    html = img._repr_html_()
    assert "<script>" not in html and "<img onerror" not in html
    assert "&lt;script&gt;" in html


def test_human_bytes():
    assert ll.human_bytes(1_980_000) == "1.98 MB"
    assert ll.human_bytes(0) == "0 B"
    assert ll.human_bytes(None) == "?"


def test_bad_source_string_is_a_layerlab_error(tmp_path):
    import pytest

    p = tmp_path / "notatar.bin"
    p.write_bytes(b"\x00junk")
    with pytest.raises(ll.LayerlabError, match="notatar.bin"):
        ll.load(str(p))
