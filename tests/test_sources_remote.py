"""docker:// against a real registry (Debian's docker-registry on 127.0.0.1), fed by skopeo.

Expected values come from skopeo (``inspect --raw`` / ``--config``), hashed
here with hashlib, from the engine (the source image's RootFS), and from the
test's own hand-made OCI layout.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import zlib

import pytest

import layerlab as ll
from layerlab.sources import remote
from enginekit import build, inspect as engine_inspect, save
from registrykit import inspect_config_raw, inspect_json, inspect_raw, push_archive, push_oci, skopeo

DOCKERFILE = """FROM {base}
RUN echo remote > /remote.txt
ENV R=1
COPY data.bin /data.bin
RUN rm /remote.txt
"""


def sha(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


@pytest.fixture(scope="module")
def pushed(registry, busybox_base, tmp_path_factory):
    """An image built by the engine, saved, and copied into the registry by skopeo."""
    tag = "layerlab-test/remote:one"
    build(tag, DOCKERFILE.format(base=busybox_base), {"data.bin": bytes(range(256)) * 40})
    archive = save(tag, tmp_path_factory.mktemp("remote") / "one.tar")
    ref = registry.ref("layerlab/one:1.0")
    push_archive(archive, ref)
    return {"tag": tag, "ref": ref, "archive": archive}


def test_manifest_config_and_layers_match_skopeo(pushed):
    ref = pushed["ref"]
    raw = inspect_raw(ref)
    manifest = json.loads(raw)
    config_raw = inspect_config_raw(ref)
    config = json.loads(config_raw)
    img = ll.load(f"docker://{ref}")
    assert img.source == "docker"
    assert img.manifest_digest == sha(raw) == inspect_json(ref)["Digest"]
    assert img.id == sha(config_raw) == manifest["config"]["digest"]
    # the engine that built it says the same image id and diff_ids
    eng = engine_inspect(pushed["tag"])
    assert img.id == eng["Id"]
    lay = img.layers()
    assert list(lay["diff_id"]) == config["rootfs"]["diff_ids"] == eng["RootFS"]["Layers"]
    assert list(lay["digest"]) == [l["digest"] for l in manifest["layers"]]
    assert [int(x) for x in lay["compressed_size"]] == [l["size"] for l in manifest["layers"]]
    assert list(lay["media_type"]) == [l["mediaType"] for l in manifest["layers"]]
    assert lay["size"].isna().all()  # a registry does not state uncompressed sizes; never guessed
    assert int(img.images()["compressed_size"].iloc[0]) == sum(l["size"] for l in manifest["layers"])
    assert img.platform == f"{config['os']}/{config['architecture']}"
    # history and pairing from the config's empty_layer flags
    hist = img.history()
    assert list(hist["created_by"].fillna("")) == [h.get("created_by", "") for h in config["history"]]
    assert [bool(x) for x in hist["empty_layer"]] == [bool(h.get("empty_layer")) for h in config["history"]]
    assert set(hist["pairing"]) <= {"config", "no_layer"}
    assert not img.unpaired_layers


def test_same_chain_ids_as_the_engine(pushed):
    img = ll.load(f"docker://{pushed['ref']}")
    local = ll.load(f"docker-daemon:{pushed['tag']}")
    assert list(img.layers()["chain_id"]) == list(local.layers()["chain_id"])


def test_by_digest_and_bare_host_forms(pushed, registry):
    raw = inspect_raw(pushed["ref"])
    by_digest = ll.load(f"docker://{registry.ref('layerlab/one')}@{sha(raw)}")
    assert by_digest.manifest_digest == sha(raw)
    by_prefix = ll.load(f"docker:{registry.ref('layerlab/one:1.0')}")  # skopeo also accepts docker: + //
    assert by_prefix.id == by_digest.id


def test_blobs_stream_and_verify(pushed):
    img = ll.load(f"docker://{pushed['ref']}")
    seen = []
    for positions, media_type, f in img.blobs.iter_blobs():
        blob = f.read()
        layer = img.layer_list[positions[0]]
        assert sha(blob) == layer.digest and len(blob) == layer.compressed_size
        assert media_type == layer.media_type
        data = gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob
        assert sha(data) == layer.diff_id
        seen.extend(positions)
        if layer.position == 2:  # COPY data.bin
            with tarfile.open(fileobj=io.BytesIO(data)) as tf:
                assert tf.extractfile("data.bin").read() == bytes(range(256)) * 40
    assert sorted(seen) == list(range(len(img.layer_list)))


def test_missing_tag_and_dead_registry(registry):
    with pytest.raises(ll.SourceError) as e:
        ll.load(f"docker://{registry.ref('layerlab/one:no-such-tag')}")
    assert "layerlab/one:no-such-tag" in str(e.value) and "404" in str(e.value)
    with pytest.raises(ll.SourceError) as e:
        ll.load("docker://127.0.0.1:9/layerlab/one:1.0")
    assert "127.0.0.1:9" in str(e.value)


def _pushed_one(registry, busybox_base, tmp_path, name: str, data: bytes) -> tuple[str, str]:
    """A one-off image (its own label: its own config blob) built, saved and pushed as
    ``layerlab/NAME:1``; returns (its reference, its config digest)."""
    tag = f"layerlab-test/remote:{name}"
    build(tag, DOCKERFILE.format(base=busybox_base) + f"LABEL layerlab.{name}=yes\n", {"data.bin": data})
    ref = registry.ref(f"layerlab/{name}:1")
    push_archive(save(tag, tmp_path / f"{name}.tar"), ref)
    return ref, json.loads(inspect_raw(ref))["config"]["digest"]


def test_corrupt_config_blob_is_detected(registry, busybox_base, tmp_path):
    ref, config_digest = _pushed_one(registry, busybox_base, tmp_path, "corrupt", b"x")
    path = registry.blob_file(config_digest)
    data = bytearray(path.read_bytes())
    data[10] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ll.DigestMismatchError) as e:
        ll.load(f"docker://{ref}")
    assert config_digest in str(e.value)


class DictStore:
    """A config store as ll.scan's cache is one: bytes by digest."""

    def __init__(self):
        self.blobs: dict[str, bytes] = {}
        self.gets = 0

    def get_config(self, digest):
        self.gets += 1
        return self.blobs.get(digest)

    def put_config(self, digest, raw):
        self.blobs[digest] = raw


def test_a_config_store_serves_configs_by_digest_and_is_never_trusted_blindly(registry, busybox_base, tmp_path):
    ref, config_digest = _pushed_one(registry, busybox_base, tmp_path, "store", b"s")
    store = DictStore()
    first = ll.load(f"docker://{ref}", config_store=store)
    assert list(store.blobs) == [config_digest]  # fetched from the registry, then kept
    assert sha(store.blobs[config_digest]) == config_digest
    # the registry loses the blob: the kept copy serves the load (the manifest still names it)
    registry.blob_file(config_digest).unlink()
    again = ll.load(f"docker://{ref}", config_store=store)
    assert again.config == first.config and again.id == config_digest
    with pytest.raises(ll.LayerlabError):
        ll.load(f"docker://{ref}")  # without the store the registry answers 404
    # a damaged kept copy is not used: the registry is asked (and here it has nothing)
    store.blobs[config_digest] = store.blobs[config_digest][:-1] + b" "
    with pytest.raises(ll.LayerlabError):
        ll.load(f"docker://{ref}", config_store=store)


def test_corrupt_layer_blob_is_detected_on_read(registry, busybox_base, tmp_path):
    tag = "layerlab-test/remote:corrupt-layer"
    build(tag, DOCKERFILE.format(base=busybox_base), {"data.bin": b"corrupt me " * 100})
    ref = registry.ref("layerlab/corrupt-layer:1")
    push_archive(save(tag, tmp_path / "c.tar"), ref)
    img = ll.load(f"docker://{ref}")
    victim = img.layer_list[2]  # COPY data.bin: unique to this image
    path = registry.blob_file(victim.digest)
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ll.DigestMismatchError) as e:
        for _p, _mt, f in img.blobs.iter_blobs([2]):
            f.read()
    assert victim.digest in str(e.value)


# ---------------------------------------------------------------------------
# multi-platform: an OCI layout made here, pushed with `skopeo copy --all`
# ---------------------------------------------------------------------------
def _blob(root, data: bytes) -> dict:
    d = sha(data)
    (root / "blobs/sha256").mkdir(parents=True, exist_ok=True)
    (root / "blobs/sha256" / d.split(":")[1]).write_bytes(data)
    return {"digest": d, "size": len(data)}


def _gz_layer(files: dict[str, bytes]) -> tuple[bytes, bytes]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    tar = buf.getvalue()
    c = zlib.compressobj(6, zlib.DEFLATED, 31)
    return tar, c.compress(tar) + c.flush()


def _platform_image(root, arch: str, variant: str | None, payload: bytes) -> tuple[dict, dict]:
    tar, gz = _gz_layer({f"hello-{arch}": payload})
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **_blob(root, gz)}
    config = {
        "architecture": arch, "os": "linux", "created": "2024-01-02T03:04:05Z",
        "rootfs": {"type": "layers", "diff_ids": [sha(tar)]},
        "history": [{"created": "2024-01-02T03:04:05Z", "created_by": f"COPY hello-{arch} /"},
                    {"created": "2024-01-02T03:04:05Z", "created_by": "ENV A=1", "empty_layer": True}],
    }
    if variant:
        config["variant"] = variant
    cdesc = {"mediaType": "application/vnd.oci.image.config.v1+json", **_blob(root, json.dumps(config).encode())}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": cdesc, "layers": [layer]}
    mdesc = {"mediaType": "application/vnd.oci.image.manifest.v1+json", **_blob(root, json.dumps(manifest).encode()),
             "platform": {"os": "linux", "architecture": arch, **({"variant": variant} if variant else {})}}
    return mdesc, {"tar": tar, "gz": gz, "config": config}


@pytest.fixture(scope="module")
def multiarch(registry, tmp_path_factory):
    root = tmp_path_factory.mktemp("oci-multi")
    amd, amd_facts = _platform_image(root, "amd64", None, b"amd64 payload\n" * 10)
    arm, arm_facts = _platform_image(root, "arm64", "v8", b"arm64 payload\n" * 20)
    inner = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [amd, arm]}
    idesc = {"mediaType": "application/vnd.oci.image.index.v1+json", **_blob(root, json.dumps(inner).encode()),
             "annotations": {"org.opencontainers.image.ref.name": "multi"}}
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [idesc]}))
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    ref = registry.ref("layerlab/multi:1")
    skopeo("copy", "--quiet", "--all", "--dest-tls-verify=false",
           f"oci:{root}:multi", f"docker://{ref}")
    return {"ref": ref, "amd64": amd_facts, "arm64": arm_facts}


def test_index_platform_selection(multiarch):
    ref = multiarch["ref"]
    index_raw = inspect_raw(ref)
    index = json.loads(index_raw)
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    by_arch = {m["platform"]["architecture"]: m for m in index["manifests"]}
    for arch, plat in (("amd64", "linux/amd64"), ("arm64", "linux/arm64"), ("arm64", "linux/arm64/v8")):
        img = ll.load(f"docker://{ref}", platform=plat)
        facts = multiarch[arch]
        assert img.manifest_digest == by_arch[arch]["digest"]
        assert img.platform == {"amd64": "linux/amd64", "arm64": "linux/arm64/v8"}[arch]
        assert [l.diff_id for l in img.layer_list] == [sha(facts["tar"])]
        assert [l.digest for l in img.layer_list] == [sha(facts["gz"])]
        assert f"{registry_name(ref)}@{sha(index_raw)}" in img.repo_digests
        # skopeo's own reading of that platform's config
        cfg = json.loads(inspect_config_raw(ref, "--override-arch", arch))
        assert img.config == cfg
    default = ll.load(f"docker://{ref}")  # the host's platform
    from layerlab.sources._platform import host_platform, matches

    assert matches(default.platform, host_platform())


def registry_name(ref: str) -> str:
    return ref.rsplit(":", 1)[0]


def test_index_unknown_platform_lists_what_is_there(multiarch):
    with pytest.raises(ll.SourceError) as e:
        ll.load(f"docker://{multiarch['ref']}", platform="linux/s390x")
    msg = str(e.value)
    assert "linux/s390x" in msg and "linux/amd64" in msg and "linux/arm64/v8" in msg


def test_load_many_all_platforms(multiarch):
    fleet = ll.load_many(f"docker://{multiarch['ref']}", platform="all")
    assert sorted(fleet.images()["platform"]) == ["linux/amd64", "linux/arm64/v8"]
    assert len(set(fleet.images()["image"])) == 2


def test_blob_of_other_platform_streams(multiarch):
    img = ll.load(f"docker://{multiarch['ref']}", platform="linux/arm64")
    got = [(positions, mt, f.read()) for positions, mt, f in img.blobs.iter_blobs()]  # fileobj valid until next
    assert [(p, mt) for p, mt, _ in got] == [([0], "application/vnd.oci.image.layer.v1.tar+gzip")]
    assert gzip.decompress(got[0][2]) == multiarch["arm64"]["tar"]


# ---------------------------------------------------------------------------
# reference parsing (no registry needed)
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("text,host,repo,reference", [
    ("busybox", "docker.io", "library/busybox", "latest"),
    ("library/busybox:1.36", "docker.io", "library/busybox", "1.36"),
    ("ghcr.io/org/app:v1", "ghcr.io", "org/app", "v1"),
    ("localhost:5000/a/b", "localhost:5000", "a/b", "latest"),
    ("127.0.0.1:5000/x@sha256:" + "a" * 64, "127.0.0.1:5000", "x", "sha256:" + "a" * 64),
])
def test_reference_parsing(text, host, repo, reference):
    r = remote.Reference(text)
    assert (r.host, r.repository, r.reference) == (host, repo, reference)


@pytest.mark.parametrize("bad", ["", "UPPER/case:1", "x@sha256:abc", "x:bad tag"])
def test_bad_references(bad):
    with pytest.raises(ll.SourceError):
        ll.load(f"docker://{bad}")


# ---------------------------------------------------------------------------
# Bearer-token auth: a token-demanding front (the Distribution token flow,
# as Docker Hub/GHCR use it) in front of the real registry
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def token_front(registry):
    import base64
    import threading
    import urllib.error
    import urllib.request
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    token = "layerlab-token-42"
    user, password = "alice", "s3cret"
    seen_scopes: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output quiet
            pass

        def do_GET(self):
            host = f"127.0.0.1:{self.server.server_address[1]}"
            if self.path.startswith("/token"):
                want = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
                if self.headers.get("Authorization") != want:
                    self.send_response(401)
                    self.end_headers()
                    return
                from urllib.parse import parse_qs, urlparse

                seen_scopes.extend(parse_qs(urlparse(self.path).query).get("scope", []))
                body = json.dumps({"token": token}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if self.headers.get("Authorization") != f"Bearer {token}":
                name = self.path.split("/manifests/")[0].split("/blobs/")[0][len("/v2/"):]
                self.send_response(401)
                self.send_header("WWW-Authenticate", f'Bearer realm="http://{host}/token",service="layerlab-test",'
                                                     f'scope="repository:{name}:pull"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            req = urllib.request.Request(f"http://{registry.host}{self.path}",
                                         headers={"Accept": self.headers.get("Accept", "*/*")})
            try:
                with urllib.request.urlopen(req) as r:
                    status, headers, body = r.status, r.headers, r.read()
            except urllib.error.HTTPError as e:
                status, headers, body = e.code, e.headers, e.read()
            self.send_response(status)
            for h in ("Content-Type", "Docker-Content-Digest"):
                if headers.get(h):
                    self.send_header(h, headers[h])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"host": f"127.0.0.1:{server.server_address[1]}", "auth": (user, password), "scopes": seen_scopes}
    finally:
        server.shutdown()
        server.server_close()


def test_bearer_token_flow(pushed, token_front):
    ref = f"{token_front['host']}/layerlab/one:1.0"
    with pytest.raises(ll.SourceError) as e:  # anonymous: the token service refuses
        ll.load(f"docker://{ref}")
    assert "auth=" in str(e.value)
    with pytest.raises(ll.SourceError):
        ll.load(f"docker://{ref}", auth=("alice", "wrong"))
    img = ll.load(f"docker://{ref}", auth=token_front["auth"])
    direct = ll.load(f"docker://{pushed['ref']}")
    assert (img.id, img.manifest_digest) == (direct.id, direct.manifest_digest)
    assert list(img.layers()["digest"]) == list(direct.layers()["digest"])
    assert "repository:layerlab/one:pull" in token_front["scopes"]
    # blobs go through the same token
    n = sum(len(f.read()) for _p, _mt, f in img.blobs.iter_blobs([0]))
    assert n == img.layer_list[0].compressed_size


def test_file_tables_from_registry_equal_the_engines(pushed, tmp_path):
    """Layer contents through RemoteBlobs (two worker processes) equal those streamed from the engine."""
    cols = ["position", "path", "type", "size", "link_target"]
    remote_files = ll.load(f"docker://{pushed['ref']}").files(cache_dir=False, progress=False, workers=2)
    local_files = ll.load(f"docker-daemon:{pushed['tag']}").files(cache_dir=False, progress=False, workers=1)
    r = remote_files[cols].sort_values(["position", "path"]).reset_index(drop=True)
    l = local_files[cols].sort_values(["position", "path"]).reset_index(drop=True)
    assert len(r) > 20
    assert r.equals(l)
    # and against the archive read by hand: /data.bin in layer 2 with its size
    row = r[(r["position"] == 2) & (r["path"] == "data.bin")]
    assert int(row["size"].iloc[0]) == 256 * 40


def test_docker_manifest_list(multiarch, registry):
    """The same index converted by skopeo to a Docker schema 2 manifest list."""
    src, dest = multiarch["ref"], registry.ref("layerlab/multi-v2s2:1")
    skopeo("copy", "--quiet", "--all", "--format", "v2s2", "--src-tls-verify=false", "--dest-tls-verify=false",
           f"docker://{src}", f"docker://{dest}")
    index = json.loads(inspect_raw(dest))
    assert index["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json"
    by_arch = {m["platform"]["architecture"]: m["digest"] for m in index["manifests"]}
    img = ll.load(f"docker://{dest}", platform="linux/arm64")
    assert img.manifest_digest == by_arch["arm64"]
    manifest = json.loads(skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{registry.ref('layerlab/multi-v2s2')}@{by_arch['arm64']}"))
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert [l.media_type for l in img.layer_list] == [l["mediaType"] for l in manifest["layers"]]
    assert [l.diff_id for l in img.layer_list] == [sha(multiarch["arm64"]["tar"])]


# ---------------------------------------------------------------------------
# hostile content stored in the real registry through its API
# ---------------------------------------------------------------------------
def _hostile(registry, name: str, config: bytes, layer_media_type: str, n_layers: int = 1):
    from registrykit import push_raw

    tar, gz = _gz_layer({"x": b"x"})
    layer = {"mediaType": layer_media_type, "digest": sha(gz), "size": len(gz)}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config),
                           "size": len(config)},
                "layers": [layer] * n_layers}
    push_raw(registry, name, "1", [gz, config], json.dumps(manifest).encode(),
             "application/vnd.oci.image.manifest.v1+json")
    return registry.ref(f"{name}:1"), sha(tar)


def test_hostile_config_not_json(registry):
    ref, _ = _hostile(registry, "layerlab/hostile-json", b"<html>not json</html>",
                      "application/vnd.oci.image.layer.v1.tar+gzip")
    with pytest.raises(ll.FormatError) as e:
        ll.load(f"docker://{ref}")
    assert "not valid JSON" in str(e.value) and "layerlab/hostile-json" in str(e.value)


def test_hostile_layer_count_mismatch(registry):
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]}}).encode()
    ref, _ = _hostile(registry, "layerlab/hostile-count", config, "application/vnd.oci.image.layer.v1.tar+gzip",
                      n_layers=2)
    with pytest.raises(ll.FormatError) as e:
        ll.load(f"docker://{ref}")
    assert "2 layers" in str(e.value) and "1 diff_ids" in str(e.value)


def test_hostile_unknown_layer_media_type(registry):
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]}}).encode()
    mt = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
    ref, _ = _hostile(registry, "layerlab/hostile-mt", config, mt)
    with pytest.raises(ll.FormatError) as e:
        ll.load(f"docker://{ref}")
    assert mt in str(e.value)


def test_single_platform_image_with_other_platform_asked(pushed):
    img = ll.load(f"docker://{pushed['ref']}")
    other = "linux/s390x" if img.platform != "linux/s390x" else "linux/amd64"
    with pytest.raises(ll.SourceError) as e:
        ll.load(f"docker://{pushed['ref']}", platform=other)
    assert other in str(e.value) and img.platform in str(e.value)
    assert ll.load(f"docker://{pushed['ref']}", platform=img.platform).id == img.id


def test_verifying_reader_checks_at_eof_however_it_is_read():
    from layerlab.sources._stream import VerifyingReader

    data = bytes(range(256)) * 40
    good = "sha256:" + hashlib.sha256(data).hexdigest()
    reads = {
        "read(n)": lambda r: b"".join(iter(lambda: r.read(999), b"")),
        "read()": lambda r: r.read(),
        "buffered": lambda r: io.BufferedReader(r).read(),
    }
    for name, read in reads.items():
        r = VerifyingReader(io.BytesIO(data), good, "blob", length=len(data))
        assert read(r) == data and r.verified and r.bytes_read == len(data), name
        with pytest.raises(ll.DigestMismatchError, match="hashes to"):
            read(VerifyingReader(io.BytesIO(data[:-1] + b"x"), good, "blob"))
        with pytest.raises(ll.DigestMismatchError, match="descriptor says"):
            read(VerifyingReader(io.BytesIO(data[:-5]), good, "blob", length=len(data)))
