"""Registry credentials as the docker CLI keeps them: ``~/.docker/config.json`` and credential helpers.

The config file is ``$DOCKER_CONFIG/config.json`` (default
``~/.docker/config.json``).  For a registry host, as the docker CLI does:

1. ``credHelpers[HOST]`` names a helper for that host, else ``credsStore``
   names one for every host: the program ``docker-credential-<name>`` is run
   as ``docker-credential-<name> get`` with the server address on stdin and
   answers ``{"ServerURL": …, "Username": …, "Secret": …}`` on stdout (exit
   status 1 and "credentials not found" when it has none).  A ``Username`` of
   ``<token>`` means the secret is an identity (refresh) token.
2. ``auths[HOST]``: ``auth`` (base64 of ``user:password``), or ``username`` and
   ``password``, or ``identitytoken``.  Keys may be written with a scheme or a
   path (``https://HOST/v1/``); Docker Hub's key is ``https://index.docker.io/v1/``.

Credentials are looked up only when a registry asks for them (a 401), so
helpers do not run for anonymous registries.  A :class:`Credentials` object
never shows its secret: not in ``repr``, not in any message.
"""
from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

from ..errors import SourceError
from ._digest import as_object, parse_json

HUB_KEY = "https://index.docker.io/v1/"
HUB_HOSTS = {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
HELPER_TIMEOUT = 30.0
HELPER_OUTPUT_LIMIT = 1 << 20


class Credentials:
    """A user name and a password or identity token; ``source`` says where they came from."""

    __slots__ = ("username", "_secret", "identity_token", "source")

    def __init__(self, username: str, secret: str, source: str, identity_token: bool = False):
        self.username = username
        self._secret = secret
        self.identity_token = identity_token
        self.source = source

    @property
    def secret(self) -> str:
        return self._secret

    def basic(self) -> tuple[bytes, bytes] | None:
        """``(user, password)`` for HTTP Basic as UTF-8 (as docker sends them; ``requests`` would
        encode ``str`` as Latin-1), or None for an identity token."""
        return None if self.identity_token else (self.username.encode("utf-8"), self._secret.encode("utf-8"))

    def __repr__(self) -> str:
        kind = "identity token" if self.identity_token else "password"
        return f"<Credentials {self.username or '(token)'} with a {kind} from {self.source}>"

    __str__ = __repr__

    def __reduce__(self):  # workers get them (blob readers pickle the client); still never shown
        return (Credentials, (self.username, self._secret, self.source, self.identity_token))


def config_path(docker_config=None) -> Path | None:
    """The config.json to read: ``docker_config`` (a directory or a file), else ``$DOCKER_CONFIG``, else ~/.docker."""
    if docker_config is False:
        return None
    if docker_config is not None:
        p = Path(docker_config)
        return p if p.suffix == ".json" else p / "config.json"
    env = os.environ.get("DOCKER_CONFIG")
    return (Path(env) if env else Path.home() / ".docker") / "config.json"


def _host_of(key: str) -> str:
    k = key.strip()
    for prefix in ("https://", "http://"):
        if k.startswith(prefix):
            k = k[len(prefix):]
    return k.split("/", 1)[0]


def _same_registry(key: str, host: str) -> bool:
    a, b = _host_of(key), host
    if a in HUB_HOSTS and b in HUB_HOSTS:
        return True
    return a == b


def _load(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise SourceError(f"{path}: cannot read the docker config ({e})") from e
    return as_object(parse_json(text.encode("utf-8"), f"{path} (the docker config)"), str(path), "the docker config")


def lookup(host: str, docker_config=None) -> Credentials | None:
    """Credentials for registry ``host`` from the docker config and its helpers; None when there are none."""
    path = config_path(docker_config)
    if path is None:
        return None
    doc = _load(path)
    server = HUB_KEY if host in HUB_HOSTS else host
    helpers = doc.get("credHelpers") if isinstance(doc.get("credHelpers"), dict) else {}
    helper = next((v for k, v in helpers.items() if _same_registry(k, host)), None) or doc.get("credsStore")
    if isinstance(helper, str) and helper:
        found = run_helper(helper, server, path)
        if found is not None:
            return found
    auths = doc.get("auths") if isinstance(doc.get("auths"), dict) else {}
    entry = auths.get(server)
    if entry is None:
        entry = next((v for k, v in auths.items() if _same_registry(k, host)), None)
    if not isinstance(entry, dict):
        return None
    return _from_entry(entry, f"{path} (auths)")


def _from_entry(entry: dict, source: str) -> Credentials | None:
    token = entry.get("identitytoken")
    user, password = entry.get("username"), entry.get("password")
    if isinstance(entry.get("auth"), str) and entry["auth"]:
        try:
            user, _, password = base64.b64decode(entry["auth"], validate=False).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError) as e:
            raise SourceError(f"{source}: an 'auth' value is not base64 of 'user:password'") from e
    if isinstance(token, str) and token:
        return Credentials(user if isinstance(user, str) else "", token, source, identity_token=True)
    if isinstance(user, str) and user and isinstance(password, str):
        return Credentials(user, password, source)
    return None


def run_helper(name: str, server: str, config: Path | None = None) -> Credentials | None:
    """``docker-credential-NAME get`` for ``server``; None when the helper has nothing for it."""
    program = f"docker-credential-{name}"
    exe = shutil.which(program)
    origin = f" (named in {config})" if config else ""
    if exe is None:
        raise SourceError(
            f"{program}: the credential helper{origin} is not on PATH; install it, remove it from the "
            "config, or pass auth=(user, password)"
        )
    try:
        out = subprocess.run([exe, "get"], input=server.encode(), capture_output=True, timeout=HELPER_TIMEOUT,
                             check=False)
    except subprocess.TimeoutExpired as e:
        raise SourceError(f"{program} get: no answer within {HELPER_TIMEOUT:g} s (is it waiting for a prompt?)") from e
    except OSError as e:
        raise SourceError(f"{program} get: could not be run ({e})") from e
    stdout = out.stdout[:HELPER_OUTPUT_LIMIT]
    if out.returncode != 0:
        said = (stdout or out.stderr).decode("utf-8", "replace").strip()
        if "credentials not found" in said.lower():
            return None
        # the helper's own words may echo what it was given, never a secret it returns; keep them short
        raise SourceError(f"{program} get {server}: exit status {out.returncode}: {said[:200]}")
    doc = as_object(parse_json(stdout, f"{program} get {server}: its answer"), f"{program} get {server}", "its answer")
    user, secret = doc.get("Username"), doc.get("Secret")
    if not isinstance(secret, str) or not secret:
        return None
    user = user if isinstance(user, str) else ""
    if user == "<token>":
        return Credentials("", secret, program, identity_token=True)
    return Credentials(user, secret, program)
