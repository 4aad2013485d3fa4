"""The Docker Engine for ``docker-daemon:``: the SDK client, and what a local
engine's own store holds (the image config, layer sizes), read only when it
proves to be the image asked for.
"""
from __future__ import annotations

import json
import os
import re

from ..errors import EngineError
from ..model import sha256_text
from ._digest import sha256_bytes
from ._stream import short_error

DEFAULT_HOST = "unix:///var/run/docker.sock"
HEX64 = re.compile(r"^[0-9a-f]{64}$")
JSON_LIMIT = 16 << 20


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
            f"{short_error(e)}; {_how_to_start(host)}"
        ) from e
    except Exception as e:  # noqa: BLE001 - requests/urllib3 raise many kinds for a dead socket
        raise EngineError(f"no Docker Engine answers at {host}: {short_error(e)}; {_how_to_start(host)}") from e
    return c


def get_image(c, ref: str):
    from docker.errors import APIError, DockerException, ImageNotFound, NotFound

    try:
        return c.images.get(ref)
    except (ImageNotFound, NotFound) as e:
        raise EngineError(
            f"docker-daemon:{ref}: the engine at {engine_host()} has no image {ref!r}; "
            f"fetch it with `docker pull {ref}` or list what is there with `docker images`"
        ) from e
    except APIError as e:
        raise EngineError(f"docker-daemon:{ref}: the engine at {engine_host()} refused: {short_error(e)}") from e
    except (DockerException, OSError) as e:
        raise EngineError(f"docker-daemon:{ref}: lost the engine at {engine_host()}: {short_error(e)}") from e


def _image_store(c) -> str | None:
    """``<DockerRootDir>/image/<driver>`` of a local ``unix://`` engine, or None
    (a remote engine, or an engine that does not say)."""
    if not engine_host().startswith("unix://"):
        return None
    try:
        info = c.info()
        root, driver = info.get("DockerRootDir"), info.get("Driver")
    except Exception:  # noqa: BLE001 - no info, no shortcut
        return None
    if not root or not driver or "/" in driver:
        return None
    return os.path.join(root, "image", driver)


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
    if algo != "sha256" or not HEX64.match(hexpart):
        return None
    store = _image_store(c)
    if store is None:
        return None
    path = os.path.join(store, "imagedb", "content", "sha256", hexpart)
    try:
        with open(path, "rb") as f:
            data = f.read(JSON_LIMIT + 1)
    except OSError:
        return None
    if len(data) > JSON_LIMIT or sha256_bytes(data) != image_id:
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
    store = _image_store(c)
    if store is None:
        return out
    base = os.path.join(store, "layerdb", "sha256")
    prev: str | None = None
    for pos, chain in enumerate(chains):
        if chain is None or not HEX64.match(chain.split(":", 1)[-1]):
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
        expect = diff if prev is None else sha256_text(f"{prev} {diff}")  # the chain id rule
        if expect == chain and size >= 0:
            out[pos] = size
        prev = chain
    return out
