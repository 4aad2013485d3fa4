"""Paths that hold package-manager caches, temporary files and byte code: one table.

Used by :func:`layerlab.analysis.visible_waste.visible_waste` (what the final
filesystem still shows) and by :func:`layerlab.analysis.merge.suggest_merges`
(a cache a later step deleted: "cache left behind").  Paths are the file
tables' paths: no leading ``/``.  The first rule that matches a path wins.

Each rule: ``kind`` (what the files are), ``manager`` (who writes them),
``pattern`` (a regular expression over the whole path), ``confidence``
(high: never needed at run time; medium: almost never; low: often intended),
``cache`` (a package manager's download cache or index, kept only to speed
up the next install) and ``fix`` (what to write in the Dockerfile).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class PathRule:
    kind: str
    manager: str
    pattern: str
    confidence: str
    cache: bool
    fix: str


RULES: tuple[PathRule, ...] = (
    PathRule("apt package cache", "apt",
             r"var/cache/apt/archives/(?:[^/]+\.deb|partial/.+)|var/cache/apt/[^/]+\.bin",
             "high", True,
             "end the RUN that installs with `apt-get clean` (or `rm -rf /var/cache/apt/archives/*.deb "
             "/var/cache/apt/*.bin`), in the same RUN"),
    PathRule("apt package lists", "apt",
             r"var/lib/apt/lists/(?!lock$)(?!partial(?:/|$)).+",
             "high", True,
             "end the RUN that runs `apt-get update` and the install with `&& rm -rf /var/lib/apt/lists/*`, "
             "in the same RUN"),
    PathRule("apk cache", "apk", r"var/cache/apk/.+", "high", True,
             "install with `apk add --no-cache …` (or end the same RUN with `rm -rf /var/cache/apk/*`)"),
    PathRule("dnf/yum cache", "dnf/yum", r"var/cache/(?:dnf|yum)/.+", "high", True,
             "end the RUN that installs with `&& dnf clean all` (`yum clean all`; or `rm -rf /var/cache/dnf "
             "/var/cache/yum`), in the same RUN"),
    PathRule("pip cache", "pip", r"(?:.*/)?\.cache/pip/.+", "high", True,
             "install with `pip install --no-cache-dir …` (or `ENV PIP_NO_CACHE_DIR=1` before it)"),
    PathRule("npm cache", "npm", r"(?:.*/)?\.npm/.+", "high", True,
             "end the RUN that runs `npm install`/`npm ci` with `&& npm cache clean --force`, in the same RUN"),
    PathRule("yarn cache", "yarn", r"(?:.*/)?\.cache/yarn/.+", "high", True,
             "end the RUN that runs `yarn install` with `&& yarn cache clean`, in the same RUN"),
    PathRule("temporary files", "build", r"(?:var/)?tmp/.+", "medium", False,
             "delete them in the RUN that made them (`rm -rf /tmp/* /var/tmp/*` at its end), or build in a "
             "separate stage and COPY only the result"),
    PathRule("object files", "build", r".+\.o", "low", False,
             "build in a separate stage and COPY only the result, or delete the objects (`make clean`) in the "
             "RUN that built them"),
)
# byte code whose source sits beside it: not matched by a pattern (it needs the source's
# presence), so it is a rule of its own below
PYC = PathRule(
    "python byte code", "python", r"(?:.*/)?(?:__pycache__/[^/]+\.pyc|[^/]+\.pyc)", "low", False,
    "often intended (it speeds start-up; the standard library ships it); to leave it out: `ENV "
    "PYTHONDONTWRITEBYTECODE=1` before the installs and `pip install --no-compile …`",
)
_PYC_CACHED = re.compile(r"^(?P<dir>(?:.*/)?)__pycache__/(?P<name>[^/.]+)\.[^/]*\.pyc$")  # PEP 3147
_PYC_BESIDE = re.compile(r"^(?P<dir>(?:.*/)?)(?P<name>[^/]+)\.pyc$")                         # Python 2 style


def classify(paths: pd.Series) -> pd.Series:
    """The ``kind`` of each path by :data:`RULES` (first match), ``<NA>`` for none."""
    paths = pd.Series(paths, dtype="string")
    out = pd.Series(pd.NA, index=paths.index, dtype="string")
    left = pd.Series(True, index=paths.index)
    for rule in RULES:
        hit = left & paths.str.fullmatch(rule.pattern).fillna(False).astype(bool)
        out[hit] = rule.kind
        left &= ~hit
    return out


def pyc_with_source(paths: pd.Series, present: set[str]) -> pd.Series:
    """Per path: True for byte code (``__pycache__/m.cpython-311.pyc`` or ``m.pyc``)
    whose source ``m.py`` is in ``present`` (byte code without its source is the
    only copy of that code: never waste)."""
    def one(p) -> bool:
        if p is pd.NA or not str(p).endswith(".pyc"):
            return False
        m = _PYC_CACHED.match(str(p)) or _PYC_BESIDE.match(str(p))
        return bool(m) and f"{m.group('dir')}{m.group('name')}.py" in present

    paths = pd.Series(paths, dtype="string")
    out = pd.Series(False, index=paths.index, dtype=bool)
    cand = paths.str.endswith(".pyc").fillna(False).astype(bool)
    if cand.any():
        out[cand] = [one(p) for p in paths[cand]]
    return out


RULE_BY_KIND: dict[str, PathRule] = {r.kind: r for r in (*RULES, PYC)}
CACHE_KINDS: frozenset[str] = frozenset(r.kind for r in RULES if r.cache)

__all__ = ["CACHE_KINDS", "PYC", "PathRule", "RULES", "RULE_BY_KIND", "classify", "pyc_with_source"]
