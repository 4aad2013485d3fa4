"""Shared plumbing for the sources that read blobs from tars and directories
(``docker-archive:``, ``oci:``, ``oci-archive:``, ``manifest:``).

* media types: what a layer's media type says about its compression;
* :class:`TarStore` / :class:`DirStore`: one way to find, read and stream the
  files of a ``docker save`` / OCI archive (by tar member index, never
  extracting) or of an OCI layout directory, with every name checked to stay
  inside the archive or directory;
* :func:`tar_content_size`: Docker's layer size (the sum of the tar entries'
  sizes) read from the headers of an uncompressed layer, seeking past file
  contents;
* small-JSON reading with digest checks, config → history/platform helpers,
  and :class:`StoreBlobs`, the :class:`~layerlab.model.BlobProvider` of these
  sources.

Names and digests are checked here so that hostile input gives a
``LayerlabError`` naming the file, never a raw exception.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import platform as _platform
import posixpath
import re
import stat
import tarfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator

from ..contents._runtime.busy import busy
from ..errors import DigestMismatchError, FormatError, SourceError
from ..model import BlobProvider, HistoryStep, pair_by_empty_layer

# --------------------------------------------------------------------------
# media types
# --------------------------------------------------------------------------
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"
DOCKER_FOREIGN_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_ND_LAYER = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_ND_LAYER_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_ND_LAYER_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST_V1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_MANIFEST_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"

MANIFEST_TYPES = {DOCKER_MANIFEST, OCI_MANIFEST}
INDEX_TYPES = {DOCKER_MANIFEST_LIST, OCI_INDEX}

# layer media type -> compression ("none", "gzip", "zstd")
LAYER_COMPRESSION: dict[str, str] = {
    DOCKER_LAYER: "none",
    DOCKER_LAYER_GZIP: "gzip",
    DOCKER_LAYER_ZSTD: "zstd",
    DOCKER_FOREIGN_GZIP: "gzip",
    OCI_LAYER: "none",
    OCI_LAYER_GZIP: "gzip",
    OCI_LAYER_ZSTD: "zstd",
    OCI_ND_LAYER: "none",
    OCI_ND_LAYER_GZIP: "gzip",
    OCI_ND_LAYER_ZSTD: "zstd",
}

# the annotations eStargz (stargz-snapshotter) puts on a gzip layer descriptor
ESTARGZ_ANNOTATIONS = (
    "containerd.io/snapshot/stargz/toc.digest",
    "io.containers.estargz.uncompressed-size",
)


def media_type_of(doc: dict, where: str, default: str | None = None) -> str | None:
    """A descriptor's or document's ``mediaType``: a string, or None when absent."""
    mt = doc.get("mediaType", default)
    if mt is not None and not isinstance(mt, str):
        raise FormatError(f"{where}: mediaType {mt!r} is not a string")
    return mt


def layer_compression(media_type: str | None, where: str) -> str:
    """``none``/``gzip``/``zstd`` for a layer media type; FormatError for an unknown one."""
    if isinstance(media_type, str) and media_type in LAYER_COMPRESSION:
        return LAYER_COMPRESSION[media_type]  # type: ignore[index]
    raise FormatError(
        f"{where}: unknown layer media type {media_type!r}; layerlab reads Docker and OCI "
        "tar, tar+gzip and tar+zstd layers (an image of another artifact type is not a container image)"
    )


def is_estargz(annotations: dict[str, str] | None) -> bool:
    return bool(annotations) and any(k in annotations for k in ESTARGZ_ANNOTATIONS)  # type: ignore[operator]


_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
)


def sniff_compression(head: bytes) -> str:
    """Compression of a blob from its first bytes: gzip, zstd, bzip2, xz or ``none``."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return "none"


MEDIA_TYPE_FOR = {"none": DOCKER_LAYER, "gzip": DOCKER_LAYER_GZIP, "zstd": DOCKER_LAYER_ZSTD}
OCI_MEDIA_TYPE_FOR = {"none": OCI_LAYER, "gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}


def reconcile_compression(declared_type: str, declared: str, actual: str, where: str,
                          annotations: dict[str, str], warnings: list[str]) -> str:
    """The media type to use when a blob's bytes disagree with its declared type.

    The bytes win, as they do for containerd and ``docker load`` (both sniff
    the magic number): skopeo 1.9, for one, writes uncompressed layers declared
    ``tar+gzip`` when asked to accept uncompressed layers.  The declared type
    is kept in the ``layerlab.declared_media_type`` annotation and a warning
    is recorded.  Compressions with no layer media type (bzip2, xz) are errors.
    """
    if actual == declared:
        return declared_type
    table = OCI_MEDIA_TYPE_FOR if declared_type.startswith("application/vnd.oci.") else MEDIA_TYPE_FOR
    if actual not in table:
        raise FormatError(
            f"{where}: declared {declared_type} but its bytes are {actual}-compressed, which no layer "
            "media type allows; layerlab reads uncompressed, gzip and zstd layers"
        )
    annotations["layerlab.declared_media_type"] = declared_type
    warnings.append(f"{where}: declared {declared_type} but its bytes are {actual}-compressed; read as {table[actual]}")
    return table[actual]

# --------------------------------------------------------------------------
# digests
# --------------------------------------------------------------------------
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_digest(digest: Any, where: str) -> str:
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise FormatError(f"{where}: {digest!r} is not a sha256 digest ('sha256:' + 64 hex digits)")
    return digest


def verify_digest(data: bytes, digest: str, what: str) -> None:
    got = sha256_bytes(data)
    if got != digest:
        raise DigestMismatchError(
            f"{what}: content hashes to {got}, but it is named {digest}; the file is corrupt or was "
            "edited after it was written — fetch or save the image again"
        )


def digest_in_name(name: str) -> str | None:
    """The digest a blob's file name states: ``blobs/sha256/HEX``, ``HEX.json``, ``sha256:HEX``."""
    base = posixpath.basename(name)
    m = re.fullmatch(r"(?:sha256:)?([0-9a-f]{64})(?:\.json)?", base)
    if m and (base.startswith("sha256:") or base.endswith(".json") or posixpath.dirname(name).endswith("sha256")):
        return "sha256:" + m.group(1)
    return None


def blob_path(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    return f"blobs/{algo}/{hexpart}"


# --------------------------------------------------------------------------
# names inside an archive or layout
# --------------------------------------------------------------------------
def clean_name(name: Any, where: str) -> str:
    """Normalise a path named by a JSON file; refuse absolute paths and ``..``."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise FormatError(f"{where}: {name!r} is not a file name")
    if name.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", name):
        raise FormatError(f"{where}: {name!r} is an absolute path, pointing outside the archive; refusing it")
    norm = posixpath.normpath(name)
    if norm == ".." or norm.startswith("../"):
        raise FormatError(f"{where}: {name!r} points outside the archive (it climbs with '..'); refusing it")
    return norm.lstrip("./") if norm.startswith("./") else norm


@dataclass
class Blob:
    """Where a file's bytes are: ``length`` bytes at ``offset`` of ``container``."""

    name: str
    container: str
    offset: int
    length: int


class _Window(io.RawIOBase):
    """A read-only, seekable view of ``length`` bytes at ``offset`` of a file.

    Written by hand because tarfile's own ExFileObject needs the whole TarFile
    (and its member list) alive; this needs only an OS file descriptor and
    reads with ``os.pread``, so seeking costs nothing.
    """

    def __init__(self, fd: int, offset: int, length: int, keep: Any = None):
        self._fd, self._off, self._len, self._pos = fd, offset, length, 0
        self._keep = keep  # whatever owns ``fd`` stays alive as long as this window

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == 1:
            pos += self._pos
        elif whence == 2:
            pos += self._len
        self._pos = max(0, pos)
        return self._pos

    def readinto(self, b) -> int:
        n = min(len(b), self._len - self._pos)
        if n <= 0:
            return 0
        data = os.pread(self._fd, n, self._off + self._pos)
        b[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self._len - self._pos
        n = min(n, self._len - self._pos)
        if n <= 0:
            return b""
        data = os.pread(self._fd, n, self._off + self._pos)
        self._pos += len(data)
        return data


class Store:
    """Files of an archive or layout, by name."""

    location: str

    def find(self, name: str, where: str) -> Blob | None:  # pragma: no cover - interface
        raise NotImplementedError

    def names(self) -> Iterable[str]:  # pragma: no cover - interface
        raise NotImplementedError

    def exists(self, name: str) -> bool:
        try:
            return self.find(name, self.location) is not None
        except FormatError:
            return False

    def blob(self, name: str, where: str, what: str = "blob") -> Blob:
        b = self.find(clean_name(name, f"{self.location}: {where}"), where)
        if b is None:
            raise FormatError(
                f"{self.location}: {where} names {what} {name!r}, which is not in the "
                f"{'archive' if isinstance(self, TarStore) else 'directory'} (missing blob); "
                "the image was saved or copied incompletely"
            )
        return b

    def read(self, blob: Blob, limit: int = 64 << 20) -> bytes:
        if blob.length > limit:
            raise FormatError(
                f"{self.location}: {blob.name} is {blob.length} bytes, too large for a JSON document "
                f"(limit {limit}); it is not what its name says"
            )
        with open(blob.container, "rb") as f:
            f.seek(blob.offset)
            data = f.read(blob.length)
        if len(data) != blob.length:
            raise FormatError(f"{self.location}: {blob.name} is truncated (read {len(data)} of {blob.length} bytes)")
        return data

    def head(self, blob: Blob, n: int = 8) -> bytes:
        with open(blob.container, "rb") as f:
            f.seek(blob.offset)
            return f.read(min(n, blob.length))

    def read_json(self, name: str, where: str, what: str, digest: str | None = None) -> tuple[Any, bytes]:
        b = self.blob(name, where, what)
        data = self.read(b)
        if digest is not None:
            verify_digest(data, digest, f"{self.location}: {what} {b.name}")
        return parse_json(data, f"{self.location}: {what} {b.name}"), data


def parse_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except RecursionError as e:
        raise FormatError(f"{what} nests too deeply to be a real image document") from e
    except (ValueError, UnicodeDecodeError) as e:
        raise FormatError(f"{what} is not valid JSON ({e}); the file is corrupt or is not what its name says") from e


class TarStore(Store):
    """The members of a tar file, indexed by name (headers only, contents skipped by seeking)."""

    def __init__(self, path: str | os.PathLike, label: str | None = None):
        self.path = os.fspath(path)
        self.location = label or self.path
        try:
            self.file_size = os.path.getsize(self.path)
        except OSError as e:
            raise SourceError(f"{self.location}: cannot open ({e.strerror or e})") from e
        self.members: dict[str, tarfile.TarInfo] = {}
        try:
            with tarfile.open(self.path, mode="r:") as tf:
                for m in tf:
                    name = posixpath.normpath(m.name)
                    while name.startswith("./"):
                        name = name[2:]
                    self.members[name] = m
                end = tf.offset
        except tarfile.ReadError as e:
            raise FormatError(
                f"{self.location}: not a readable tar archive ({e}); it is truncated, corrupt or compressed "
                "(decompress a .tar.gz first)"
            ) from e
        except (tarfile.TarError, OSError, EOFError, ValueError) as e:
            raise FormatError(f"{self.location}: cannot read the tar archive ({e})") from e
        if not self.members:
            raise FormatError(f"{self.location}: the tar archive is empty")
        with open(self.path, "rb") as f:
            f.seek(end)
            _check_tar_end(f.read(tarfile.BLOCKSIZE), self.file_size - end, f"{self.location}", end)

    def names(self) -> Iterable[str]:
        return self.members.keys()

    def find(self, name: str, where: str) -> Blob | None:
        seen = 0
        cur = name
        while True:
            m = self.members.get(cur)
            if m is None:
                return None
            if m.issym() or m.islnk():
                seen += 1
                if seen > 16:
                    raise FormatError(f"{self.location}: {name!r} is a link loop inside the archive")
                target = m.linkname
                if m.issym() and not target.startswith("/"):
                    target = posixpath.join(posixpath.dirname(cur), target)
                cur = clean_name(target, f"{self.location}: {where} (link {cur!r} -> {m.linkname!r})")
                continue
            if not m.isfile():
                raise FormatError(f"{self.location}: {name!r} is not a regular file in the archive")
            if m.issparse():
                raise FormatError(f"{self.location}: {name!r} is a sparse tar member; docker and OCI archives never are")
            if m.offset_data + m.size > self.file_size:
                raise FormatError(
                    f"{self.location}: truncated archive: {name!r} should hold {m.size} bytes but the "
                    f"file ends {m.offset_data + m.size - self.file_size} bytes early; save or copy it again"
                )
            return Blob(cur, self.path, m.offset_data, m.size)


class DirStore(Store):
    """Files under a directory (an OCI layout), refusing anything that resolves outside it."""

    def __init__(self, path: str | os.PathLike, label: str | None = None):
        self.root = Path(path)
        self.location = label or os.fspath(path)
        if not self.root.is_dir():
            raise SourceError(f"{self.location}: no such directory")
        self._real = os.path.realpath(self.root)

    def names(self) -> Iterable[str]:
        for dirpath, _dirs, files in os.walk(self.root):
            for f in files:
                yield os.path.relpath(os.path.join(dirpath, f), self.root).replace(os.sep, "/")

    def find(self, name: str, where: str) -> Blob | None:
        p = os.path.realpath(os.path.join(self._real, name))
        if p != self._real and not p.startswith(self._real + os.sep):
            raise FormatError(f"{self.location}: {name!r} resolves outside the directory; refusing it")
        try:
            st = os.stat(p)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            raise FormatError(f"{self.location}: {name!r} is not a regular file")
        return Blob(name, p, 0, st.st_size)


def _check_tar_end(block: bytes, rest: int, where: str, offset: int) -> None:
    """tarfile stops quietly at a header it cannot parse once past the first
    member; a well-formed tar ends there (nothing left) or with a zero block.
    Anything else is a truncated or corrupt archive."""
    if rest <= 0:
        return
    if block and block.count(0) == len(block):
        return  # end-of-archive zeros (possibly cut short: no data is lost)
    raise FormatError(
        f"{where}: truncated or corrupt tar: the entry header at byte {offset} is "
        + ("cut short" if rest < tarfile.BLOCKSIZE else "unreadable")
        + "; save or copy the image again"
    )


# --------------------------------------------------------------------------
# Docker's layer size from tar headers
# --------------------------------------------------------------------------
def tar_content_size(blob: Blob, where: str) -> int:
    """Docker's size of the uncompressed layer tar in ``blob``, from its headers.

    The engine reports (``docker history``, ``docker image inspect`` Size) the
    size of the unpacked layer directory the way moby's ``directory.Size``
    counts it: every non-directory's ``lstat`` size, once per inode.  From tar
    headers that is: regular files their size, symlinks the byte length of
    their target, hard links 0 (their target is counted), directories, devices,
    fifos and whiteouts 0; a path listed twice counts once (the last entry
    wins, as on extraction).  Checked against the real engine in the tests.
    """
    return _size_and_index(blob, where)[0]


def _size_and_index(blob: Blob, where: str, idx=None):
    """(Docker size, the tar's :class:`~layerlab.contents.tarindex.TarIndex`).

    The headers are walked by :func:`layerlab.contents.tarindex.index_range`
    (the same reader the contents scan uses; it reads headers only, so a 1 GB
    layer costs a few MB of reads) unless ``idx`` (walked by a worker) is
    given.  Sparse files, whose unpacked size the headers do not give
    directly, go through ``tarfile``."""
    from ..contents.tarindex import docker_size, index_range

    fd = os.open(blob.container, os.O_RDONLY)
    try:
        if idx is None:
            idx = index_range(fd, blob.offset, blob.length, where)
        if idx.sparse:
            return sum(_tarfile_sizes(fd, blob, where).values()), idx
        return (idx.docker_bytes if idx.docker_bytes is not None else docker_size(idx)), idx
    finally:
        os.close(fd)


PARALLEL_WALK_BYTES = 256 << 20
"""Walk the biggest layers in a worker process when the layers to walk add up
to more than this (and there are two or more, and two or more cores)."""


class _WalkWorker:
    """The header walks of some blobs, done by a separate interpreter
    (:mod:`layerlab.contents._indexworker`) while this one walks the others."""

    def __init__(self, blobs: list[tuple[Blob, str]]):
        import pickle
        import subprocess
        import sys

        from ..contents._runtime.workerenv import worker_env

        env = worker_env()
        self.keys = [(b.container, b.offset, b.length) for b, _ in blobs]
        self._proc = subprocess.Popen([sys.executable, "-m", "layerlab.contents._indexworker"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self._proc.stdin.write(pickle.dumps([(b.container, b.offset, b.length, w) for b, w in blobs]))
        self._proc.stdin.close()
        self._results: dict | None = None

    def result(self, key):
        """("ok", TarIndex) / ("err", exception) for one blob; None if the worker failed."""
        if self._results is None:
            import pickle

            try:
                got = pickle.loads(self._proc.stdout.read())
            except Exception:  # noqa: BLE001 - a dead worker: the caller walks itself
                got = None
            self._proc.wait()
            self._results = dict(zip(self.keys, got)) if isinstance(got, list) else {}
        return self._results.get(key)

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._proc.stdout.close()


def _start_walk_worker(todo: list[tuple[int, Blob, str]]):
    """A worker for the biggest blobs (about half the bytes), or None when not worth it."""
    distinct: dict[tuple[str, int, int], tuple[Blob, str]] = {}
    for _pos, blob, where in todo:
        distinct.setdefault((blob.container, blob.offset, blob.length), (blob, where))
    total = sum(b.length for b, _ in distinct.values())
    if len(distinct) < 2 or total < PARALLEL_WALK_BYTES or (os.cpu_count() or 1) < 2:
        return None
    mine: list[tuple[Blob, str]] = []
    got = 0
    for blob, where in sorted(distinct.values(), key=lambda t: -t[0].length):
        if got and got + blob.length > total * 0.6:
            continue
        mine.append((blob, where))
        got += blob.length
    if len(mine) == len(distinct):
        mine.pop()
    try:
        return _WalkWorker(mine)
    except OSError:
        return None


KEEP_INDEX_ENTRIES = 500_000
"""Keep the walked headers for the contents scan while the image has at most
this many entries (they cost ~300 bytes each in memory)."""


PROGRESS_MIN_BYTES = 2 << 30
"""Show a progress bar when the uncompressed layers to size exceed this (auto mode)."""


@busy()
def fill_sizes(layers: list, pending: list[tuple[int, Blob, str]], label: str, progress: bool | None = None,
               cache_dir: Any = None, indexes: dict | None = None) -> dict[int, tuple[int, int]]:
    """Set ``layers[pos].size`` from the headers of each pending uncompressed blob.

    A blob shared by several positions is read once.  A layer whose size was
    remembered after a verified scan of the same diff_id and length
    (:mod:`layerlab.contents.sizes`, under ``cache_dir``: None the default
    cache, False none) takes it from there instead of walking its headers.
    ``progress``: True / False, or None for a bar only when the blobs to walk
    add up to more than :data:`PROGRESS_MIN_BYTES` (a few seconds of header
    walking).  ``indexes``, when given, receives the walked headers per blob
    (``{(container, offset, length): TarIndex}``) for the contents scan.
    Returns ``{position: (size, blob length)}`` for every sized
    position, for :class:`StoreBlobs` (the contents scan remembers them)."""
    from ..contents.sizes import get_size

    done: dict[tuple[str, int, int], int] = {}
    walk: list[tuple[int, Blob, str]] = []
    for item in pending:
        pos, blob, _where = item
        key = (blob.container, blob.offset, blob.length)
        if key not in done:
            diff_id = getattr(layers[pos], "diff_id", None)
            known = get_size(diff_id, blob.length, cache_dir)
            if known is None and cache_dir is not False:
                from ..contents.sizes import local_key

                known = get_size(local_key(blob.container, blob.offset, blob.length, diff_id), blob.length,
                                 cache_dir)
            if known is not None:
                done[key] = known
        walk.append(item)
    todo = [t for t in walk if (t[1].container, t[1].offset, t[1].length) not in done]
    total = sum(b.length for _p, b, _w in todo)
    bar = None
    if progress or (progress is None and total > PROGRESS_MIN_BYTES):
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="B", unit_scale=True, desc=f"sizing layers of {label}", leave=False)
    sized: dict[int, tuple[int, int]] = {}
    kept = 0
    from ..contents._runtime.readahead import read_ahead

    read_ahead((b.container, b.offset, b.length) for _p, b, _w in todo)
    worker = _start_walk_worker(todo)
    if worker is not None:
        theirs = set(worker.keys)
        walk = [t for t in walk if (t[1].container, t[1].offset, t[1].length) not in theirs] + [
            t for t in walk if (t[1].container, t[1].offset, t[1].length) in theirs]
    try:
        for pos, blob, where in walk:
            key = (blob.container, blob.offset, blob.length)
            if key not in done:
                res = None
                if worker is not None and key in worker.keys:
                    # this interpreter's own walks are done (an import beside them would hold the GIL
                    # they take back after every read): while the worker finishes, import what frames need
                    from ..contents._runtime.preload import preload_pandas

                    preload_pandas()
                    res = worker.result(key)
                if res is not None and res[0] == "err":
                    raise res[1]
                done[key], idx = _size_and_index(blob, where, res[1] if res is not None else None)
                kept += len(idx)
                if indexes is not None and kept <= KEEP_INDEX_ENTRIES:
                    indexes[key] = idx
                if bar is not None:
                    bar.update(blob.length)
            layers[pos].size = done[key]
            sized[pos] = (done[key], blob.length)
    finally:
        if bar is not None:
            bar.close()
        if worker is not None:
            worker.close()
    return sized


def _tarfile_sizes(fd: int, blob: Blob, where: str) -> dict[str, int]:
    sizes: dict[str, int] = {}
    win = _Window(fd, blob.offset, blob.length)
    try:
        tf = tarfile.open(fileobj=win, mode="r:")  # type: ignore[arg-type]
        while True:
            m = tf.next()
            if m is None:
                break
            if m.isreg():
                n = m.size
            elif m.issym():
                n = len(m.linkname.encode("utf-8", "surrogateescape"))
            else:
                n = 0
            sizes[m.name.rstrip("/").removeprefix("./")] = n
            # tarfile keeps every TarInfo for random access we do not need:
            # drop them so memory stays flat on layers of 100k+ files.
            tf.members.clear()
        win.seek(tf.offset)
        _check_tar_end(win.read(tarfile.BLOCKSIZE), blob.length - tf.offset, where, tf.offset)
    except tarfile.TarError as e:
        raise FormatError(f"{where}: the layer is not a readable tar ({e}); it is truncated or corrupt") from e
    except (EOFError, ValueError, OSError, UnicodeDecodeError) as e:
        raise FormatError(f"{where}: cannot read the layer tar ({e})") from e
    return sizes


# --------------------------------------------------------------------------
# config helpers
# --------------------------------------------------------------------------
_FRAC = re.compile(r"(\.\d{6})\d+")


def parse_time(value: Any) -> datetime | None:
    """RFC 3339 (Go's, with nanoseconds) → aware datetime; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    text = _FRAC.sub(r"\1", value.strip())
    if text.endswith("Z") or text.endswith("z"):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    if dt.year <= 1:  # Go's zero time
        return None
    return dt


def platform_of(config: dict | None) -> str | None:
    if not isinstance(config, dict):
        return None
    os_ = config.get("os")
    arch = config.get("architecture")
    if not isinstance(os_, str) or not isinstance(arch, str):
        return None
    variant = config.get("variant")
    return f"{os_}/{arch}" + (f"/{variant}" if isinstance(variant, str) and variant else "")


_MACHINE = {
    "x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
    "armv7l": "arm/v7", "armv6l": "arm/v6", "i386": "386", "i686": "386",
    "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
}


def host_platform() -> str:
    """The platform Docker would pull for this host (``linux/amd64`` on x86_64)."""
    machine = _platform.machine().lower()
    return "linux/" + _MACHINE.get(machine, machine)


def config_diff_ids(config: dict, where: str) -> list[str]:
    rootfs = config.get("rootfs")
    if not isinstance(rootfs, dict):
        raise FormatError(f"{where}: the image config has no 'rootfs' object; it is not an image config")
    ids = rootfs.get("diff_ids") or []
    if not isinstance(ids, list):
        raise FormatError(f"{where}: rootfs.diff_ids is not a list")
    return [check_digest(d, f"{where}: rootfs.diff_ids[{i}]") for i, d in enumerate(ids)]


def history_from_config(config: dict, n_layers: int, where: str) -> list[HistoryStep]:
    """The config's history, paired with layers by the ``empty_layer`` flags."""
    raw = config.get("history") or []
    if not isinstance(raw, list):
        raise FormatError(f"{where}: the config's 'history' is not a list")
    steps: list[HistoryStep] = []
    for i, h in enumerate(raw):
        if not isinstance(h, dict):
            raise FormatError(f"{where}: history[{i}] is not an object")
        steps.append(
            HistoryStep(
                index=i,
                created_by=_str(h.get("created_by")),
                created=parse_time(h.get("created")),
                author=_str(h.get("author")),
                comment=_str(h.get("comment")),
                empty_layer=bool(h.get("empty_layer", False)),
            )
        )
    pair_by_empty_layer(steps, n_layers)
    return steps


def _str(x: Any) -> str | None:
    return x if isinstance(x, str) else None


def as_object(doc: Any, where: str, what: str) -> dict:
    if not isinstance(doc, dict):
        raise FormatError(f"{where}: {what} is not a JSON object")
    return doc


# --------------------------------------------------------------------------
# BlobProvider
# --------------------------------------------------------------------------
class StoreBlobs(BlobProvider):
    """:class:`~layerlab.model.BlobProvider` over blobs in a tar or directory.

    ``blobs`` lists, per layer position, the blob (file + byte range) and its
    media type.  ``iter_blobs`` opens the file once, walks the distinct blobs
    in file order (one pass through a tar), and yields a seekable window on
    each: nothing is copied or extracted.
    """

    independent_readers = True   # a file on disk: any number of pread()ers

    def __init__(self, location: str, blobs: list[tuple[int, Blob, str | None]],
                 header_sizes: dict[int, tuple[int, int]] | None = None, indexes: dict | None = None):
        self.location = location
        self._blobs = blobs
        # position -> (Docker size from the tar headers, uncompressed length), from fill_sizes
        self.header_sizes = header_sizes or {}
        # (container, offset, length) -> TarIndex walked by fill_sizes, handed once to the contents scan
        self._indexes = indexes or {}

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_indexes"] = {}  # never shipped to worker processes
        return state

    def byte_range(self, pos: int) -> tuple[str, int, int] | None:
        """(file, offset, length) of the blob of layer ``pos``."""
        for p, blob, _mt in self._blobs:
            if p == pos:
                return blob.container, blob.offset, blob.length
        return None

    def take_index(self, pos: int):
        """The walked headers of layer ``pos``'s blob, if the load kept them (once)."""
        r = self.byte_range(pos)
        return self._indexes.pop(r, None) if r is not None else None

    def __repr__(self) -> str:
        return f"<StoreBlobs {self.location}: {len(self._blobs)} layers>"

    def iter_blobs(self, positions: Iterable[int] | None = None) -> Iterator[tuple[list[int], str | None, BinaryIO]]:
        wanted = None if positions is None else set(positions)
        groups: dict[tuple[str, int, int], tuple[list[int], str | None]] = {}
        for pos, blob, mt in self._blobs:
            if wanted is not None and pos not in wanted:
                continue
            key = (blob.container, blob.offset, blob.length)
            groups.setdefault(key, ([], mt))[0].append(pos)
        fds: dict[str, _Fd] = {}
        for (container, offset, length), (poss, mt) in sorted(groups.items()):
            if container not in fds:
                try:
                    fds[container] = _Fd(container)
                except OSError as e:
                    raise SourceError(f"{self.location}: cannot open {container} ({e.strerror or e})") from e
            raw = _Window(fds[container].fd, offset, length, keep=fds[container])
            yield sorted(poss), mt, io.BufferedReader(raw, buffer_size=1 << 20)  # type: ignore[misc]


class _Fd:
    """An OS file descriptor closed when the last window using it is gone."""

    def __init__(self, path: str):
        self.fd = os.open(path, os.O_RDONLY)

    def __del__(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


# --------------------------------------------------------------------------
# OCI index walking (oci:, oci-archive:, and Docker 25+ saves)
# --------------------------------------------------------------------------
def walk_index(store: Store, name: str = "index.json") -> Iterator[tuple[dict, dict, tuple]]:
    """Yield ``(descriptor, manifest, trail)`` for every image manifest reachable
    from ``index.json`` through nested indexes.  ``trail`` holds the descriptors
    of the enclosing indexes, outermost first (their annotations name tags).
    Index and manifest blobs are verified against their digests."""
    for _i, desc in enumerate(index_descriptors(store, name)):
        yield from walk_descriptor(store, desc, f"{name} manifests[{_i}]")


def index_descriptors(store: Store, name: str = "index.json", digest: str | None = None) -> list[dict]:
    doc, _ = store.read_json(name, name, "index", digest=digest)
    doc = as_object(doc, f"{store.location}: {name}", "the index")
    manifests = doc.get("manifests") or []
    if not isinstance(manifests, list):
        raise FormatError(f"{store.location}: {name}: 'manifests' is not a list")
    for i, desc in enumerate(manifests):
        if not isinstance(desc, dict):
            raise FormatError(f"{store.location}: {name} manifests[{i}] is not an object")
    return manifests


def walk_descriptor(store: Store, desc: dict, where: str, _trail: tuple = ()) -> Iterator[tuple[dict, dict, tuple]]:
    """The image manifests one descriptor leads to (itself, or through nested indexes)."""
    if len(_trail) > 8:
        raise FormatError(f"{store.location}: indexes nested more than 8 deep at {where}; refusing (a loop?)")
    d = check_digest(desc.get("digest"), f"{store.location}: {where}")
    mt = media_type_of(desc, f"{store.location}: {where}")
    doc, _ = store.read_json(blob_path(d), where, "index" if mt in INDEX_TYPES else "manifest", digest=d)
    doc = as_object(doc, f"{store.location}: blob {blob_path(d)}", "the manifest")
    mmt = media_type_of(doc, f"{store.location}: blob {blob_path(d)}", mt)
    if mmt in INDEX_TYPES or (mmt is None and "manifests" in doc):
        subs = doc.get("manifests") or []
        if not isinstance(subs, list):
            raise FormatError(f"{store.location}: index {d}: 'manifests' is not a list")
        for i, sub in enumerate(subs):
            if not isinstance(sub, dict):
                raise FormatError(f"{store.location}: index {d} manifests[{i}] is not an object")
            yield from walk_descriptor(store, sub, f"index {d} manifests[{i}]", _trail + (desc,))
        return
    if mmt is not None and mmt not in MANIFEST_TYPES:
        return  # artifacts (signatures, helm charts, ...) are not images
    yield desc, doc, _trail
