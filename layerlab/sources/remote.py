"""``docker://[HOST[:PORT]/]REPO[:TAG|@DIGEST]`` — an image in a registry (Distribution API v2).

>>> img = layerlab.load("docker://127.0.0.1:5000/app:1.0", platform="linux/arm64")

A small registry client (``requests``, which the docker SDK already depends
on).  Written here rather than taken from a library because the Python
registry clients on PyPI are unmaintained or pull in much more than these
four requests:

1. ``GET /v2/<name>/manifests/<ref>`` asking for OCI index/manifest and Docker
   schema 2 list/manifest.  The body's sha256 is the manifest digest; it must
   equal the digest asked for (``@sha256:…``) and the registry's
   ``Docker-Content-Digest`` header when sent.
2. An index (OCI index / Docker manifest list) → one platform: ``platform=``
   ``"os/arch[/variant]"``, by default the host's (``linux/amd64`` here).
   Attestation entries (``unknown/unknown``) are never chosen; platforms
   match by the rule every source shares (:mod:`layerlab.sources._platform`).
   ``load_many(..., platform="all")`` returns every platform.
3. ``GET /v2/<name>/blobs/<config digest>``: verified against the digest and
   the descriptor's size before it is parsed.
4. Layer blobs, only when contents are asked for (``img.blobs``, a
   BlobProvider): streamed, never stored; each is checked against its digest
   and size as it reaches EOF.

Frames: ``digest``, ``compressed_size`` and ``media_type`` come from the
manifest's layer descriptors, ``diff_id`` from the config.  ``size`` (Docker's
uncompressed size) is null: a registry does not state it and it is not
guessed; the layer-contents analysis fills it by reading the blobs.
``manifest_digest`` is the digest of the chosen platform's manifest (the one
that lists these layers); when the reference named an index, its digest is
kept in ``repo_digests`` (``docker pull`` records that one).

Transport security, credentials, retries and time limits are the client's
(:mod:`layerlab.sources._registry`): ``tls_verify``/``insecure``, Docker's
``certs.d`` (``certs_dir=``), ``auth=(user, password)`` or the docker config
and its credential helpers (``docker_config=``), ``retries=``, ``timeout=``
(per read) and ``deadline=`` (per whole request).  Credentials never appear in
a message, a repr or a log.

Listing, with :func:`load_many`:

* ``docker://HOST/REPO`` (no tag, no digest): every tag of the repository
  (``GET /v2/REPO/tags/list``, following ``Link: <…>; rel="next"`` pages of
  ``page_size`` entries), those matching ``tags=`` (a regular expression the
  whole tag must match) when given;
* ``docker://HOST/``: every repository of the registry's catalog
  (``GET /v2/_catalog``, paginated the same way), then each one's tags.

An artifact that is not an image (a Helm chart, a signature) met while
listing is skipped with a warning naming it; naming it directly is an error.
:func:`load` of a reference without a tag reads ``:latest``.

Not supported: schema 1 manifests, fetching foreign layers from their ``urls``.
"""
from __future__ import annotations

import re
import warnings
from typing import BinaryIO, Iterable, Iterator
from urllib.parse import urljoin, urlsplit

from ..errors import DigestMismatchError, FormatError, LayerlabError, SourceError
from ..model import BlobProvider, Image, Layer
from ._config import config_diff_ids, history_from_config, parse_time
from ._digest import as_object, check_digest, parse_json, sha256_bytes, verify_digest
from ._media import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST_V1,
    DOCKER_MANIFEST_V1_SIGNED,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    layer_compression,
)
from ._platform import choose, descriptor_platform, host_platform, is_attestation, matches, platform_of
from ._http import DeadlineRaw, error_body, read_capped
from ._registry import BLOB_FLOOR_RATE, RegistryClient
from ._stream import VerifyingReader

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
MANIFEST_ACCEPT = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST])
MANIFEST_LIMIT = 4 << 20
CONFIG_LIMIT = 32 << 20
LIST_LIMIT = 16 << 20      # one page of a tag list or catalog
MAX_PAGES = 10_000
_REPO = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


# ---------------------------------------------------------------------------
# references
# ---------------------------------------------------------------------------
class Reference:
    """A parsed ``[HOST[:PORT]/]REPO[:TAG][@DIGEST]``."""

    def __init__(self, text: str):
        self.text = text
        ref = text.strip()
        if ref.startswith("//"):
            ref = ref[2:]
        if not ref:
            raise SourceError("docker://: no image named; write e.g. 'docker://127.0.0.1:5000/app:1.0'")
        digest = None
        if "@" in ref:
            ref, digest = ref.rsplit("@", 1)
            if not _DIGEST.match(digest):
                raise SourceError(f"docker://{text}: {digest!r} is not a sha256 digest ('sha256:' + 64 hex digits)")
        first, sep, rest = ref.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
            host, path = first, rest
        else:
            host, path = DOCKER_HUB, ref
        tag = None
        last = path.rsplit("/", 1)[-1]
        if ":" in last:
            path, tag = path.rsplit(":", 1)
            if not _TAG.match(tag):
                raise SourceError(f"docker://{text}: {tag!r} is not a valid tag")
        if host == DOCKER_HUB and "/" not in path:
            path = "library/" + path
        if not _REPO.match(path):
            raise SourceError(
                f"docker://{text}: {path!r} is not a valid repository name (lower-case letters, digits, "
                "'.', '_', '-' and '/')"
            )
        self.host = host
        self.repository = path
        self.tag = tag if tag or digest else "latest"
        self.digest = digest
        self.tag_given = bool(tag or digest)

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.host == DOCKER_HUB else self.host

    @property
    def reference(self) -> str:
        """What to ask the manifests endpoint for: the digest if given, else the tag."""
        return self.digest or self.tag  # type: ignore[return-value]

    def __str__(self) -> str:
        s = f"{self.host}/{self.repository}"
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s


# ---------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------
def _check_status(client: RegistryClient, resp, what: str, ref: Reference, kind: str) -> None:
    """Nothing for a 2xx answer; else a SourceError/FormatError naming the URL and the status."""
    code = resp.status_code
    if 200 <= code < 300:
        return
    body = error_body(resp, getattr(resp, "deadline", None))
    client.close(resp)
    at = f"{resp.url} answered HTTP {code}"
    if code == 404:
        if kind == "manifest":
            raise SourceError(
                f"{what}: {at}: the registry {ref.host} has no {ref.repository}:{ref.reference}; check the "
                f"name and tag (`layerlab.load_many('docker://{ref.host}/{ref.repository}')` lists the tags)"
            )
        if kind == "list":
            raise SourceError(f"{what}: {at}: the registry {ref.host} has no repository {ref.repository}")
        if kind == "catalog":
            raise SourceError(f"{what}: {at}: the registry {ref.host} offers no catalog; name a repository")
        raise FormatError(f"{what}: {at}: the registry {ref.host} is missing this blob; the image is incomplete")
    if code in (401, 403):
        raise SourceError(f"{what}: {at}: access refused; {client.refused_hint()}")
    tries = getattr(resp, "attempts", 1)
    raise SourceError(f"{what}: {at}" + (f" (after {tries} attempts)" if tries > 1 else "") + (f": {body}" if body else ""))


def _document(client: RegistryClient, path: str, ref: Reference, kind: str, limit: int, what: str,
              accept: str | None = None, soft: tuple[int, ...] = ()) -> tuple[bytes | None, object]:
    """(body, response) of a small document (manifest, config, tag list), read to at most ``limit``
    bytes; (None, response) for a status in ``soft``."""
    resp = client.get(path, headers={"Accept": accept} if accept else None, scope=f"repository:{ref.repository}:pull"
                      if kind != "catalog" else "registry:catalog:*", what=what)
    if resp.status_code in soft:
        client.close(resp)
        return None, resp
    _check_status(client, resp, what, ref, kind)
    try:
        raw = read_capped(resp, limit, what, resp.deadline, too_big="; that is not an image document")
    finally:
        client.close(resp)
    return raw, resp


def _fetch_manifest(client: RegistryClient, ref: Reference, reference: str, where: str) -> tuple[dict, bytes, str, str]:
    """(document, raw bytes, digest, media type) of a manifest or index."""
    raw, resp = _document(client, f"/v2/{ref.repository}/manifests/{reference}", ref, "manifest", MANIFEST_LIMIT,
                          where, accept=MANIFEST_ACCEPT)
    digest = sha256_bytes(raw)
    if reference.startswith("sha256:") and digest != reference:
        raise DigestMismatchError(
            f"{where}: the manifest served by {resp.url} hashes to {digest}; the registry served other "
            "content than asked for"
        )
    header = resp.headers.get("Docker-Content-Digest")
    if header and header.startswith("sha256:") and header != digest:
        raise DigestMismatchError(
            f"{where}: the manifest from {resp.url} hashes to {digest} but the registry says "
            f"Docker-Content-Digest {header}; it served other content than it names"
        )
    doc = parse_json(raw, f"{where}: manifest")
    doc = as_object(doc, where, "the manifest")
    ctype = (resp.headers.get("Content-Type") or "").split(";")[0].strip()
    media_type = doc.get("mediaType") if isinstance(doc.get("mediaType"), str) else ctype
    if media_type in (DOCKER_MANIFEST_V1, DOCKER_MANIFEST_V1_SIGNED) or doc.get("schemaVersion") == 1:
        raise FormatError(
            f"{where}: a Docker schema 1 manifest; layerlab reads schema 2 and OCI only "
            "(re-push the image with a current client, e.g. `skopeo copy`)"
        )
    if not media_type:
        media_type = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    return doc, raw, digest, media_type


def _fetch_config(client: RegistryClient, ref: Reference, desc: dict, where: str,
                  store=None) -> tuple[dict, str]:
    """The config blob ``desc`` names, verified against its digest; from ``store``
    (``get_config(digest) -> bytes | None``, ``put_config(digest, raw)``: a
    content-addressed store such as ``ll.scan``'s cache) when it holds bytes
    with that digest, else from the registry (then put there)."""
    digest = check_digest(desc.get("digest"), f"{where}: config descriptor")
    size = desc.get("size")
    raw = store.get_config(digest) if store is not None else None
    if raw is not None and (len(raw) > CONFIG_LIMIT or not _digest_ok(raw, digest)):
        raw = None  # a damaged or foreign copy: never trusted, fetched again
    if raw is None:
        raw, _resp = _document(client, f"/v2/{ref.repository}/blobs/{digest}", ref, "blob", CONFIG_LIMIT,
                               f"{where}: config {digest}")
        verify_digest(raw, digest, f"{where}: config blob")
        if store is not None:
            store.put_config(digest, raw)
    if isinstance(size, int) and size != len(raw):
        raise DigestMismatchError(f"{where}: config blob {digest} is {len(raw)} bytes but the manifest says {size}")
    doc = parse_json(raw, f"{where}: config {digest}")
    return as_object(doc, where, "the image config"), digest


def _select(index: dict, platform: str | None, where: str) -> list[dict]:
    descs = index.get("manifests")
    if not isinstance(descs, list) or not all(isinstance(d, dict) for d in descs):
        raise FormatError(f"{where}: the index's 'manifests' is not a list of descriptors")
    images = [d for d in descs if not is_attestation(descriptor_platform(d), d.get("annotations"))]
    if platform == "all":
        return images
    want = platform or host_platform()
    pick = choose([descriptor_platform(d) for d in images], want)
    if pick is None and len(images) == 1 and descriptor_platform(images[0]) is None:
        return images  # an index without platform fields: its only image
    if pick is None:
        have = sorted({descriptor_platform(d) or "?" for d in images})
        raise SourceError(
            f"{where}: no image for platform {want} in this index (it has {', '.join(have) or 'none'}); "
            "pass platform='os/arch[/variant]'"
        )
    return [images[pick]]


def _digest_ok(raw: bytes, digest: str) -> bool:
    try:
        verify_digest(raw, digest, "cached config")
    except LayerlabError:
        return False
    return True


def _images(ref_text: str, platform: str | None, client: RegistryClient, config_store=None) -> list[Image]:
    ref = Reference(ref_text)
    where = f"docker://{ref_text}"
    doc, _raw, digest, media_type = _fetch_manifest(client, ref, ref.reference, where)
    index_digest = None
    if media_type in INDEX_TYPES or ("manifests" in doc and "layers" not in doc):
        index_digest = digest
        picks = []
        for desc in _select(doc, platform, where):
            d = check_digest(desc.get("digest"), f"{where}: index entry")
            m_doc, m_raw, m_digest, m_type = _fetch_manifest(client, ref, d, f"{where} ({descriptor_platform(desc) or d})")
            if isinstance(desc.get("size"), int) and desc["size"] != len(m_raw):
                raise DigestMismatchError(f"{where}: manifest {d} is {len(m_raw)} bytes but the index says {desc['size']}")
            picks.append((m_doc, m_digest, m_type, desc))
    else:
        if media_type not in MANIFEST_TYPES and "layers" not in doc:
            raise FormatError(
                f"{where}: {client.url(f'/v2/{ref.repository}/manifests/{ref.reference}')} (HTTP 200) has media "
                f"type {media_type!r}, not an image manifest or index; this is not a container image"
            )
        picks = [(doc, digest, media_type, None)]

    out = []
    for m_doc, m_digest, m_type, desc in picks:
        label = where if len(picks) == 1 else f"{where} ({descriptor_platform(desc) if desc else m_digest})"
        config_desc = m_doc.get("config")
        if not isinstance(config_desc, dict):
            raise FormatError(f"{label}: the manifest has no config descriptor")
        config, config_digest = _fetch_config(client, ref, config_desc, label, config_store)
        diff_ids = config_diff_ids(config, f"{label}: config")
        descs = m_doc.get("layers")
        if not isinstance(descs, list) or not all(isinstance(d, dict) for d in descs):
            raise FormatError(f"{label}: the manifest's 'layers' is not a list of descriptors")
        if len(descs) != len(diff_ids):
            raise FormatError(
                f"{label}: the manifest lists {len(descs)} layers but the config's rootfs has "
                f"{len(diff_ids)} diff_ids; the image is inconsistent"
            )
        layers = []
        for i, (ld, diff_id) in enumerate(zip(descs, diff_ids)):
            mt = ld.get("mediaType")
            layer_compression(mt, f"{label}: layers[{i}]")
            size = ld.get("size")
            ann = ld.get("annotations") if isinstance(ld.get("annotations"), dict) else {}
            layers.append(Layer(
                position=i,
                diff_id=diff_id,
                digest=check_digest(ld.get("digest"), f"{label}: layers[{i}]"),
                media_type=mt,
                size=None,
                compressed_size=size if isinstance(size, int) and size >= 0 else None,
                annotations={str(k): str(v) for k, v in ann.items()},
            ))
        steps = history_from_config(config, len(layers), f"{label}: config")
        name = f"{ref.host}/{ref.repository}"
        repo_digests = [f"{name}@{index_digest or m_digest}"]
        if index_digest:
            repo_digests.append(f"{name}@{m_digest}")
        plat = platform_of(config)
        if index_digest is None and platform and platform != "all" and plat and not matches(plat, platform):
            raise SourceError(
                f"{label}: this is a single-platform image for {plat}, not {platform}; drop platform= "
                "or name a tag that has the platform you want"
            )
        reference = ref_text if len(picks) == 1 else f"{ref_text} ({plat or m_digest})"
        img = Image(
            reference=reference,
            source="docker",
            layer_list=layers,
            history_list=steps,
            id=config_digest,
            manifest_digest=m_digest,
            repo_tags=[f"{name}:{ref.tag}"] if ref.tag else [],
            repo_digests=repo_digests,
            platform=plat,
            created=parse_time(config.get("created")),
            config=config,
            location=client.url(f"/v2/{ref.repository}/manifests/{m_digest}"),
        )
        img.blobs = RemoteBlobs(client, ref, layers, label)
        out.append(img)
    return out


def _client(host: str, tls_verify, insecure, auth, timeout, session, retries, deadline, certs_dir,
            docker_config) -> RegistryClient:
    return RegistryClient(host, tls_verify=False if insecure else tls_verify, auth=auth, timeout=timeout,
                          session=session, retries=retries, deadline=deadline, certs_dir=certs_dir,
                          docker_config=docker_config)


def load(ref: str, transport: str = "docker", *, platform: str | None = None, tls_verify: bool | str | None = None,
         insecure: bool | None = None, auth: tuple[str, str] | None = None, timeout: float = 30.0, session=None,
         retries: int = 4, deadline: float | None = 300.0, certs_dir=None, docker_config=None,
         config_store=None, **_options) -> Image:
    """One image (one platform) from a registry.  ``insecure=True`` is ``tls_verify=False``.

    ``retries``: further attempts after a 429/502/503/504 or a connection
    failure; ``timeout``: seconds per connect and per read; ``deadline``:
    seconds for each whole request (a layer blob's grows by its size at
    16 KiB/s), None for none; ``certs_dir``: certs.d tree(s) (default the
    user's and /etc/docker, /etc/containers), False for none;
    ``docker_config``: the docker config directory or file (default
    ``$DOCKER_CONFIG`` or ~/.docker), False to read none; ``config_store``:
    where config blobs are kept by digest (``get_config``/``put_config``;
    ``ll.scan`` passes its cache), so a rescan asks the registry only for
    the manifests."""
    if platform == "all":
        raise SourceError(f"docker://{ref}: platform='all' gives several images; use layerlab.load_many()")
    if ref.strip().endswith("/") and "/" not in ref.strip().rstrip("/").lstrip("/"):
        raise SourceError(f"docker://{ref}: a registry, not an image; layerlab.load_many() walks its catalog")
    host = Reference(ref).api_host
    client = _client(host, tls_verify, insecure, auth, timeout, session, retries, deadline, certs_dir, docker_config)
    return _images(ref, platform, client, config_store)[0]


def load_many(ref: str, transport: str = "docker", *, platform: str | None = None, tls_verify: bool | str | None = None,
              insecure: bool | None = None, auth: tuple[str, str] | None = None, timeout: float = 30.0, session=None,
              retries: int = 4, deadline: float | None = 300.0, certs_dir=None, docker_config=None,
              tags: str | None = None, page_size: int = 1000, config_store=None, **_options) -> list[Image]:
    """Like :func:`load`; ``platform="all"`` returns every platform of an index.

    ``docker://HOST/REPO`` without a tag loads every tag (those matching the
    regular expression ``tags=``, whole tag), ``docker://HOST/`` every tag of
    every repository in the catalog; lists are read ``page_size`` entries a
    page (the registry may send fewer)."""
    opts = (tls_verify, insecure, auth, timeout, session, retries, deadline, certs_dir, docker_config)
    text = ref.strip()
    if text.startswith("//"):
        text = text[2:]
    if text.endswith("/") and "/" not in text[:-1]:
        host = text[:-1]
        if not host:
            raise SourceError("docker://: name a registry, e.g. 'docker://127.0.0.1:5000/'")
        client = _client(host, *opts)
        catalog = Reference(f"{host}/catalog")
        repos = _paginate(client, catalog, "/v2/_catalog", "repositories", "catalog", page_size, f"docker://{text}")
        return _listed(client, host, repos, tags, platform, page_size, f"docker://{text}", strict=False,
                       config_store=config_store)
    parsed = Reference(ref)
    client = _client(parsed.api_host, *opts)
    if parsed.tag_given:
        return _images(ref, platform, client, config_store)
    return _listed(client, parsed.host, [parsed.repository], tags, platform, page_size, f"docker://{ref}", strict=True,
                   config_store=config_store)


# ---------------------------------------------------------------------------
# listing: tags and the catalog
# ---------------------------------------------------------------------------
def _paginate(client: RegistryClient, ref: Reference, path: str, key: str, kind: str, page_size: int,
              where: str) -> list[str]:
    """Every entry of a paginated list (``Link: <next>; rel="next"``, same host only)."""
    if not isinstance(page_size, int) or page_size < 1:
        raise SourceError(f"{where}: page_size={page_size!r} is not a positive count")
    out: list[str] = []
    url_path = f"{path}?n={page_size}"
    seen = set()
    for page in range(MAX_PAGES):
        seen.add(url_path)
        raw, resp = _document(client, url_path, ref, kind, LIST_LIMIT, where, soft=(400,) if page == 0 else ())
        if raw is None:  # distribution refuses an n above its catalog.maxentries: let it choose the page size
            raw, resp = _document(client, path, ref, kind, LIST_LIMIT, where)
        doc = as_object(parse_json(raw, f"{where}: {resp.url}"), where, f"the {kind} page {resp.url}")
        entries = doc.get(key) or []
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise FormatError(f"{where}: {resp.url}: {key!r} is not a list of names")
        out.extend(entries)
        link = resp.links.get("next", {}).get("url") if hasattr(resp, "links") else None
        if not link or not entries:
            return out
        nxt = urlsplit(urljoin(resp.url, link))
        if nxt.netloc != client.host or not nxt.path.startswith("/v2/"):
            raise FormatError(f"{where}: {resp.url} points its next page at {link!r}, outside this registry")
        url_path = nxt.path + (f"?{nxt.query}" if nxt.query else "")
        if url_path in seen:
            raise FormatError(f"{where}: {resp.url} points its next page back at {link!r}; the list loops")
    raise FormatError(f"{where}: more than {MAX_PAGES} pages; the registry keeps paginating")


def _listed(client: RegistryClient, host: str, repos: list[str], tags: str | None, platform, page_size: int,
            where: str, *, strict: bool, config_store=None) -> list[Image]:
    from tqdm.auto import tqdm

    try:
        pattern = re.compile(tags) if tags is not None else None
    except (re.error, TypeError) as e:
        raise SourceError(f"{where}: tags={tags!r} is not a regular expression ({e})") from e
    refs = []
    for repo in repos:
        ref = Reference(f"{host}/{repo}")
        names = _paginate(client, ref, f"/v2/{ref.repository}/tags/list", "tags", "list", page_size, where)
        chosen = [t for t in names if pattern is None or pattern.fullmatch(t)]
        if strict and not chosen:
            have = ", ".join(sorted(names)[:20]) or "none"
            raise SourceError(f"{where}: no tag matches tags={tags!r} (the repository has: {have})")
        refs.extend(f"{host}/{repo}:{t}" for t in sorted(chosen) if _TAG.match(t))
    out: list[Image] = []
    skipped = []
    for r in tqdm(refs, desc=f"loading {where}", unit="image", leave=False, disable=None):
        try:
            out.extend(_images(r, platform, client, config_store))
        except DigestMismatchError:
            raise
        except FormatError as e:
            skipped.append(f"{r} ({e})")
    if skipped:
        warnings.warn(f"{where}: skipped {len(skipped)} tag(s) that are not readable images: "
                      + "; ".join(skipped[:10]), stacklevel=3)
    return out


# ---------------------------------------------------------------------------
# layer contents
# ---------------------------------------------------------------------------
class RemoteBlobs(BlobProvider):
    """BlobProvider: layer blobs streamed from the registry, checked against digest and size at EOF.

    Each blob is its own HTTP request, so several readers may fetch different
    layers at once (``independent_readers``: the layer-contents scan may use
    worker processes; the provider pickles with its session and tokens).
    """

    independent_readers = True

    def __init__(self, client: RegistryClient, ref: Reference, layers: list[Layer], where: str):
        self._client = client
        self._ref = ref
        self._layers = [(l.position, l.digest, l.media_type, l.compressed_size) for l in layers]
        self._where = where

    def __repr__(self) -> str:
        return f"<RemoteBlobs {self._where}: {len(self._layers)} layers>"

    def iter_blobs(self, positions: Iterable[int] | None = None) -> Iterator[tuple[list[int], str | None, BinaryIO]]:
        from tqdm.auto import tqdm

        wanted = None if positions is None else set(positions)
        groups: dict[str, tuple[list[int], str | None, int | None]] = {}
        for pos, digest, mt, size in self._layers:
            if wanted is not None and pos not in wanted:
                continue
            groups.setdefault(digest, ([], mt, size))[0].append(pos)  # type: ignore[index]
        total = sum(s for _p, _m, s in groups.values() if s) or None
        bar = tqdm(total=total, unit="B", unit_scale=True, desc=f"fetching {self._ref.repository}", leave=False,
                   disable=None)
        try:
            for digest, (poss, mt, size) in groups.items():
                what = f"{self._where}: layer {digest}"
                client = self._client
                extra = (size or 0) / BLOB_FLOOR_RATE
                resp = client.get(f"/v2/{self._ref.repository}/blobs/{digest}", what=what,
                                  scope=f"repository:{self._ref.repository}:pull",
                                  deadline=None if client.deadline is None else client.deadline + extra)
                _check_status(client, resp, what, self._ref, "blob")
                try:
                    resp.raw.decode_content = False
                    reader = VerifyingReader(DeadlineRaw(resp.raw, resp.deadline, what), digest, what, length=size)
                    yield sorted(poss), mt, reader  # type: ignore[misc]
                finally:
                    client.close(resp)
                bar.update(size or 0)
        finally:
            bar.close()
