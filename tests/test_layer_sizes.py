"""ll.measure_sizes: unknown uncompressed sizes filled by streaming each blob once,
then read from the file-table cache (keyed by diff_id) by any later image."""
from __future__ import annotations

import pytest

import layerlab as ll
from _contents_helpers import d, f, layer_tar, mem_image, sym
from layerlab.errors import AnalysisError
from layerlab.model import Image, Layer


def _image(name="reg/app:1"):
    l0 = layer_tar([d("etc"), f("etc/a", b"x" * 1000), sym("etc/b", "a")])   # 1000 + len("a")
    l1 = layer_tar([f("app", b"y" * 250)])
    img = mem_image([l0, l1], name=name)
    for layer, blob in zip(img.layer_list, (l0, l1)):
        layer.compressed_size = len(blob)   # what a registry manifest states; size stays unknown
    return img


def test_fills_docker_sizes_once_then_reads_the_cache(tmp_path):
    img = _image()
    assert [l.size for l in img.layer_list] == [None, None]
    assert ll.measure_sizes(img, cache_dir=tmp_path, progress=False) == ["reg/app:1"]
    assert [l.size for l in img.layer_list] == [1001, 250]   # file bytes + symlink target length
    assert img.blobs.reads == [0, 1]

    again = _image("reg/app:2")                                 # same layers, a new load
    ll.measure_sizes(ll.Fleet([again]), cache_dir=tmp_path, progress=False)
    assert [l.size for l in again.layer_list] == [1001, 250]
    assert again.blobs.reads == []                              # from the cache, no blob streamed


def test_pull_time_notes_the_stand_in_until_sizes_are_measured(tmp_path):
    img = _image()
    before = ll.pull_time(ll.Fleet([img]), "reg/app:1", bandwidth="1MB/s")
    assert any("measure_sizes" in n for n in before.notes)
    ll.measure_sizes(img, cache_dir=tmp_path, progress=False)
    after = ll.pull_time(ll.Fleet([img]), "reg/app:1", bandwidth="1MB/s")
    assert not any("no uncompressed size" in n for n in after.notes)


def test_images_without_contents_and_frames_are_refused():
    bare = Image(reference="hist:1", source="history", layer_list=[Layer(position=0, diff_id=None)])
    with pytest.raises(AnalysisError, match="hist:1"):
        ll.measure_sizes(bare)
    with pytest.raises(AnalysisError, match="frame"):
        ll.measure_sizes(_image().layers())
