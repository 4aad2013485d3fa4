"""The inputs that byte mutation starts from.

:func:`built_archives` are small images written here with
``tests/_archive_helpers.py`` (no ../shared needed): a legacy ``docker save``
archive (plain, gzip and zstd layers, a whiteout, a symlink-shared layer) and
an OCI archive.  :func:`real_archives` / :func:`real_manifests` are the files of
``../shared/data/real-images`` (empty without it).
"""
from __future__ import annotations

import functools
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
REAL_IMAGES = TESTS.parent.parent / "shared" / "data" / "real-images"

# transports the real archives are read with (None: detected from the bare path, as a user may)
OCI_ARCHIVES = ("dive-test-oci-",)


@functools.lru_cache(maxsize=1)
def built_archives() -> list[tuple[str, bytes, str]]:
    """``[(name, archive bytes, transport)]`` written with tests/_archive_helpers."""
    from _archive_helpers import layer_tar, tar_dir, write_legacy_archive, write_oci_layout

    out = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        base = layer_tar({"etc/": b"", "etc/a": b"a" * 3000, "bin/": b"", "bin/sh": 1200})
        top = layer_tar({"etc/.wh.a": b"", "b": b"b" * 700, "etc/a2": b"new"})
        for how in (None, "gzip", "zstd"):
            p = d / f"legacy-{how}.tar"
            write_legacy_archive(p, [base, top], compress_with=how)
            out.append((p.name, p.read_bytes(), "docker-archive"))
        p = d / "shared.tar"
        write_legacy_archive(p, [base, base], share_with_symlink=True)
        out.append((p.name, p.read_bytes(), "docker-archive"))
        write_oci_layout(d / "layout", [(base, "application/vnd.oci.image.layer.v1.tar+gzip"),
                                        (top, "application/vnd.oci.image.layer.v1.tar")], ref_name="v1")
        tar_dir(d / "layout", d / "oci.tar")
        out.append(("oci.tar", (d / "oci.tar").read_bytes(), "oci-archive"))
    return out


def real_archives() -> list[tuple[str, bytes, str | None]]:
    if not REAL_IMAGES.is_dir():
        return []
    out = []
    for p in sorted(REAL_IMAGES.glob("*.tar")):
        transport = "oci-archive" if p.name.startswith(OCI_ARCHIVES) else "docker-archive"
        out.append((p.name, p.read_bytes(), transport))
    return out


def real_manifests() -> list[tuple[str, bytes, bytes | None]]:
    """``[(name, manifest, config or None)]``: the registry documents in real-images."""
    if not REAL_IMAGES.is_dir():
        return []
    s1 = (REAL_IMAGES / "containers-image-schema1.json").read_bytes()
    s2 = (REAL_IMAGES / "containers-image-schema2.json").read_bytes()
    cfg = (REAL_IMAGES / "containers-image-schema2-config.json").read_bytes()
    return [("schema1", s1, None), ("schema2", s2, cfg)]
