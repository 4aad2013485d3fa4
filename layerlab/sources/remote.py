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

Transport security, like skopeo's ``--tls-verify``: ``tls_verify=True``
(default) uses HTTPS with certificate checks; a path string is a CA bundle;
``tls_verify=False`` tries HTTPS without checks, then plain HTTP.  Loopback
registries (``localhost``, ``127.0.0.0/8``, ``::1``) are spoken to over plain
HTTP unless ``tls_verify`` is given explicitly — as Docker treats them as
insecure registries by default.

Authentication: anonymous, or ``auth=(user, password)``: HTTP Basic where the
registry asks for it, and the Bearer token flow (``WWW-Authenticate: Bearer
realm=…,service=…,scope=…``, the one Docker Hub, GHCR, Quay and Harbor use),
with the credentials sent to the token realm.  Not supported: credential
helpers and ``~/.docker/config.json``, client TLS certificates, schema 1
manifests, fetching foreign layers from their ``urls``.
"""
from __future__ import annotations

import ipaddress
import re
from typing import BinaryIO, Iterable, Iterator

from ..errors import DigestMismatchError, FormatError, SourceError
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
from ._stream import VerifyingReader, short_error

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
MANIFEST_ACCEPT = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST])
MANIFEST_LIMIT = 4 << 20
CONFIG_LIMIT = 32 << 20
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


def _is_loopback(host: str) -> bool:
    name = host
    if name.startswith("["):
        name = name[1:].split("]", 1)[0]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------------------
# the HTTP client
# ---------------------------------------------------------------------------
class RegistryClient:
    """Just enough of the Distribution v2 API for reading images."""

    def __init__(self, host: str, *, tls_verify: bool | str | None = None, auth: tuple[str, str] | None = None,
                 timeout: float = 30.0, session=None):
        import requests

        self.host = host
        self.session = session or requests.Session()
        self.session.headers.setdefault("User-Agent", "layerlab")
        self.auth = auth
        self.timeout = timeout
        self._tokens: dict[str, str] = {}
        if tls_verify is None and _is_loopback(host):
            self.schemes: list[tuple[str, bool | str]] = [("http", False)]
        elif tls_verify is False:
            self.schemes = [("https", False), ("http", False)]
        else:
            self.schemes = [("https", True if tls_verify is None else tls_verify)]
        self._scheme: tuple[str, bool | str] | None = None

    def url(self, path: str, scheme: str | None = None) -> str:
        return f"{scheme or (self._scheme or self.schemes[0])[0]}://{self.host}{path}"

    def get(self, path: str, *, headers: dict | None = None, stream: bool = False, scope: str | None = None,
            what: str = ""):
        """GET with scheme fallback and auth challenges; returns a response with a 2xx status."""
        import requests

        candidates = [self._scheme] if self._scheme else self.schemes
        last_error: Exception | None = None
        for scheme, verify in candidates:  # type: ignore[misc]
            try:
                resp = self._get_authed(f"{scheme}://{self.host}{path}", verify, headers or {}, stream, scope)
            except (requests.exceptions.SSLError, requests.exceptions.ConnectionError) as e:
                last_error = e
                continue
            except requests.exceptions.RequestException as e:
                raise SourceError(f"{what or self.url(path)}: request to {self.host} failed: {short_error(e)}") from e
            self._scheme = (scheme, verify)
            return resp
        hint = (" (for a registry speaking plain HTTP or with a self-signed certificate pass tls_verify=False, "
                "like skopeo's --tls-verify=false)" if not _is_loopback(self.host) else "")
        raise SourceError(
            f"{what or path}: cannot reach the registry at {self.host} "
            f"({', '.join(s for s, _ in candidates)}): {short_error(last_error)}; is it running?{hint}"
        ) from last_error

    def _get_authed(self, url: str, verify, headers: dict, stream: bool, scope: str | None):
        h = dict(headers)
        token = self._tokens.get(scope or "")
        if token:
            h["Authorization"] = f"Bearer {token}"
        resp = self.session.get(url, headers=h, stream=stream, timeout=self.timeout, verify=verify,
                                auth=self.auth if not token and self._basic else None)
        if resp.status_code != 401:
            return resp
        challenge = resp.headers.get("WWW-Authenticate", "")
        resp.close()
        kind, params = _parse_challenge(challenge)
        if kind == "bearer" and "realm" in params:
            token = self._fetch_token(params, scope, verify)
            self._tokens[scope or ""] = token
            h["Authorization"] = f"Bearer {token}"
            return self.session.get(url, headers=h, stream=stream, timeout=self.timeout, verify=verify)
        if kind == "basic" and self.auth:
            self._basic = True
            return self.session.get(url, headers=h, stream=stream, timeout=self.timeout, verify=verify, auth=self.auth)
        return _Unauthorized(url, challenge)

    _basic = False

    def _fetch_token(self, params: dict[str, str], scope: str | None, verify) -> str:
        import requests

        q = {}
        if "service" in params:
            q["service"] = params["service"]
        if params.get("scope") or scope:
            q["scope"] = params.get("scope") or scope
        try:
            r = self.session.get(params["realm"], params=q, auth=self.auth, timeout=self.timeout, verify=verify)
        except requests.exceptions.RequestException as e:
            raise SourceError(f"{self.host}: the token service {params['realm']} could not be reached: {short_error(e)}") from e
        if r.status_code in (401, 403):
            raise SourceError(
                f"{self.host}: the token service {params['realm']} refused "
                f"{'these credentials' if self.auth else 'anonymous access'} for {q.get('scope', 'this image')}; "
                "pass auth=(user, password) or check the repository name"
            )
        if r.status_code != 200:
            raise SourceError(f"{self.host}: the token service {params['realm']} answered HTTP {r.status_code}")
        try:
            doc = r.json()
        except ValueError as e:
            raise SourceError(f"{self.host}: the token service {params['realm']} did not answer JSON") from e
        token = (doc.get("token") or doc.get("access_token")) if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise SourceError(f"{self.host}: the token service {params['realm']} gave no token")
        return token


class _Unauthorized:
    """Stands in for a 401 response nobody could answer (no usable challenge or no credentials)."""

    status_code = 401

    def __init__(self, url: str, challenge: str):
        self.url = url
        self.headers = {"WWW-Authenticate": challenge}

    def close(self) -> None:
        pass


_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"|(\w+)=([^\s,]+)')


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    kind, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    for m in _CHALLENGE_PARAM.finditer(rest):
        if m.group(1):
            params[m.group(1).lower()] = m.group(2)
        else:
            params[m.group(3).lower()] = m.group(4)
    return kind.lower(), params


def _read_limited(resp, limit: int, what: str) -> bytes:
    data = bytearray()
    for chunk in resp.iter_content(1 << 16):
        data.extend(chunk)
        if len(data) > limit:
            resp.close()
            raise FormatError(f"{what}: larger than {limit} bytes; that is not a manifest or config")
    return bytes(data)


def _check_status(resp, what: str, ref: Reference, kind: str) -> None:
    code = resp.status_code
    if 200 <= code < 300:
        return
    body = ""
    try:
        body = resp.text[:300] if hasattr(resp, "text") else ""
    except Exception:  # noqa: BLE001
        body = ""
    resp.close()
    if code == 404:
        if kind == "manifest":
            raise SourceError(
                f"{what}: the registry {ref.host} has no {ref.repository}:{ref.reference} (HTTP 404); "
                f"check the name and tag (`skopeo list-tags docker://{ref.host}/{ref.repository}`)"
            )
        raise FormatError(f"{what}: the registry {ref.host} is missing this blob (HTTP 404); the image is incomplete")
    if code in (401, 403):
        raise SourceError(
            f"{what}: the registry {ref.host} refused access (HTTP {code}); pass auth=(user, password) "
            "if the repository is private"
        )
    raise SourceError(f"{what}: the registry {ref.host} answered HTTP {code}: {body}")


# ---------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------
def _fetch_manifest(client: RegistryClient, ref: Reference, reference: str, where: str) -> tuple[dict, bytes, str, str]:
    """(document, raw bytes, digest, media type) of a manifest or index."""
    path = f"/v2/{ref.repository}/manifests/{reference}"
    scope = f"repository:{ref.repository}:pull"
    resp = client.get(path, headers={"Accept": MANIFEST_ACCEPT}, stream=True, scope=scope, what=where)
    _check_status(resp, where, ref, "manifest")
    try:
        raw = _read_limited(resp, MANIFEST_LIMIT, f"{where}: manifest")
    finally:
        resp.close()
    digest = sha256_bytes(raw)
    if reference.startswith("sha256:") and digest != reference:
        raise DigestMismatchError(
            f"{where}: the manifest served for {reference} hashes to {digest}; the registry served other "
            "content than asked for"
        )
    header = resp.headers.get("Docker-Content-Digest")
    if header and header.startswith("sha256:") and header != digest:
        raise DigestMismatchError(
            f"{where}: the manifest hashes to {digest} but the registry says Docker-Content-Digest {header}"
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


def _fetch_config(client: RegistryClient, ref: Reference, desc: dict, where: str) -> tuple[dict, str]:
    digest = check_digest(desc.get("digest"), f"{where}: config descriptor")
    size = desc.get("size")
    resp = client.get(f"/v2/{ref.repository}/blobs/{digest}", stream=True, scope=f"repository:{ref.repository}:pull",
                      what=where)
    _check_status(resp, f"{where}: config {digest}", ref, "blob")
    try:
        raw = _read_limited(resp, CONFIG_LIMIT, f"{where}: config {digest}")
    finally:
        resp.close()
    verify_digest(raw, digest, f"{where}: config blob")
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


def _images(ref_text: str, platform: str | None, tls_verify, auth, timeout, session) -> list[Image]:
    ref = Reference(ref_text)
    where = f"docker://{ref_text}"
    client = RegistryClient(ref.api_host, tls_verify=tls_verify, auth=auth, timeout=timeout, session=session)
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
            raise FormatError(f"{where}: media type {media_type!r} is not an image manifest or index")
        picks = [(doc, digest, media_type, None)]

    out = []
    for m_doc, m_digest, m_type, desc in picks:
        label = where if len(picks) == 1 else f"{where} ({descriptor_platform(desc) if desc else m_digest})"
        config_desc = m_doc.get("config")
        if not isinstance(config_desc, dict):
            raise FormatError(f"{label}: the manifest has no config descriptor")
        config, config_digest = _fetch_config(client, ref, config_desc, label)
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


def load(ref: str, transport: str = "docker", *, platform: str | None = None, tls_verify: bool | str | None = None,
         insecure: bool | None = None, auth: tuple[str, str] | None = None, timeout: float = 30.0, session=None,
         **_options) -> Image:
    """One image (one platform) from a registry.  ``insecure=True`` is ``tls_verify=False``."""
    if platform == "all":
        raise SourceError(f"docker://{ref}: platform='all' gives several images; use layerlab.load_many()")
    if insecure:
        tls_verify = False
    return _images(ref, platform, tls_verify, auth, timeout, session)[0]


def load_many(ref: str, transport: str = "docker", *, platform: str | None = None, tls_verify: bool | str | None = None,
              insecure: bool | None = None, auth: tuple[str, str] | None = None, timeout: float = 30.0, session=None,
              **_options) -> list[Image]:
    """Like :func:`load`; ``platform="all"`` returns every platform of an index."""
    if insecure:
        tls_verify = False
    return _images(ref, platform, tls_verify, auth, timeout, session)


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
                resp = self._client.get(f"/v2/{self._ref.repository}/blobs/{digest}", stream=True,
                                        scope=f"repository:{self._ref.repository}:pull", what=what)
                _check_status(resp, what, self._ref, "blob")
                try:
                    resp.raw.decode_content = False
                    reader = VerifyingReader(resp.raw, digest, what, length=size)
                    yield sorted(poss), mt, reader  # type: ignore[misc]
                finally:
                    resp.close()
                bar.update(size or 0)
        finally:
            bar.close()
