"""Shared fixtures: paths to ../shared, the engine, skips with reasons."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
REAL_IMAGES = SHARED / "data" / "real-images"
REPO_INFO_2018 = SHARED / "data" / "repo-info-2018"
REPO_INFO_2026 = SHARED / "data" / "repo-info-2026-sample"
DATA = ROOT / "data"
DOCKER = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else (shutil.which("docker") or "docker")


def _engine_up() -> str | None:
    """None when the engine answers, else the reason it does not."""
    try:
        import docker

        client = docker.from_env(timeout=5)
        client.ping()
        return None
    except Exception as e:  # noqa: BLE001 - any failure means "no engine"
        return f"no Docker Engine answering ({os.environ.get('DOCKER_HOST', 'unix:///var/run/docker.sock')}): {e}"


_ENGINE_REASON = _engine_up()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent (the shared reference data sits beside the checkout)")
    return SHARED


@pytest.fixture(scope="session")
def real_images(shared_dir) -> Path:
    if not REAL_IMAGES.is_dir():
        pytest.skip(f"{REAL_IMAGES} is absent")
    return REAL_IMAGES


@pytest.fixture(scope="session")
def engine():
    """A docker SDK client; skips (or fails under LAYERLAB_REQUIRE_ENGINE=1) without an engine."""
    if _ENGINE_REASON is not None:
        if os.environ.get("LAYERLAB_REQUIRE_ENGINE") == "1":
            pytest.fail(_ENGINE_REASON + " — and LAYERLAB_REQUIRE_ENGINE=1 says one must be there")
        pytest.skip(_ENGINE_REASON)
    import docker

    return docker.from_env(timeout=300)


def docker_cli(*args: str, input: bytes | None = None, env: dict | None = None) -> str:
    """Run the Debian docker client (the one with BuildKit) and return stdout."""
    e = dict(os.environ)
    e.setdefault("DOCKER_BUILDKIT", "1")
    if env:
        e.update(env)
    out = subprocess.run([DOCKER, *args], input=input, capture_output=True, check=False, env=e)
    if out.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed: {out.stderr.decode(errors='replace')}")
    return out.stdout.decode()


@pytest.fixture(scope="session")
def busybox_base(engine) -> str:
    """Tag of a tiny base image (busybox-static rootfs, ``docker import``-ed once per content)."""
    from enginekit import BASE_TAG, import_base

    import_base(BASE_TAG)
    return BASE_TAG


# `registry`: a docker-registry on 127.0.0.1 for the session (tests/registrykit.py)
from registrykit import registry  # noqa: E402,F401
