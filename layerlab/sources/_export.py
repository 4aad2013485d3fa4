"""The engine's ``image.save()`` stream for ``docker-daemon:``: the image config
read from it (:func:`read_config_from_save`), and :class:`DaemonBlobs`, the
BlobProvider that streams the layers as they pass (see that class for how
the legacy ``docker save`` layout is mapped to layer positions).
"""
from __future__ import annotations

import hashlib
import json
import posixpath
import tarfile
import tempfile
from typing import Any, BinaryIO, Iterable, Iterator

from ..errors import DigestMismatchError, EngineError, FormatError
from ..model import BlobProvider, chain_ids
from ._digest import sha256_bytes
from ._engine import HEX64, JSON_LIMIT, engine_host
from ._stream import ChunkStream, VerifyingReader, short_error

UNCOMPRESSED = "application/vnd.docker.image.rootfs.diff.tar"
_SPOOL_IN_MEMORY = 32 << 20


def _progress(total: int | None, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc=desc, leave=False, disable=None)


def save_stream(image, where: str, desc: str, total: int | None):
    """(tarfile in stream mode, ChunkStream, progress bar) over ``image.save()``."""
    bar = _progress(total, desc)
    try:
        chunks = image.save(chunk_size=1 << 20, named=False)
    except Exception as e:  # noqa: BLE001
        bar.close()
        raise EngineError(f"{where}: the engine at {engine_host()} would not export the image: {short_error(e)}") from e
    stream = ChunkStream(chunks, on_read=bar.update)
    try:
        tf = tarfile.open(fileobj=stream, mode="r|", bufsize=1 << 20)  # type: ignore[arg-type]
    except Exception as e:  # noqa: BLE001
        stream.close()
        bar.close()
        raise EngineError(f"{where}: the engine's export is not a readable tar stream: {short_error(e)}") from e
    return tf, stream, bar


def read_config_from_save(image, image_id: str, where: str) -> dict | None:
    """Find the image config in the ``image.save()`` stream (stop as soon as it passes).

    Works for both layouts: the legacy ``<hex>.json`` and Docker 25+'s
    ``blobs/sha256/<hex>``.  When the image id is a manifest digest (the
    containerd image store), the manifest names the config; small JSON files
    are kept (by digest) until it is known which one is the config.
    """
    total = (image.attrs or {}).get("Size")
    tf, stream, bar = save_stream(image, where, "reading image config from docker save", total if isinstance(total, int) else None)
    want = image_id
    small: dict[str, bytes] = {}
    try:
        for m in tf:
            if not m.isfile() or m.size > JSON_LIMIT:
                continue
            name = m.name.lstrip("./")
            base = posixpath.basename(name)
            if not (base.endswith(".json") or posixpath.dirname(name) == "blobs/sha256"):
                continue
            f = tf.extractfile(m)
            data = f.read() if f else b""
            digest = sha256_bytes(data)
            small[digest] = data
            while want in small:
                try:
                    doc = json.loads(small[want])
                except ValueError:
                    return None
                if isinstance(doc, dict) and isinstance(doc.get("config"), dict) and "rootfs" not in doc:
                    want = doc["config"].get("digest")  # a manifest: follow it to the config
                    continue
                return doc if isinstance(doc, dict) else None
    except (tarfile.TarError, EOFError, OSError) as e:
        raise EngineError(f"{where}: the export stream from {engine_host()} broke off: {short_error(e)}") from e
    finally:
        stream.close()
        bar.close()
    return None


class DaemonBlobs(BlobProvider):
    """BlobProvider over the engine's ``image.save()`` stream (uncompressed layer tars).

    Blobs are yielded in stream order as they pass; each ``fileobj`` is a
    :class:`VerifyingReader` that checks the layer's diff_id when read to EOF.

    Mapping stream entries to layer positions:

    * Docker 25+ (OCI layout inside the tar): a layer is ``blobs/sha256/<hex>``
      and, being uncompressed, its digest *is* its diff_id: the name gives the
      positions directly.
    * The legacy layout (Docker ≤ 24, e.g. Debian's 20.10): layers are
      ``<v1id>/layer.tar``, and ``manifest.json``, the only file that maps
      them to positions, comes *last* (the engine tars a directory in lexical
      order; hex names sort before ``manifest.json``).  We know the diff_ids
      (from inspect) but not which v1id is which.  Each ``<v1id>/json`` passes
      just before its ``layer.tar`` ("json" < "layer.tar"), and that is
      enough: (1) it names its ``parent``, so if the chain from this v1id down
      to the base is already known, its depth is its position; (2) otherwise
      the v1id itself says which layer it is: the engine computes it as the
      sha256 of that same JSON (without ``id`` and ``os``, which it sets
      afterwards; moby ``image/tarexport/save.go``, ``image/v1.CreateID``)
      plus ``layer_id`` = the layer's chain id and ``parent`` as a digest,
      serialised by Go's ``encoding/json`` (map keys sorted).  We redo that for
      each of the image's chain ids: a hash equal to the v1id identifies the
      layer with certainty, before its first byte passes.  Only if neither
      works (a JSON our re-serialisation cannot reproduce byte for byte) is
      this one layer spooled (memory up to 32 MB, then a temp file) while
      hashing it: its sha256 is its diff_id.  So the blobs stream as they
      pass; at worst one layer is held at a time, never the whole image.
    * A ``layer.tar`` that is a symlink (the engine's dedup of a repeated
      diff_id) is skipped: the blob it points to is yielded once with every
      position that uses it.
    """

    def __init__(self, image, diff_ids: list[str], where: str):
        self._image = image
        self._diff_ids = list(diff_ids)
        self._where = where
        self._chain_ids = [c for c in chain_ids(self._diff_ids) if c is not None]
        self.spooled = 0  # layers that had to be spooled in the last iteration (for tests/diagnostics)

    def __repr__(self) -> str:
        return f"<DaemonBlobs {self._where}: {len(self._diff_ids)} layers>"

    def _positions_of(self, diff_id: str) -> list[int]:
        return [i for i, d in enumerate(self._diff_ids) if d == diff_id]

    def iter_blobs(self, positions: Iterable[int] | None = None) -> Iterator[tuple[list[int], str | None, BinaryIO]]:
        wanted_pos = set(range(len(self._diff_ids))) if positions is None else set(positions)
        bad = [p for p in wanted_pos if not 0 <= p < len(self._diff_ids)]
        if bad:
            raise IndexError(f"{self._where}: no layer at positions {sorted(bad)} (it has {len(self._diff_ids)})")
        wanted = {self._diff_ids[p] for p in wanted_pos}
        if not wanted:
            return
        done: set[str] = set()
        parents: dict[str, str | None] = {}
        v1_json: dict[str, bytes] = {}
        total = (self._image.attrs or {}).get("Size")
        tf, stream, bar = save_stream(self._image, self._where, "streaming layers from docker save",
                                       total if isinstance(total, int) else None)
        self.spooled = 0
        try:
            for m in tf:
                name = posixpath.normpath(m.name)
                while name.startswith("./"):
                    name = name[2:]
                parts = name.split("/")
                if len(parts) == 2 and parts[1] == "json" and HEX64.match(parts[0]) and m.isfile():
                    if m.size <= JSON_LIMIT:
                        f = tf.extractfile(m)
                        raw_json = f.read() if f else b""
                        v1_json[parts[0]] = raw_json
                        try:
                            doc = json.loads(raw_json)
                        except ValueError:
                            doc = {}
                        parent = doc.get("parent") if isinstance(doc, dict) else None
                        parents[parts[0]] = parent if isinstance(parent, str) and parent else None
                    continue
                diff_id: str | None = None
                spool = None
                if len(parts) == 3 and parts[:2] == ["blobs", "sha256"] and HEX64.match(parts[2]) and m.isfile():
                    candidate = "sha256:" + parts[2]
                    if candidate not in self._diff_ids:
                        continue  # a config, manifest or index blob
                    diff_id = candidate
                elif len(parts) == 2 and parts[1] == "layer.tar" and HEX64.match(parts[0]):
                    if not m.isfile():
                        continue  # symlink/hardlink: a repeated diff_id, yielded with its first copy
                    depth = _depth(parts[0], parents)
                    if depth is None and parts[0] in v1_json:
                        depth = v1_position(parts[0], v1_json[parts[0]], self._chain_ids)
                    if depth is not None and depth < len(self._diff_ids):
                        diff_id = self._diff_ids[depth]
                    elif wanted - done:
                        spool, diff_id = self._spool(tf, m)
                    else:
                        continue
                else:
                    continue
                if diff_id in done or diff_id not in wanted:
                    if spool is not None:
                        spool.close()
                    continue
                if spool is not None:
                    reader = spool
                else:
                    raw = tf.extractfile(m)
                    if raw is None:
                        continue
                    reader = VerifyingReader(raw, diff_id, f"{self._where}: layer {diff_id}", length=m.size)
                done.add(diff_id)
                try:
                    yield self._positions_of(diff_id), UNCOMPRESSED, reader  # type: ignore[misc]
                finally:
                    if spool is not None:
                        spool.close()
                if not (wanted - done):
                    break  # everything asked for has passed: stop the export
        except (tarfile.TarError, EOFError) as e:
            raise EngineError(f"{self._where}: the export stream from {engine_host()} is not a valid tar: {short_error(e)}") from e
        except OSError as e:
            raise EngineError(f"{self._where}: the export stream from {engine_host()} broke off: {short_error(e)}") from e
        finally:
            stream.close()
            bar.close()
        missing = wanted - done
        if missing:
            raise FormatError(
                f"{self._where}: the engine's export held no layer for diff_ids {sorted(missing)}; "
                "the image changed while it was read, or the engine exported another image"
            )

    def _spool(self, tf: tarfile.TarFile, m: tarfile.TarInfo):
        """Copy one layer out of the stream (memory, then a temp file), hashing it."""
        src = tf.extractfile(m)
        spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY, prefix="layerlab-layer-")
        h = hashlib.sha256()
        try:
            while True:
                chunk = src.read(1 << 20) if src else b""
                if not chunk:
                    break
                h.update(chunk)
                spool.write(chunk)
        except (tarfile.TarError, EOFError, OSError) as e:
            spool.close()
            raise EngineError(f"{self._where}: the export stream from {engine_host()} broke off in {m.name}: {short_error(e)}") from e
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        self.spooled += 1
        diff_id = "sha256:" + h.hexdigest()
        if diff_id not in self._diff_ids:
            spool.close()
            raise DigestMismatchError(
                f"{self._where}: {m.name} in the engine's export hashes to {diff_id}, which is none of the "
                "image's diff_ids; the image changed while it was read — try again"
            )
        return spool, diff_id


def _go_json(value: Any) -> str:
    """``value`` as Go's encoding/json writes it (compact, UTF-8, HTML-safe escapes).

    Hand-written because no library reproduces Go's output; it only has to
    be right for the v1 layer JSON the engine writes, and every use is
    checked by a sha256 comparison, so a difference costs a spool, not a
    wrong answer."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
    # (Go also writes \b and \f as \u0008 / \u000c; such bytes in a command are rare
    # enough to leave to the spool fallback rather than risk mangling an escaped backslash.)


def v1_position(v1id: str, raw_json: bytes, chains: list[str]) -> int | None:
    """The layer position a legacy ``docker save`` v1 id stands for, by recomputing the id.

    moby ``v1.CreateID``: sha256 of the v1 JSON without ``id`` (and without
    ``os``, set after the id was made) with ``layer_id`` = the chain id and
    ``parent`` = the parent's v1 id as a digest; Go marshals that map with
    sorted keys.  The top layer keeps its ``os`` (its JSON is the image's
    own), so both variants are tried.  None when nothing matches.
    """
    try:
        doc = json.loads(raw_json)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    doc.pop("id", None)
    if isinstance(doc.get("parent"), str) and doc["parent"]:
        doc["parent"] = "sha256:" + doc["parent"].split(":", 1)[-1]
    variants = [doc]
    if "os" in doc:
        variants.insert(0, {k: v for k, v in doc.items() if k != "os"})
    for variant in variants:
        for pos, chain in enumerate(chains):
            d = dict(variant, layer_id=chain)
            body = "{" + ",".join(_go_json(k) + ":" + _go_json(d[k]) for k in sorted(d)) + "}"
            if hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest() == v1id:
                return pos
    return None


def _depth(v1id: str, parents: dict[str, str | None]) -> int | None:
    """Position of a legacy v1 layer id: the length of its known parent chain, or None if a link is unknown."""
    depth = 0
    cur = v1id
    seen = set()
    while True:
        if cur not in parents or cur in seen:
            return None
        seen.add(cur)
        parent = parents[cur]
        if parent is None:
            return depth
        depth += 1
        cur = parent
