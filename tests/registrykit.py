"""A real registry for tests: Debian's ``docker-registry`` on 127.0.0.1, plus skopeo.

``registry`` (session fixture, re-exported by conftest.py) starts
``docker-registry serve cfg.yml`` with filesystem storage under a temp dir on
a free loopback port, waits for ``/v2/``, and stops it at the end.  It skips
with a reason when ``docker-registry`` or ``skopeo`` is missing (.ci/run
installs both).

``skopeo(*args)`` runs skopeo and returns stdout; ``push_archive(tar, ref)``
copies a ``docker save`` archive into the registry.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"
SKOPEO_BIN = shutil.which("skopeo") or "/usr/bin/skopeo"


@dataclass
class Registry:
    host: str          # "127.0.0.1:PORT"
    root: Path         # storage root (filesystem driver)
    proc: subprocess.Popen
    log: Path

    def ref(self, name: str) -> str:
        return f"{self.host}/{name}"

    def blob_file(self, digest: str) -> Path:
        """Where the filesystem driver keeps a blob's bytes (for corruption tests)."""
        hexpart = digest.split(":", 1)[1]
        return self.root / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_registry(workdir: Path, extra_config: str = "", tls: tuple[Path, Path, Path] | None = None) -> Registry:
    """Start docker-registry; ``extra_config`` is appended YAML (auth:, catalog:), ``tls`` is
    (server cert, server key, client CA): HTTPS that demands a client certificate from that CA."""
    workdir.mkdir(parents=True, exist_ok=True)
    root = workdir / "storage"
    root.mkdir(exist_ok=True)
    log = workdir / "registry.log"
    last = ""
    for _attempt in range(3):  # a port picked free may be taken before the registry binds it
        port = _free_port()
        cfg = workdir / "config.yml"
        cfg.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
            "storage:\n  filesystem:\n    rootdirectory: " + str(root) + "\n  delete:\n    enabled: true\n"
            "http:\n  addr: 127.0.0.1:" + str(port) + "\n"
            + (f"  tls:\n    certificate: {tls[0]}\n    key: {tls[1]}\n    clientcas:\n      - {tls[2]}\n" if tls else "")
            + extra_config
        )
        with open(log, "wb") as logf:
            proc = subprocess.Popen([REGISTRY_BIN, "serve", str(cfg)], stdout=logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if _answers(port, tls is not None):
                return Registry(f"127.0.0.1:{port}", root, proc, log)
            time.sleep(0.1)
        stop_registry_proc(proc)
        last = log.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"docker-registry did not start: {last}")


def _answers(port: int, tls: bool) -> bool:
    """True once something accepts connections on the port and speaks (HTTP or a TLS handshake)."""
    if tls:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1) as r:
            return r.status == 200
    except urllib.error.HTTPError as e:
        return e.code == 401
    except OSError:
        return False


def stop_registry_proc(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """A running docker-registry on 127.0.0.1 (plain HTTP), stopped at the end of the session."""
    for binary, pkg in ((REGISTRY_BIN, "docker-registry"), (SKOPEO_BIN, "skopeo")):
        if not os.path.exists(binary):
            pytest.skip(f"{binary} is missing (apt-get install {pkg}); registry tests need it")
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    try:
        yield reg
    finally:
        stop_registry_proc(reg.proc)


def skopeo(*args: str) -> str:
    out = subprocess.run([SKOPEO_BIN, *args], capture_output=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"skopeo {' '.join(args)} failed: {out.stderr.decode(errors='replace')[-2000:]}")
    return out.stdout.decode()


def skopeo_raw(*args: str) -> bytes:
    out = subprocess.run([SKOPEO_BIN, *args], capture_output=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"skopeo {' '.join(args)} failed: {out.stderr.decode(errors='replace')[-2000:]}")
    return out.stdout


def push_archive(archive: Path, dest: str, *extra: str) -> None:
    """``skopeo copy docker-archive:ARCHIVE docker://DEST`` (plain HTTP)."""
    skopeo("copy", "--quiet", "--dest-tls-verify=false", *extra, f"docker-archive:{archive}", f"docker://{dest}")


def push_oci(layout: Path, dest: str, *extra: str) -> None:
    skopeo("copy", "--quiet", "--all", "--dest-tls-verify=false", *extra, f"oci:{layout}", f"docker://{dest}")


def inspect_raw(ref: str) -> bytes:
    return skopeo_raw("inspect", "--tls-verify=false", "--raw", f"docker://{ref}")


def inspect_config_raw(ref: str, *extra: str) -> bytes:
    return skopeo_raw("inspect", "--tls-verify=false", *extra, "--config", "--raw", f"docker://{ref}")


def inspect_json(ref: str, *extra: str) -> dict:
    return json.loads(skopeo("inspect", "--tls-verify=false", *extra, f"docker://{ref}"))


def push_raw(reg: Registry, name: str, tag: str, blobs: list[bytes], manifest: bytes, media_type: str) -> str:
    """Upload blobs and a manifest straight through the registry API (monolithic uploads).

    For hostile-input tests: the registry stores what it is given as long as
    the blobs a manifest names exist.  Returns the manifest's digest."""
    import hashlib

    import requests

    base = f"http://{reg.host}/v2/{name}"
    for data in blobs:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        r = requests.post(f"{base}/blobs/uploads/", timeout=10)
        r.raise_for_status()
        loc = r.headers["Location"]
        if loc.startswith("/"):
            loc = f"http://{reg.host}{loc}"
        sep = "&" if "?" in loc else "?"
        r = requests.put(f"{loc}{sep}digest={digest}", data=data,
                         headers={"Content-Type": "application/octet-stream"}, timeout=10)
        r.raise_for_status()
    r = requests.put(f"{base}/manifests/{tag}", data=manifest, headers={"Content-Type": media_type}, timeout=10)
    if r.status_code >= 300:
        raise RuntimeError(f"manifest push refused: HTTP {r.status_code} {r.text[:500]}")
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


def tiny_layout(root: Path, tags: dict[str, bytes]) -> Path:
    """An OCI layout made by hand: one single-layer linux/amd64 image per tag, the layer one file
    holding that tag's payload (so each tag is a distinct image).  Returns ``root``."""
    import gzip
    import hashlib
    import io
    import tarfile

    def blob(data: bytes) -> dict:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        (root / "blobs/sha256").mkdir(parents=True, exist_ok=True)
        (root / "blobs/sha256" / digest.split(":")[1]).write_bytes(data)
        return {"digest": digest, "size": len(data)}

    manifests = []
    for tag, payload in tags.items():
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            ti = tarfile.TarInfo("payload")
            ti.size = len(payload)
            tf.addfile(ti, io.BytesIO(payload))
        tar = buf.getvalue()
        gz = gzip.compress(tar, mtime=0)
        config = {"architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05Z",
                  "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]},
                  "history": [{"created": "2024-01-02T03:04:05Z", "created_by": f"COPY payload / # {tag}"}]}
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               **blob(json.dumps(config).encode())},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **blob(gz)}]}
        manifests.append({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                          **blob(json.dumps(manifest).encode()),
                          "annotations": {"org.opencontainers.image.ref.name": tag}})
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": manifests}))
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return root


def forward(reg: Registry, path: str, accept: str | None) -> tuple[int, dict, bytes]:
    """GET ``path`` from the plain-HTTP registry for a test front: (status, headers, body), errors included."""
    req = urllib.request.Request(f"http://{reg.host}{path}", headers={"Accept": accept or "*/*"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()
