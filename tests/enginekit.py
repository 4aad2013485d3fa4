"""Helpers for tests that need the real Docker Engine.

Import as ``from enginekit import ...`` (pytest puts ``tests/`` on sys.path:
it holds conftest.py and no __init__.py).  Everything here calls the Debian
client ``/usr/bin/docker`` (the one with BuildKit) as an independent witness:
layerlab's readings are compared with what these commands print.

* ``busybox_rootfs(dir)``   a root filesystem: /bin/busybox (busybox-static) + applet symlinks
* ``import_base(tag)``      ``docker import`` of that rootfs, once per content (reused across runs)
* ``build(tag, dockerfile, context_files=None, buildkit=True)``  ``docker build``; returns the image id
* ``history_json(tag)``     ``docker history --no-trunc --human=false --format '{{json .}}'`` rows (newest first)
* ``inspect(tag)``          ``docker image inspect`` (the one object)
* ``save(tag, path)``       ``docker save -o path tag``
* ``layerdb(chain_id)``     the engine's own layerdb record for a chain id (diff, size) or None

Keep images tiny: the machine is small and shared.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

DOCKER = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else (shutil.which("docker") or "docker")
BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "ls", "rm", "mkdir", "cp", "cat", "echo", "chmod", "chown", "touch", "dd", "head",
           "ln", "mv", "sed", "true", "env", "printf", "test", "[", "sleep", "wc", "id", "find")
BASE_TAG = "layerlab-test/base:busybox"
LAYERDB = Path("/var/lib/docker/image/overlay2/layerdb/sha256")

_imported: dict[str, str] = {}  # tag -> image id, this session


class DockerCommandError(RuntimeError):
    pass


def docker(*args: str, input: bytes | None = None, buildkit: bool = True, cwd: str | None = None) -> str:
    """Run ``/usr/bin/docker ARGS`` and return its stdout (raise with stderr on failure)."""
    env = dict(os.environ)
    env["DOCKER_BUILDKIT"] = "1" if buildkit else "0"
    env.setdefault("BUILDKIT_PROGRESS", "plain")
    out = subprocess.run([DOCKER, *args], input=input, capture_output=True, env=env, cwd=cwd, check=False)
    if out.returncode != 0:
        raise DockerCommandError(
            f"{DOCKER} {' '.join(args)} failed ({out.returncode}): {out.stderr.decode(errors='replace')[-2000:]}"
        )
    return out.stdout.decode(errors="replace")


def busybox_rootfs(dir) -> Path:
    """Write a minimal root filesystem into ``dir``: /bin/busybox plus applet symlinks,
    /etc/passwd and /etc/group with root, an empty /tmp.  Returns the path."""
    if not BUSYBOX.exists():
        raise FileNotFoundError(f"{BUSYBOX} missing: apt-get install busybox-static")
    root = Path(dir)
    (root / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(BUSYBOX, root / "bin" / "busybox")
    os.chmod(root / "bin" / "busybox", 0o755)
    for applet in APPLETS:
        link = root / "bin" / applet
        if not link.is_symlink():
            link.symlink_to("busybox")
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    (root / "tmp").mkdir(exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    (root / "root").mkdir(exist_ok=True)
    return root


def rootfs_tar(root) -> bytes:
    """A deterministic tar of ``root`` (sorted names, fixed mtime, owner root)."""
    root = Path(root)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for path in sorted(root.rglob("*"), key=lambda p: p.relative_to(root).as_posix()):
            info = tf.gettarinfo(str(path), arcname=path.relative_to(root).as_posix())
            info.mtime = 1_700_000_000
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if info.isfile():
                with open(path, "rb") as f:
                    tf.addfile(info, f)
            else:
                tf.addfile(info)
    return buf.getvalue()


def import_base(tag: str = BASE_TAG) -> str:
    """``docker import`` the busybox rootfs as ``tag`` and return the image id.

    Cached by content: if ``tag`` already names an image whose only layer is
    this exact tar (diff_id = sha256 of it), that image is reused — across
    sessions and concurrent workers alike."""
    if tag in _imported:
        return _imported[tag]
    with tempfile.TemporaryDirectory(prefix="layerlab-rootfs-") as d:
        data = rootfs_tar(busybox_rootfs(d))
    diff_id = "sha256:" + hashlib.sha256(data).hexdigest()
    try:
        have = inspect(tag)
        if have.get("RootFS", {}).get("Layers") == [diff_id]:
            _imported[tag] = have["Id"]
            return have["Id"]
    except DockerCommandError:
        pass
    docker("import", "-", tag, input=data)
    image_id = inspect(tag)["Id"]
    _imported[tag] = image_id
    return image_id


def build(tag: str, dockerfile_text: str, context_files: dict[str, bytes] | None = None,
          buildkit: bool = True, extra_args: tuple[str, ...] = ()) -> str:
    """``docker build -t tag`` a Dockerfile (plus context files) and return the image id."""
    with tempfile.TemporaryDirectory(prefix="layerlab-build-") as d:
        ctx = Path(d)
        (ctx / "Dockerfile").write_text(dockerfile_text)
        for name, content in (context_files or {}).items():
            p = ctx / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(content)
        docker("build", "-q" if not buildkit else "--progress=plain", "-t", tag, *extra_args, str(ctx),
               buildkit=buildkit)
    return inspect(tag)["Id"]


def history_json(tag: str) -> list[dict]:
    """The engine's history as ``docker history`` prints it: newest step first, sizes in bytes (strings)."""
    out = docker("history", "--no-trunc", "--human=false", "--format", "{{json .}}", tag)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def inspect(tag: str) -> dict:
    """``docker image inspect tag`` (the single object)."""
    return json.loads(docker("image", "inspect", tag))[0]


def save(tag: str, path) -> Path:
    """``docker save -o path tag``."""
    docker("save", "-o", str(path), tag)
    return Path(path)


def layerdb(chain_id: str) -> dict | None:
    """The engine's layerdb record for ``chain_id`` ({'diff': diff_id, 'size': int}),
    or None when the directory is not readable (not root, other storage driver, remote engine)."""
    d = LAYERDB / chain_id.split(":", 1)[-1]
    try:
        return {"diff": (d / "diff").read_text().strip(), "size": int((d / "size").read_text().strip())}
    except (OSError, ValueError):
        return None
