"""One install layer split by package: which bytes each install unit owns.

An install step of one app may install the packages of several install units
(``python3-pip`` that every app installs, ``less`` only one app does, in one
``apt-get install``).  The plan writes each unit as a RUN of its own; its
layer is estimated from the step's layer contents:

* **who owns a file** — the package managers' own records in the layer:
  dpkg's ``var/lib/dpkg/info/<pkg>[:<arch>].list`` (every file of the
  package; the ``info/<pkg>.*`` files are the package's too), pip's
  ``<dist>.dist-info/RECORD`` (paths relative to the directory holding the
  dist-info, plus the dist-info itself), npm's ``node_modules/<pkg>/`` (and
  ``@scope/<pkg>/``) directories;
* **which unit installs a package** — the unit that asks for it, else the
  first unit (in the app's order) whose dependencies reach it (dpkg status
  ``Depends``/``Pre-Depends`` (+ ``Recommends`` without
  ``--no-install-recommends``) through ``Provides``; pip ``Requires-Dist``
  without extras; npm ``package.json`` ``dependencies``): that unit runs
  first, the later one finds it installed;
* **what no record names** — the package indexes and caches the unit's RUN
  removes (``var/lib/apt/lists``, ``var/cache/apt``, pip's and npm's caches)
  count for no unit; the databases and logs every run of the manager
  rewrites whole (dpkg ``status``, ``status-old``, apt ``extended_states``,
  ``var/log``, debconf's ``*.dat``) count for *every* unit of that manager
  (each RUN writes its own copy); anything else (files a maintainer script
  generates: ``ca-certificates.crt``, ``ld.so.cache``) goes to the unit whose
  packages own the nearest directory above it, else to the first unit.

Sizes are what the engine counts for a layer it *built* from a RUN: the tar
entries' sizes (symlinks 0; a path listed twice once), as the merge
predictions count them (``layerlab.analysis.merge.table`` says why that is
:func:`layerlab.contents.sizes.docker_size_of` without symlink targets).
The split is an estimate: the rewritten files are taken at the size they have
after the whole step (a unit that runs earlier writes a smaller database), and
generated files are placed by directory.
"""
from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass
from email.parser import HeaderParser
from typing import Mapping, Sequence

from ...contents.sizes import docker_size_of
from .effects import package_name

_INFO = re.compile(r"^var/lib/dpkg/info/([^/:]+)(?::[^/.]+)?\.([^/]+)$")
_RECORD = re.compile(r"^(.*/)?([^/]+)\.dist-info/RECORD$")
_METADATA = re.compile(r"^(.*/)?([^/]+)\.dist-info/METADATA$")
_NODE_DIR = re.compile(r"^(.*?/node_modules/)((?:@[^/]+/)?[^/@.][^/]*)(/|$)")
_DROPPED = {
    "apt": re.compile(r"^var/(lib/apt/lists|cache/apt)(/|$)"),
    "pip": re.compile(r"^(root|home/[^/]+)/\.cache/pip(/|$)"),
    "npm": re.compile(r"^(root|home/[^/]+)/\.npm/_cacache(/|$)"),
}
_REWRITTEN = {
    "apt": re.compile(r"^(var/lib/dpkg/(status|status-old|lock|lock-frontend|triggers/.*)|var/lib/apt/extended_states"
                      r"|var/log/.*|var/cache/debconf/[^/]+\.dat|var/cache/apt/archives/lock)$"),
}


_NODE_JSON = re.compile(r"^(?:(?!node_modules/).)*node_modules/(?:@[^/]+/)?[^/]+/package\.json$")


def metadata_wanted(path: str) -> bool:
    """The files :func:`split_layer` reads the contents of."""
    return (path == "var/lib/dpkg/status" or (path.startswith("var/lib/dpkg/info/") and path.endswith(".list"))
            or bool(_RECORD.match(path)) or bool(_METADATA.match(path)) or bool(_NODE_JSON.match(path)))


@dataclass
class Split:
    """A layer's bytes per unit: ``own[i]`` the files of unit ``i``'s packages
    and the generated files placed with it, ``rewritten[i]`` the manager's
    databases and logs its RUN rewrites; ``dropped`` the caches no unit keeps."""

    own: list[int]
    rewritten: list[int]
    dropped: int


def norm(manager: str, name: str) -> str:
    """A package name as the manager's records compare it."""
    name = package_name(name)
    if manager == "pip":
        return re.sub(r"[-_.]+", "-", name).lower()
    if manager == "apt":
        return name.split(":", 1)[0].lower()
    return name


def split_layer(entries: Sequence[tuple[str, str, int | None, str | None]], metadata: Mapping[str, bytes],
                units: Sequence[tuple[str, frozenset[str]]], *, recommends: bool = False) -> Split:
    """Split one layer between ``units`` (``(manager, package names)``, in the
    order the plan runs them).  ``entries``: the layer's file table rows
    ``(path, type, size, link_target)``; ``metadata``: the bytes of the files
    :func:`metadata_wanted` names in this layer.  ``recommends``: apt installed
    recommended packages too."""
    owner, deps, dirs_of = _owners(entries, metadata, recommends)
    unit_of = _assign(owner, deps, units)
    managers = [m for m, _ in units]
    first = {m: managers.index(m) for m in managers}
    groups: dict[tuple[str, int], list[int]] = {}  # ("own"|"rw"|"drop", unit) -> rows
    for r, (path, _kind, _size, _link) in enumerate(entries):
        pk = owner.get(path)
        if pk is not None and pk in unit_of:
            groups.setdefault(("own", unit_of[pk]), []).append(r)
            continue
        mgr = next((m for m in managers if m in _DROPPED and _DROPPED[m].match(path)), None)
        if mgr is not None:
            groups.setdefault(("drop", 0), []).append(r)
            continue
        mgr = next((m for m in managers if m in _REWRITTEN and _REWRITTEN[m].match(path)), None)
        if mgr is not None:
            for i, m in enumerate(managers):
                if m == mgr:
                    groups.setdefault(("rw", i), []).append(r)
            continue
        groups.setdefault(("own", _by_directory(path, dirs_of, unit_of, first, managers)), []).append(r)

    def size(key) -> int:
        rows = groups.get(key, [])
        # a built layer: no symlink target lengths (see the module doc)
        return docker_size_of([entries[r][0] for r in rows], [entries[r][1] for r in rows],
                              [entries[r][2] for r in rows], [None] * len(rows))

    n = len(units)
    return Split([size(("own", i)) for i in range(n)], [size(("rw", i)) for i in range(n)], size(("drop", 0)))


def _owners(entries, metadata: Mapping[str, bytes], recommends: bool):
    """(path -> (manager, package), (manager, package) -> dependencies, directory -> packages listing it)."""
    owner: dict[str, tuple[str, str]] = {}
    deps: dict[tuple[str, str], set[tuple[str, str]]] = {}
    dirs_of: dict[str, set[tuple[str, str]]] = {}
    paths = [e[0] for e in entries]
    for path, data in metadata.items():
        m = _INFO.match(path)
        if m and m.group(2) == "list":
            pk = ("apt", norm("apt", m.group(1)))
            for line in data.decode("utf-8", "surrogateescape").splitlines():
                p = line.strip().lstrip("/")
                if p and p != ".":
                    owner.setdefault(p, pk)
                    dirs_of.setdefault(p, set()).add(pk)
        m = _RECORD.match(path)
        if m:
            root, dist = m.group(1) or "", m.group(2)
            pk = ("pip", norm("pip", dist.split("-", 1)[0]))
            for line in data.decode("utf-8", "surrogateescape").splitlines():
                p = line.rsplit(",", 2)[0] if line.count(",") >= 2 else line
                if p:
                    owner[posixpath.normpath(root + p.strip('"'))] = pk
            prefix = f"{root}{dist}.dist-info/"
            for p in paths:
                if p.startswith(prefix):
                    owner[p] = pk
    for p in paths:
        m = _INFO.match(p)
        if m:
            owner[p] = ("apt", norm("apt", m.group(1)))
            continue
        m = _NODE_DIR.match(p)
        if m and p not in owner:
            owner[p] = ("npm", m.group(2))
    _dependencies(metadata, deps, recommends)
    return owner, deps, dirs_of


def _dependencies(metadata: Mapping[str, bytes], deps, recommends: bool) -> None:
    status = metadata.get("var/lib/dpkg/status")
    if status:
        provides: dict[str, set[str]] = {}
        stanzas = []
        for block in status.decode("utf-8", "replace").split("\n\n"):
            fields = HeaderParser().parsestr(block)
            name = fields.get("Package")
            if not name:
                continue
            stanzas.append((name, fields))
            for prov in _rel_names(fields.get("Provides", "")):
                provides.setdefault(prov, set()).add(name)
        for name, fields in stanzas:
            want = fields.get("Depends", "") + "," + fields.get("Pre-Depends", "")
            if recommends:
                want += "," + fields.get("Recommends", "")
            out = deps.setdefault(("apt", norm("apt", name)), set())
            for d in _rel_names(want):
                out.add(("apt", d))
                out |= {("apt", p) for p in provides.get(d, ())}
    for path, data in metadata.items():
        m = _METADATA.match(path)
        if m:
            fields = HeaderParser().parsestr(data.decode("utf-8", "replace"))
            out = deps.setdefault(("pip", norm("pip", fields.get("Name") or m.group(2).split("-", 1)[0])), set())
            for req in fields.get_all("Requires-Dist") or []:
                if "extra" not in req.partition(";")[2]:
                    out.add(("pip", norm("pip", re.split(r"[\s(;]", req.strip(), maxsplit=1)[0])))
        elif path.endswith("/package.json") and "/node_modules/" in path:
            m2 = _NODE_DIR.match(path)
            try:
                doc = json.loads(data)
            except ValueError:
                continue
            if m2 and isinstance(doc, dict) and isinstance(doc.get("dependencies"), dict):
                deps.setdefault(("npm", m2.group(2)), set()).update(("npm", d) for d in doc["dependencies"])


def _rel_names(field: str) -> list[str]:
    """Package names of a dpkg relationship field (every alternative, no versions or architectures)."""
    out = []
    for part in re.split(r"[,|]", field):
        name = part.strip().split(" ", 1)[0].split("(", 1)[0].split(":", 1)[0]
        if name:
            out.append(name.lower())
    return out


def _assign(owner, deps, units) -> dict[tuple[str, str], int]:
    """(manager, package) -> the unit that installs it: the one asking for it,
    else the first whose dependencies reach it, else the first of its manager."""
    new = set(owner.values())
    unit_of: dict[tuple[str, str], int] = {}
    for i, (m, pkgs) in enumerate(units):
        for p in pkgs:
            unit_of.setdefault((m, norm(m, p)), i)
    for i, (m, pkgs) in enumerate(units):
        todo = [(m, norm(m, p)) for p in pkgs]
        seen = set(todo)
        while todo:
            for d in deps.get(todo.pop(), ()):
                if d not in seen:
                    seen.add(d)
                    todo.append(d)
                    if d in new:
                        unit_of.setdefault(d, i)
    managers = [m for m, _ in units]
    for pk in new:
        if pk not in unit_of and pk[0] in managers:
            unit_of[pk] = managers.index(pk[0])
    return unit_of


def _by_directory(path: str, dirs_of, unit_of, first: Mapping[str, int], managers: Sequence[str]) -> int:
    """The unit of a file no record names: the unit whose packages list the nearest directory above it."""
    d = path
    while "/" in d:
        d = d.rsplit("/", 1)[0]
        owners = {unit_of[pk] for pk in dirs_of.get(d, ()) if pk in unit_of}
        if len(owners) == 1:
            return owners.pop()
        if owners:
            return min(owners)
    return 0 if not managers else min(first.values())


def image_layer_split(img, position: int, units: Sequence[tuple[str, frozenset[str]]], *,
                      recommends: bool = False) -> Split:
    """:func:`split_layer` of layer ``position`` of ``img`` (its file table from
    the contents engine, the package records read from its blob)."""
    from ...contents.layers import ScanOptions, image_contents
    from ...contents.members import read_members

    _scans, table, _m = image_contents(img, merge=False, options=ScanOptions(hash=None, progress=False))
    cols = table.select(["position", "path", "type", "size", "link_target"]).to_pydict()
    entries = [(p, t, s, l) for pos, p, t, s, l in zip(cols["position"], cols["path"], cols["type"], cols["size"],
                                                      cols["link_target"]) if pos == position]
    return split_layer(entries, read_members(img, position, metadata_wanted), units, recommends=recommends)
