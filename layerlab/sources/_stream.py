"""Small stream adapters for the network sources (``docker-daemon:``, ``docker://``).

Written by hand because they are a few lines each and no maintained library
offers exactly these: a file object over an iterator of byte chunks (what the
docker SDK's ``image.save()`` returns), and a reader that hashes what passes
through it and refuses content that does not match its digest at EOF; and
:func:`short_error`, the text of a transport's exception as messages quote it.
"""
from __future__ import annotations

import hashlib
import io
from typing import Any, BinaryIO, Callable, Iterator

from ..errors import DigestMismatchError, FormatError, LayerlabError



def short_error(e: Any) -> str:
    """An exception's text (or its type's name), cut at 300 characters for a message."""
    text = str(e).strip() or type(e).__name__
    return text if len(text) < 300 else text[:300] + "…"


class ChunkStream(io.RawIOBase):
    """A forward-only readable file over an iterator of ``bytes`` chunks.

    ``tarfile.open(fileobj=..., mode="r|")`` reads it in stream mode.
    ``on_read(n)`` (e.g. a tqdm ``update``) is called with each chunk's length.
    """

    def __init__(self, chunks: Iterator[bytes], on_read: Callable[[int], object] | None = None):
        self._it = iter(chunks)
        self._buf = memoryview(b"")  # the current chunk; slicing a memoryview copies nothing
        self._pos = 0
        self._on_read = on_read
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not len(self._buf):
            try:
                chunk = next(self._it)
            except StopIteration:
                return 0
            if chunk:
                self._buf = memoryview(chunk)
                self.bytes_read += len(chunk)
                if self._on_read is not None:
                    self._on_read(len(chunk))
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        self._pos += n
        return n

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        close = getattr(self._it, "close", None)
        if close is not None:
            try:
                close()
            except Exception:  # noqa: BLE001 - closing a half-read HTTP stream may complain; nothing to do
                pass
        super().close()


class VerifyingReader(io.RawIOBase):
    """Pass reads through from ``raw`` while hashing them; at EOF compare with ``digest``.

    A mismatch raises :class:`DigestMismatchError` naming ``what``; so does a
    length different from ``length`` (when given).  Content is only checked
    when the reader reaches EOF: a consumer that stops early gets no verdict.
    """

    def __init__(self, raw: BinaryIO, digest: str | None, what: str, length: int | None = None):
        self._raw = raw
        self._digest = digest
        self._what = what
        self._length = length
        algo = (digest or "sha256:").split(":", 1)[0]
        if algo not in ("sha256", "sha512"):
            raise FormatError(f"{what}: digest algorithm {algo!r} is not supported (sha256, sha512)")
        self._h = hashlib.new(algo)
        self._n = 0
        self._done = False
        self.verified = False

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes as ``raw`` hands them out (no copy into a buffer:
        the decoders read megabytes at a time); all that is left when ``n`` < 0."""
        if n is None or n < 0:
            return self.readall()
        data = self._pull(n)
        if data:
            self._h.update(data)
            self._n += len(data)
        return data

    def readinto(self, b) -> int:
        data = self._pull(len(b))
        n = len(data)
        b[:n] = data
        if n:
            self._h.update(memoryview(b)[:n])
            self._n += n
        return n

    def _pull(self, n: int) -> bytes:
        """The next bytes from ``raw`` (b"" at EOF, after the check)."""
        if self._done:
            return b""
        try:
            data = self._raw.read(n)
        except LayerlabError:
            raise
        except (OSError, EOFError, ValueError) as e:
            raise FormatError(f"{self._what}: the stream broke off after {self._n} bytes ({e})") from e
        except Exception as e:  # noqa: BLE001 - tarfile.ReadError and HTTP errors from the layer below
            raise FormatError(f"{self._what}: could not read past {self._n} bytes ({type(e).__name__}: {e})") from e
        if data:
            return bytes(data) if not isinstance(data, bytes) else data
        if n:
            self._done = True
            self._check()
        return b""

    def _check(self) -> None:
        if self._length is not None and self._n != self._length:
            raise DigestMismatchError(
                f"{self._what}: got {self._n} bytes but the descriptor says {self._length}; "
                "the transfer was cut short or the blob is not the one named — fetch it again"
            )
        if self._digest is not None:
            got = f"{self._h.name}:{self._h.hexdigest()}"
            if got != self._digest:
                raise DigestMismatchError(
                    f"{self._what}: content hashes to {got}, but it is named {self._digest}; "
                    "the blob is corrupt or was replaced — fetch it again"
                )
        self.verified = True

    @property
    def hexdigest(self) -> str:
        return f"{self._h.name}:{self._h.hexdigest()}"

    @property
    def bytes_read(self) -> int:
        return self._n
