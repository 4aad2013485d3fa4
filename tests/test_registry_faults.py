"""docker:// against misbehaving servers: a stdlib HTTP front on 127.0.0.1, in front of the real
docker-registry, that answers 503/429 with Retry-After, drops connections, hangs, trickles bytes,
serves hostile JSON, broken gzip or chunking, a wrong Docker-Content-Digest or an unknown media
type.  Each ends in a clear LayerlabError naming the URL (and the status where there is one).

No duration is asserted: a deadline that did not fire would leave the request hanging until the
trickle stops (the front stops after a bounded number of bytes), and then the error would be a
different one.  Expected values come from skopeo and from the bytes this file pushes.
"""
from __future__ import annotations

import json
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import layerlab as ll
from layerlab.sources._http import retry_after, retry_wait
from registrykit import forward, inspect_json, skopeo, tiny_layout

PAGED_TAGS = ["a1", "a2", "b1", "b2", "c1"]
TRICKLE_STEPS = 400     # the front gives up trickling after this many bytes (bounded test)
TRICKLE_PAUSE = 0.05


@pytest.fixture(scope="module")
def front(registry, tmp_path_factory):
    layout = tiny_layout(tmp_path_factory.mktemp("faults-layout"), {"1": b"fault payload\n" * 50})
    skopeo("copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:1", f"docker://{registry.ref('faults/app:1')}")
    many = tiny_layout(tmp_path_factory.mktemp("paged-layout"), {t: t.encode() for t in PAGED_TAGS})
    for t in PAGED_TAGS:
        skopeo("copy", "--quiet", "--dest-tls-verify=false", f"oci:{many}:{t}", f"docker://{registry.ref('faults/paged:' + t)}")
    state = {"mode": "pass", "left": 0, "count": 0, "retry_after": "0", "paths": []}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _forward(self, status_override=None, header_override=None):
            status, headers, body = forward(registry, self.path, self.headers.get("Accept"))
            self.send_response(status_override or status)
            for h in ("Content-Type", "Docker-Content-Digest", "Link"):
                if headers.get(h):
                    self.send_header(h, (header_override or {}).get(h, headers[h]))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _send(self, status, body: bytes, headers: dict):
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):  # noqa: C901 - one branch per fault
            state["count"] += 1
            state["paths"].append(self.path)
            mode = state["mode"]
            if mode.startswith("paged") and self.path.split("?")[0].endswith("/tags/list"):
                return self._paged_tags(mode)
            target = "/manifests/" in self.path if not mode.startswith("blob") else "/blobs/" in self.path
            if mode == "pass" or not target:
                return self._forward()
            if mode in ("503", "429") and state["left"] > 0:
                state["left"] -= 1
                return self._send(int(mode), b'{"errors":[{"code":"TOOMANYREQUESTS"}]}',
                                  {"Retry-After": state["retry_after"], "Content-Type": "application/json"})
            if mode == "drop" and state["left"] > 0:
                state["left"] -= 1
                self.close_connection = True
                self.connection.shutdown(2)
                return None
            if mode == "hang":
                time.sleep(3)
                return None
            if mode in ("trickle", "blob-trickle"):
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", "100000")
                self.end_headers()
                return self._trickle(b"x")
            if mode == "trickle-headers":
                self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                return self._trickle(b"a")
            if mode == "deep-json":
                return self._send(200, b"[" * 100_000, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
            if mode == "bad-gzip":
                return self._send(200, b"\x1f\x8b\x08\x00garbage-not-deflate" * 4,
                                  {"Content-Type": "application/vnd.oci.image.manifest.v1+json",
                                   "Content-Encoding": "gzip"})
            if mode == "bad-chunks":
                self.send_response(200)
                self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.write(b"10\r\n{\"schemaVersion\"\r\nZZZ\r\n")
                return None
            if mode == "unknown-type":
                mt = "application/vnd.example.thing.v1+json"
                return self._send(200, json.dumps({"schemaVersion": 2, "mediaType": mt}).encode(),
                                  {"Content-Type": mt})
            if mode == "wrong-digest":
                return self._forward(header_override={"Docker-Content-Digest": "sha256:" + "0" * 64})
            return self._forward()

        def _paged_tags(self, mode: str):
            """The Distribution spec's pagination (n, last, Link) over the real registry's tag list,
            which docker-registry 2.8 does not paginate itself."""
            from urllib.parse import parse_qs, urlsplit

            parts = urlsplit(self.path)
            q = parse_qs(parts.query)
            with urllib.request.urlopen(f"http://{registry.host}{parts.path}", timeout=10) as r:
                doc = json.loads(r.read())
            names = sorted(doc["tags"])
            n = int(q.get("n", ["1000"])[0])
            last = q.get("last", [""])[0]
            page = [t for t in names if t > last][:n]
            headers = {"Content-Type": "application/json"}
            if page and page[-1] != names[-1]:
                nxt = {"paged": f"{parts.path}?n={n}&last={page[-1]}",
                       "paged-away": f"http://127.0.0.2:9/v2/faults/paged/tags/list?n={n}&last={page[-1]}",
                       "paged-loop": f"{parts.path}?n={n}"}[mode]
                headers["Link"] = f'<{nxt}>; rel="next"'
            return self._send(200, json.dumps({"name": doc["name"], "tags": page}).encode(), headers)

        def _trickle(self, byte: bytes):
            try:
                for _ in range(TRICKLE_STEPS):
                    self.wfile.write(byte)
                    self.wfile.flush()
                    time.sleep(TRICKLE_PAUSE)
            except OSError:
                pass  # the client hung up: the deadline fired

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"host": f"127.0.0.1:{server.server_address[1]}", "state": state, "registry": registry}
    finally:
        server.shutdown()
        server.server_close()


def _set(front, mode: str, left: int = 0, retry_after: str = "0"):
    front["state"].update(mode=mode, left=left, retry_after=retry_after, count=0, paths=[])


def _digest(front) -> str:
    return inspect_json(front["registry"].ref("faults/app:1"))["Digest"]


def _manifest_gets(front) -> int:
    return sum("/manifests/" in p for p in front["state"]["paths"])


@pytest.mark.parametrize("status", ["503", "429"])
def test_retry_after_seconds_then_success(front, status):
    _set(front, status, left=2, retry_after="1")
    img = ll.load(f"docker://{front['host']}/faults/app:1")
    assert img.manifest_digest == _digest(front)
    assert _manifest_gets(front) == 3  # two refusals, then the answer


def test_retry_after_http_date(front):
    when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 1))
    _set(front, "503", left=1, retry_after=when)
    assert ll.load(f"docker://{front['host']}/faults/app:1").manifest_digest == _digest(front)
    assert _manifest_gets(front) == 2


def test_retries_exhausted_names_status_and_url(front):
    _set(front, "503", left=100, retry_after="0")
    with pytest.raises(ll.SourceError) as e:
        ll.load(f"docker://{front['host']}/faults/app:1", retries=2)
    msg = str(e.value)
    assert "HTTP 503" in msg and f"http://{front['host']}/v2/faults/app/manifests/1" in msg and "3 attempts" in msg
    assert _manifest_gets(front) == 3


def test_retry_after_too_long_is_not_waited_for(front):
    _set(front, "429", left=1, retry_after="3600")
    with pytest.raises(ll.SourceError) as e:
        ll.load(f"docker://{front['host']}/faults/app:1")
    assert "HTTP 429" in str(e.value) and "3600" in str(e.value)


def test_dropped_connection_is_retried(front):
    _set(front, "drop", left=1)
    assert ll.load(f"docker://{front['host']}/faults/app:1").manifest_digest == _digest(front)
    assert _manifest_gets(front) == 2


def test_hanging_server_times_out(front):
    _set(front, "hang")
    with pytest.raises(ll.SourceError) as e:
        ll.load(f"docker://{front['host']}/faults/app:1", timeout=0.5)
    assert "0.5 s" in str(e.value) and f"{front['host']}/v2/faults/app/manifests/1" in str(e.value)


def test_trickled_body_hits_the_deadline(front):
    _set(front, "trickle")
    with pytest.raises(ll.SourceError) as e:  # each byte comes well within timeout=5: only the deadline can fire
        ll.load(f"docker://{front['host']}/faults/app:1", timeout=5, deadline=1)
    assert "deadline" in str(e.value) and "faults/app" in str(e.value)


def test_trickled_headers_hit_the_deadline(front):
    _set(front, "trickle-headers")
    with pytest.raises(ll.SourceError) as e:
        ll.load(f"docker://{front['host']}/faults/app:1", timeout=5, deadline=1)
    assert "deadline" in str(e.value) and f"{front['host']}/v2/faults/app/manifests/1" in str(e.value)


def test_trickled_layer_blob_hits_the_deadline(front):
    _set(front, "pass")
    img = ll.load(f"docker://{front['host']}/faults/app:1", timeout=5, deadline=1)
    _set(front, "blob-trickle")
    with pytest.raises(ll.SourceError) as e:
        for _p, _mt, f in img.blobs.iter_blobs():
            f.read()
    assert "deadline" in str(e.value) and img.layer_list[0].digest in str(e.value)


def test_deeply_nested_json(front):
    _set(front, "deep-json")
    with pytest.raises(ll.FormatError) as e:
        ll.load(f"docker://{front['host']}/faults/app:1")
    assert "nests too deeply" in str(e.value)


def test_broken_gzip_encoding(front):
    _set(front, "bad-gzip")
    with pytest.raises(ll.SourceError) as e:
        ll.load(f"docker://{front['host']}/faults/app:1")
    assert f"{front['host']}/faults/app:1" in str(e.value) and "broke off" in str(e.value)


def test_broken_chunked_encoding(front):
    _set(front, "bad-chunks")
    with pytest.raises(ll.SourceError) as e:
        ll.load(f"docker://{front['host']}/faults/app:1", retries=0)
    assert f"{front['host']}/faults/app:1" in str(e.value)


def test_unknown_manifest_media_type(front):
    _set(front, "unknown-type")
    with pytest.raises(ll.FormatError) as e:
        ll.load(f"docker://{front['host']}/faults/app:1")
    msg = str(e.value)
    assert "application/vnd.example.thing.v1+json" in msg and "HTTP 200" in msg
    assert f"http://{front['host']}/v2/faults/app/manifests/1" in msg


def test_wrong_content_digest_header(front):
    _set(front, "wrong-digest")
    with pytest.raises(ll.DigestMismatchError) as e:
        ll.load(f"docker://{front['host']}/faults/app:1")
    assert "0" * 64 in str(e.value) and f"http://{front['host']}/v2/faults/app/manifests/1" in str(e.value)


def test_404_tag_names_url_and_status(front):
    _set(front, "pass")
    with pytest.raises(ll.SourceError) as e:
        ll.load(f"docker://{front['host']}/faults/app:nope")
    assert "HTTP 404" in str(e.value) and f"http://{front['host']}/v2/faults/app/manifests/nope" in str(e.value)


def _tag_list_gets(front) -> int:
    return sum(p.split("?")[0].endswith("/tags/list") for p in front["state"]["paths"])


def test_tag_list_follows_link_pages(front):
    _set(front, "paged")
    fleet = ll.load_many(f"docker://{front['host']}/faults/paged", page_size=2)
    assert sorted(t for img in fleet for t in img.repo_tags) == [f"{front['host']}/faults/paged:{t}" for t in PAGED_TAGS]
    assert _tag_list_gets(front) == 3  # 2 + 2 + 1
    listed = skopeo("list-tags", "--tls-verify=false", f"docker://{front['registry'].ref('faults/paged')}")
    assert sorted(json.loads(listed)["Tags"]) == PAGED_TAGS
    _set(front, "paged")
    some = ll.load_many(f"docker://{front['host']}/faults/paged", page_size=2, tags=r"[ab]2")
    assert sorted(t for img in some for t in img.repo_tags) == [f"{front['host']}/faults/paged:a2",
                                                                f"{front['host']}/faults/paged:b2"]


@pytest.mark.parametrize("mode,words", [("paged-away", "outside this registry"), ("paged-loop", "loops")])
def test_bad_next_links(front, mode, words):
    _set(front, mode)
    with pytest.raises(ll.FormatError) as e:
        ll.load_many(f"docker://{front['host']}/faults/paged", page_size=2)
    assert words in str(e.value) and f"{front['host']}/v2/faults/paged/tags/list" in str(e.value)
    assert "127.0.0.2" not in "".join(front["state"]["paths"])


def test_bad_options_are_clear():
    for bad in ({"retries": -1}, {"deadline": 0}, {"timeout": "soon"}):
        with pytest.raises(ll.SourceError) as e:
            ll.load("docker://127.0.0.1:9/x:1", **bad)
        assert next(iter(bad)) in str(e.value)


def test_retry_after_parsing():
    assert retry_after("7") == 7.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0  # 07:27:50 then
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0   # already past
    assert retry_after("soon") is None and retry_after(None) is None
    assert [retry_wait(n, None) for n in range(4)] == [0.25, 0.5, 1.0, 2.0]
    assert retry_wait(3, "1") == 1.0
