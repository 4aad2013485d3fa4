"""Credentials from docker configs and real ``docker-credential-*`` executables, the certs.d layout,
and the identity-token (OAuth2 refresh token) flow against a token-demanding front of the real
registry.  Expected values are the ones written into the files here."""
from __future__ import annotations

import base64
import json
import os
import stat
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

import layerlab as ll
from layerlab.sources._auth import lookup
from layerlab.sources._tls import host_tls
from registrykit import forward, inspect_json, skopeo, tiny_layout

SECRET = "s3cret-Zq9-never-shown"


def _cfg(tmp_path, doc) -> str:
    d = tmp_path / "cfg"
    d.mkdir(exist_ok=True)
    (d / "config.json").write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return str(d)


def _helper(tmp_path, name: str, body: str):
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    script = bindir / f"docker-credential-{name}"
    script.write_text(f"#!{sys.executable}\nimport json, sys\nserver = sys.stdin.read().strip()\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return bindir


def test_auths_forms(tmp_path, monkeypatch):
    b64 = base64.b64encode(f"bob:{SECRET}".encode()).decode()
    monkeypatch.setenv("DOCKER_CONFIG", _cfg(tmp_path, {"auths": {
        "https://index.docker.io/v1/": {"auth": b64},
        "http://reg.example:5000/v2/": {"username": "carol", "password": SECRET},
        "tok.example": {"identitytoken": SECRET},
    }}))
    hub = lookup("registry-1.docker.io")
    assert (hub.username, hub.secret, hub.identity_token) == ("bob", SECRET, False)
    other = lookup("reg.example:5000")
    assert (other.username, other.secret) == ("carol", SECRET)
    tok = lookup("tok.example")
    assert tok.identity_token and tok.basic() is None and tok.secret == SECRET
    assert lookup("unknown.example") is None
    for c in (hub, other, tok):
        assert SECRET not in repr(c) and SECRET not in str(c) and b64 not in repr(c)


def test_helper_identity_token_and_failures(tmp_path, monkeypatch):
    bindir = _helper(tmp_path, "tok", "print(json.dumps({'ServerURL': server, 'Username': '<token>', 'Secret': %r}))"
                     % SECRET)
    _helper(tmp_path, "broken", "print('backend locked for ' + server); sys.exit(3)")
    _helper(tmp_path, "garbage", "print('{not json')")
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    cfg = _cfg(tmp_path, {"credHelpers": {"a.example": "tok", "b.example": "broken", "c.example": "garbage"}})
    a = lookup("a.example", cfg)
    assert a.identity_token and a.secret == SECRET and a.source == "docker-credential-tok"
    with pytest.raises(ll.SourceError) as e:
        lookup("b.example", cfg)
    assert "docker-credential-broken" in str(e.value) and "exit status 3" in str(e.value)
    with pytest.raises(ll.LayerlabError) as e:
        lookup("c.example", cfg)
    assert "docker-credential-garbage" in str(e.value) and "not valid JSON" in str(e.value)


def test_bad_config_file(tmp_path):
    with pytest.raises(ll.LayerlabError) as e:
        lookup("x.example", _cfg(tmp_path, "{broken"))
    assert "config.json" in str(e.value) and "not valid JSON" in str(e.value)
    assert lookup("x.example", tmp_path / "nowhere") is None  # no config: no credentials
    assert lookup("x.example", False) is None


def test_certs_d_layout(tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    d = tmp_path / "certs.d" / "reg.example:5000"
    d.mkdir(parents=True)
    ca.cert_pem.write_to_path(str(d / "ca.crt"))
    verify, cert, where = host_tls("reg.example:5000", tmp_path / "certs.d", True)
    assert where == d and cert is None
    bundle = open(verify, "rb").read()
    assert ca.cert_pem.bytes().strip() in bundle
    assert bundle.count(b"BEGIN CERTIFICATE") > 1  # the system's CAs are kept (docker appends to them)
    assert host_tls("other.example", tmp_path / "certs.d", True) == (True, None, None)
    (d / "client.key").write_text("k")
    with pytest.raises(ll.SourceError) as e:
        host_tls("reg.example:5000", tmp_path / "certs.d", True)
    assert "client.cert" in str(e.value)
    (d / "client.cert").write_text("c")
    assert host_tls("reg.example:5000", tmp_path / "certs.d", True)[1] == (str(d / "client.cert"), str(d / "client.key"))
    (d / "bad.crt").write_text("not a certificate")
    with pytest.raises(ll.SourceError) as e:
        host_tls("reg.example:5000", tmp_path / "certs.d", True)
    assert "bad.crt" in str(e.value)


@pytest.fixture(scope="module")
def oauth_front(registry, tmp_path_factory):
    """A front asking for Bearer tokens; its token endpoint takes only an OAuth2 refresh-token POST."""
    layout = tiny_layout(tmp_path_factory.mktemp("oauth-layout"), {"1": b"oauth payload\n"})
    skopeo("copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:1", f"docker://{registry.ref('oauth/app:1')}")
    posts: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _reply(self, status, body=b"", headers=()):
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode()).items()}
            posts.append({k: v for k, v in form.items() if k != "refresh_token"})
            if form.get("grant_type") == "refresh_token" and form.get("refresh_token") == SECRET:
                return self._reply(200, json.dumps({"access_token": "granted"}).encode(),
                                   [("Content-Type", "application/json")])
            return self._reply(401)

        def do_GET(self):
            if self.headers.get("Authorization") != "Bearer granted":
                host = f"127.0.0.1:{self.server.server_address[1]}"
                return self._reply(401, headers=[("WWW-Authenticate",
                                                  f'Bearer realm="http://{host}/token",service="oauth-test"')])
            status, headers, body = forward(registry, self.path, self.headers.get("Accept"))
            self._reply(status, body, [(h, headers[h]) for h in ("Content-Type", "Docker-Content-Digest")
                                       if headers.get(h)])

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield {"host": f"127.0.0.1:{server.server_address[1]}", "posts": posts, "registry": registry}
    finally:
        server.shutdown()
        server.server_close()


def test_identity_token_flow(oauth_front, tmp_path):
    host = oauth_front["host"]
    cfg = _cfg(tmp_path, {"auths": {host: {"identitytoken": SECRET}}})
    img = ll.load(f"docker://{host}/oauth/app:1", docker_config=cfg)
    assert img.manifest_digest == inspect_json(oauth_front["registry"].ref("oauth/app:1"))["Digest"]
    assert oauth_front["posts"][0] == {"grant_type": "refresh_token", "client_id": "layerlab", "service": "oauth-test",
                                       "scope": "repository:oauth/app:pull"}
    (tmp_path / "w").mkdir()
    wrong = _cfg(tmp_path / "w", {"auths": {host: {"identitytoken": SECRET + "x"}}})
    with pytest.raises(ll.SourceError) as e:
        ll.load(f"docker://{host}/oauth/app:1", docker_config=wrong)
    assert "HTTP 401" in str(e.value) and SECRET not in str(e.value) and "config.json" in str(e.value)


def test_anonymous_registry_runs_no_helper(oauth_front, tmp_path):
    """Credentials are looked up only when a registry asks: a missing helper does not matter here."""
    cfg = _cfg(tmp_path, {"credsStore": "layerlab-absent"})
    ref = oauth_front["registry"].ref("oauth/app:1")
    assert ll.load(f"docker://{ref}", docker_config=cfg).manifest_digest == inspect_json(ref)["Digest"]
    with pytest.raises(ll.SourceError) as e:  # the token front asks: now the missing helper is named
        ll.load(f"docker://{oauth_front['host']}/oauth/app:1", docker_config=cfg)
    assert "docker-credential-layerlab-absent" in str(e.value)


def test_registry_root_is_not_an_image():
    with pytest.raises(ll.SourceError) as e:
        ll.load("docker://127.0.0.1:9/")
    assert "load_many" in str(e.value)
