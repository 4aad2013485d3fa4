"""The fuzz targets, run inside the worker: hostile bytes in, loaded images out.

Each ``target_NAME(inputs, **args)`` writes its input under ``inputs`` (the
case's own directory) and returns a loader: a call that loads it the way a
user would and returns the images (so the worker can tell the input files
from anything layerlab writes beside them); the worker then builds every
frame and reads the contents
(:func:`_fuzz.worker.exercise`).  Anything but a
:class:`~layerlab.errors.LayerlabError` escaping is a finding.
"""
from __future__ import annotations

from pathlib import Path

import layerlab as ll


def _cache(inputs: Path) -> str:
    return str(inputs.parent / "cache")


def _many(source: str, inputs: Path, **options) -> list:
    return list(ll.load_many(source, progress=False, cache_dir=_cache(inputs), **options))


def target_history(inputs: Path, data: bytes, suffix: str = ".jsonl", layers=None) -> list:
    """Saved ``docker history`` (JSON lines, table or API array), as a file."""
    p = inputs / ("app" + suffix)
    p.write_bytes(data)
    opts = {} if layers is None else {"layers": layers}
    return lambda: [ll.load(f"history:{p}", **opts)]


def target_manifest(inputs: Path, manifest: bytes, config: bytes | None = None) -> list:
    """``manifest:MANIFEST+CONFIG`` (schema 2 / OCI) or a schema 1 manifest alone."""
    m = inputs / "manifest.json"
    m.write_bytes(manifest)
    if config is None:
        return lambda: [ll.load(f"manifest:{m}")]
    c = inputs / "config.json"
    c.write_bytes(config)
    return lambda: [ll.load(f"manifest:{m}+{c}")]


def target_oci_dir(inputs: Path, files: dict[str, bytes], ref: str | None = None) -> list:
    """An OCI layout directory given as ``{relative path: bytes}``; every image in it."""
    root = inputs / "layout"
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    root.mkdir(parents=True, exist_ok=True)
    return lambda: _many(f"oci:{root}" + (f":{ref}" if ref else ""), inputs, platform="all")


def target_repo_info(inputs: Path, text: bytes) -> list:
    """A repo-info tag file (``repos/<image>/remote/<tag>.md``), every platform."""
    p = inputs / "repos" / "fuzz" / "remote" / "1.md"
    p.parent.mkdir(parents=True)
    p.write_bytes(text)
    return lambda: _many(f"repo-info:{p}", inputs, platform=None)


def target_archive(inputs: Path, data: bytes, transport: str = "docker-archive") -> list:
    """A ``docker save`` / OCI archive tar (``transport`` None: detected from the bare path)."""
    p = inputs / "image.tar"
    p.write_bytes(data)
    if transport is None:
        return lambda: _many(str(p), inputs, platform="all")
    opts = {"platform": "all"} if transport == "oci-archive" else {}
    return lambda: _many(f"{transport}:{p}", inputs, **opts)


def target_layer(inputs: Path, layer: bytes, how: str = "archive") -> list:
    """One hostile layer tar, wrapped honestly (its diff_id is its sha256) in a
    ``docker save`` archive or, gzip-compressed, in an OCI layout."""
    from _archive_helpers import write_legacy_archive, write_oci_layout

    if how == "archive":
        p = inputs / "image.tar"
        write_legacy_archive(p, [layer])
        return lambda: _many(f"docker-archive:{p}", inputs)
    write_oci_layout(inputs / "layout", [(layer, "application/vnd.oci.image.layer.v1.tar+gzip")], ref_name="t")
    return lambda: _many(f"oci:{inputs / 'layout'}", inputs)


def target_registry(inputs: Path, url: str) -> list:
    """``docker://HOST:PORT/REPO:TAG`` against the hostile server (generous per-request limits)."""
    return lambda: _many(url, inputs, timeout=5, deadline=20, retries=1, docker_config=False, certs_dir=False,
                 platform="all")


def target_selftest(inputs: Path, what: str) -> list:
    """Misbehaves on purpose, so tests/test_fuzz_harness.py can show the harness catches it."""
    import os
    import time

    from layerlab.errors import FormatError

    if what == "crash":
        raise ValueError("a raw exception escaping")
    if what == "layerlab-error":
        raise FormatError("a LayerlabError, as it should be")
    if what == "hang":
        time.sleep(3600)
    if what in ("write-cwd", "write-home", "write-tmp", "write-case"):
        where = {"write-cwd": Path.cwd(), "write-home": Path(os.environ["HOME"]),
                 "write-tmp": Path(os.environ["TMPDIR"]), "write-case": inputs.parent}[what]
        (where / "stray").write_text("x")
    if what == "write-cache":  # the cache is allowed
        (inputs.parent / "cache").mkdir()
        (inputs.parent / "cache" / "entry").write_text("x")
    if what == "write-input":  # beside the caller's input: not allowed either
        return lambda: (inputs / "sidecar").write_text("x") and []
    if what == "exit":
        os._exit(3)
    return lambda: []
