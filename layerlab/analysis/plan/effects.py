"""What a RUN command does, read with a real shell parser (``bashlex``).

``run_effect("apt-get update && apt-get install -y b a && rm -rf /var/lib/apt/lists/*")``
splits the command lists (``&&``, ``;``, ``||``), recognises the package
managers' commands (apt-get/apt, apk, dnf/yum/microdnf, pip/pip3/``python -m
pip``, npm) and their cleanups, and keeps every other command as text.  It
also lists the files a RUN writes (redirections, ``dd of=``, ``touch``,
``curl -o``, ``cp``/``mv`` targets…) and deletes (``rm``), so that a file
written by one step and deleted by a later one can be found
(:func:`scratch_pairs`).

What is read, per manager (everything else is an ``other`` command):

* ``install`` commands: the packages (sorted; pip names normalised as PEP 503
  does, versions kept as written), the options that change *what* is
  installed (``variant``: ``--no-install-recommends``, pip's ``--user`` or
  index, npm's ``-g``…) and options kept when the install is written again
  (``--break-system-packages``); cache options (``--no-cache-dir``,
  ``--no-cache``) and noise (``-y``, ``-q``) are dropped: they change no
  installed file.
* ``update`` (``apt-get update``, ``apk update``, ``dnf makecache``) and
  ``cleanup`` commands (``apt-get clean``, ``rm -rf /var/lib/apt/lists/*``,
  ``rm -rf /root/.cache``, ``npm cache clean``, ``dnf clean all``,
  ``pip cache purge``…).
* installs from files (``pip install -r requirements.txt``, ``npm ci``, a
  local ``npm install``) need the app's own files: they are ``other``.

A command bashlex cannot parse (or an unknown construct) makes the whole RUN
``parsed=False``: the caller compares it by text.  Commands inside ``if``,
``for``, pipelines or subshells are marked ``nested``: they may not run.
"""
from __future__ import annotations

import fnmatch
import posixpath
import re
from dataclasses import dataclass, field, replace
from typing import Sequence

from .._cache_rules import RULES, PathRule

OS_MANAGERS = ("apt", "apk", "dnf")
# the order installs run in: the OS's packages, then Python's, then Node's
STAGE = {"apt": 0, "apk": 0, "dnf": 0, "pip": 1, "npm": 2}
# OS packages that provide a language manager: its installs must run after them
PROVIDERS = {
    "pip": {"python3-pip", "python-pip", "py3-pip", "py-pip", "python3-pip-whl", "python3-virtualenv", "python3-venv"},
    "npm": {"nodejs", "npm"},
}

_WRAPPERS = {"sudo", "command", "exec", "nohup", "time", "nice"}
_PIP_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*(.*)$")


@dataclass(frozen=True)
class Install:
    """One package manager's install command."""

    manager: str                     # apt, apk, dnf, pip, npm
    packages: tuple[str, ...]        # sorted
    variant: tuple[str, ...] = ()    # options that change what is installed ("@<path>": pip run by path)
    options: tuple[str, ...] = ()    # options kept when the install is written again
    command: str = ""                # the invocation as written: apt-get, pip3, python3 -m pip, yum…
    env: tuple[str, ...] = ()        # assignments written before it (PIP_CERT=/run/secrets/ca), kept


@dataclass
class Command:
    """One simple command of a RUN."""

    argv: tuple[str, ...]
    kind: str                        # install, update, cleanup, noop, other
    text: str
    install: Install | None = None
    manager: str | None = None       # for install/update/cleanup
    cleanup: str | None = None       # the cache it removes: a kind of analysis/_cache_rules.py
    nested: bool = False             # inside if/for/while/case, a pipeline or a subshell


@dataclass
class RunEffect:
    """What one RUN does (see the module's docstring)."""

    text: str
    parsed: bool
    commands: list[Command] = field(default_factory=list)
    writes: tuple[str, ...] = ()     # paths written and not deleted by the same RUN
    deletes: tuple[str, ...] = ()    # paths (or globs) it deletes
    error: str | None = None

    @property
    def installs(self) -> list[Install]:
        return [c.install for c in self.commands if c.install is not None]

    @property
    def updates(self) -> set[str]:
        return {c.manager for c in self.commands if c.kind == "update" and c.manager}

    @property
    def cleanups(self) -> set[str]:
        return {c.cleanup for c in self.commands if c.cleanup}

    @property
    def other(self) -> list[str]:
        return [c.text for c in self.commands if c.kind == "other"]

    @property
    def pure_install(self) -> bool:
        """Only package installs (with updates and cleanups), nothing conditional."""
        return (self.parsed and bool(self.installs) and not self.writes
                and all(c.kind in {"install", "update", "cleanup", "noop"} and not c.nested for c in self.commands))

    @property
    def housekeeping(self) -> bool:
        """Only index updates and cleanups (a step preparing or tidying an install)."""
        return (self.parsed and any(c.kind in {"update", "cleanup"} for c in self.commands)
                and all(c.kind in {"update", "cleanup", "noop"} and not c.nested for c in self.commands))

    @property
    def installs_anything(self) -> bool:
        return any(c.kind == "install" for c in self.commands) or any(
            c.kind == "other" and _installer(c.argv) for c in self.commands
        )


def add_wording(wording: dict, inst: Install) -> None:
    """Record ``inst`` in ``wording`` ((manager, variant) -> the Install a unit is
    written with): the first app's invocation, every app's kept options
    (``--break-system-packages``…) and leading assignments, once each."""
    have = wording.get((inst.manager, inst.variant))
    opts = tuple(sorted(set(inst.options) | set(have.options if have else ())))
    env = tuple(dict.fromkeys((have.env if have else ()) + inst.env))
    wording[(inst.manager, inst.variant)] = replace(have or inst, options=opts, env=env)


# -- the shell -----------------------------------------------------------------
def _simple_commands(node, nested: bool, out: list) -> None:
    """Every simple command under ``node`` as (node, nested), in order."""
    kind = node.kind
    if kind == "command":
        out.append((node, nested))
        return
    deeper = nested or kind in {"pipeline", "compound", "if", "for", "while", "until", "function", "case"}
    if kind == "pipeline" and sum(1 for p in node.parts if p.kind == "command") <= 1:
        deeper = nested
    for child in list(getattr(node, "parts", []) or []) + list(getattr(node, "list", []) or []):
        if hasattr(child, "kind") and child.kind not in {"word", "assignment", "redirect"}:
            _simple_commands(child, deeper, out)


def _argv(node, text: str) -> tuple[list[str], list[tuple[str, str]], str]:
    """(words without leading assignments/wrappers, redirections (type, target), source text)."""
    words: list[str] = []
    redirs: list[tuple[str, str]] = []
    for p in node.parts:
        if p.kind == "word":
            words.append(p.word)
        elif p.kind == "assignment" and not words:
            continue
        elif p.kind == "assignment":
            words.append(p.word)
        elif p.kind == "redirect":
            target = getattr(p, "output", None)
            if getattr(target, "kind", None) == "word":
                redirs.append((str(p.type), target.word))
    while words and (words[0] in _WRAPPERS or words[0] == "env"):
        words.pop(0)
        while words and ("=" in words[0] and not words[0].startswith("-")):
            words.pop(0)
    return words, redirs, text[node.pos[0]:node.pos[1]]


def _leading_assignments(node) -> list[str]:
    """``NAME=value`` words written before a simple command (its environment)."""
    out = []
    for p in node.parts:
        if p.kind != "assignment":
            break
        out.append(p.word)
    return out


def run_effect(command: str) -> RunEffect:
    """What a RUN command (the shell text after ``RUN``) does; never raises."""
    import bashlex

    try:
        trees = bashlex.parse(command)
    except Exception as e:  # noqa: BLE001 - bashlex raises its own and plain errors; fall back to text
        return RunEffect(command, False, error=f"{type(e).__name__}: {e}")
    found: list = []
    try:
        for t in trees:
            _simple_commands(t, False, found)
        cmds: list[Command] = []
        writes: list[str] = []
        deletes: list[str] = []
        for node, nested in found:
            words, redirs, text = _argv(node, command)
            writes.extend(t for kind, t in redirs if kind in {">", ">>", ">|", "&>"} and not t.startswith("/dev/"))
            if not words:
                continue
            c = _command(words, text)
            c.nested = nested
            if c.install is not None:
                env = tuple(_leading_assignments(node))
                c.install = replace(c.install, env=tuple(a for a in env if not a.startswith("DEBIAN_FRONTEND=")))
            cmds.append(c)
            w, d = _files(words)
            # a file written then deleted in the same RUN never reaches the layer
            writes = [x for x in writes if not any(_covers(x, y) for y in d)] + w
            deletes.extend(d)
    except Exception as e:  # noqa: BLE001 - an unexpected tree shape: compare by text
        return RunEffect(command, False, error=f"{type(e).__name__}: {e}")
    return RunEffect(command, True, cmds, tuple(dict.fromkeys(writes)), tuple(dict.fromkeys(deletes)))


def _covers(path: str, pattern: str) -> bool:
    """Whether deleting ``pattern`` (a path, a directory or a glob) removes ``path``."""
    p = posixpath.normpath(path)
    q = posixpath.normpath(pattern) if pattern.strip("/") else "/"
    while True:  # the path itself or a directory above it matches
        if p == q or fnmatch.fnmatchcase(p, q):
            return True
        up = posixpath.dirname(p)
        if up == p or not up or up == ".":
            return False
        p = up


def _files(words: list[str]) -> tuple[list[str], list[str]]:
    """(written, deleted) paths of one command (what its words say)."""
    name = posixpath.basename(words[0])
    args = words[1:]
    plain = [a for a in args if not a.startswith("-")]
    if name in {"rm", "rmdir", "unlink"}:
        return [], plain
    if name == "dd":
        return [a[3:] for a in args if a.startswith("of=")], []
    if name in {"touch", "fallocate", "truncate", "mkfile"}:
        vals = _without_option_values(args, {"-l", "-s", "--length", "--size", "-d", "-r", "-t"})
        return vals, []
    if name in {"cp", "mv", "ln", "install"} and len(plain) >= 2:
        return [plain[-1]], ([plain[0]] if name == "mv" else [])
    if name == "curl":
        return _option_values(args, {"-o", "--output"}), []
    if name == "wget":
        return _option_values(args, {"-O", "--output-document"}), []
    if name == "tee":
        return plain, []
    return [], []


def _option_values(args: list[str], names: set[str]) -> list[str]:
    out = []
    for i, a in enumerate(args):
        if a in names and i + 1 < len(args):
            out.append(args[i + 1])
        for n in names:
            if n.startswith("--") and a.startswith(n + "="):
                out.append(a[len(n) + 1:])
    return [o for o in out if o != "-"]


def _without_option_values(args: list[str], takes_value: set[str]) -> list[str]:
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in takes_value:
            skip = True
        elif not a.startswith("-"):
            out.append(a)
    return out


def _installer(argv: tuple[str, ...]) -> bool:
    """Whether an ``other`` command still installs packages (from files, or conditionally)."""
    words = list(argv)
    return _manager(words)[0] is not None and any(w in {"install", "i", "add", "ci"} for w in words[1:4])


# -- the package managers -----------------------------------------------------
def _manager(words: list[str]) -> tuple[str | None, str, list[str]]:
    """(manager, the invocation as written, the words after it)."""
    name = posixpath.basename(words[0])
    if name in {"apt-get", "apt", "apt-cache"}:
        return "apt", words[0], words[1:]
    if name == "yarn":
        return "yarn", words[0], words[1:]
    if name == "apk":
        return "apk", words[0], words[1:]
    if name in {"dnf", "yum", "microdnf"}:
        return "dnf", words[0], words[1:]
    if re.fullmatch(r"pip(\d+(\.\d+)?)?", name):
        return "pip", words[0], words[1:]
    if re.fullmatch(r"python(\d+(\.\d+)?)?", name) and len(words) > 2 and words[1:3] == ["-m", "pip"]:
        return "pip", " ".join(words[:3]), words[3:]
    if name == "npm":
        return "npm", words[0], words[1:]
    return None, "", words


# per manager: options that take a value (when not written --opt=value), options that
# change what is installed, options kept when writing the install again
_OPTS = {
    "apt": ({"-o", "-t", "-c", "--option", "--target-release", "--config-file", "--default-release"},
            {"--no-install-recommends", "--install-suggests", "-t", "--target-release", "--default-release"},
            {"--allow-downgrades", "--allow-change-held-packages"}),
    "apk": ({"-t", "--virtual", "-X", "--repository", "-p", "--root", "--repositories-file"},
            {"-X", "--repository", "--virtual", "-t", "--repositories-file"}, set()),
    "dnf": ({"--setopt", "--enablerepo", "--disablerepo", "-c", "--config", "--releasever", "--installroot"},
            {"--nodocs", "--setopt", "--enablerepo", "--disablerepo", "--releasever", "--installroot",
             "--no-install-weak-deps"}, set()),
    "pip": ({"-r", "--requirement", "-c", "--constraint", "-i", "--index-url", "--extra-index-url", "-t",
             "--target", "--prefix", "--root", "-e", "--editable", "-f", "--find-links", "--trusted-host",
             "--platform", "--python-version", "--only-binary", "--no-binary", "--progress-bar", "--cache-dir",
             "--src", "--root-user-action", "--implementation", "--abi", "--upgrade-strategy"},
            {"-c", "--constraint", "-i", "--index-url", "--extra-index-url", "-t", "--target", "--prefix",
             "--root", "-f", "--find-links", "--user", "--no-deps", "--pre", "--no-compile", "--only-binary",
             "--no-binary", "-U", "--upgrade", "--force-reinstall", "--ignore-installed", "-I"},
            {"--break-system-packages", "--root-user-action", "--disable-pip-version-check", "--trusted-host"}),
    "npm": ({"--prefix", "--registry", "-C", "--omit", "--include"},
            {"-g", "--global", "--prefix", "--registry", "--omit", "--include", "--production",
             "--legacy-peer-deps", "--ignore-scripts"}, {"--unsafe-perm"}),
    "yarn": (set(), set(), set()),
}
_SUB = {
    "apt": {"install": "install", "update": "update", "clean": "cleanup", "autoclean": "cleanup"},
    "apk": {"add": "install", "update": "update"},
    "dnf": {"install": "install", "makecache": "update", "clean": "cleanup"},
    "pip": {"install": "install"},
    "npm": {"install": "install", "i": "install", "add": "install"},
    "yarn": {},  # recognised (managers_run), not read: its commands are "other"
}
# what a manager's own cleanup command removes (the cache table's kinds)
_CLEANUP = {"apt": "apt package cache", "dnf": "dnf/yum cache", "apk": "apk cache", "pip": "pip cache",
            "npm": "npm cache"}


_SHELLS = {"sh", "bash", "dash", "ash", "zsh"}


def managers_run(command: str) -> frozenset[str] | None:
    """The package managers whose commands a RUN command runs (``apt`` for
    apt-get/apt/apt-cache, ``apk``, ``dnf`` for dnf/yum/microdnf, ``pip``,
    ``npm``, ``yarn``), conditional ones and ``sh -c '…'`` scripts included;
    ``None`` when bashlex cannot read it (it may run any).  A path that only
    names a manager (``rm -rf /var/lib/apt/lists/*``, ``echo apt-get``) is
    not a run."""
    eff = run_effect(command)
    if not eff.parsed:
        return None
    out: set[str] = set()
    for c in eff.commands:
        mgr = _manager(list(c.argv))[0]
        if mgr is not None:
            out.add(mgr)
        elif posixpath.basename(c.argv[0]) in _SHELLS and "-c" in c.argv[1:-1]:
            inner = managers_run(c.argv[c.argv.index("-c", 1) + 1])
            if inner is None:
                return None
            out |= inner
    return frozenset(out)


def _split_options(mgr: str, rest: list[str]) -> tuple[list[str], list[tuple[str, str | None]]]:
    """(positional words, [(option, value)]); combined short flags (``-yq``) stay one option."""
    takes, _, _ = _OPTS[mgr]
    pos: list[str] = []
    opts: list[tuple[str, str | None]] = []
    i = 0
    while i < len(rest):
        w = rest[i]
        if w.startswith("-") and w != "-":
            name, eq, val = w.partition("=")
            if not eq and name in takes and i + 1 < len(rest):
                opts.append((name, rest[i + 1]))
                i += 2
                continue
            opts.append((name, val if eq else None))
        else:
            pos.append(w)
        i += 1
    return pos, opts


def _command(words: list[str], text: str) -> Command:
    argv = tuple(words)
    if words[0] in {"set", "true", ":", "export", "umask"} or words[0].startswith("DEBIAN_FRONTEND="):
        return Command(argv, "noop", text)
    mgr, invocation, rest = _manager(words)
    if mgr is None:
        cleanup = _rm_cleanup(words)
        if cleanup:
            return Command(argv, "cleanup", text, manager=cleanup[1], cleanup=cleanup[0])
        return Command(argv, "other", text)
    pos, opts = _split_options(mgr, rest)
    if not pos:
        return Command(argv, "other", text)
    sub, args = pos[0], pos[1:]
    if mgr == "npm" and sub == "cache" and args[:1] == ["clean"]:
        return Command(argv, "cleanup", text, manager="npm", cleanup=_CLEANUP["npm"])
    if mgr == "pip" and sub == "cache" and args[:1] in (["purge"], ["remove"]):
        return Command(argv, "cleanup", text, manager="pip", cleanup=_CLEANUP["pip"])
    if mgr == "apk" and sub == "cache" and args[:1] in (["clean"], ["purge"]):
        return Command(argv, "cleanup", text, manager="apk", cleanup=_CLEANUP["apk"])
    kind = _SUB[mgr].get(sub)
    if kind == "cleanup":
        return Command(argv, "cleanup", text, manager=mgr, cleanup=_CLEANUP[mgr])
    if kind == "update":
        return Command(argv, "update", text, manager=mgr)
    if kind != "install":
        return Command(argv, "other", text)
    inst = _install(mgr, invocation, args, opts)
    if inst is None:
        return Command(argv, "other", text)
    return Command(argv, "install", text, install=inst, manager=mgr)


def _install(mgr: str, invocation: str, args: list[str], opts: list[tuple[str, str | None]]) -> Install | None:
    """The Install of one install command, or None when it installs from files."""
    _, changes, keep = _OPTS[mgr]
    names = {o for o, _ in opts}
    if mgr == "pip" and (names & {"-r", "--requirement", "-e", "--editable"}):
        return None
    if mgr == "npm" and not (names & {"-g", "--global"}):
        return None  # a local install: needs the app's package.json and WORKDIR
    if mgr == "apk" and names & {"--virtual", "-t"}:
        return None  # a virtual group: deleted later by name (apk del)
    if not args or any(a.startswith((".", "/", "~")) or "$" in a or "`" in a or "://" in a or a.endswith((".deb", ".rpm", ".whl", ".tgz"))
                       for a in args):
        return None
    variant = tuple(sorted(_opt_text(o, v) for o, v in opts if o in changes and o not in {"--global"})
                    + (["-g"] if mgr == "npm" else []))
    if mgr == "pip":
        variant = tuple(sorted({"--upgrade" if v == "-U" else v for v in variant}))
        if "/" in invocation:  # a pip by path (a venv's): another target than the system's
            variant += ("@" + invocation,)
    options = tuple(sorted({_opt_text(o, v) for o, v in opts if o in keep}))
    pkgs = [_pip_name(a) if mgr == "pip" else a for a in args]
    return Install(mgr, tuple(sorted(set(pkgs))), tuple(dict.fromkeys(variant)), options, invocation)


def _opt_text(opt: str, val: str | None) -> str:
    """``--opt=value``, or ``-o value`` for a short option (as the managers parse them)."""
    if val is None:
        return opt
    return f"{opt}={val}" if opt.startswith("--") else f"{opt} {val}"


def _pip_name(req: str) -> str:
    """``Flask_Login[x] >= 1`` -> ``flask-login[x]>=1`` (the name as PEP 503 compares it)."""
    m = _PIP_NAME.match(req.strip())
    if not m:
        return req
    name = re.sub(r"[-_.]+", "-", m.group(1)).lower()
    return name + (m.group(2) or "") + re.sub(r"\s+", "", m.group(3))


def package_name(pkg: str) -> str:
    """A package without its version (``a=1.2``, ``x==1.0``, ``a@1``, ``a/bookworm``)."""
    if pkg.startswith("@"):
        return "@" + re.split(r"[@]", pkg[1:], maxsplit=1)[0]
    return re.split(r"[=<>!~@/\[; ]", pkg, maxsplit=1)[0]


# a deleted path is a cache when it, or a file the cache table names that could be under it
# (or match its glob), is one
_PROBES = ("x", "x.deb", "x.bin", "pip/x", "archives/x.deb")
_MANAGER_OF_RULE = {"apt": "apt", "apk": "apk", "dnf/yum": "dnf", "pip": "pip", "npm": "npm", "yarn": "yarn"}


def cache_manager(kind: str) -> str | None:
    """The package manager (as :func:`managers_run` names it) whose cache or
    lists the cache kind ``kind`` of ``analysis/_cache_rules.py`` is; None for
    a kind of no manager (temporary files, byte code)."""
    for rule in RULES:
        if rule.kind == kind:
            return _MANAGER_OF_RULE.get(rule.manager)
    return None


def _cache_kind(path: str) -> PathRule | None:
    """The cache rule (``analysis/_cache_rules.py``) of what deleting ``path`` removes, if any."""
    base = re.sub(r"^~/", "root/", path).lstrip("/").rstrip("/")
    parent, _, last = base.rpartition("/")
    if "*" in parent or "?" in parent or not base:
        return None
    if "*" in last or "?" in last:
        candidates = [f"{parent}/{p}" for p in _PROBES if "/" not in p and fnmatch.fnmatchcase(p, last)]
    else:
        candidates = [base] + [f"{base}/{p}" for p in _PROBES]
    for cand in candidates:
        for rule in RULES:
            if re.fullmatch(rule.pattern, cand):
                if rule.cache:
                    return rule
                break
    return None


def _rm_cleanup(words: list[str]) -> tuple[str, str] | None:
    """(cleanup kind, manager) when an ``rm`` only deletes package-manager caches."""
    if posixpath.basename(words[0]) != "rm":
        return None
    rules = [_cache_kind(w) for w in words[1:] if not w.startswith("-")]
    if not rules or any(r is None for r in rules):
        return None
    return rules[0].kind, _MANAGER_OF_RULE.get(rules[0].manager, rules[0].manager)  # type: ignore[union-attr]


# -- across steps -------------------------------------------------------------
def scratch_pairs(effects: Sequence[RunEffect | None]) -> list[tuple[int, int, list[str]]]:
    """(writer, deleter, paths): step ``writer`` writes files that a later step
    ``deleter`` deletes (``None`` entries are steps that are not RUNs)."""
    out = []
    for i, e in enumerate(effects):
        if e is None or not e.writes:
            continue
        for j in range(i + 1, len(effects)):
            d = effects[j]
            if d is None or not d.deletes:
                continue
            hit = [w for w in e.writes if any(_covers(w, x) for x in d.deletes)]
            if hit:
                out.append((i, j, hit))
                break
    return out
