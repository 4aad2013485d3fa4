"""Where the bytes of an archive or layout are, read in place.

* :class:`TarStore` / :class:`DirStore`: one way to find, read and stream the
  files of a ``docker save`` / OCI archive (by tar member index, never
  extracting) or of an OCI layout directory, with every name checked to stay
  inside the archive or directory (:func:`clean_name`);
* :class:`StoreBlobs`, the :class:`~layerlab.model.BlobProvider` of the
  sources that read such stores (``docker-archive:``, ``oci:``,
  ``oci-archive:``): seekable windows on the blobs, nothing copied.

Names are checked here so that hostile input gives a ``LayerlabError``
naming the file, never a raw exception.
"""
from __future__ import annotations

import io
import os
import posixpath
import re
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator

from ..errors import FormatError, SourceError
from .._limits import current as current_limits, exceeded
from ..model import BlobProvider
from ._digest import parse_json, verify_digest

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

    def read(self, blob: Blob, limit: int | None = None) -> bytes:
        """A small document's bytes; LimitError past ``limit`` (default: the
        ``document_bytes`` limit in force, :func:`layerlab.limits`)."""
        if limit is None:
            limit = current_limits().document_bytes
        if blob.length > limit:
            raise exceeded(f"{self.location}: {blob.name}, a JSON document", "document_bytes", limit, "bytes",
                           amount=blob.length)
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
