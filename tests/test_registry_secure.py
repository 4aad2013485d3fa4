"""docker:// against a registry as users have them: Debian's docker-registry on 127.0.0.1 with
htpasswd auth, HTTPS from a CA made here (trustme) that also demands a client certificate,
credentials from a docker config (``auths``, ``credHelpers``/``credsStore`` through a real
``docker-credential-test`` executable), certificates from a certs.d directory; tag listing and
the catalog walk (the registry pages its catalog two entries at a time).

Expected values: the tags and payloads this file pushes, and skopeo's reading of the registry
(given the same credentials and certificate directory).
"""
from __future__ import annotations

import base64
import json
import os
import stat
import sys

import pytest

import layerlab as ll
from layerlab.sources._auth import Credentials
from registrykit import REGISTRY_BIN, SKOPEO_BIN, skopeo, start_registry, stop_registry_proc, tiny_layout

USER = "alice"
PASSWORD = "pa$$-Wörd-7c1f9e"   # distinctive, so a leak into any message is found
APP_TAGS = {"1.0": b"one-oh\n", "1.1": b"one-one\n", "2.0": b"two-oh\n"}
BASE_TAGS = {"1": b"base\n"}
OTHER_TAGS = {"x": b"other\n"}


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    for binary in (REGISTRY_BIN, SKOPEO_BIN):
        if not os.path.exists(binary):
            pytest.skip(f"{binary} is missing (apt-get install docker-registry skopeo)")
    trustme = pytest.importorskip("trustme")
    bcrypt = pytest.importorskip("bcrypt")
    work = tmp_path_factory.mktemp("secure-registry")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("layerlab-client")
    server.cert_chain_pems[0].write_to_path(str(work / "server.pem"))
    server.private_key_pem.write_to_path(str(work / "server.key"))
    ca.cert_pem.write_to_path(str(work / "ca.pem"))
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=5)).decode()
    (work / "htpasswd").write_text(f"{USER}:{hashed}\n")
    extra = (f"auth:\n  htpasswd:\n    realm: layerlab-test\n    path: {work / 'htpasswd'}\n"
             "catalog:\n  maxentries: 2\n")
    reg = start_registry(work / "reg", extra, tls=(work / "server.pem", work / "server.key", work / "ca.pem"))
    certs_d = work / "certs.d"
    host_dir = certs_d / reg.host
    host_dir.mkdir(parents=True)
    ca.cert_pem.write_to_path(str(host_dir / "ca.crt"))
    client.cert_chain_pems[0].write_to_path(str(host_dir / "client.cert"))
    client.private_key_pem.write_to_path(str(host_dir / "client.key"))
    try:
        for repo, tags in (("team/app", APP_TAGS), ("team/base", BASE_TAGS), ("other", OTHER_TAGS)):
            layout = tiny_layout(work / f"layout-{repo.replace('/', '-')}", tags)
            for tag in tags:
                skopeo("copy", "--quiet", f"--dest-creds={USER}:{PASSWORD}", f"--dest-cert-dir={host_dir}",
                       f"oci:{layout}:{tag}", f"docker://{reg.host}/{repo}:{tag}")
        yield {"host": reg.host, "certs_d": certs_d, "host_dir": host_dir, "work": work, "ca": ca}
    finally:
        stop_registry_proc(reg.proc)


def _skopeo_digest(secure, ref: str) -> str:
    out = skopeo("inspect", f"--creds={USER}:{PASSWORD}", f"--cert-dir={secure['host_dir']}", f"docker://{ref}")
    return json.loads(out)["Digest"]


def _config(tmp_path, doc: dict):
    d = tmp_path / "dockercfg"
    d.mkdir(exist_ok=True)
    (d / "config.json").write_text(json.dumps(doc))
    return d


def _helper(tmp_path, name: str, host: str):
    """A real credential helper speaking the protocol; it logs each server address it is asked for."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    log = tmp_path / f"{name}.log"
    script = bindir / f"docker-credential-{name}"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        "action = sys.argv[1]\n"
        "server = sys.stdin.read().strip()\n"
        f"open({str(log)!r}, 'a').write(action + ' ' + server + '\\n')\n"
        f"if action == 'get' and server == {host!r}:\n"
        f"    print(json.dumps({{'ServerURL': server, 'Username': {USER!r}, 'Secret': {PASSWORD!r}}}))\n"
        "else:\n"
        "    print('credentials not found in native keychain'); sys.exit(1)\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return bindir, log


def _no_secret(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text
        assert base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode() not in text


def test_auths_and_certs_d(secure, tmp_path, monkeypatch):
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    monkeypatch.setenv("DOCKER_CONFIG", str(_config(tmp_path, {"auths": {secure["host"]: {"auth": auth}}})))
    ref = f"{secure['host']}/team/app:1.1"
    img = ll.load(f"docker://{ref}", certs_dir=secure["certs_d"])
    assert img.manifest_digest == _skopeo_digest(secure, ref)
    data = b"".join(f.read() for _p, _mt, f in img.blobs.iter_blobs())  # blobs through the same TLS + auth
    import gzip, io, tarfile

    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tf:
        assert tf.extractfile("payload").read() == APP_TAGS["1.1"]
    _no_secret(repr(img), repr(img.blobs), repr(img.blobs._client), str(img.images().to_dict()))


def test_auths_username_password_and_https_key(secure, tmp_path):
    cfg = _config(tmp_path, {"auths": {f"https://{secure['host']}/v1/": {"username": USER, "password": PASSWORD}}})
    img = ll.load(f"docker://{secure['host']}/team/base:1", certs_dir=secure["certs_d"], docker_config=cfg)
    assert img.manifest_digest == _skopeo_digest(secure, f"{secure['host']}/team/base:1")


@pytest.mark.parametrize("key", ["credHelpers", "credsStore"])
def test_credential_helper(secure, tmp_path, monkeypatch, key):
    bindir, log = _helper(tmp_path, "test", secure["host"])
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    doc = {"credHelpers": {secure["host"]: "test"}} if key == "credHelpers" else {"credsStore": "test"}
    cfg = _config(tmp_path, doc)
    img = ll.load(f"docker://{secure['host']}/team/app:2.0", certs_dir=secure["certs_d"], docker_config=cfg)
    assert img.manifest_digest == _skopeo_digest(secure, f"{secure['host']}/team/app:2.0")
    assert log.read_text().splitlines() == [f"get {secure['host']}"]  # asked once, for this host


def test_missing_helper_is_a_clear_error(secure, tmp_path):
    cfg = _config(tmp_path, {"credsStore": "layerlab-absent"})
    with pytest.raises(ll.SourceError) as e:
        ll.load(f"docker://{secure['host']}/team/app:1.0", certs_dir=secure["certs_d"], docker_config=cfg)
    assert "docker-credential-layerlab-absent" in str(e.value) and "PATH" in str(e.value)


def test_explicit_auth_wins_over_the_config(secure, tmp_path):
    cfg = _config(tmp_path, {"auths": {secure["host"]: {"username": USER, "password": "not-this-one"}}})
    img = ll.load(f"docker://{secure['host']}/other:x", certs_dir=secure["certs_d"], docker_config=cfg,
                  auth=(USER, PASSWORD))
    assert img.manifest_digest == _skopeo_digest(secure, f"{secure['host']}/other:x")


def test_401_without_credentials(secure):
    ref = f"{secure['host']}/team/app:1.0"
    with pytest.raises(ll.SourceError) as e:
        ll.load(f"docker://{ref}", certs_dir=secure["certs_d"], docker_config=False)
    msg = str(e.value)
    assert "HTTP 401" in msg and f"https://{secure['host']}/v2/team/app/manifests/1.0" in msg
    assert "docker login" in msg


def test_wrong_password_never_shown(secure, tmp_path):
    wrong = PASSWORD + "-wrong"
    cfg = _config(tmp_path, {"auths": {secure["host"]: {"username": USER, "password": wrong}}})
    with pytest.raises(ll.SourceError) as e:
        ll.load(f"docker://{secure['host']}/team/app:1.0", certs_dir=secure["certs_d"], docker_config=cfg)
    msg = str(e.value)
    assert "HTTP 401" in msg and str(cfg / "config.json") in msg
    assert wrong not in msg and PASSWORD not in msg
    creds = Credentials(USER, PASSWORD, "test")
    _no_secret(repr(creds), str(creds))
    assert USER in repr(creds)


def test_tls_needs_the_ca(secure, tmp_path):
    with pytest.raises(ll.SourceError) as e:  # no certs.d: the test CA is unknown
        ll.load(f"docker://{secure['host']}/team/app:1.0", certs_dir=tmp_path, auth=(USER, PASSWORD), retries=0,
                tls_verify=True)  # loopback would mean plain HTTP without certs.d
    assert "certs.d" in str(e.value) and secure["host"] in str(e.value)


def test_client_certificate_is_required(secure, tmp_path):
    d = tmp_path / "certs.d" / secure["host"]
    d.mkdir(parents=True)
    secure["ca"].cert_pem.write_to_path(str(d / "ca.crt"))  # the CA but no client pair
    with pytest.raises(ll.SourceError) as e:
        ll.load(f"docker://{secure['host']}/team/app:1.0", certs_dir=tmp_path / "certs.d", auth=(USER, PASSWORD),
                retries=0)
    assert secure["host"] in str(e.value)
    _no_secret(str(e.value))


def test_client_cert_without_key_is_refused(secure, tmp_path):
    d = tmp_path / "certs.d" / secure["host"]
    d.mkdir(parents=True)
    (d / "client.cert").write_bytes((secure["host_dir"] / "client.cert").read_bytes())
    with pytest.raises(ll.SourceError) as e:
        ll.load(f"docker://{secure['host']}/team/app:1.0", certs_dir=tmp_path / "certs.d", auth=(USER, PASSWORD))
    assert "client.key" in str(e.value) and ".crt" in str(e.value)


def test_tag_listing_with_filter(secure):
    fleet = ll.load_many(f"docker://{secure['host']}/team/app", tags=r"1\..*", certs_dir=secure["certs_d"],
                         auth=(USER, PASSWORD))
    tags = sorted(t for img in fleet for t in img.repo_tags)
    assert tags == [f"{secure['host']}/team/app:1.0", f"{secure['host']}/team/app:1.1"]
    everything = ll.load_many(f"docker://{secure['host']}/team/app", certs_dir=secure["certs_d"],
                              auth=(USER, PASSWORD))
    assert len(everything.images()) == len(APP_TAGS)


def test_tag_filter_matching_nothing(secure):
    with pytest.raises(ll.SourceError) as e:
        ll.load_many(f"docker://{secure['host']}/team/app", tags="9.*", certs_dir=secure["certs_d"],
                     auth=(USER, PASSWORD))
    assert "1.0" in str(e.value) and "9.*" in str(e.value)


def test_catalog_walk_follows_pages(secure):
    """The registry sends the catalog 2 repositories a page (catalog.maxentries); there are 3."""
    fleet = ll.load_many(f"docker://{secure['host']}/", certs_dir=secure["certs_d"], auth=(USER, PASSWORD))
    tags = sorted(t for img in fleet for t in img.repo_tags)
    want = sorted([f"{secure['host']}/team/app:{t}" for t in APP_TAGS]
                  + [f"{secure['host']}/team/base:{t}" for t in BASE_TAGS]
                  + [f"{secure['host']}/other:{t}" for t in OTHER_TAGS])
    assert tags == want
    small_pages = ll.load_many(f"docker://{secure['host']}/", certs_dir=secure["certs_d"], auth=(USER, PASSWORD),
                               tags="1.*", page_size=1)
    assert sorted(t for img in small_pages for t in img.repo_tags) == [
        f"{secure['host']}/team/app:1.0", f"{secure['host']}/team/app:1.1", f"{secure['host']}/team/base:1"]
