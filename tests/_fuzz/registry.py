"""A hostile Distribution-API server on 127.0.0.1 (stdlib ``http.server``, no real registry).

It serves one small image, ``fuzz/app:1`` (an OCI manifest, its config and a
gzip layer), and for each case misbehaves as :attr:`HostileRegistry.case`
says.  A case is ``{"mode": NAME, "seed": N}``; the modes:

``mutate-manifest``, ``mutate-config``, ``mutate-blob``, ``mutate-index``
    that document's bytes byte-mutated (:mod:`_fuzz.mutate`) with the seed;
    the manifest keeps a ``Docker-Content-Digest`` of the *original* half the time
``garbage-json``     a non-JSON or deeply nested body for every document
``content-type``     a wrong or absurd ``Content-Type``
``length-huge``      ``Content-Length`` of 10**15, then a short body and a closed connection
``length-negative``  ``Content-Length: -5``
``length-short``     a ``Content-Length`` smaller than the body
``redirect-loop``    every document answers 302 to itself (or between two URLs)
``redirect-away``    302 to another host's port on 127.0.0.1 that refuses connections
``status``           an odd status (0-599 drawn by the seed) with a mutated error body
``auth``             401 with a mutated ``WWW-Authenticate`` whose token realm is this server,
                     which answers the token request with garbage
``chunked-garbage``  a ``Transfer-Encoding: chunked`` body with broken chunk sizes
``gzip-garbage``     ``Content-Encoding: gzip`` over bytes that are not gzip

Everything it sends is finite: no case trickles or hangs (the registry's own
fault tests cover deadlines), so a hang here is layerlab's.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .mutate import mutate
from .strategies import LAYER, LAYER_GZ, OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZ, OCI_MANIFEST, base_config

MODES = ["mutate-manifest", "mutate-config", "mutate-blob", "mutate-index", "garbage-json", "content-type",
         "length-huge", "length-negative", "length-short", "redirect-loop", "redirect-away", "status", "auth",
         "chunked-garbage", "gzip-garbage"]

GARBAGE = [b"", b"{", b"[" * 50_000, b"null", b"[]", b'{"schemaVersion": 2}', b"\xff\xfe\x00", b"<html>oops</html>",
           b'{"schemaVersion": 2, "manifests": "x"}', b'{"mediaType": 5}', b'{"errors": [{"code": 1}]}',
           b'{"token": ' + b"[" * 5000 + b"]" * 5000 + b"}", b'{"token": 5}', b'{"access_token": null}']


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class HostileRegistry:
    """Start with :meth:`start`; set :attr:`case` before each load; :meth:`stop` at the end."""

    REPO = "fuzz/app"

    def __init__(self):
        self.case: dict = {"mode": "none", "seed": 0}
        self.config = json.dumps(base_config([_sha(LAYER)])).encode()
        self.manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": _sha(self.config), "size": len(self.config)},
            "layers": [{"mediaType": OCI_LAYER_GZ, "digest": _sha(LAYER_GZ), "size": len(LAYER_GZ)}]}).encode()
        self.index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": _sha(self.manifest), "size": len(self.manifest),
             "platform": {"os": "linux", "architecture": "amd64"}}]}).encode()
        self.blobs = {_sha(self.config): self.config, _sha(LAYER_GZ): LAYER_GZ}
        self.server: ThreadingHTTPServer | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def url(self, tag: str = "1") -> str:
        """``1`` is the image manifest; ``multi`` an index naming it."""
        return f"docker://{self.host}/{self.REPO}:{tag}"

    def start(self) -> "HostileRegistry":
        reg = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                reg.answer(self)

            def do_HEAD(self):
                reg.answer(self, head=True)

            def do_POST(self):
                reg.answer(self)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # a client that hung up mid-answer is expected here

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    # -- answering ---------------------------------------------------------------------------------
    def _document(self, path: str) -> tuple[bytes, str, str] | None:
        """(original body, content type, kind) for a path of the one image, None for a 404."""
        base = f"/v2/{self.REPO}/"
        if path in ("/v2/", "/v2"):
            return b"{}", "application/json", "ping"
        if path.startswith(base + "manifests/"):
            ref = path[len(base + "manifests/"):]
            if ref in ("1", _sha(self.manifest)):
                return self.manifest, OCI_MANIFEST, "manifest"
            if ref in ("multi", _sha(self.index)):
                return self.index, OCI_INDEX, "index"
        if path.startswith(base + "blobs/"):
            d = path[len(base + "blobs/"):]
            if d in self.blobs:
                return self.blobs[d], "application/octet-stream", "config" if self.blobs[d] is self.config else "blob"
        if path.startswith("/token"):
            return b'{"token": "t"}', "application/json", "token"
        return None

    def answer(self, h: BaseHTTPRequestHandler, head: bool = False) -> None:  # noqa: C901 - one branch per mode
        mode, seed = self.case["mode"], self.case["seed"]
        rng = random.Random(seed * 7919 + hash(h.path) % 1000)
        path = h.path.split("?", 1)[0]
        doc = self._document(path)
        if doc is None:
            return self._send(h, 404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}', "application/json", head)
        body, ctype, kind = doc
        extra: dict[str, str] = {}
        if kind in ("manifest", "index"):
            extra["Docker-Content-Digest"] = _sha(body)
        if mode == "auth" and kind != "token" and "Authorization" not in h.headers:
            realm = f"http://{self.host}/token"
            hdr = rng.choice([f'Bearer realm="{realm}",service="x",scope="repository:fuzz/app:pull"',
                              f'Bearer realm="{realm}"', 'Bearer realm=""', "Bearer", "Basic", "Unknown x=y",
                              f'Bearer realm="{realm}' + '",a="' * 200, 'Bearer realm="http://127.0.0.1:1/t"'])
            return self._send(h, 401, b"{}", "application/json", head, {"WWW-Authenticate": hdr})
        if kind == "ping":
            return self._send(h, 200, body, ctype, head)
        if kind == "token":
            return self._send(h, 200, rng.choice(GARBAGE + [b'{"token": "t"}']), "application/json", head)
        target = {"mutate-manifest": "manifest", "mutate-config": "config", "mutate-blob": "blob",
                  "mutate-index": "index"}.get(mode)
        if target is not None:
            if kind == target:
                body = mutate(body, seed)
                if kind in ("manifest", "index") and rng.random() < 0.5:
                    extra["Docker-Content-Digest"] = _sha(body)
            return self._send(h, 200, body, ctype, head, extra)
        if mode == "garbage-json" and kind != "blob":
            return self._send(h, 200, rng.choice(GARBAGE), ctype, head)
        if mode == "content-type":
            ctype = rng.choice(["", "text/html", "application/json", OCI_INDEX, OCI_MANIFEST, "x" * 5000,
                                "application/vnd.docker.distribution.manifest.v1+prettyjws", ";;;"])
            return self._send(h, 200, body, ctype, head, extra)
        if mode == "length-huge":
            return self._raw(h, 200, body[: len(body) // 2], ctype, {"Content-Length": str(10**15)})
        if mode == "length-negative":
            return self._raw(h, 200, body, ctype, {"Content-Length": "-5"})
        if mode == "length-short":
            return self._raw(h, 200, body, ctype, {"Content-Length": str(max(0, len(body) - rng.randint(1, 50)))})
        if mode == "redirect-loop":
            loc = h.path if rng.random() < 0.5 else (h.path + "?again" if "?" not in h.path else path)
            return self._send(h, rng.choice([301, 302, 307, 308]), b"", "text/plain", head, {"Location": loc})
        if mode == "redirect-away":
            return self._send(h, 302, b"", "text/plain", head, {"Location": "http://127.0.0.1:1" + h.path})
        if mode == "status":
            code = rng.choice([100, 199, 204, 206, 301, 304, 400, 401, 403, 404, 418, 429, 500, 502, 503, 599])
            return self._send(h, code, mutate(b'{"errors":[{"code":"DENIED","message":"no"}]}', seed), ctype, head,
                              {"Retry-After": rng.choice(["0", "-1", "abc", "1"])})
        if mode == "chunked-garbage":
            return self._chunked(h, body, ctype, rng)
        if mode == "gzip-garbage" and kind != "blob":
            junk = rng.choice([b"\x1f\x8b\x08\x00junk", gzip.compress(body)[:-8], body])
            return self._send(h, 200, junk, ctype, head, {"Content-Encoding": "gzip"})
        return self._send(h, 200, body, ctype, head, extra)

    @staticmethod
    def _send(h, status: int, body: bytes, ctype: str, head: bool = False, extra: dict | None = None) -> None:
        try:
            h.send_response(status)
            if ctype:
                h.send_header("Content-Type", ctype)
            for k, v in (extra or {}).items():
                h.send_header(k, v)
            if status >= 200 and status not in (204, 304):
                h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            if not head and status >= 200 and status not in (204, 304):
                h.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    @staticmethod
    def _raw(h, status: int, body: bytes, ctype: str, headers: dict) -> None:
        """Headers as given (a lying Content-Length), the body, then the connection closed."""
        try:
            h.send_response(status)
            h.send_header("Content-Type", ctype)
            for k, v in headers.items():
                h.send_header(k, v)
            h.send_header("Connection", "close")
            h.end_headers()
            h.wfile.write(body)
            h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        h.close_connection = True

    @staticmethod
    def _chunked(h, body: bytes, ctype: str, rng: random.Random) -> None:
        try:
            h.send_response(200)
            h.send_header("Content-Type", ctype)
            h.send_header("Transfer-Encoding", "chunked")
            h.send_header("Connection", "close")
            h.end_headers()
            half = body[: len(body) // 2]
            h.wfile.write(rng.choice([b"%x\r\n" % len(half) + half + b"\r\nZZ\r\n",
                                      b"fffffffffffffffff\r\n" + half, b"-1\r\n\r\n",
                                      b"%x\r\n" % (len(body) + 10) + body + b"\r\n0\r\n\r\n",
                                      b"%x\r\n" % len(body) + body]))
            h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        h.close_connection = True
