"""Digests and the small JSON documents they name (manifests, indexes, configs).

Every check raises a :class:`~layerlab.errors.LayerlabError` naming the
document, never a raw exception, so hostile input gives a readable error.
"""
from __future__ import annotations

import hashlib
import json
import posixpath
import re
from typing import Any

from ..errors import DigestMismatchError, FormatError

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_digest(digest: Any, where: str) -> str:
    """``digest`` itself when it is ``sha256:`` + 64 hex digits; FormatError otherwise."""
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise FormatError(f"{where}: {digest!r} is not a sha256 digest ('sha256:' + 64 hex digits)")
    return digest


def verify_digest(data: bytes, digest: str, what: str) -> None:
    """DigestMismatchError unless ``data`` hashes to ``digest``."""
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
    """Where an OCI layout keeps the blob ``digest``: ``blobs/<algo>/<hex>``."""
    algo, _, hexpart = digest.partition(":")
    return f"blobs/{algo}/{hexpart}"


def parse_json(data: bytes, what: str) -> Any:
    """``json.loads`` with a FormatError naming ``what`` for bad or absurdly nested JSON."""
    try:
        return json.loads(data)
    except RecursionError as e:
        raise FormatError(f"{what} nests too deeply to be a real image document") from e
    except (ValueError, UnicodeDecodeError) as e:
        raise FormatError(f"{what} is not valid JSON ({e}); the file is corrupt or is not what its name says") from e


def as_object(doc: Any, where: str, what: str) -> dict:
    """``doc`` when it is a JSON object; FormatError otherwise."""
    if not isinstance(doc, dict):
        raise FormatError(f"{where}: {what} is not a JSON object")
    return doc
