"""An unwritable layer cache is a LayerlabError that says what to do, and leaves nothing behind."""
import pytest

import layerlab as ll


def test_unwritable_cache_dir_is_a_clear_error(real_images, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    img = ll.load(f"docker-archive:{real_images / 'dive-test-docker-image.tar'}")
    with pytest.raises(ll.LayerlabError, match="cannot write.*cache_dir=False"):
        img.files(cache_dir=blocker, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-dir"]
    # and caching off reads the same image fine
    assert len(img.files(cache_dir=False, progress=False)) > 0
