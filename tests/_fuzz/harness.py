"""The parent's side of the fuzz suite: a bounded call into the worker, and the verdict.

:class:`Worker` keeps one ``python -m _fuzz.worker`` child.  :meth:`Worker.run`
sends one case and waits for its answer up to ``HANG_SECONDS``.  That wait is a
*failure detector*, not a speed target: a case that has not answered by then is
hung (a loop that never ends, a read that never returns), so the child is
killed and restarted and the case's outcome is ``hang``.  No test asserts how
long a case took; a slow but finishing case passes.

:func:`verdict` turns an answer into ``None`` (the case behaved: it loaded, or
raised a LayerlabError, and wrote nothing outside its directory and cache) or a
one-line description of the finding; :func:`finding_key` names a finding by
what escaped and where, so the long mode counts distinct ones.
"""
from __future__ import annotations

import os
import pickle
import select
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
HANG_SECONDS = float(os.environ.get("LAYERLAB_FUZZ_HANG_SECONDS", "120"))


class Worker:
    """One fuzz worker process (restarted after a hang or a death)."""

    def __init__(self, root: Path | None = None, hang_seconds: float = HANG_SECONDS):
        self.hang_seconds = hang_seconds
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="layerlab-fuzz-")) if root is None else Path(root)
        self.proc: subprocess.Popen | None = None
        self.cases = 0

    def _start(self) -> None:
        n = self.cases
        base = self.root / f"w{n}"
        for d in ("home", "tmp", "cases"):
            (base / d).mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(HOME=str(base / "home"), TMPDIR=str(base / "tmp"), LAYERLAB_FUZZ_ROOT=str(base),
                   LAYERLAB_CACHE=str(base / "default-cache"),
                   PYTHONPATH=os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]).rstrip(os.pathsep))
        for k in ("DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "XDG_CACHE_HOME", "XDG_CONFIG_HOME"):
            env.pop(k, None)
        env["http_proxy"] = env["HTTP_PROXY"] = ""
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        self.proc = subprocess.Popen([sys.executable, "-m", "_fuzz.worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=str(base), env=env)

    def _kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def close(self) -> None:
        if self.proc is not None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._kill()
            self.proc = None
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def _read(self, n: int, until: float) -> bytes | None:
        import time

        out = b""
        fd = self.proc.stdout.fileno()
        while len(out) < n:
            left = until - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(fd, n - len(out))
            if not chunk:
                raise EOFError
            out += chunk
        return out

    def run(self, target: str, **args) -> dict:
        """Run one case; the worker's answer, or ``{"outcome": "hang"|"died", ...}``."""
        import time

        if self.proc is None or self.proc.poll() is not None:
            self._start()
        self.cases += 1
        req = pickle.dumps({"target": target, "args": args})
        until = time.monotonic() + self.hang_seconds
        try:
            self.proc.stdin.write(struct.pack(">I", len(req)) + req)
            self.proc.stdin.flush()
            head = self._read(4, until)
            body = None if head is None else self._read(struct.unpack(">I", head)[0], until)
        except (EOFError, BrokenPipeError, OSError):
            code = self.proc.wait()
            self.proc = None
            return {"outcome": "died", "type": f"exit {code}", "where": "worker process", "wrote": []}
        if body is None:
            self._kill()
            return {"outcome": "hang", "type": "no answer", "where": f"after {self.hang_seconds:g} s", "wrote": []}
        return pickle.loads(body)


def verdict(res: dict) -> str | None:
    """None when the case behaved, else what went wrong (one line)."""
    if res["outcome"] in ("ok", "error") and not res.get("wrote"):
        return None
    if res["outcome"] in ("ok", "error"):
        return f"wrote outside its paths: {res['wrote'][:5]}"
    return f"{res['outcome']}: {res.get('type')} at {res.get('where')}: {res.get('message', '')[:300]}"


def finding_key(res: dict) -> str | None:
    """A finding's identity (what escaped, and where), or None for a good case."""
    if verdict(res) is None:
        return None
    if res["outcome"] in ("ok", "error"):
        return "wrote outside its paths"
    return f"{res['outcome']} {res.get('type')} at {res.get('where')}"


def describe(res: dict, case: str) -> str:
    """A test failure's message: the case, the verdict, the worker's traceback."""
    return f"{case}: {verdict(res)}\n{res.get('traceback', '')}"
