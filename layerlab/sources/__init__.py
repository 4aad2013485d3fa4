"""Parse ``transport:reference`` strings and dispatch to one module per transport.

Transport names follow skopeo's: ``docker-daemon:``, ``docker-archive:``,
``oci:``, ``oci-archive:``, ``docker://``; plus layerlab's own
``history:``, ``manifest:``, ``repo-info:`` and ``snapshot:``.
A bare path or name is detected: a directory holding ``index.json`` is an OCI
layout, one holding ``repos/`` a repo-info tree, one holding ``images.parquet``
a snapshot; a tar with ``manifest.json`` a docker archive, a tar with only
``index.json`` an OCI archive; ``*.jsonl`` / ``*.txt`` saved history; anything
else is taken as a daemon reference.

One module per transport (``archive``, ``oci``, ``remote``, ``daemon``,
``manifest``, ``history_text``, ``repo_info``, ``snapshot``); what several of
them need is written once, in a private module:

``_refs``      ``PATH[:REF]`` and tag spelling (docker-archive, oci); Docker's reference grammar
``_media``     media types, what a layer's says about its compression, a file blob's wire size
``_digest``    digests and the small JSON documents they name
``_store``     tar / directory stores read in place; ``StoreBlobs``
``_sizing``    Docker's layer sizes at load time, from the tar headers
``_config``    image config → diff_ids, history steps, times
``_index``     OCI index walking
``_platform``  platform normalisation and matching; attestation manifests
``_pairing``   history steps ↔ layers when no config says it
``_stream``    stream adapters of the network sources
``_registry``  the registry HTTP client (``docker://``): schemes, auth, retries
``_http``      request deadlines, Retry-After and backoff, capped bodies
``_auth``      credentials from the docker config and ``docker-credential-*`` helpers
``_tls``       Docker's ``certs.d`` CA and client-certificate layout
``_engine``, ``_export``  the Docker Engine and its ``docker save`` stream (``daemon``)

A new transport: a module with ``load(ref, transport=..., **options)`` (and
``load_many`` when one reference can hold several images) returning
:class:`~layerlab.model.Image`, listed in :data:`TRANSPORTS`; its blob
provider subclasses :class:`~layerlab.model.BlobProvider`.
"""
from __future__ import annotations

import difflib
import importlib
import os
import re
import tarfile
from pathlib import Path
from typing import Callable

from ..errors import SourceError
from ..model import Fleet, Image

# transport -> (module, function) ; each loader takes (reference, **options)
# and returns an Image (load) or an iterable of Images (load_many).
TRANSPORTS: dict[str, str] = {
    "docker-daemon": "daemon",
    "docker-archive": "archive",
    "oci": "oci",
    "oci-archive": "oci",
    "docker": "remote",
    "history": "history_text",
    "manifest": "manifest",
    "repo-info": "repo_info",
    "snapshot": "snapshot",
}


def split_source(source: str) -> tuple[str, str]:
    """Return (transport, reference); detect the transport of a bare reference."""
    if not isinstance(source, (str, os.PathLike)):
        raise SourceError(f"source {source!r} is not a string or path; pass e.g. 'docker-archive:app.tar'")
    source = os.fspath(source)
    if source.startswith("docker://"):
        return "docker", source[len("docker://"):]
    head, sep, rest = source.partition(":")
    if sep and head in TRANSPORTS and head != "docker":
        return head, rest
    if sep and head == "docker" and not _TAG.match(rest):
        # "docker:24-dind" is Docker Hub's image; "docker:HOST/REPO:TAG" (no //, as skopeo also
        # takes it) is the registry transport: no image reference has a "/" in its tag
        return "docker", rest
    if sep and not os.path.exists(source):
        _refuse_unknown_transport(source, head, rest)
    return detect(source), source


TRANSPORT_NAMES = [t if t != "docker" else "docker://" for t in TRANSPORTS]
_TAG = re.compile(r"^[\w][\w.-]{0,127}(?:@sha256:[0-9a-f]{64})?$")
_HOST_PORT_PATH = re.compile(r"^\d+/")


def _refuse_unknown_transport(source: str, head: str, rest: str) -> None:
    """Refuse ``head:rest`` when ``head`` reads as a transport layerlab does not
    know: close to a known one (``docker-deamon:x``), or followed by what no
    image reference has after a colon (a path, not a tag nor ``host:port/``).
    ``name:tag`` and ``host:port/repo`` stay image names."""
    if head == "docker":  # Docker Hub's own image (docker:24-dind), not a transport
        return
    close = difflib.get_close_matches(head, TRANSPORT_NAMES, n=1, cutoff=0.75)
    looks_like_ref = bool(_TAG.match(rest)) or bool(_HOST_PORT_PATH.match(rest))
    if not close and (looks_like_ref or not re.match(r"^[a-z][a-z0-9-]*$", head)):
        return
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise SourceError(
        f"{source}: unknown transport {head!r}; {hint}the transports are {', '.join(TRANSPORT_NAMES)} "
        "(a bare path or image name is detected)"
    )


def detect(ref: str) -> str:
    p = Path(ref)
    if p.is_dir():
        if (p / "images.parquet").exists():
            return "snapshot"
        if (p / "index.json").exists() or (p / "oci-layout").exists():
            return "oci"
        if (p / "repos").is_dir() or p.name == "repos" or any(p.glob("*/remote")) or (p / "remote").is_dir():
            return "repo-info"
        raise SourceError(
            f"{ref}: a directory, but not an OCI layout (no index.json), a snapshot (no images.parquet) "
            "or a repo-info tree; name the transport explicitly, e.g. 'oci:DIR'"
        )
    if p.is_file():
        if p.suffix in {".jsonl", ".txt", ".history"}:
            return "history"
        if p.suffix == ".md":
            return "repo-info"
        if tarfile.is_tarfile(p):
            try:
                with tarfile.open(p) as tf:
                    names = set()
                    for m in tf:
                        names.add(m.name.lstrip("./"))
                        if "manifest.json" in names:
                            return "docker-archive"
                        if len(names) > 64:
                            break
                    if "index.json" in names:
                        return "oci-archive"
            except (tarfile.TarError, OSError) as e:
                raise SourceError(f"{ref}: looks like a tar but cannot be read ({e})") from e
            return "docker-archive"
        raise SourceError(
            f"{ref}: a file, but not a tar archive, .jsonl/.txt history or repo-info .md; "
            "name the transport explicitly, e.g. 'manifest:manifest.json+config.json'"
        )
    if "/" in ref and (ref.startswith(".") or ref.startswith("/") or os.sep in ref and Path(ref).parent.exists()):
        raise SourceError(f"{ref}: no such file or directory")
    return "docker-daemon"


def _module(transport: str):
    name = TRANSPORTS[transport]
    try:
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as e:  # pragma: no cover - only while a transport is missing
        if e.name and e.name.endswith(name):
            raise SourceError(f"transport {transport!r} is not available in this build of layerlab") from e
        raise


class _Unset:
    def __repr__(self) -> str:
        return "(the transport's default)"


_UNSET: object = _Unset()


def _given(arguments: dict, positional: str) -> dict:
    """The keyword options the caller set (from the front's ``locals()``, less its
    positional ``positional``); the rest keep each transport's own default."""
    return {k: v for k, v in arguments.items() if k != positional and v is not _UNSET}


def load(
    source,
    *,
    platform=_UNSET,
    progress=_UNSET,
    cache_dir=_UNSET,
    exact_history=_UNSET,
    tls_verify=_UNSET,
    insecure=_UNSET,
    auth=_UNSET,
    timeout=_UNSET,
    session=_UNSET,
    retries=_UNSET,
    deadline=_UNSET,
    certs_dir=_UNSET,
    docker_config=_UNSET,
    docker_client=_UNSET,
    reference=_UNSET,
    layers=_UNSET,
    fill_wire_sizes=_UNSET,
    config_store=_UNSET,
) -> Image:
    """Load one image from ``source`` (``TRANSPORT:REFERENCE``, or a bare path or
    name that is detected; see the module doc).

    Options (each transport reads the ones that concern it; an option left out
    keeps the transport's default):

    ``platform``
        ``"os/arch[/variant]"`` to pick from a multi-platform index (``oci:``,
        ``oci-archive:``, ``docker://``, ``repo-info:``, ``docker-daemon:``);
        default the host's (``linux/amd64`` for repo-info); ``"all"`` in
        :func:`load_many` for every platform.
    ``progress``, ``cache_dir``
        progress bars (None: only for slow work) and the sizes/contents cache
        directory (archives, OCI layouts, repo-info).
    ``exact_history``
        ``docker-daemon:`` only: ``"auto"`` (default), ``True`` or ``False``.
    ``tls_verify``, ``insecure``, ``auth``, ``timeout``, ``session``
        ``docker://`` only: certificate checking (bool or a CA bundle path),
        plain HTTP, ``(user, password)`` (default: the docker config's
        credentials, see ``docker_config``), seconds per connect and per
        read (default 30), a ``requests.Session`` to use.
    ``retries``, ``deadline``
        ``docker://`` only: further attempts after HTTP 429/502/503/504 or a
        connection failure, waiting as ``Retry-After`` asks or 0.25 s doubled
        each time (default 4); seconds allowed for each whole request, so a
        server that trickles bytes is cut off (default 300; a layer blob's
        grows by its size at 16 KiB/s; None for no deadline).
    ``certs_dir``, ``docker_config``
        ``docker://`` only: Docker's ``certs.d`` tree(s) holding
        ``HOST[:PORT]/`` directories of CA ``*.crt`` and client
        ``*.cert``/``*.key`` files (default ``~/.config/docker/certs.d``,
        ``~/.config/containers/certs.d``, ``/etc/docker/certs.d``,
        ``/etc/containers/certs.d``; False for none); the docker config
        directory or ``config.json`` whose ``auths``, ``credsStore`` and
        ``credHelpers`` give credentials (default ``$DOCKER_CONFIG`` or
        ``~/.docker``; False to read none).  Credentials are never shown.
    ``docker_client``
        ``docker-daemon:`` only: a ``docker.DockerClient`` to use.
    ``reference``, ``layers``
        ``history:`` only: the image's name, and its layer count (settles
        0-byte legacy steps).
    ``fill_wire_sizes``
        ``docker-daemon:`` only: True reads each layer's bytes on the wire
        from the registry the image's ``RepoDigests`` name
        (:func:`layerlab.registry_wire_sizes`, with the ``docker://`` options
        above); a registry that does not answer is a warning on the image.
        Default False: no network.
    ``config_store``
        ``docker://`` only: an object with ``get_config(digest) -> bytes |
        None`` and ``put_config(digest, raw)`` that keeps config blobs by
        digest (``ll.scan`` passes its cache); a kept copy is used only when
        it hashes to its digest.
    """
    options = _given(locals(), "source")
    transport, ref = split_source(source)
    mod = _module(transport)
    loader: Callable | None = getattr(mod, "load", None)
    if loader is None:
        images = list(mod.load_many(ref, transport=transport, **options))
        if len(images) != 1:
            raise SourceError(
                f"{source}: holds {len(images)} images; use layerlab.load_many() for it, or name one"
            )
        return images[0]
    return loader(ref, transport=transport, **options)


def load_many(
    sources,
    *,
    platform=_UNSET,
    progress=_UNSET,
    cache_dir=_UNSET,
    exact_history=_UNSET,
    tls_verify=_UNSET,
    insecure=_UNSET,
    auth=_UNSET,
    timeout=_UNSET,
    session=_UNSET,
    retries=_UNSET,
    deadline=_UNSET,
    certs_dir=_UNSET,
    docker_config=_UNSET,
    docker_client=_UNSET,
    reference=_UNSET,
    layers=_UNSET,
    fill_wire_sizes=_UNSET,
    config_store=_UNSET,
    workers=_UNSET,
    cross_image=_UNSET,
    tags=_UNSET,
    page_size=_UNSET,
) -> Fleet:
    """Load several images into a Fleet.  ``sources`` is one source string
    (an archive with several images, ``repo-info:DIR``, ``snapshot:DIR``), an
    :class:`~layerlab.model.Image`, or a list of them.  The options are
    :func:`load`'s, plus for ``repo-info:`` trees ``workers`` (parallel
    parsing, default 1) and ``cross_image`` (check pairings against the base
    images found among the loaded tags, default True).

    ``docker://HOST/REPO`` without a tag loads every tag of the repository,
    ``docker://HOST/`` every tag of every repository in the registry's
    catalog; ``tags`` keeps the tags a regular expression matches (whole
    tag, e.g. ``r"1\\.\\d+"``) and ``page_size`` is how many names to ask for
    per page of those lists (default 1000)."""
    options = _given(locals(), "sources")
    if isinstance(sources, (str, os.PathLike, Image)):
        sources = [sources]
    fleet = Fleet()
    for src in sources:
        if isinstance(src, Image):
            fleet.add(src)
            continue
        transport, ref = split_source(src)
        mod = _module(transport)
        many = getattr(mod, "load_many", None)
        if many is not None:
            for img in many(ref, transport=transport, **options):
                fleet.add(img)
        else:
            fleet.add(mod.load(ref, transport=transport, **options))
    return fleet
