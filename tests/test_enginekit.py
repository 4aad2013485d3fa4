"""The engine test kit itself: the imported base is exactly the tar we made."""
import hashlib
import tarfile
import io

from enginekit import busybox_rootfs, inspect, rootfs_tar, history_json


def test_busybox_base_is_our_rootfs(busybox_base, tmp_path):
    data = rootfs_tar(busybox_rootfs(tmp_path / "r"))
    names = tarfile.open(fileobj=io.BytesIO(data)).getnames()
    assert "bin/busybox" in names and "bin/sh" in names
    info = inspect(busybox_base)
    assert info["RootFS"]["Layers"] == ["sha256:" + hashlib.sha256(data).hexdigest()]
    assert len(history_json(busybox_base)) == 1
