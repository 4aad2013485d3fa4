"""``docker-daemon:REF`` — an image in a Docker Engine, read through the docker SDK.

>>> img = layerlab.load("docker-daemon:python:3.12-slim")

What the engine tells us and how we use it:

* ``images.get(ref).attrs`` (``docker image inspect``): ``RootFS.Layers``
  (the diff_ids), ``Id`` (config digest), ``RepoTags``, ``RepoDigests``,
  ``Os``/``Architecture``/``Variant``, ``Created``, ``Size``.
* ``image.history()`` (``docker history``): one entry per history step of the
  image config, newest first.  Its ``Size`` is exact: the engine looks up the
  layer a step made (by chain id) and reports that layer's ``DiffSize`` — the
  same number ``docker history`` shows and the layerdb ``size`` file holds —
  and 0 for steps that made no layer (moby ``daemon/images/image_history.go``).
  What the API does *not* say is which steps made a layer (a layer-making step
  can have size 0: ``RUN rm /big`` writes only a whiteout, BuildKit's
  ``WORKDIR`` an empty dir).  So each layer's size is exact once the steps are
  paired with layers.

Pairing (recorded per history row, ``HistoryStep.pairing``):

``exact_history="auto"`` (default)
    Use the image config itself when it can be read cheaply: a local engine's
    image store keeps it at ``<DockerRootDir>/image/<driver>/imagedb/content/
    sha256/<id>`` (readable when we run as root on the engine's host).  The
    file is accepted only if it hashes to the image id, so a stale or foreign
    file is never trusted.  Its ``history[].empty_layer`` flags give the exact
    pairing (``empty_layer``) — Docker's and dive's rule.  Otherwise fall back
    to the evidence pairing of :mod:`layerlab.sources._pairing` (a size > 0
    decides, then the instruction kind, then the layer count settles the rest:
    methods ``size``/``alignment``/``empty``).  Steps that leaves ambiguous are
    settled, where the engine still has them, by the per-step images the
    legacy builder leaves (``layer_id``: :func:`pair_by_step_images`); the
    rest stay ``unpaired`` and flagged, never guessed.
``exact_history=True``
    As "auto", but when the store is not readable, stream ``image.save()``
    until the config file passes by (the engine exports the whole image to do
    that, so it costs as much as a ``docker save``; a progress bar shows it).
``exact_history=False``
    The engine's API only (evidence pairing).

Layer contents (:class:`DaemonBlobs`, the BlobProvider): ``image.save()``
streamed through ``tarfile`` in stream mode (``r|``), blobs yielded as they
pass — nothing of the whole image is copied to disk.  See that class for how
the legacy ``docker save`` layout is mapped to layer positions while streaming.
"""
from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import tarfile
import tempfile
from datetime import datetime, timezone
from typing import Any, BinaryIO, Iterable, Iterator

from ..errors import DigestMismatchError, EngineError, FormatError
from ..model import (
    BlobProvider,
    PAIRING_EMPTY,
    PAIRING_LAYER_ID,
    PAIRING_UNPAIRED,
    HistoryStep,
    Image,
    Layer,
    chain_ids,
    pair_by_empty_layer,
)
from ._blobs import parse_time
from ._pairing import pair_by_evidence
from ._stream import ChunkStream, VerifyingReader

DEFAULT_HOST = "unix:///var/run/docker.sock"
UNCOMPRESSED = "application/vnd.docker.image.rootfs.diff.tar"
_HEX = re.compile(r"^[0-9a-f]{64}$")
_SPOOL_IN_MEMORY = 32 << 20
_JSON_LIMIT = 16 << 20


def engine_host() -> str:
    """The engine address the docker SDK will use (``DOCKER_HOST`` or the default socket).

    The SDK does not read docker CLI contexts (``docker context use``): for
    another engine, set ``DOCKER_HOST`` (and ``DOCKER_TLS_VERIFY``/``DOCKER_CERT_PATH``)."""
    return os.environ.get("DOCKER_HOST") or DEFAULT_HOST


def _how_to_start(host: str) -> str:
    if host.startswith("unix://") or host.startswith("npipe://"):
        return ("start the engine (`sudo systemctl start docker`, or run `dockerd`), or point DOCKER_HOST "
                "at a running one (e.g. DOCKER_HOST=unix:///run/user/1000/docker.sock for rootless Docker)")
    return "check that an engine listens there (`docker -H " + host + " info`), or unset DOCKER_HOST"


def client(timeout: int = 120):
    """A docker SDK client from the environment; :class:`EngineError` when no engine answers."""
    host = engine_host()
    try:
        import docker
        from docker.errors import DockerException
    except ImportError as e:  # pragma: no cover - docker is a core dependency
        raise EngineError("the docker SDK is not installed: pip install docker") from e
    try:
        c = docker.from_env(timeout=timeout)
        c.ping()
    except (DockerException, OSError) as e:
        raise EngineError(
            f"no Docker Engine answers at {host} (tried via {'DOCKER_HOST' if os.environ.get('DOCKER_HOST') else 'the default socket'}): "
            f"{_short(e)}; {_how_to_start(host)}"
        ) from e
    except Exception as e:  # noqa: BLE001 - requests/urllib3 raise many kinds for a dead socket
        raise EngineError(f"no Docker Engine answers at {host}: {_short(e)}; {_how_to_start(host)}") from e
    return c


def _short(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text if len(text) < 300 else text[:300] + "…"


def _get_image(c, ref: str):
    from docker.errors import APIError, DockerException, ImageNotFound, NotFound

    try:
        return c.images.get(ref)
    except (ImageNotFound, NotFound) as e:
        raise EngineError(
            f"docker-daemon:{ref}: the engine at {engine_host()} has no image {ref!r}; "
            f"fetch it with `docker pull {ref}` or list what is there with `docker images`"
        ) from e
    except APIError as e:
        raise EngineError(f"docker-daemon:{ref}: the engine at {engine_host()} refused: {_short(e)}") from e
    except (DockerException, OSError) as e:
        raise EngineError(f"docker-daemon:{ref}: lost the engine at {engine_host()}: {_short(e)}") from e


def load(ref: str, transport: str = "docker-daemon", *, exact_history: bool | str = "auto",
         platform: str | None = None, docker_client=None, **_options) -> Image:
    """Read image ``ref`` (name, name:tag, name@digest or id) from the engine."""
    if exact_history not in ("auto", True, False):
        raise ValueError(f"exact_history must be 'auto', True or False, not {exact_history!r}")
    ref = ref.strip()
    if not ref:
        raise EngineError("docker-daemon: no image named; write e.g. 'docker-daemon:busybox:latest'")
    c = docker_client or client()
    image = _get_image(c, ref)
    attrs = image.attrs or {}
    where = f"docker-daemon:{ref}"
    image_id = attrs.get("Id") or image.id
    diff_ids = _diff_ids(attrs, where)

    try:
        api_history = list(reversed(image.history() or []))  # oldest first, like the config
    except Exception as e:  # noqa: BLE001 - APIError / connection trouble
        raise EngineError(f"{where}: the engine at {engine_host()} did not give the image's history: {_short(e)}") from e

    config = None
    if exact_history in ("auto", True):
        config = read_config_from_store(c, image_id)
        if config is None and exact_history is True:
            config = read_config_from_save(image, image_id, where)

    if config is not None:
        steps = _steps_from_config(config, api_history, len(diff_ids), where)
    else:
        steps = _steps_from_api(api_history)
        pair_by_evidence(steps, len(diff_ids))
        if any(s.pairing == "unpaired" for s in steps):
            pair_by_step_images(c, steps, len(diff_ids))

    sizes: dict[int, int] = {}
    for s in steps:
        if s.layer_position is not None and s.size is not None:
            sizes[s.layer_position] = s.size
    layers = [
        Layer(position=i, diff_id=d, digest=None, media_type=None, size=sizes.get(i), compressed_size=None)
        for i, d in enumerate(diff_ids)
    ]
    warnings: list[str] = []
    missing = [l.position for l in layers if l.size is None]
    if missing:
        # No history step claims these layers (images written without history, or an
        # ambiguous one): ask the engine's layer store for the same DiffSize, when local.
        from_store = layer_sizes_from_store(c, chain_ids(diff_ids))
        for pos in missing:
            if from_store.get(pos) is not None:
                layers[pos].size = from_store[pos]
        still = [l.position for l in layers if l.size is None]
        if still:
            warnings.append(
                f"layers {still} have no size: no history step of the engine's claims them and the engine's "
                "layer store is not readable here"
            )

    plat = _platform(attrs)
    if platform and plat and not _same_platform(platform, plat):
        raise EngineError(
            f"{where}: the engine holds this image for {plat}, not {platform}; "
            f"pull that platform (`docker pull --platform {platform} {ref}`) or drop platform="
        )
    if config is None:
        unpaired = [s.index for s in steps if s.pairing == "unpaired"]
        if unpaired:
            warnings.append(
                f"history steps {unpaired} could not be paired with layers from the engine's API alone; "
                "load with exact_history=True to read the image config"
            )
    repo_digests = [d for d in attrs.get("RepoDigests") or [] if isinstance(d, str)]
    img = Image(
        reference=ref,
        source="docker-daemon",
        layer_list=layers,
        history_list=steps,
        id=image_id,
        manifest_digest=_manifest_digest(ref, repo_digests),
        repo_tags=[t for t in attrs.get("RepoTags") or [] if isinstance(t, str)],
        repo_digests=repo_digests,
        platform=plat,
        created=_parse_time(attrs.get("Created")),
        config=config,
        reported_size=attrs.get("Size") if isinstance(attrs.get("Size"), int) else None,
        location=f"docker-daemon:{ref} @ {engine_host()}",
        warnings=warnings,
    )
    img.blobs = DaemonBlobs(image, diff_ids, where)
    return img


# ---------------------------------------------------------------------------
# attrs -> model
# ---------------------------------------------------------------------------
def _diff_ids(attrs: dict, where: str) -> list[str]:
    rootfs = attrs.get("RootFS") or {}
    layers = rootfs.get("Layers") or []
    if not isinstance(layers, list) or not all(isinstance(d, str) and d.startswith("sha256:") for d in layers):
        raise FormatError(f"{where}: the engine's RootFS.Layers is not a list of sha256 digests: {layers!r}")
    return list(layers)


def _platform(attrs: dict) -> str | None:
    os_, arch = attrs.get("Os"), attrs.get("Architecture")
    if not os_ or not arch:
        return None
    variant = attrs.get("Variant")
    return f"{os_}/{arch}" + (f"/{variant}" if variant else "")


def _same_platform(a: str, b: str) -> bool:
    pa, pb = a.strip("/").split("/"), b.strip("/").split("/")
    return pa[:2] == pb[:2] and (len(pa) < 3 or len(pb) < 3 or pa[2] == pb[2])


def _manifest_digest(ref: str, repo_digests: list[str]) -> str | None:
    """The registry manifest digest the engine recorded for this reference's repository."""
    if "@" in ref:
        return ref.rsplit("@", 1)[1]
    digests = {d.rsplit("@", 1)[1] for d in repo_digests if "@" in d}
    if len(digests) == 1:
        return digests.pop()
    repo = ref.rsplit(":", 1)[0] if ":" in ref.rsplit("/", 1)[-1] else ref
    for d in repo_digests:
        name, _, dig = d.rpartition("@")
        if name == repo or name.endswith("/" + repo):
            return dig
    return None


def _parse_time(value: Any) -> datetime | None:
    """The engine's times: Unix seconds (history API) or RFC 3339 (inspect)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=timezone.utc) if value > 0 else None
    return parse_time(value)


def _str(x: Any) -> str | None:
    return x if isinstance(x, str) else None


def _api_size(h: dict) -> int | None:
    size = h.get("Size")
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None


def _api_id(h: dict) -> str | None:
    i = h.get("Id")
    return i if isinstance(i, str) and i != "<missing>" else None


def _steps_from_api(api_history: list[dict]) -> list[HistoryStep]:
    return [
        HistoryStep(
            index=i,
            created_by=_str(h.get("CreatedBy")),
            created=_parse_time(h.get("Created")),
            comment=_str(h.get("Comment")) or None,
            empty_layer=None,  # the API does not say
            size=_api_size(h),
            id=_api_id(h),
        )
        for i, h in enumerate(api_history)
    ]


def _steps_from_config(config: dict, api_history: list[dict], n_layers: int, where: str) -> list[HistoryStep]:
    raw = config.get("history") or []
    if not isinstance(raw, list) or not all(isinstance(h, dict) for h in raw):
        raise FormatError(f"{where}: the image config's history is not a list of objects")
    steps = [
        HistoryStep(
            index=i,
            created_by=_str(h.get("created_by")),
            created=_parse_time(h.get("created")),
            author=_str(h.get("author")),
            comment=_str(h.get("comment")),
            empty_layer=bool(h.get("empty_layer", False)),
        )
        for i, h in enumerate(raw)
    ]
    pair_by_empty_layer(steps, n_layers)
    # The API walks the same config history (one entry per step), so sizes line up 1:1.
    if len(api_history) == len(steps):
        for s, h in zip(steps, api_history):
            s.size = _api_size(h)
            s.id = _api_id(h)
    return steps


def pair_by_step_images(c, steps: list[HistoryStep], n_layers: int) -> None:
    """Pair steps through the engine's per-step images (method ``layer_id``).

    The legacy builder leaves an image behind for every step, and the history
    API names it (``Id``; pulled steps say ``<missing>``).  Each such image has
    its own ``RootFS.Layers``: a step made a layer exactly when its image has
    more layers than the step below it, and that layer's position is its
    image's layer count - 1.  The step below the first named one is the named
    image's ``Parent`` when the engine still has it.  Steps this cannot decide
    keep the pairing they had.
    """
    counts: dict[int, int] = {}
    parents: dict[int, int] = {}
    for s in steps:
        if not s.id:
            continue
        try:
            attrs = c.api.inspect_image(s.id)
        except Exception:  # noqa: BLE001 - the step image may be gone: nothing to learn
            continue
        layers = (attrs.get("RootFS") or {}).get("Layers")
        if isinstance(layers, list):
            counts[s.index] = len(layers)
        parent = attrs.get("Parent")
        if parent:
            try:
                p_layers = (c.api.inspect_image(parent).get("RootFS") or {}).get("Layers")
                if isinstance(p_layers, list):
                    parents[s.index] = len(p_layers)
            except Exception:  # noqa: BLE001
                pass
    decided: dict[int, int | None] = {}
    for s in steps:
        if s.index not in counts:
            continue
        below = counts.get(s.index - 1, parents.get(s.index, 0 if s.index == 0 else None))
        if below is None:
            continue
        n = counts[s.index]
        if n == below + 1 and n <= n_layers:
            decided[s.index] = n - 1
        elif n == below:
            decided[s.index] = None
    if not decided:
        return
    taken = {p for p in decided.values() if p is not None}
    for s in steps:
        if s.index in decided:
            s.layer_position = decided[s.index]
            s.pairing = PAIRING_LAYER_ID if s.layer_position is not None else PAIRING_EMPTY
        elif s.layer_position in taken:  # an evidence guess now contradicted
            s.layer_position, s.pairing = None, PAIRING_UNPAIRED
    # steps below the first decided one: pair by evidence against the layers left below it
    first = min(decided)
    below_layers = counts[first] - (0 if decided[first] is None else 1)
    prefix = [s for s in steps if s.index < first]
    if prefix and all(s.pairing == PAIRING_UNPAIRED for s in prefix):
        pair_by_evidence(prefix, below_layers)


# ---------------------------------------------------------------------------
# the image config, read exactly
# ---------------------------------------------------------------------------
def read_config_from_store(c, image_id: str) -> dict | None:
    """The image config from a local engine's image store, or None.

    Only for a local ``unix://`` engine whose ``DockerRootDir`` we can read
    (root on the engine's host).  Accepted only when the file's sha256 equals
    the image id, which makes it the config by definition (an image id is the
    config's digest); anything else gives None and the caller falls back.
    """
    if not engine_host().startswith("unix://") or not isinstance(image_id, str):
        return None
    algo, _, hexpart = image_id.partition(":")
    if algo != "sha256" or not _HEX.match(hexpart):
        return None
    try:
        info = c.info()
        root, driver = info.get("DockerRootDir"), info.get("Driver")
    except Exception:  # noqa: BLE001 - no info, no shortcut
        return None
    if not root or not driver or "/" in driver:
        return None
    path = os.path.join(root, "image", driver, "imagedb", "content", "sha256", hexpart)
    try:
        with open(path, "rb") as f:
            data = f.read(_JSON_LIMIT + 1)
    except OSError:
        return None
    if len(data) > _JSON_LIMIT or "sha256:" + hashlib.sha256(data).hexdigest() != image_id:
        return None
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def layer_sizes_from_store(c, chains: list[str | None]) -> dict[int, int]:
    """Layer sizes from a local engine's layerdb (``<root>/image/<driver>/layerdb/sha256/<chain>/size``).

    The same ``DiffSize`` the history API reports, kept by the engine per
    chain id.  A record is used only when the chain id recomputed from its
    ``diff`` file is its own name (so it is the layer asked for).  Empty when
    the store is not readable (not root, a remote engine)."""
    out: dict[int, int] = {}
    if not engine_host().startswith("unix://"):
        return out
    try:
        info = c.info()
        root, driver = info.get("DockerRootDir"), info.get("Driver")
    except Exception:  # noqa: BLE001
        return out
    if not root or not driver or "/" in driver:
        return out
    base = os.path.join(root, "image", driver, "layerdb", "sha256")
    prev: str | None = None
    for pos, chain in enumerate(chains):
        if chain is None or not _HEX.match(chain.split(":", 1)[-1]):
            break
        d = os.path.join(base, chain.split(":", 1)[1])
        try:
            with open(os.path.join(d, "diff")) as f:
                diff = f.read().strip()
            with open(os.path.join(d, "size")) as f:
                size = int(f.read().strip())
        except (OSError, ValueError):
            prev = chain
            continue
        expect = diff if prev is None else "sha256:" + hashlib.sha256(f"{prev} {diff}".encode()).hexdigest()
        if expect == chain and size >= 0:
            out[pos] = size
        prev = chain
    return out


def _progress(total: int | None, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc=desc, leave=False, disable=None)


def _save_stream(image, where: str, desc: str, total: int | None):
    """(tarfile in stream mode, ChunkStream, progress bar) over ``image.save()``."""
    bar = _progress(total, desc)
    try:
        chunks = image.save(chunk_size=1 << 20, named=False)
    except Exception as e:  # noqa: BLE001
        bar.close()
        raise EngineError(f"{where}: the engine at {engine_host()} would not export the image: {_short(e)}") from e
    stream = ChunkStream(chunks, on_read=bar.update)
    try:
        tf = tarfile.open(fileobj=stream, mode="r|", bufsize=1 << 20)  # type: ignore[arg-type]
    except Exception as e:  # noqa: BLE001
        stream.close()
        bar.close()
        raise EngineError(f"{where}: the engine's export is not a readable tar stream: {_short(e)}") from e
    return tf, stream, bar


def read_config_from_save(image, image_id: str, where: str) -> dict | None:
    """Find the image config in the ``image.save()`` stream (stop as soon as it passes).

    Works for both layouts: the legacy ``<hex>.json`` and Docker 25+'s
    ``blobs/sha256/<hex>``.  When the image id is a manifest digest (the
    containerd image store), the manifest names the config; small JSON files
    are kept (by digest) until it is known which one is the config.
    """
    total = (image.attrs or {}).get("Size")
    tf, stream, bar = _save_stream(image, where, "reading image config from docker save", total if isinstance(total, int) else None)
    want = image_id
    small: dict[str, bytes] = {}
    try:
        for m in tf:
            if not m.isfile() or m.size > _JSON_LIMIT:
                continue
            name = m.name.lstrip("./")
            base = posixpath.basename(name)
            if not (base.endswith(".json") or posixpath.dirname(name) == "blobs/sha256"):
                continue
            f = tf.extractfile(m)
            data = f.read() if f else b""
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
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
        raise EngineError(f"{where}: the export stream from {engine_host()} broke off: {_short(e)}") from e
    finally:
        stream.close()
        bar.close()
    return None


# ---------------------------------------------------------------------------
# layer contents
# ---------------------------------------------------------------------------
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
        tf, stream, bar = _save_stream(self._image, self._where, "streaming layers from docker save",
                                       total if isinstance(total, int) else None)
        self.spooled = 0
        try:
            for m in tf:
                name = posixpath.normpath(m.name)
                while name.startswith("./"):
                    name = name[2:]
                parts = name.split("/")
                if len(parts) == 2 and parts[1] == "json" and _HEX.match(parts[0]) and m.isfile():
                    if m.size <= _JSON_LIMIT:
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
                if len(parts) == 3 and parts[:2] == ["blobs", "sha256"] and _HEX.match(parts[2]) and m.isfile():
                    candidate = "sha256:" + parts[2]
                    if candidate not in self._diff_ids:
                        continue  # a config, manifest or index blob
                    diff_id = candidate
                elif len(parts) == 2 and parts[1] == "layer.tar" and _HEX.match(parts[0]):
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
            raise EngineError(f"{self._where}: the export stream from {engine_host()} is not a valid tar: {_short(e)}") from e
        except OSError as e:
            raise EngineError(f"{self._where}: the export stream from {engine_host()} broke off: {_short(e)}") from e
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
            raise EngineError(f"{self._where}: the export stream from {engine_host()} broke off in {m.name}: {_short(e)}") from e
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
