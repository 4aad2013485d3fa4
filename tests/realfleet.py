"""Realistic fleets built with the real engine, and the harness that measures them.

Import as ``from realfleet import ...`` (tests/ is on sys.path under pytest;
benchmarks/bench_advice.py puts it there itself).  Everything is measured with
``/usr/bin/docker`` (BuildKit) as the witness — never with layerlab.

* ``build_os()``   Debian bookworm minbase (``debootstrap``; the mirror is read
  from the host's apt sources at run time), tidied the way Debian's official
  images are, ``docker import``-ed once per machine as :data:`OS_TAG`.
* :data:`FLEETS`   two families of apps on that base, each with a hand-written
  layered design (f1 OS tools -> f2 general tools -> f3 libraries -> apps with
  only their code) made of the same packages:
  ``apt-pip``  three Python apps installing overlapping apt and pip packages in
               different wording, order and grouping, with waste (a 32 MB
               scratch file deleted a step later; apt lists left behind);
  ``node-npm`` two Node apps: nodejs from apt, npm itself downloaded from the
               npm registry as a tarball, packages installed with it, a
               downloaded-then-deleted tarball and npm's cache left behind.
* ``build_fleet(fleet, prefix, context)`` / ``build_design(...)``  the apps as
  their teams wrote them / the hand-written layered design.
* ``build_plan(plan, prefix, context)``  every Dockerfile of a
  :class:`layerlab.BasePlan`, bases first (``FROM`` lines naming another of the
  plan's images are pointed at its built tag).
* ``measure(apps, bases=None)``  what one host stores for those images and what
  each app pulls (cold, after the apps before it, with the bases present),
  uncompressed, by layer chain id, from ``docker image inspect`` and the
  engine's layer sizes.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

DOCKER = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"
OS_TAG = "layerlab-fleet/os:bookworm"
CA = "/etc/ssl/certs/ca-certificates.crt"
LAYERDB = Path("/var/lib/docker/image/overlay2/layerdb/sha256")
BUILD_ARGS = ("--network=host", "--secret", f"id=ca,src={CA}")


class FleetError(RuntimeError):
    pass


def docker(*args: str, stdin=None, input: bytes | None = None) -> str:
    """``/usr/bin/docker ARGS`` with BuildKit; stdout, or FleetError with the tail of stderr."""
    env = dict(os.environ, DOCKER_BUILDKIT="1", BUILDKIT_PROGRESS="plain")
    out = subprocess.run([DOCKER, *args], stdin=stdin, input=input, capture_output=True, env=env, check=False)
    if out.returncode != 0:
        raise FleetError(f"{DOCKER} {' '.join(args[:3])} ... failed ({out.returncode}):\n"
                         f"{out.stderr.decode(errors='replace')[-3000:]}")
    return out.stdout.decode(errors="replace")


def have_image(tag: str) -> bool:
    return subprocess.run([DOCKER, "image", "inspect", tag], capture_output=True).returncode == 0


# -- the Debian base ---------------------------------------------------------
def debian_mirror() -> str:
    """The bookworm mirror the host's apt uses (deb822 .sources first, then
    sources.list), read at run time so no host name is written in the repo."""
    import glob

    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        for stanza in re.split(r"\n\s*\n", Path(path).read_text()):
            fields = dict(re.findall(r"^(\w[\w-]*):\s*(.+)$", stanza, re.M))
            if "bookworm" in fields.get("Suites", "").split() and "URIs" in fields:
                return fields["URIs"].split()[0]
    if os.path.exists("/etc/apt/sources.list"):
        for line in Path("/etc/apt/sources.list").read_text().splitlines():
            parts = line.split()
            if parts[:1] == ["deb"] and "bookworm" in parts:
                for p in parts[1:]:
                    if "://" in p:
                        return p
    raise FleetError("no bookworm mirror in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list")


DOCKER_CLEAN = """\
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
"""


def build_os(tag: str = OS_TAG) -> str:
    """Debian bookworm minbase as ``tag`` (once per machine: skipped when the tag
    exists).  Tidied like scripts/build-sample (and Debian's official images):
    no .debs, lists or apt binary caches, and apt told to keep none in later
    layers — the apt lists an app leaves behind are then its own waste."""
    if have_image(tag):
        return tag
    mirror = debian_mirror()
    with tempfile.TemporaryDirectory(prefix="layerlab-fleet-os-") as d:
        root = Path(d, "root")
        subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(root), mirror],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["sh", "-c", 'rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/cache/apt/*.bin '
                        '"$1"/var/lib/apt/lists/*', "sh", str(root)], check=True)
        (root / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
        (root / "etc/apt/apt.conf.d/docker-clean").write_text(DOCKER_CLEAN)
        (root / "etc/apt/apt.conf.d/docker-no-languages").write_text('Acquire::Languages "none";\n')
        tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        docker("import", "-m", "debootstrap --variant=minbase bookworm", "-c", 'CMD ["bash"]', "-", tag,
               stdin=tar.stdout)
        if tar.wait() != 0:
            raise FleetError("tar of the debootstrap root failed")
    return tag


# -- the fleets ----------------------------------------------------------------
PIP = "--mount=type=secret,id=ca PIP_CERT=/run/secrets/ca"
NPM_URL = "https://registry.npmjs.org/npm/-/npm-10.8.2.tgz"
NPM_CA = "--mount=type=secret,id=ca NODE_EXTRA_CA_CERTS=/run/secrets/ca"


@dataclass
class Fleet:
    """A family of apps as their teams wrote them, and a hand-written layered
    design of the same packages.  Dockerfiles are templates: ``{os}`` is the
    Debian base's tag; ``{f1}``… in the design name its bases."""

    name: str
    apps: dict[str, str]               # app -> Dockerfile (as the team wrote it)
    design: dict[str, str]             # f1, f2, f3, then the apps -> Dockerfile (each FROM the one before)
    context: dict[str, bytes]          # build-context files shared by every build (each app's code in its dir)
    wasteful: str = ""                 # the app with the most waste (for suggest_merges / improve)
    notes: list[str] = field(default_factory=list)

    def dockerfile(self, app: str, os_tag: str = OS_TAG) -> str:
        return self.apps[app].format(os=os_tag)


def _code(app: str, lang: str) -> dict[str, bytes]:
    if lang == "py":
        return {f"{app}/main.py": f"import requests, six, attrs\nprint('{app}', requests.__version__)\n".encode(),
                f"{app}/settings.ini": f"[app]\nname = {app}\n".encode()}
    return {f"{app}/index.js": f"const _ = require('lodash');\nconsole.log('{app}', _.VERSION);\n".encode(),
            f"{app}/package.json": f'{{"name": "{app}", "version": "1.0.0", "main": "index.js"}}\n'.encode()}


APT_PIP = Fleet(
    name="apt-pip",
    apps={
        # team 1: one merged install, pip with pinned versions, a scratch file deleted a step later
        "a1": (
            "FROM {os}\n"
            "ENV DEBIAN_FRONTEND=noninteractive\n"
            "RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl jq python3 python3-pip"
            " && rm -rf /var/lib/apt/lists/*\n"
            f"RUN {PIP} pip install --no-cache-dir --break-system-packages requests==2.32.3 six==1.16.0 attrs==24.2.0\n"
            "RUN dd if=/dev/zero of=/tmp/scratch.bin bs=1M count=32 && sha256sum /tmp/scratch.bin > /tmp/scratch.sum\n"
            "RUN rm -f /tmp/scratch.bin\n"
            "COPY a1/ /app/\n"
            "RUN python3 -c \"import requests, six, attrs; print('a1 ok')\"\n"
            'CMD ["python3", "/app/main.py"]\n'
        ),
        # team 2: `apt`, split installs in another order, the lists left behind; pip split too
        "a2": (
            "FROM {os}\n"
            "RUN apt update && apt install --no-install-recommends -y python3-pip python3 curl\n"
            "RUN apt install -y --no-install-recommends jq ca-certificates\n"
            f"RUN {PIP} python3 -m pip install --break-system-packages --no-cache-dir six==1.16.0 attrs==24.2.0\n"
            f"RUN {PIP} python3 -m pip install --no-cache-dir --break-system-packages requests==2.32.3\n"
            "COPY a2/ /app/\n"
            "RUN python3 -c \"import attrs, requests; print('a2 ok')\"\n"
            'CMD ["python3", "/app/main.py"]\n'
        ),
        # team 3: continued lines, apt-get clean, pip options from ENV, one extra package (less)
        "a3": (
            "FROM {os}\n"
            "RUN apt-get update \\\n"
            " && apt-get -y install --no-install-recommends python3 python3-pip jq curl ca-certificates less \\\n"
            " && apt-get clean \\\n"
            " && rm -rf /var/lib/apt/lists/*\n"
            "ENV PIP_BREAK_SYSTEM_PACKAGES=1 PIP_NO_CACHE_DIR=1\n"
            f"RUN {PIP} pip3 install attrs==24.2.0 requests==2.32.3 six==1.16.0\n"
            "COPY a3/ /app/\n"
            "RUN python3 -c \"import six, requests; print('a3 ok')\"\n"
            'CMD ["python3", "/app/main.py"]\n'
        ),
    },
    design={
        "f1": ("FROM {os}\n"
               "RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates"
               " && rm -rf /var/lib/apt/lists/*\n"),
        "f2": ("FROM {f1}\n"
               "RUN apt-get update && apt-get install -y --no-install-recommends curl jq"
               " && rm -rf /var/lib/apt/lists/*\n"),
        "f3": ("FROM {f2}\n"
               "RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-pip"
               " && rm -rf /var/lib/apt/lists/*\n"
               f"RUN {PIP} pip install --no-cache-dir --break-system-packages requests==2.32.3 six==1.16.0"
               " attrs==24.2.0\n"),
        # a1: the same work as its scratch steps, written carefully (created and deleted in one RUN)
        "a1": ("FROM {f3}\n"
               "RUN dd if=/dev/zero of=/tmp/scratch.bin bs=1M count=32 && sha256sum /tmp/scratch.bin > /tmp/scratch.sum"
               " && rm -f /tmp/scratch.bin\n"
               "COPY a1/ /app/\nRUN python3 -c \"import requests, six, attrs; print('a1 ok')\"\n"
               'CMD ["python3", "/app/main.py"]\n'),
        "a2": ("FROM {f3}\nCOPY a2/ /app/\nRUN python3 -c \"import attrs, requests; print('a2 ok')\"\n"
               'CMD ["python3", "/app/main.py"]\n'),
        "a3": ("FROM {f3}\n"
               "RUN apt-get update && apt-get install -y --no-install-recommends less && rm -rf /var/lib/apt/lists/*\n"
               "COPY a3/ /app/\nRUN python3 -c \"import six, requests; print('a3 ok')\"\n"
               'CMD ["python3", "/app/main.py"]\n'),
    },
    context={**_code("a1", "py"), **_code("a2", "py"), **_code("a3", "py")},
    wasteful="a1",
)

NODE_NPM = Fleet(
    name="node-npm",
    apps={
        # team 1: one apt install, npm streamed from the registry, global packages, cache cleaned
        "b1": (
            "FROM {os}\n"
            "RUN apt-get update && apt-get install -y --no-install-recommends nodejs ca-certificates curl"
            " && rm -rf /var/lib/apt/lists/*\n"
            f"RUN {NPM_CA.split(' ')[0]} mkdir -p /opt/npm && curl --cacert /run/secrets/ca -fsSL {NPM_URL}"
            " | tar -xz -C /opt/npm --strip-components=1 && ln -s /opt/npm/bin/npm-cli.js /usr/local/bin/npm\n"
            "ENV NODE_PATH=/usr/lib/node_modules\n"
            f"RUN {NPM_CA} npm install -g --no-audit --no-fund --no-update-notifier lodash@4.17.21 dayjs@1.11.13"
            " ms@2.1.3 && npm cache clean --force\n"
            "COPY b1/ /app/\n"
            "RUN node -e \"require('lodash'); require('dayjs'); console.log('b1 ok')\"\n"
            'CMD ["node", "/app/index.js"]\n'
        ),
        # team 2: `apt` and apt-get split, the tarball downloaded, unpacked and deleted in
        # three steps, npm's cache left behind
        "b2": (
            "FROM {os}\n"
            "RUN apt update && apt install -y --no-install-recommends curl ca-certificates && rm -rf /var/lib/apt/lists/*\n"
            "RUN apt-get update && apt-get install --no-install-recommends -y nodejs && rm -rf /var/lib/apt/lists/*\n"
            f"RUN {NPM_CA.split(' ')[0]} curl -sSfL --cacert /run/secrets/ca -o /tmp/npm.tgz {NPM_URL}\n"
            "RUN mkdir -p /opt/npm && tar -xzf /tmp/npm.tgz -C /opt/npm --strip-components=1"
            " && ln -s /opt/npm/bin/npm-cli.js /usr/local/bin/npm\n"
            "RUN rm /tmp/npm.tgz\n"
            "ENV NODE_PATH=/usr/lib/node_modules\n"
            f"RUN {NPM_CA} npm i --global --no-fund --no-audit --no-update-notifier ms@2.1.3 dayjs@1.11.13"
            " lodash@4.17.21\n"
            "COPY b2/ /app/\n"
            "RUN node -e \"require('ms'); require('lodash'); console.log('b2 ok')\"\n"
            'CMD ["node", "/app/index.js"]\n'
        ),
    },
    design={
        "f1": ("FROM {os}\n"
               "RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl"
               " && rm -rf /var/lib/apt/lists/*\n"),
        "f2": ("FROM {f1}\n"
               "RUN apt-get update && apt-get install -y --no-install-recommends nodejs && rm -rf /var/lib/apt/lists/*\n"
               f"RUN {NPM_CA.split(' ')[0]} mkdir -p /opt/npm && curl --cacert /run/secrets/ca -fsSL {NPM_URL}"
               " | tar -xz -C /opt/npm --strip-components=1 && ln -s /opt/npm/bin/npm-cli.js /usr/local/bin/npm\n"),
        "f3": ("FROM {f2}\nENV NODE_PATH=/usr/lib/node_modules\n"
               f"RUN {NPM_CA} npm install -g --no-audit --no-fund --no-update-notifier lodash@4.17.21 dayjs@1.11.13"
               " ms@2.1.3 && npm cache clean --force\n"),
        "b1": ("FROM {f3}\nCOPY b1/ /app/\n"
               "RUN node -e \"require('lodash'); require('dayjs'); console.log('b1 ok')\"\n"
               'CMD ["node", "/app/index.js"]\n'),
        "b2": ("FROM {f3}\nCOPY b2/ /app/\n"
               "RUN node -e \"require('ms'); require('lodash'); console.log('b2 ok')\"\n"
               'CMD ["node", "/app/index.js"]\n'),
    },
    context={**_code("b1", "js"), **_code("b2", "js")},
    wasteful="b2",
)

FLEETS = {f.name: f for f in (APT_PIP, NODE_NPM)}


# -- building ------------------------------------------------------------------
def write_context(fleet: Fleet, where) -> Path:
    """The fleet's build context (every app's code) under ``where``; returns it."""
    ctx = Path(where)
    for rel, data in fleet.context.items():
        p = ctx / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return ctx


def build(tag: str, dockerfile: str, context, no_cache: bool = False) -> str:
    """``docker build`` with BuildKit, the host network (apt, pip and npm reach
    their indexes) and the host CA bundle as the secret ``ca`` (mounted only in
    the RUN steps that ask for it).  The build cache is used unless
    ``no_cache``: identical steps on the same parent are the same layer, as on
    any builder.  Returns the tag."""
    with tempfile.NamedTemporaryFile("w", prefix="Dockerfile-", suffix=".txt", delete=False) as f:
        f.write(dockerfile)
    try:
        docker("build", *BUILD_ARGS, *(["--no-cache"] if no_cache else []), "-f", f.name, "-t", tag, str(context))
    finally:
        os.unlink(f.name)
    return tag


def build_fleet(fleet: Fleet, prefix: str, context, os_tag: str = OS_TAG, no_cache: bool = False) -> dict[str, str]:
    """Each app as its team wrote it, tagged ``{prefix}{app}:1``; app -> tag."""
    return {app: build(f"{prefix}{app}:1", fleet.dockerfile(app, os_tag), context, no_cache) for app in fleet.apps}


def build_design(fleet: Fleet, prefix: str, context, os_tag: str = OS_TAG, no_cache: bool = False) -> dict[str, str]:
    """The hand-written layered design (bases then apps); name -> tag."""
    tags = {name: f"{prefix}design-{name}:1" for name in fleet.design}
    for name, text in fleet.design.items():
        build(tags[name], text.format(os=os_tag, **tags), context, no_cache)
    return tags


def _from_refs(text: str) -> list[str]:
    from dockerfile_parse import DockerfileParser

    p = DockerfileParser(fileobj=__import__("io").BytesIO(text.encode()))
    return list(p.parent_images)


def _retarget(text: str, tags: dict[str, str]) -> str:
    """``text`` with every FROM naming one of ``tags``' keys pointed at its tag."""
    import io

    from dockerfile_parse import DockerfileParser

    p = DockerfileParser(fileobj=io.BytesIO(text.encode()))
    parents = p.parent_images
    new = [tags.get(ref, ref) for ref in parents]
    if new != parents:
        p.parent_images = new
    return p.content


def plan_order(dockerfiles: dict[str, str]) -> list[str]:
    """The plan's images in build order: each after the plan images its FROM lines name."""
    deps = {name: [r for r in _from_refs(text) if r in dockerfiles and r != name]
            for name, text in dockerfiles.items()}
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in seen:
            return
        if name in path:
            raise FleetError(f"the plan's Dockerfiles name each other in a cycle: {' -> '.join(path + (name,))}")
        for d in deps[name]:
            visit(d, path + (name,))
        seen.add(name)
        order.append(name)

    for name in dockerfiles:
        visit(name, ())
    return order


def build_plan(plan, prefix: str, context, no_cache: bool = False) -> dict[str, str]:
    """Build every Dockerfile of ``plan`` (a :class:`layerlab.BasePlan`) in
    dependency order, tagged ``{prefix}{name}:1``; a ``FROM`` naming another of
    the plan's images uses that image's tag.  Returns name -> tag (every base
    and app).  Only the plan's public result is read (``dockerfiles``)."""
    tags = {name: f"{prefix}{name.replace('/', '-').replace(':', '-')}:1" for name in plan.dockerfiles}
    for name in plan_order(plan.dockerfiles):
        build(tags[name], _retarget(plan.dockerfiles[name], tags), context, no_cache)
    return tags


# -- measuring -------------------------------------------------------------------
def chain_ids(diff_ids: list[str]) -> list[str]:
    """The OCI chain ids of a layer stack: ChainID(n) = sha256(ChainID(n-1) + " " + DiffID(n))."""
    out: list[str] = []
    for d in diff_ids:
        out.append(d if not out else "sha256:" + hashlib.sha256(f"{out[-1]} {d}".encode()).hexdigest())
    return out


def layer_size(chain_id: str) -> int:
    """The engine's own size of a layer (its layerdb record: what ``docker
    system df`` and an image's ``Size`` add up)."""
    try:
        return int((LAYERDB / chain_id.split(":", 1)[-1] / "size").read_text())
    except (OSError, ValueError) as e:
        raise FleetError(f"cannot read the engine's layer record for {chain_id} under {LAYERDB} "
                         f"(run as root with the overlay2 driver): {e}") from e


def layers_of(tags) -> dict[str, list[tuple[str, int]]]:
    """tag -> (chain id, size) of each of its layers, bottom first
    (``RootFS.Layers`` of one ``docker image inspect`` of all the tags)."""
    tags = list(dict.fromkeys(tags))
    if not tags:
        return {}
    infos = json.loads(docker("image", "inspect", *tags))
    return {t: [(c, layer_size(c)) for c in chain_ids(i["RootFS"]["Layers"])] for t, i in zip(tags, infos)}


def layers(tag: str) -> list[tuple[str, int]]:
    """(chain id, size) of each layer of ``tag``, bottom first."""
    return layers_of([tag])[tag]


@dataclass
class Measure:
    """What one host needs for some images, by distinct layer (chain id)."""

    stored_bytes: int                       # distinct layers of every image given
    apps: dict[str, dict[str, int]]         # app -> size_bytes, pulled_cold_bytes, pulled_after_bytes, pulled_with_bases_bytes

    def app_total(self, key: str) -> int:
        return sum(v[key] for v in self.apps.values())


def measure(apps: dict[str, str], bases: dict[str, str] | None = None) -> Measure:
    """Storage and pulls for ``apps`` (name -> tag, in pull order) standing on
    ``bases`` (name -> tag): ``stored_bytes`` the distinct layers of all of
    them; per app ``size_bytes`` (= its cold pull), ``pulled_after_bytes``
    (pulled after the apps before it), ``pulled_with_bases_bytes`` (on a host
    that holds the bases).  Uncompressed, as the engine stores them."""
    stacks = layers_of([*apps.values(), *(bases or {}).values()])
    base_chains = {c for tag in (bases or {}).values() for c, _ in stacks[tag]}
    have: dict[str, int] = {}
    per: dict[str, dict[str, int]] = {}
    for app, tag in apps.items():
        ls = stacks[tag]
        per[app] = {
            "size_bytes": sum(s for _, s in ls),
            "pulled_cold_bytes": sum(s for _, s in ls),
            "pulled_after_bytes": sum(s for c, s in ls if c not in have),
            "pulled_with_bases_bytes": sum(s for c, s in ls if c not in base_chains),
        }
        have.update(ls)
    for tag in (bases or {}).values():
        have.update(stacks[tag])
    return Measure(sum(have.values()), per)


def image_size(tag: str) -> int:
    """The engine's ``Size`` of one image."""
    return int(json.loads(docker("image", "inspect", tag))[0]["Size"])


def remove(tags) -> None:
    """``docker rmi`` the tags (ignore ones already gone)."""
    tags = [t for t in tags if have_image(t)]
    if tags:
        subprocess.run([DOCKER, "rmi", *tags], capture_output=True, check=False)
