"""Real pulls to check the pull-time model: a second dockerd, a throttled link, a registry.

Used by ``tests/test_pull_real.py`` and ``benchmarks/bench_pull.py``.

* ``build_images()``  builds (on the main engine, cached by content) a layered
  fleet on the busybox test base — ``os`` (12 MB), ``tools`` on it (8 MB),
  ``app`` on that (8 MB), an unrelated ``other`` base (12 MB) and a ``naive``
  app (os + tools + app in one layer) — each layer a mix of random bytes and
  text, so gzip has work to do;
* ``SecondDockerd(workdir, registry_port)``  a dockerd of its own:
  ``--data-root``, ``--exec-root``, ``--host unix://…``, ``--pidfile``, its own
  bridge (``ip link add … type bridge`` then ``--bridge=NAME
  --iptables=false``; never ``--bridge=none``, which deletes docker0), its own
  containerd namespaces, no ``daemon.json``; ``pull(ref)`` returns wall
  seconds; ``reset()`` removes every image; ``stop()`` stops it (by PID) and
  deletes the bridge;
* ``run_scenarios(...)``  pushes the images to a registry, pulls them through
  a :class:`layerlab._throttle.Throttle` at each bandwidth on a cold host, a
  host with the shared bases and a host with an unrelated base, and returns
  rows of measured and predicted seconds.

Everything started here is stopped by PID in ``finally`` blocks.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from enginekit import BASE_TAG, DOCKER, build, import_base

DOCKERD = shutil.which("dockerd") or "/usr/sbin/dockerd"
IP = shutil.which("ip") or "/usr/sbin/ip"
PREFIX = "layerlab-pull"
MB = 1_000_000


def missing_requirements() -> str | None:
    """Why the real-pull check cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (a second dockerd and a bridge)"
    for path, what in ((DOCKERD, "dockerd"), (IP, "ip (iproute2)"), ("/usr/bin/docker-registry", "docker-registry"),
                       ("/usr/bin/skopeo", "skopeo"), (DOCKER, "the docker client"), ("/bin/busybox", "busybox-static")):
        if not os.path.exists(path):
            return f"{what} is missing ({path})"
    r = subprocess.run([DOCKER, "version", "--format", "{{.Server.Version}}"], capture_output=True)
    if r.returncode != 0:
        return "the main Docker Engine does not answer (images are built there)"
    return None


# -- images --------------------------------------------------------------------

def _content(seed: int, random_bytes: int, text_bytes: int, files: int = 40) -> dict[str, bytes]:
    rnd = random.Random(seed)
    out = {"blob.bin": rnd.randbytes(random_bytes)}
    words = [rnd.randbytes(rnd.randint(2, 8)).hex() for _ in range(3000)]
    per = text_bytes // files
    for i in range(files):
        lines = []
        n = 0
        while n < per:
            line = " ".join(rnd.choices(words, k=10)) + "\n"
            lines.append(line)
            n += len(line)
        out[f"text/{i:03d}.txt"] = "".join(lines).encode()[:per]
    return out


def _build_layer(tag: str, parent: str, directory: str, seed: int, random_mb: float, text_mb: float) -> None:
    files = {f"{directory}/{k}": v for k, v in _content(seed, int(random_mb * MB), int(text_mb * MB)).items()}
    build(tag, f"FROM {parent}\nCOPY {directory} /{directory}\n", files)


def build_images() -> dict[str, str]:
    """Build the fleet on the main engine; returns short name -> local tag."""
    import_base()
    tags = {n: f"{PREFIX}/{n}:1" for n in ("os", "tools", "app", "other", "naive")}
    _build_layer(tags["os"], BASE_TAG, "os", 1, 8, 4)
    _build_layer(tags["tools"], tags["os"], "tools", 2, 6, 2)
    _build_layer(tags["app"], tags["tools"], "app", 3, 6, 2)
    _build_layer(tags["other"], BASE_TAG, "other", 4, 8, 4)
    naive = {}
    for d, seed, r, t in (("os", 1, 8, 4), ("tools", 2, 6, 2), ("app", 3, 6, 2)):
        naive.update({f"all/{d}/{k}": v for k, v in _content(seed, int(r * MB), int(t * MB)).items()})
    build(tags["naive"], f"FROM {BASE_TAG}\nCOPY all /\n", naive)
    return tags


def push_all(tags: dict[str, str], registry_host: str) -> None:
    from registrykit import skopeo

    for tag in tags.values():
        skopeo("copy", "--quiet", "--dest-tls-verify=false", f"docker-daemon:{tag}", f"docker://{registry_host}/{tag}")


def fleet_with_sizes(tags: dict[str, str], registry_host: str):
    """The registry's view (digests, compressed sizes, media types, diff_ids) with Docker's
    uncompressed layer sizes taken from the main engine (a registry does not state them)."""
    import layerlab as ll

    images = []
    for name, tag in tags.items():
        remote = ll.load(f"docker://{registry_host}/{tag}")
        local = ll.load(f"docker-daemon:{tag}")
        sizes = {l.diff_id: l.size for l in local.layer_list}
        for layer in remote.layer_list:
            layer.size = sizes.get(layer.diff_id)
        remote.reference = name
        images.append(remote)
    return ll.Fleet(images)


# -- the second engine -----------------------------------------------------------

class SecondDockerd:
    """A private dockerd (see the module doc).  Use as a context manager."""

    def __init__(self, workdir: Path, insecure: str, *, subnet: str | None = None):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        # sockets live under a short path: a unix socket path is limited to 107 bytes, and
        # containerd's sits under the exec root
        self.run = Path(tempfile.mkdtemp(prefix="llp-", dir="/tmp"))
        self.sock = self.run / "docker.sock"
        self.bridge = f"llpull{os.getpid() % 100000}"
        self.subnet = subnet or f"172.31.{200 + os.getpid() % 50}.1/24"
        self.insecure = insecure
        self.proc: subprocess.Popen | None = None
        self._bridge_made = False

    def __enter__(self) -> "SecondDockerd":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        subprocess.run([IP, "link", "add", self.bridge, "type", "bridge"], check=True, capture_output=True)
        self._bridge_made = True
        subprocess.run([IP, "addr", "add", self.subnet, "dev", self.bridge], check=True, capture_output=True)
        subprocess.run([IP, "link", "set", self.bridge, "up"], check=True, capture_output=True)
        cfg = self.dir / "daemon.json"
        cfg.write_text("{}")
        args = [DOCKERD, "--config-file", str(cfg), "--data-root", str(self.dir / "data"),
                "--exec-root", str(self.run / "exec"), "--host", f"unix://{self.sock}",
                "--pidfile", str(self.run / "docker.pid"), f"--bridge={self.bridge}", "--iptables=false",
                "--ip-masq=false", "--ip-forward=false", "--storage-driver", "overlay2",
                "--containerd-namespace", "layerlab-pull", "--containerd-plugins-namespace", "layerlab-pull-plugins",
                "--insecure-registry", self.insecure, "--log-level", "warn"]
        self.log = open(self.dir / "dockerd.log", "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("second dockerd exited: " + (self.dir / "dockerd.log").read_text()[-2000:])
            if self.sock.exists() and self.docker("version", check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError("second dockerd did not answer in 60 s: " + (self.dir / "dockerd.log").read_text()[-2000:])

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run([DOCKER, "-H", f"unix://{self.sock}", *args], capture_output=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)}: {r.stderr.decode(errors='replace')[-2000:]}")
        return r

    def pull(self, ref: str) -> float:
        t0 = time.perf_counter()
        self.docker("pull", "-q", ref)
        return time.perf_counter() - t0

    def reset(self) -> None:
        ids = self.docker("images", "-aq").stdout.decode().split()
        if ids:
            self.docker("rmi", "-f", *sorted(set(ids)))
        left = self.docker("images", "-aq").stdout.decode().split()
        if left:
            raise RuntimeError(f"second dockerd still holds images {left}")

    def stop(self) -> None:
        containerd_pid = None
        pidfile = self.run / "exec" / "containerd" / "containerd.pid"
        try:
            containerd_pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            pass
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if containerd_pid:
            _stop_pid(containerd_pid)
        if getattr(self, "log", None):
            self.log.close()
        if self._bridge_made:
            subprocess.run([IP, "link", "del", self.bridge], capture_output=True)
            self._bridge_made = False
        shutil.rmtree(self.run, ignore_errors=True)
        _unmount_under(self.dir)
        shutil.rmtree(self.dir / "data", ignore_errors=True)


def _unmount_under(directory: Path) -> None:
    """Unmount whatever a dockerd left mounted under ``directory`` (its data root bind mount,
    overlay mounts), deepest first: a dockerd that dies early does not clean up."""
    prefix = str(Path(directory).resolve()) + "/"
    with open("/proc/mounts") as f:
        points = [line.split()[1].replace("\\040", " ") for line in f]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def _stop_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# -- the scenarios ---------------------------------------------------------------

SCENARIOS = {  # name -> (image pulled, images on the host before)
    "cold": ("app", []),
    "bases": ("app", ["os", "tools"]),
    "unrelated": ("app", ["other"]),
    "naive, bases": ("naive", ["os", "tools"]),
}


def measure_rtt(port: int, n: int = 7) -> float:
    """Median seconds of ``GET /v2/`` on a new connection through the proxy."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=10) as r:
            r.read()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def calibrate_extraction(engine: "SecondDockerd", fleet, ref: str, name: str, host, rtt: float,
                         repeat: int = 3) -> float | None:
    """The engine's extraction rate (bytes/s) that makes ``pull_time`` match a full-speed cold
    pull of ``ref`` (median of ``repeat``), found by bisection; None when no rate does."""
    from layerlab.analysis.pull import pull_time

    times = []
    for _ in range(repeat):
        engine.reset()
        times.append(engine.pull(ref))
    target = statistics.median(times)

    def predict(rate: float) -> float:
        return pull_time(fleet, name, bandwidth=1e9, engine="moby", rtt=rtt, host=host, extract_rate=rate).seconds

    lo, hi = 1e6, 1e11
    if predict(hi) > target or predict(lo) < target:
        return None
    for _ in range(60):
        mid = (lo * hi) ** 0.5
        lo, hi = (mid, hi) if predict(mid) > target else (lo, mid)
    return (lo * hi) ** 0.5


def run_scenarios(workdir: Path, bandwidths: list[float], scenarios: dict = SCENARIOS, repeat: int = 1,
                  calibrate: bool = False) -> list[dict]:
    """Measured vs predicted seconds for every (bandwidth, scenario); see the module doc."""
    from registrykit import start_registry, stop_registry_proc

    import layerlab._throttle as throttle
    from layerlab.analysis.hostrates import measure_host
    from layerlab.analysis.pull import pull_time

    tags = build_images()
    host = measure_host(refresh=True)  # this machine as it is now (a shared machine's load varies)
    reg = start_registry(Path(workdir) / "registry")
    rows = []
    try:
        push_all(tags, reg.host)
        fleet = fleet_with_sizes(tags, reg.host)
        reg_port = int(reg.host.rsplit(":", 1)[1])
        with throttle.Throttle("127.0.0.1", reg_port, None) as link, \
                SecondDockerd(Path(workdir) / "dockerd", f"127.0.0.1:{link.port}") as engine:
            proxied = f"127.0.0.1:{link.port}"
            erate = None
            if calibrate:  # a separate full-speed pull of the unrelated base: the engine's extraction rate
                erate = calibrate_extraction(engine, fleet, f"{proxied}/{tags['other']}", "other", host,
                                             measure_rtt(link.port))
            for bw in bandwidths:
                link.set_rate(bw)
                rtt = measure_rtt(link.port)
                for name, (image, before) in scenarios.items():
                    measured = []
                    for _ in range(repeat):
                        engine.reset()
                        link.set_rate(None)
                        for b in before:
                            engine.pull(f"{proxied}/{tags[b]}")
                        link.set_rate(bw)
                        measured.append(engine.pull(f"{proxied}/{tags[image]}"))
                    p = pull_time(fleet, image, present=before, bandwidth=bw, engine="moby", rtt=rtt, host=host)
                    m = statistics.median(measured)
                    c = None if erate is None else pull_time(fleet, image, present=before, bandwidth=bw,
                                                             engine="moby", rtt=rtt, host=host,
                                                             extract_rate=erate).seconds
                    rows.append({"bandwidth": bw, "scenario": name, "image": image, "present": ", ".join(before),
                                 "bytes": p.bytes, "predicted": p.seconds, "measured": m,
                                 "error": (p.seconds - m) / m, "rtt": rtt, "runs": measured,
                                 "host": host.to_dict(), "extract_rate": erate, "calibrated": c,
                                 "calibrated_error": None if c is None else (c - m) / m})
    finally:
        stop_registry_proc(reg.proc)
    return rows


def format_table(rows: list[dict]) -> str:
    cal = any(r.get("calibrated") is not None for r in rows)
    head = "| bandwidth | host before the pull | image | MB to download | predicted s | measured s | error |"
    lines = [head + (" predicted, engine extraction rate | error |" if cal else ""),
             "|---|---|---|---:|---:|---:|---:|" + ("---:|---:|" if cal else "")]
    for r in rows:
        line = (f"| {r['bandwidth'] / MB:g} MB/s | {r['scenario']} ({r['present'] or 'empty'}) | {r['image']} | "
                f"{r['bytes'] / MB:.1f} | {r['predicted']:.2f} | {r['measured']:.2f} | {r['error']:+.1%} |")
        if cal:
            line += (f" {r['calibrated']:.2f} | {r['calibrated_error']:+.1%} |" if r.get("calibrated") is not None
                     else " – | – |")
        lines.append(line)
    if cal:
        lines.append(f"\nengine extraction rate (calibrated on a full-speed pull of the unrelated base): "
                     f"{rows[0]['extract_rate'] / MB:.1f} MB/s")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - manual run
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="layerlab-pull-") as d:
        out = run_scenarios(Path(d), [float(x) * MB for x in (sys.argv[1:] or ["2", "5"])])
    print(format_table(out))
    print(json.dumps(out, indent=1, default=str))
