"""The apps' chains rewritten so that steps compare by what they do
(``regroup_chains``), before the trie overlays them.

Each Dockerfile app's chain is read with :func:`~.effects.run_effect` and cut
in three:

* the *head*: ``FROM`` and the context steps that change every later step
  (``USER``, ``SHELL``, proxies) written before the first install;
* the *install units*: the packages of the *pure install* RUNs (only
  installs, index updates and cleanups), merged with the other apps' (see
  below); housekeeping RUNs (``apt-get update``, ``rm -rf
  /var/lib/apt/lists/*``) are absorbed into them;
* the *others*, in their order: every other step, so a ``python3 -c`` step
  always runs on a layer that has the python3 the app installs.  A step that
  may change how later installs of a manager behave (writes under
  ``/etc/apt`` or ``/etc/pip.conf``, ``add-apt-repository``, ``python -m
  venv``, ``ENV PATH=…``, a shell script, a RUN the parser cannot read, a RUN
  that installs among other commands) keeps that manager's later installs
  among the others, as written, after it;
* the *tail*: from the app's own ``COPY``/``ADD`` on (its files stay in the
  app, and so does everything after them), as written.

Install units: every (manager, variant, package) the apps install is owned by
the set of apps that install it; a unit is the packages of one stage (OS
packages, then pip, then npm) owned by the same set of apps, so split or
merged, reordered or reworded installs of the same packages are one unit.
Units run most-shared first (the trunk of the trie), OS packages before the
language packages of the same apps; a pip (npm) unit never runs before the
unit that installs python3-pip (nodejs/npm) for one of its apps — those apps
get their packages in a unit of their own after it.  A unit is written as
one RUN that installs its packages and cleans up in the same layer
(``apt-get update && … apt-get install -y … && apt-get clean && rm -rf
/var/lib/apt/lists/*``, ``pip install --no-cache-dir …``), with the RUN flags
(``--mount=…``) of the steps it replaces.

A step that writes files a later step of the same app deletes (a scratch file
written in one RUN, removed in another) is joined with it into one RUN
(``joins.py``) when only RUNs lie between them; otherwise it is keyed to its
app, so it never moves into a shared base without its cleanup.

Sizes: a unit's layer is the sum of the app's original steps it replaces
when those steps installed nothing else; those steps may have left caches
the unit's RUN removes, so a build can be smaller (noted).  A step that
installed the packages of several units (``python3-pip`` with an app-only
package in one ``apt-get``) gives each its share of the step's layer, split
by package (``attribute.py``; needs the app's built image, else unknown):
such sizes are estimates (``Step.estimated``, named in the notes), and the
trie prefers a size another app measured in place.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence


from ...errors import LayerlabError
from ...model import Image
from .attribute import Split, image_layer_split
from .joins import join_scratch
from .samecontent import ContentFindings, match_content, match_kept_installs, step_contents
from .effects import PROVIDERS, STAGE, Install, RunEffect, add_wording, package_name, run_effect, scratch_pairs
from .steps import CONTEXT_INSTRUCTIONS, Step

ALL_MANAGERS = frozenset(STAGE)
LANGUAGES = frozenset({"pip", "npm"})
# context steps: variables that change how every later install behaves (the head, before the
# first install), and those that change one manager's
_GLOBAL_VAR = re.compile(r"^(https?_proxy|HTTPS?_PROXY|no_proxy|NO_PROXY|LD_LIBRARY_PATH|HOME|TMPDIR)$")
_MANAGER_VAR = [
    # (PIP_BREAK_SYSTEM_PACKAGES only lets pip install: the app's units get --break-system-packages)
    (re.compile(r"^(PIP_NO_CACHE_DIR|PIP_DISABLE_PIP_VERSION_CHECK|PIP_ROOT_USER_ACTION|PIP_BREAK_SYSTEM_PACKAGES|"
                r"PYTHONUNBUFFERED|"
                r"PYTHONDONTWRITEBYTECODE|DEBIAN_FRONTEND)$"), frozenset()),   # change no installed file
    (re.compile(r"^PATH$"), LANGUAGES),
    (re.compile(r"^(VIRTUAL_ENV|CONDA\w*|PYTHON\w*|PIP_\w*)$"), frozenset({"pip"})),
    (re.compile(r"^(NPM_\w*|npm_config_\w*|NODE_\w*)$"), frozenset({"npm"})),
    (re.compile(r"^APT_\w*$"), frozenset({"apt"})),
]
# files and commands that change how later installs of some managers behave
_CONFIG_PATHS = [
    (("/etc/apt", "/usr/share/keyrings"), frozenset({"apt"})),
    (("/etc/apk",), frozenset({"apk"})),
    (("/etc/yum", "/etc/dnf", "/etc/pki/rpm"), frozenset({"dnf"})),
    (("/etc/pip.conf", "/root/.config/pip", "/root/.pip"), frozenset({"pip"})),
    (("/etc/npmrc", "/root/.npmrc"), frozenset({"npm"})),
    (("/etc/ssl", "/usr/local/share/ca-certificates", "/etc/pki", "/etc/resolv.conf", "/etc/hosts"), ALL_MANAGERS),
]
_CONFIG_COMMANDS = {
    "add-apt-repository": {"apt"}, "apt-key": {"apt"}, "gpg": {"apt"}, "dpkg": {"apt"}, "rpm": {"dnf"},
    "update-ca-certificates": ALL_MANAGERS, "update-alternatives": LANGUAGES, "alternatives": LANGUAGES,
    "virtualenv": {"pip"}, "conda": {"pip"}, "mamba": {"pip"}, "pyenv": {"pip"}, "uv": {"pip"},
    "corepack": {"npm"}, "nvm": {"npm"}, "n": {"npm"},
    # a script (often downloaded): anything
    "sh": ALL_MANAGERS, "bash": ALL_MANAGERS, "dash": ALL_MANAGERS, "source": ALL_MANAGERS, ".": ALL_MANAGERS,
}
_MANAGER_ORDER = {"apt": 0, "apk": 1, "dnf": 2, "pip": 3, "npm": 4}


@dataclass
class _Split:
    """One app's chain cut for regrouping."""

    head: list[Step] = field(default_factory=list)
    installs: list[tuple[Step, list[Install]]] = field(default_factory=list)
    absorbed: list[Step] = field(default_factory=list)
    others: list[Step] = field(default_factory=list)
    tail: list[Step] = field(default_factory=list)
    kept: list[Step] = field(default_factory=list)     # installs kept as written (after what configures them)
    blocked_by: Step | None = None
    chain: list[Step] = field(default_factory=list)    # the chain cut (scratch steps joined)


def _var_names(st: Step) -> list[str]:
    rest = st.text.split(" ", 1)[1] if " " in st.text else ""
    return [w.split("=", 1)[0] for w in rest.split() if w and "=" in w] or rest.split()[:1]


def _context_configures(st: Step) -> tuple[bool, frozenset]:
    """(changes every later step's environment, managers whose installs it changes)."""
    if st.instruction in {"USER", "SHELL"}:
        return True, ALL_MANAGERS
    if st.instruction not in {"ENV", "ARG"}:
        return False, frozenset()
    glob, mgrs = False, frozenset()
    for v in _var_names(st):
        if _GLOBAL_VAR.match(v):
            glob, mgrs = True, ALL_MANAGERS
            continue
        for pattern, which in _MANAGER_VAR:
            if pattern.match(v):
                mgrs = mgrs | which
                break
    return glob, mgrs


def _configures(eff: RunEffect) -> frozenset:
    """The managers whose later installs a RUN may change (all of them when it cannot be read)."""
    if not eff.parsed:
        return ALL_MANAGERS
    out: set[str] = set()
    for c in eff.commands:
        name = c.argv[0].rsplit("/", 1)[-1]
        out |= _CONFIG_COMMANDS.get(name, set())
        if len(c.argv) > 2 and c.argv[1:3] == ("-m", "venv"):
            out.add("pip")
        for prefixes, which in _CONFIG_PATHS:
            if any(a.startswith(prefixes) for a in c.argv[1:]) or any(w.startswith(prefixes) for w in eff.writes):
                out |= which
    if eff.installs_anything:
        out |= LANGUAGES  # it may install the python3-pip or npm later installs run with
    return frozenset(out)


def _split(app: str, chain: list[Step], notes: list[str], img: Image | None = None,
           tables: dict | None = None) -> _Split:
    """Cut one app's chain into head, install units' steps, others and tail (its
    scratch steps joined with their cleanup first: :func:`.joins.join_scratch`)."""
    out = _Split()
    chain = join_scratch(app, chain, img, notes, tables)
    out.chain = list(chain)
    effects: list[RunEffect | None] = [run_effect(s.text[4:]) if s.instruction == "RUN" else None for s in chain]
    pinned: dict[int, str] = {}
    for i, j, paths in scratch_pairs(effects):
        where = f"line {chain[j].line}" if chain[j].line else f"step {j}"
        pinned[i] = f"writes {', '.join(paths[:3])}, deleted at {where}"
    seen_install = False
    env_options: set[str] = set()  # pip options the app set through ENV, kept in its units
    configured: set[str] = set()  # managers whose later installs stay where they are
    kept_installs: set[str] = set()
    for i, st in enumerate(chain):
        eff = effects[i]
        if out.blocked_by is not None:
            out.tail.append(st)
        elif st.instruction == "FROM":
            out.head.append(st)
        elif st.instruction in CONTEXT_INSTRUCTIONS:
            glob, mgrs = _context_configures(st)
            env_options |= _env_options(st)
            if glob and not seen_install:
                out.head.append(st)
            else:
                configured |= mgrs
                out.others.append(st)
        elif st.instruction != "RUN" or eff is None:
            out.blocked_by = st  # the app's own files (COPY/ADD) and what an image's history cannot tell
            out.tail.append(st)
        elif i in pinned:
            st.key = f"{st.text} [{app}: {pinned[i]}]"
            notes.append(f"{app}: {st.text[:50]!r} {pinned[i]}: kept in the app (a base would store the bytes)")
            configured |= _configures(eff)
            out.others.append(st)
        elif eff.pure_install and not ({x.manager for x in eff.installs} & configured):
            out.installs.append((st, [_with_env_options(i, env_options) for i in eff.installs]))
            seen_install = True
        elif eff.housekeeping:
            out.absorbed.append(st)
        else:
            if eff.pure_install:  # after a step that configures its manager: kept where it is
                kept_installs |= {x.manager for x in eff.installs}
                out.kept.append(st)
            configured |= _configures(eff)
            out.others.append(st)
    # housekeeping for a manager the units do not install with, or one a kept install needs
    managers = {i.manager for _st, insts in out.installs for i in insts}
    pos = {id(s): i for i, s in enumerate(chain)}
    keep = [s for s in out.absorbed if not _managers(effects[pos[id(s)]]) <= managers - kept_installs]
    if keep:
        out.absorbed = [s for s in out.absorbed if s not in keep]
        out.others = sorted(out.others + keep, key=lambda s: pos[id(s)])
    return out


_BREAK = re.compile(r"(?:^|\s)PIP_BREAK_SYSTEM_PACKAGES=[\"']?([^\s\"']*)")


def _env_options(st: Step) -> set[str]:
    """pip options an ENV sets that a unit written without that ENV needs (PIP_BREAK_SYSTEM_PACKAGES)."""
    m = _BREAK.search(st.text) if st.instruction == "ENV" else None
    return {"--break-system-packages"} if m and m.group(1).lower() not in {"", "0", "false", "no", "off"} else set()


def _with_env_options(inst: Install, options: set[str]) -> Install:
    if inst.manager != "pip" or not options - set(inst.options):
        return inst
    return replace(inst, options=tuple(sorted(set(inst.options) | options)))


def _managers(eff: RunEffect | None) -> set[str]:
    return {c.manager for c in eff.commands if c.manager} if eff is not None else set()


def _unit_keys(splits: Mapping[str, _Split], apps: Sequence[str]) -> dict[tuple, frozenset]:
    """(app, manager, variant, package) -> the set of apps owning it, providers first."""
    owners: dict[tuple, list[str]] = {}
    for app in apps:
        for _st, insts in splits[app].installs:
            for inst in insts:
                for p in inst.packages:
                    lst = owners.setdefault((inst.manager, inst.variant, p), [])
                    if app not in lst:
                        lst.append(app)
    keys = {(a, *k): frozenset(v) for k, v in owners.items() for a in v}
    rank = {a: i for i, a in enumerate(apps)}
    for _ in range(len(apps) + 2):
        order = _unit_order(keys, rank)
        changed = False
        by_entry: dict[tuple, dict[str, frozenset]] = {}
        for (a, m, var, p), s in keys.items():
            if STAGE[m] == 0:
                continue
            prov = _provider_unit(keys, a, m, order)
            if prov is not None and order[prov] > order[(STAGE[m], s)]:
                by_entry.setdefault((m, var, p, s), {})[a] = prov[1]
        for (m, var, p, s), violators in by_entry.items():
            rest = s - frozenset(violators)
            for a in rest:
                keys[(a, m, var, p)] = rest
            for a, pset in violators.items():
                keys[(a, m, var, p)] = frozenset(b for b, q in violators.items() if q == pset)
            changed = True
        if not changed:
            break
    return keys


def _unit_order(keys: Mapping[tuple, frozenset], rank: Mapping[str, int]) -> dict[tuple, int]:
    units = {(STAGE[m], s) for (_a, m, _v, _p), s in keys.items()}
    ordered = sorted(units, key=lambda u: (-len(u[1]), u[0], sorted(rank[a] for a in u[1])))
    return {u: i for i, u in enumerate(ordered)}


def _provider_unit(keys, app: str, manager: str, order) -> tuple | None:
    """The (latest) OS unit that installs ``manager``'s provider for ``app``."""
    best = None
    for (a, m, _v, p), s in keys.items():
        if a == app and STAGE[m] == 0 and package_name(p) in PROVIDERS.get(manager, ()):
            u = (0, s)
            if best is None or order[u] > order[best]:
                best = u
    return best


def _unit_text(groups: Mapping[tuple[str, tuple], list[str]], wording: Mapping[tuple, Install]) -> list[str]:
    """The shell commands of one unit: installs with their cleanup, per manager."""
    cmds: list[str] = []
    by_mgr: dict[str, list[tuple[tuple, list[str]]]] = {}
    for (m, var), pkgs in groups.items():
        by_mgr.setdefault(m, []).append((var, sorted(pkgs)))
    for m in sorted(by_mgr, key=_MANAGER_ORDER.get):
        parts = sorted(by_mgr[m])
        q = lambda pk: " ".join(shlex.quote(x) for x in pk)  # noqa: E731
        w = lambda var: wording[(m, var)]  # noqa: E731
        e = lambda var: "".join(_assign(a) + " " for a in wording[(m, var)].env)  # noqa: E731
        if m == "apt":
            cmds.append("apt-get update")
            cmds += [f"{e(v)}DEBIAN_FRONTEND=noninteractive apt-get install -y {_opts(w(v), v)}{q(p)}"
                     for v, p in parts]
            cmds += ["apt-get clean", "rm -rf /var/lib/apt/lists/*"]
        elif m == "apk":
            cmds += [f"{e(v)}apk add --no-cache {_opts(w(v), v)}{q(p)}" for v, p in parts]
        elif m == "dnf":
            cmds += [f"{e(v)}{w(v).command} install -y {_opts(w(v), v)}{q(p)}" for v, p in parts]
            cmds.append(f"{w(parts[0][0]).command} clean all")
        elif m == "pip":
            cmds += [f"{e(v)}{w(v).command} install --no-cache-dir {_opts(w(v), v)}{q(p)}" for v, p in parts]
        elif m == "npm":
            cmds += [f"{e(v)}npm install {_opts(w(v), v)}{q(p)}" for v, p in parts]
            cmds.append("npm cache clean --force")
    return cmds


def _assign(a: str) -> str:
    """``NAME=value`` written back with the value quoted for the shell when it needs it."""
    name, _, value = a.partition("=")
    return f"{name}={shlex.quote(value)}" if value else f"{name}="


def _opts(inst: Install, variant: tuple) -> str:
    words = [v for v in variant if not v.startswith("@")] + [o for o in inst.options if o not in variant]
    return "".join(" ".join(shlex.quote(w) for w in o.split(" ", 1)) + " " for o in words)


def regroup_chains(chains: dict[str, list[Step]], apps: Sequence[str], eligible: Sequence[str],
                   images: Mapping[str, Image] | None = None) -> tuple[list[str], ContentFindings]:
    """Rewrite the chains of the ``eligible`` apps (Dockerfiles) in place so
    that their installs are install units (see the module's docstring);
    ``images``: the apps' built images, whose layers size the units that cut
    across an app's steps and whose contents match differently worded steps
    (:mod:`.samecontent`); returns (notes, what the ``shared_content`` frame is made of)."""
    notes: list[str] = []
    apps_e = [a for a in apps if a in eligible]
    tables: dict = {}  # image -> its stacked file table, read once for the joins and the content comparison
    splits = {a: _split(a, chains[a], notes, (images or {}).get(a), tables) for a in apps_e}
    texts = {id(st): st.text for a in apps_e for st in splits[a].chain}
    contents: dict = {}
    for a in apps_e:
        contents.update(step_contents(a, (images or {}).get(a), splits[a].chain, notes, tables))
    match_content({a: [s for s in splits[a].others if all(s is not k for k in splits[a].kept)] for a in apps_e},
                  contents, apps_e, notes)
    match_kept_installs({a: splits[a].kept for a in apps_e}, apps_e, _unit_text, notes)
    keys = _unit_keys(splits, apps_e)
    unit_of = {id(st): {(STAGE[i.manager], keys[(a, i.manager, i.variant, p)]) for i in insts for p in i.packages}
               for a in apps_e for st, insts in splits[a].installs}
    findings = ContentFindings({a: splits[a].chain for a in apps_e}, contents, apps_e, texts, unit_of)
    rank = {a: i for i, a in enumerate(apps_e)}
    order = _unit_order(keys, rank)
    content: dict[tuple, dict[tuple, set[str]]] = {}
    wording: dict[tuple, Install] = {}
    flags: dict[tuple, list[str]] = {}
    for app in apps_e:
        for st, insts in splits[app].installs:
            for inst in insts:
                add_wording(wording, inst)
                for p in inst.packages:
                    u = (STAGE[inst.manager], keys[(app, inst.manager, inst.variant, p)])
                    content.setdefault(u, {}).setdefault((inst.manager, inst.variant), set()).add(p)
                    fl = flags.setdefault(u, [])
                    fl.extend(f for f in st.run_flags if f not in fl)
    summed, estimated, failed = False, [], []
    for app in apps_e:
        sp = splits[app]
        units = sorted((u for u in order if app in u[1]), key=order.get)
        parts = _step_splits(app, units, sp, keys, (images or {}).get(app), failed)
        made = [_unit_step(app, u, sp, keys, content[u], wording, flags.get(u, []), parts) for u in units]
        summed = summed or any(s.size is not None and not s.estimated for s in made)
        estimated += [f"{app}: {_packages(content[u])}" for u, s in zip(units, made) if s.estimated]
        chains[app] = sp.head + made + sp.others + sp.tail
        n_in = len(sp.installs) + len(sp.absorbed)
        if n_in:
            notes.append(f"{app}: {n_in} install step(s) compared by effect: {len(made)} install unit(s)"
                         + (f"; kept as written after the steps they may need: {', '.join(_where(k) for k in sp.kept)}"
                            if sp.kept else ""))
    if summed:
        notes.append("install units are sized as the sum of the app's steps they replace; those steps may have "
                     "kept caches or lists the unit's RUN removes, so a build of the plan can be smaller")
    if estimated:
        notes.append("install units that cut across an app's steps are sized from those steps' layers split by "
                     "package (dpkg file lists, pip RECORDs, npm package directories; dependencies go with the "
                     "unit that pulls them in first; package indexes and caches the unit removes are dropped; "
                     "the package databases and logs each install rewrites count in every unit; other "
                     "unrecorded files go with the unit owning their directory); estimated sizes: "
                     + ", ".join(f"[{e}]" for e in estimated))
    notes.extend(failed)
    return notes, findings


def _packages(groups: Mapping[tuple, set[str]], most: int = 6) -> str:
    """A unit named by its packages (``apt: less``; the first ``most``, then how many more)."""
    out = []
    for (m, _var), pkgs in sorted(groups.items()):
        names = sorted(pkgs)
        more = f" +{len(names) - most} more" if len(names) > most else ""
        out.append(f"{m}: {' '.join(names[:most])}{more}")
    return "; ".join(out)


def _where(st: Step) -> str:
    return f"line {st.line} ({st.text[:40]!r})" if st.line else repr(st.text[:40])


def _in_unit(app: str, u: tuple, keys, i: Install, p: str) -> bool:
    return keys[(app, i.manager, i.variant, p)] == u[1] and STAGE[i.manager] == u[0]


def _step_splits(app: str, units: Sequence[tuple], sp: _Split, keys, img: Image | None,
                 failed: list[str]) -> dict[int, tuple[Split, dict[tuple, int], float | None]]:
    """id(step) -> (its layer split by the units it installs, unit -> index in the split, the
    size column's bytes per tar byte: :func:`_column_ratio`), for
    the app's install steps that install packages of several units (``img`` given)."""
    out: dict[int, tuple[Split, dict[tuple, int]]] = {}
    if img is None:
        return out
    for st, insts in sp.installs:
        touched = [u for u in units if any(_in_unit(app, u, keys, i, p) for i in insts for p in i.packages)]
        if len(touched) < 2 or st.position is None:
            continue
        want = []
        for u in touched:
            mine = [(i.manager, p) for i in insts for p in i.packages if _in_unit(app, u, keys, i, p)]
            want.append((mine[0][0], frozenset(p for _m, p in mine)))
        rec = any(i.manager == "apt" and "--no-install-recommends" not in i.variant + i.options for i in insts)
        try:
            split = image_layer_split(img, st.position, want, recommends=rec)
        except LayerlabError as e:
            failed.append(f"{app}: {_where(st)}: its layer could not be split by package ({e}); "
                          "the units it installs are not sized")
            continue
        out[id(st)] = (split, {u: k for k, u in enumerate(touched)}, _column_ratio(st, img))
    return out


def _column_ratio(st: Step, img: Image) -> float | None:
    """The step's size (the plan's size column) per byte of its layer's tar
    (the split's unit): 1 for ``size``; bytes on the wire per uncompressed byte
    for a wire column (shares of a split layer are then scaled estimates)."""
    layer = next((lay for lay in img.layer_list if lay.position == st.position), None)
    if layer is None or st.size is None or not layer.size:
        return None
    return st.size / layer.size


def _unit_size(app: str, u: tuple, mine, keys, parts) -> tuple[int | None, bool]:
    """(bytes of unit ``u``'s layer, whether estimated): the sum of the steps it replaces when
    they installed only it, else with the shares of split layers (None: unknown)."""
    pure = [st for st, insts in mine if all(_in_unit(app, u, keys, i, p) for i in insts for p in i.packages)]
    mixed = [st for st, _ in mine if st not in pure]
    if not mine or any(st.size is None for st in pure) or any(id(st) not in parts for st in mixed):
        return None, False
    size = sum(st.size for st in pure)  # type: ignore[misc]
    rewritten = 0
    for st in mixed:
        split, index, ratio = parts[id(st)]
        if ratio is None:
            return None, False
        size += round(split.own[index[u]] * ratio)
        rewritten = max(rewritten, round(split.rewritten[index[u]] * ratio))
    return size + (0 if pure else rewritten), bool(mixed)


def _unit_step(app: str, u: tuple, sp: _Split, keys, groups, wording, run_flags: list[str], parts) -> Step:
    """The app's Step for unit ``u`` (sized by :func:`_unit_size`)."""
    cmds = _unit_text(groups, wording)
    text = "RUN " + " && ".join(cmds)
    raw = "RUN " + "".join(f + " " for f in run_flags) + " \\\n    && ".join(cmds)
    mine = [(st, insts) for st, insts in sp.installs
            if any(_in_unit(app, u, keys, i, p) for i in insts for p in i.packages)]
    size, estimated = _unit_size(app, u, mine, keys, parts)
    first = mine[0][0] if mine else None
    # an estimate is not a size measured in place: the trie prefers another app's measured one
    return Step(app=app, instruction="RUN", text=text, key="effect: " + text, source=first.source if first else "",
                line=first.line if first else None, size=size, makes_layer=True, raw=raw,
                reordered=size is None or estimated, run_flags=tuple(run_flags), estimated=estimated)


def step_dependencies(steps: Sequence[Step]) -> list[set[int]]:
    """For each step of one app's chain, the earlier steps it must stay after
    when steps are reordered (``reorder=True``): everything after the app's
    own ``COPY``/``ADD``; a RUN after an install, unless it only installs OS
    packages (a ``python3 -c`` or a pip install needs what was installed);
    an install after a step that configures its manager; a step that deletes
    files an earlier step wrote (its cleanup)."""
    effects = [run_effect(st.text[4:]) if st.instruction == "RUN" else None for st in steps]
    deps: list[set[int]] = [set() for _ in steps]
    for j, sj in enumerate(steps):
        ej = effects[j]
        j_os_only = ej is not None and ej.pure_install and all(STAGE[x.manager] == 0 for x in ej.installs)
        j_managers = {x.manager for x in ej.installs} if ej is not None else set()
        for i in range(j):
            si, ei = steps[i], effects[i]
            if si.instruction in {"COPY", "ADD", "IMPORT", "UNKNOWN"} or si.instruction in {"USER", "SHELL"}:
                deps[j].add(i)
            elif ei is None or ej is None:
                continue
            elif (ei.installs or ei.installs_anything) and not j_os_only:
                deps[j].add(i)
            elif j_managers & _configures(ei):
                deps[j].add(i)
            elif scratch_pairs([ei, ej]):
                deps[j].add(i)
    return deps

