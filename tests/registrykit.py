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


def start_registry(workdir: Path) -> Registry:
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
        )
        with open(log, "wb") as logf:
            proc = subprocess.Popen([REGISTRY_BIN, "serve", str(cfg)], stdout=logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1) as r:
                    if r.status == 200:
                        return Registry(f"127.0.0.1:{port}", root, proc, log)
            except OSError:
                time.sleep(0.1)
        stop_registry_proc(proc)
        last = log.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"docker-registry did not start: {last}")


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
