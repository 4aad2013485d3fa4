"""The HTTP client of the ``docker://`` source: schemes, TLS, credentials, retries, deadlines.

:class:`RegistryClient` speaks to one registry host:

* **Transport security**, like skopeo's ``--tls-verify``: ``tls_verify=True``
  (default) is HTTPS with certificate checks, a path string a CA bundle,
  ``False`` HTTPS without checks then plain HTTP.  Loopback hosts
  (``localhost``, ``127.0.0.0/8``, ``::1``) get plain HTTP unless
  ``tls_verify`` is given or a certs.d directory exists for them.  Docker's
  ``certs.d/HOST[:PORT]/`` (CA ``*.crt``, client ``*.cert`` + ``*.key``) is
  read from ``certs_dir`` (:mod:`layerlab.sources._tls`).
* **Credentials**: ``auth=(user, password)`` wins; else, when the registry
  asks (a 401), the docker config and its credential helpers
  (:mod:`layerlab.sources._auth`; ``docker_config=`` a directory or file,
  ``False`` for none).  Basic where asked, and the Bearer token flow
  (``WWW-Authenticate: Bearer realm=…``): a GET with Basic credentials, or a
  POST ``grant_type=refresh_token`` for an identity token.
* **Retries**: 429/502/503/504 answers and connection failures are tried up
  to ``retries`` more times, waiting the ``Retry-After`` the server asks for
  (seconds or an HTTP date; over 60 s is an error at once) or 0.25 s doubled
  per attempt.  A TLS failure, a read timeout and an expired deadline are not
  retried.
* **Time limits**: ``timeout`` seconds per connect and per socket read, and a
  ``deadline`` (seconds) on each whole request — headers and body — that cuts
  off a server trickling bytes (:class:`layerlab.sources._http.Deadline`).
  A layer blob's deadline grows by its size at ``BLOB_FLOOR_RATE``.

A ``session=`` given by the caller is used as it is, except that layerlab's
adapter (:class:`layerlab.sources._http.TimedAdapter`) is mounted on it for
the registry's origin and its token service's, so deadlines reach the socket.
"""
from __future__ import annotations

import ipaddress
import re
import time
from urllib.parse import urlsplit

import requests

from ..errors import SourceError
from ._auth import Credentials, lookup
from ._digest import parse_json
from ._http import MAX_WAIT, RETRY_STATUS, Deadline, TimedAdapter, deadline_error, read_capped, retry_wait
from ._stream import short_error
from ._tls import host_tls

TOKEN_LIMIT = 1 << 20
BLOB_FLOOR_RATE = 16 << 10   # bytes/s a layer download may not fall below on average (its deadline grows with size)


def is_loopback(host: str) -> bool:
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


class _Transient(Exception):
    """A failure worth another attempt (connection refused or reset)."""


class RegistryClient:
    """Just enough of the Distribution v2 API for reading images (see the module doc)."""

    def __init__(self, host: str, *, tls_verify: bool | str | None = None, auth=None, timeout: float = 30.0,
                 session=None, retries: int = 4, deadline: float | None = 300.0, certs_dir=None,
                 docker_config=None):
        if not isinstance(retries, int) or retries < 0:
            raise SourceError(f"docker://{host}: retries={retries!r} is not a count (0 or more)")
        for name, value in (("timeout", timeout), ("deadline", deadline)):
            if value is not None and (not isinstance(value, (int, float)) or value <= 0):
                raise SourceError(f"docker://{host}: {name}={value!r} is not a positive number of seconds")
        self.host = host
        self.session = session or requests.Session()
        self.session.headers.setdefault("User-Agent", "layerlab")
        if isinstance(auth, tuple) and len(auth) == 2:
            auth = Credentials(str(auth[0]), str(auth[1]), "auth=")
        elif auth is not None and not isinstance(auth, Credentials):
            raise SourceError(f"docker://{host}: auth= must be (user, password)")
        self._explicit = auth
        self._docker_config = docker_config
        self._creds: Credentials | None = auth
        self._looked_up = auth is not None
        self.timeout = timeout
        self.deadline = deadline
        self.retries = retries
        self._tokens: dict[str, str] = {}
        self._basic = False
        base = True if tls_verify is None else tls_verify
        verify, self.cert, certs = host_tls(host, certs_dir, base)
        if tls_verify is None and is_loopback(host) and certs is None:
            self.schemes: list[tuple[str, bool | str]] = [("http", False)]
        elif tls_verify is False:
            self.schemes = [("https", False), ("http", False)]
        else:
            self.schemes = [("https", verify)]
        self._scheme: tuple[str, bool | str] | None = None
        for scheme, _v in self.schemes:
            self.session.mount(f"{scheme}://{host}/", TimedAdapter())

    def __repr__(self) -> str:
        return f"<RegistryClient {self.host}>"

    def url(self, path: str, scheme: str | None = None) -> str:
        return f"{scheme or (self._scheme or self.schemes[0])[0]}://{self.host}{path}"

    # -- credentials ----------------------------------------------------------------------------
    def credentials(self) -> Credentials | None:
        if not self._looked_up:
            self._creds = lookup(self.host, self._docker_config)
            self._looked_up = True
        return self._creds

    # -- requests --------------------------------------------------------------------------------
    def get(self, path: str, *, headers: dict | None = None, scope: str | None = None, what: str = "",
            deadline: float | None = None):
        """A streamed GET answered with anything but a retryable status (or the last attempt's answer).

        The response carries ``.deadline``; close it with :meth:`close`."""
        what = what or self.url(path)
        seconds = deadline if deadline is not None else self.deadline
        attempt = 0
        while True:
            try:
                resp = self._attempt(path, headers or {}, scope, what, seconds)
            except _Transient as t:
                if attempt >= self.retries:
                    tries = f"{attempt + 1} attempt" + ("s" if attempt else "")
                    raise SourceError(f"{t} (gave up after {tries}; is it running?)") from t.__cause__
                time.sleep(retry_wait(attempt, None))
                attempt += 1
                continue
            if resp.status_code in RETRY_STATUS and attempt < self.retries:
                wait = retry_wait(attempt, resp.headers.get("Retry-After"))
                self.close(resp)
                if wait > MAX_WAIT:
                    raise SourceError(
                        f"{what}: {self.url(path)} answered HTTP {resp.status_code} and asks to retry after "
                        f"{wait:.0f} s; try again later"
                    )
                time.sleep(wait)
                attempt += 1
                continue
            resp.attempts = attempt + 1
            return resp

    @staticmethod
    def close(resp) -> None:
        deadline = getattr(resp, "deadline", None)
        if deadline is not None:
            deadline.cancel()
        resp.close()

    def _attempt(self, path: str, headers: dict, scope: str | None, what: str, seconds: float | None):
        candidates = [self._scheme] if self._scheme else self.schemes
        last: Exception | None = None
        for scheme, verify in candidates:  # type: ignore[misc]
            url = f"{scheme}://{self.host}{path}"
            deadline = Deadline(seconds)
            try:
                with deadline:
                    resp = self._get_authed(url, verify, headers, scope, what)
            except requests.exceptions.SSLError as e:
                deadline.cancel()
                last = e
                if verify is False:
                    continue
                raise SourceError(
                    f"{what}: TLS with {self.host} failed: {short_error(e)}; put the registry's CA in "
                    f"certs.d/{self.host}/ca.crt (certs_dir=), pass tls_verify='CA.pem', or tls_verify=False"
                ) from e
            except requests.exceptions.ConnectionError as e:
                deadline.cancel()
                if deadline.expired:
                    raise deadline_error(what, url, seconds) from e
                if isinstance(e, requests.exceptions.ConnectTimeout) or not isinstance(e, requests.exceptions.Timeout):
                    last = e
                    continue
                raise SourceError(f"{what}: {url} sent nothing for {self.timeout:g} s (timeout=)") from e
            except requests.exceptions.Timeout as e:
                deadline.cancel()
                raise SourceError(f"{what}: {url} sent nothing for {self.timeout:g} s (timeout=)") from e
            except requests.exceptions.RequestException as e:
                deadline.cancel()
                if deadline.expired:
                    raise deadline_error(what, url, seconds) from e
                raise SourceError(f"{what}: request to {url} failed: {short_error(e)}") from e
            except BaseException:
                deadline.cancel()
                raise
            self._scheme = (scheme, verify)
            resp.deadline = deadline
            return resp
        hint = (" (for a registry speaking plain HTTP or with a self-signed certificate pass tls_verify=False, "
                "like skopeo's --tls-verify=false)" if not is_loopback(self.host) else "")
        raise _Transient(
            f"{what}: cannot reach the registry at {self.host} ({', '.join(s for s, _ in candidates)}): "
            f"{_reason(last)}{hint}"
        ) from last

    def _send(self, method: str, url: str, verify, **kw):
        return self.session.request(method, url, stream=True, timeout=self.timeout, verify=verify,
                                    cert=self.cert if url.startswith("https:") else None, **kw)

    def _get_authed(self, url: str, verify, headers: dict, scope: str | None, what: str):
        h = dict(headers)
        token = self._tokens.get(scope or "")
        if token:
            h["Authorization"] = f"Bearer {token}"
        creds = self._creds if self._basic else None
        resp = self._send("GET", url, verify, headers=h, auth=creds.basic() if creds and not token else None)
        if resp.status_code != 401:
            return resp
        kind, params = parse_challenge(resp.headers.get("WWW-Authenticate", ""))
        if kind == "bearer" and "realm" in params:
            resp.close()
            token = self._fetch_token(params, scope, verify, what)
            self._tokens[scope or ""] = token
            h["Authorization"] = f"Bearer {token}"
            return self._send("GET", url, verify, headers=h)
        if kind == "basic" and not self._basic:
            creds = self.credentials()
            if creds is not None and creds.basic() is not None:
                resp.close()
                self._basic = True
                return self._send("GET", url, verify, headers=h, auth=creds.basic())
        return resp

    def refused_hint(self) -> str:
        """What to say after a 401/403: whose credentials were refused, or how to give some."""
        creds = self._creds if self._looked_up else None
        if creds is not None:
            return f"the credentials from {creds.source} were refused; check them"
        return ("no credentials for this registry: pass auth=(user, password), or `docker login "
                f"{self.host}` (layerlab reads ~/.docker/config.json and its credential helpers)")

    def _fetch_token(self, params: dict[str, str], scope: str | None, verify, what: str) -> str:
        realm = params["realm"]
        parts = urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SourceError(f"{what}: the registry {self.host} names a token service {realm!r} that is not a URL")
        origin = f"{parts.scheme}://{parts.netloc}/"
        if origin not in self.session.adapters:  # the deadline covers the token request too
            self.session.mount(origin, TimedAdapter())
        q = {k: v for k, v in (("service", params.get("service")), ("scope", params.get("scope") or scope)) if v}
        creds = self.credentials()
        try:
            if creds is not None and creds.identity_token:
                r = self._send("POST", realm, verify, data={**q, "grant_type": "refresh_token", "client_id": "layerlab",
                                                            "refresh_token": creds.secret})
            else:
                r = self._send("GET", realm, verify, params=q, auth=creds.basic() if creds else None)
        except requests.exceptions.RequestException as e:
            raise SourceError(f"{what}: the token service {realm} could not be reached: {short_error(e)}") from e
        try:
            if r.status_code in (401, 403):
                who = f"the credentials from {creds.source}" if creds else "anonymous access"
                raise SourceError(
                    f"{what}: the token service {realm} refused {who} for {q.get('scope', 'this image')} "
                    f"(HTTP {r.status_code}); " + ("check them" if creds else self.refused_hint())
                )
            if r.status_code != 200:
                raise SourceError(f"{what}: the token service {realm} answered HTTP {r.status_code}")
            doc = parse_json(read_capped(r, TOKEN_LIMIT, f"{what}: token from {realm}"), f"{what}: token from {realm}")
        finally:
            r.close()
        token = (doc.get("token") or doc.get("access_token")) if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise SourceError(f"{what}: the token service {realm} gave no token")
        return token


def _reason(e: Exception | None) -> str:
    """The innermost cause of a connection failure ("[Errno 111] Connection refused"), not urllib3's wrapping."""
    reason = getattr(e.args[0], "reason", None) if e is not None and e.args else None
    if reason is None:
        return short_error(e)
    return short_error(str(reason).split("): ", 1)[-1])


_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"|(\w+)=([^\s,]+)')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    kind, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    for m in _CHALLENGE_PARAM.finditer(rest):
        if m.group(1):
            params[m.group(1).lower()] = m.group(2)
        else:
            params[m.group(3).lower()] = m.group(4)
    return kind.lower(), params
