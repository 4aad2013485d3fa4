"""What counts as a likely secret, and how one is masked: the rules behind
:func:`layerlab.analysis.secrets.secrets` and :func:`mask_secrets`.

Values are judged by Yelp's ``detect-secrets`` (its plugin classes, each
``analyze_line`` in its ordinary non-eager mode, then its own heuristic
filters): AWS keys, private-key headers, npm/PyPI/GitHub/GitLab/Slack/Stripe…
tokens, ``password=``-style keywords, basic-auth URLs, JWTs and high-entropy
quoted strings.  Its public-IP plugin is left out (an address is not a
credential) and no plugin ever verifies a secret over the network (the
verification filter is off in detect-secrets' default settings, which
:func:`detector_settings` enters).

layerlab adds only what detect-secrets does not do, each rule small:

* **file names** (:func:`file_rule`): detect-secrets scans the contents of
  files it is given, it never says *which* files in a filesystem to read.
  Images hold hundreds of thousands of files, so the scan reads only
  candidates: credential files by name (``id_rsa``, ``*.pem``, ``.npmrc``,
  ``.pypirc``, ``.git-credentials``, ``.netrc``, ``.aws/credentials``,
  docker ``config.json``, kube ``config``, ``.env`` …) and small
  configuration-like text files outside the distribution's own directories;
  binary keystores (``*.p12``, ``*.pfx``, ``*.jks``) are reported by name.
* **credential-file lines** (:data:`LINE_RULES`): the netrc ``password``
  token, a docker ``config.json`` ``"auth"``/``"identitytoken"`` and a
  kube config ``token:``/``client-key-data:`` carry credentials in forms no
  detect-secrets plugin matches (no keyword it knows, not quoted, or base64
  of ``user:password``); they are matched only inside files of that name.
* **INI syntax for credential files**: ``.pypirc``, ``.aws/credentials``,
  ``.my.cnf``, ``.env`` … hold ``key = value`` without quotes; they are
  handed to the keyword plugin as INI files (its unquoted rules), since their
  names carry no extension it knows.
* **variables**: a ``KEY=value`` of an env variable, a label, a build
  argument or a line of a ``.env`` file is judged as ``KEY="value"`` (see
  *Dockerfile assignments*), so a high-entropy value counts even unquoted.
* **checksum names**: a value found *only* by the high-entropy plugins is
  dropped when its variable's name says it is a checksum or an identifier
  (``*_SHA256``, ``GPG_KEY``, ``…revision``, ``…_VERSION``): official images
  set such variables by the dozen and they are public.
* **plain words**: a value found only by the keyword plugin that is one
  word of under 8 letters is dropped: in configuration files the keyword
  names a setting, not a secret (``/etc/nsswitch.conf``'s ``passwd: files``,
  ``debconf.conf``'s commented ``bindpasswd: secret``).
* **Dockerfile assignments** (:func:`assignments`): build arguments in
  BuildKit's ``|N KEY=val …`` prefix and ``ENV``/``LABEL``/``ARG`` steps are
  split into ``KEY=value`` pairs, each judged as ``KEY="value"`` (so the
  keyword and entropy plugins see a quoted value, as in a ``.env`` file).
"""
from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator

# -- masking ------------------------------------------------------------------
MASK = "***"
_SHOWN = 4          # characters of a secret shown when masked
_SHOWN_MIN_LEN = 12  # shorter secrets show none of their characters


def mask_value(value: str) -> str:
    """``value`` masked: its first 4 characters and ``***`` (only ``***`` when it
    is shorter than 12 characters, so a short password shows nothing)."""
    if len(value) < _SHOWN_MIN_LEN:
        return MASK
    return value[:_SHOWN] + MASK


# -- the detector ---------------------------------------------------------------
_SKIPPED_PLUGINS = {"IPPublicDetector"}
_ENTROPY_PLUGINS = {"Base64HighEntropyString", "HexHighEntropyString"}
_KEYWORD_PLUGINS = {"KeywordDetector"}
_KINDS = {
    "AWS Access Key": "AWS key",
    "Private Key": "private key",
    "NPM tokens": "npm token",
    "PyPI Token": "PyPI token",
    "Secret Keyword": "password or secret (by its name)",
    "Base64 High Entropy String": "high-entropy string",
    "Hex High Entropy String": "high-entropy hex string",
    "Basic Auth Credentials": "password in a URL",
    "JSON Web Token": "JSON web token",
    "GitHub Token": "GitHub token",
    "GitLab Token": "GitLab token",
    "Slack Token": "Slack token",
    "Stripe Access Key": "Stripe key",
    "OpenAI Token": "OpenAI key",
    "SendGrid API Key": "SendGrid key",
    "Azure Storage Account access key": "Azure storage key",
}
_CHECKSUM_NAME = re.compile(r"(sha\d*|sum|hash|digest|gpg|fingerprint|commit|revision|checksum|version|_id|uuid)$|"
                            r"^(gpg|sha)", re.IGNORECASE)
LINE_CHARS = 4096   # a longer line (or value) is judged by its first 4096 characters
_PLAIN_WORD = re.compile(r"^[A-Za-z]{1,7}$")
_TOKEN_LEFT = re.compile(r"[^\s'\"=:@/,;`<>]*$")
_TOKEN_RIGHT = re.compile(r"^[^\s'\"@,;`<>]*")


@dataclass(frozen=True)
class Hit:
    """One likely secret in one line: its kind, the value (the whole token the
    detector matched in), and the detectors that found it."""

    kind: str
    value: str
    detector: str


def detector_settings():
    """A context in which detect-secrets runs with its default settings (all
    plugins, default filters, never a network verification), whatever a caller
    configured globally before."""
    from detect_secrets.settings import default_settings

    return default_settings()


@lru_cache(maxsize=1)
def _plugins():
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    classes = get_mapping_from_secret_type_to_class().values()
    return tuple(cls() for cls in sorted(classes, key=lambda c: c.__name__) if cls.__name__ not in _SKIPPED_PLUGINS)


def _filtered(secret: str, line: str, plugin) -> bool:
    """detect-secrets' own heuristic filters (sequential strings, UUIDs, ids,
    templates, ``$VAR``, indirect references, non-alphanumeric strings)."""
    from detect_secrets.filters import heuristic as h

    return (h.is_sequential_string(secret) or h.is_potential_uuid(secret)
            or h.is_likely_id_string(secret, line, plugin) or h.is_templated_secret(secret)
            or h.is_prefixed_with_dollar_sign(secret) or h.is_indirect_reference(line)
            or h.is_not_alphanumeric_string(secret))


def _rank(name: str) -> int:
    return 2 if name in _ENTROPY_PLUGINS else 1 if name in _KEYWORD_PLUGINS else 0


def _token_around(line: str, found: str) -> str:
    """The whole token of ``line`` that contains ``found`` (a detector may match
    only a prefix, e.g. ``ghp`` of a GitHub token)."""
    at = line.find(found)
    if at < 0 or not found:
        return found
    left = _TOKEN_LEFT.search(line[:at]).group(0)
    right = _TOKEN_RIGHT.match(line[at + len(found):]).group(0)
    return left + found + right


def scan_line(line: str, filename: str = "", key: str | None = None) -> list[Hit]:
    """The likely secrets in one line of text, one :class:`Hit` per distinct
    value (the most specific detector names the kind).  ``filename`` lets the
    keyword plugin pick its rules by file type; ``key`` (a variable's name)
    drops entropy-only findings under checksum-like names."""
    if not line.strip():
        return []
    found: dict[str, list[tuple[int, str, str]]] = {}
    for plugin in _plugins():
        name = type(plugin).__name__
        try:
            results = [ps for ps in plugin.analyze_line(filename=filename or "line", line=line, line_number=1) or ()
                       if ps.secret_value and not _filtered(ps.secret_value, line, plugin)]
        except Exception:  # noqa: BLE001 - a plugin's bug must not end the scan; the line is skipped
            continue
        for ps in results:
            secret = ps.secret_value
            value = line.strip() if name == "PrivateKeyDetector" else _token_around(line, secret)
            found.setdefault(value, []).append((_rank(name), name, ps.type))
    hits = []
    for value, by in found.items():
        by.sort()
        if key is not None and by[0][0] == 2 and _CHECKSUM_NAME.search(key):
            continue
        if by[0][0] == 1 and all(r >= 1 for r, _n, _t in by) and _PLAIN_WORD.match(value):
            continue
        names = "+".join(dict.fromkeys(n for _r, n, _t in by))
        hits.append(Hit(_KINDS.get(by[0][2], by[0][2]), value, f"detect-secrets:{names}"))
    return hits


def scan_assignment(key: str, value: str) -> list[Hit]:
    """The likely secrets in ``KEY=value`` (an env variable, label or build
    argument), judged as the ``.env`` line ``KEY="value"``; each hit's value is
    the variable's whole value."""
    if not value:
        return []
    value = value[:LINE_CHARS]
    quoted = value.replace('"', "'")
    hits = scan_line(f'{key}="{quoted}"', ".env", key=key)
    return [Hit(h.kind, value if h.value.strip('"') in quoted else h.value, h.detector) for h in hits]


# -- Dockerfile steps -------------------------------------------------------------
def assignments(created_by: str) -> Iterator[tuple[str, str, str]]:
    """``(what, KEY, value)`` of a history step's assignments: ``build arg`` for
    the ``|N K=v …`` prefix of a ``RUN`` step, ``ENV``/``LABEL``/``ARG`` for those
    instructions (the plan's readers of ``created_by`` and Dockerfile words)."""
    from .plan.dockerfile import _pairs
    from ..labels import normalise_created_by, split_build_args

    text = created_by.strip()
    args, _rest = split_build_args(text[4:].lstrip() if text.startswith("RUN ") else text)
    for word in args:
        k, eq, v = word.partition("=")
        if eq:
            yield "build arg", k, v
    if args:
        return
    instruction, norm = normalise_created_by(text)
    if instruction not in ("ENV", "LABEL", "ARG"):
        return
    rest = norm[len(instruction):].strip()
    if not rest:
        return
    try:
        pairs = _pairs(rest, legacy_space=instruction == "ENV")
    except (ValueError, IndexError):  # an unbalanced quote: not an assignment layerlab can read
        return
    for k, v in pairs:
        if k:
            yield instruction, k, v


# -- mask_secrets -----------------------------------------------------------------
def secret_values(text: str) -> list[str]:
    """Every likely secret value in ``text`` (its lines, and the assignments of
    a history step), longest first."""
    values: set[str] = set()
    for line in text.splitlines():
        values.update(h.value for h in scan_line(line))
        # a step's text may sit inside other text (a table cell, a chart's data): judge it from where it starts
        starts = {0} | {m.start() for m in _STEP_START.finditer(line)}
        for at in sorted(starts):
            part = line[at:] if at == 0 else _EMBEDDED_END.split(line[at:], 1)[0]
            for _what, key, value in assignments(part):
                values.update(h.value for h in scan_assignment(key, value))
    return sorted(values, key=len, reverse=True)


_EMBEDDED_END = re.compile(r"[<\"\\\\]")   # where a step quoted in HTML or JSON ends
_STEP_START = re.compile(r"(?:RUN )?\|\d+ |(?:/bin/sh -c #\(nop\)\s+)?\b(?:ENV|LABEL|ARG) ")


def mask_secrets(text: str) -> str:
    """``text`` with every likely secret (as :func:`scan_line` and
    :func:`assignments` find them) replaced by its masked form
    (:func:`mask_value`): for commands, env variables and labels shown in
    reports and by the CLI."""
    if not text or not isinstance(text, str):
        return text
    with scanning():
        values = secret_values(text)
    for v in values:
        text = text.replace(v, mask_value(v))
    return text


_IN_SETTINGS = [0]


@contextlib.contextmanager
def scanning():
    """Enter the detector's settings once for many scans (nested uses are free)."""
    if _IN_SETTINGS[0]:
        _IN_SETTINGS[0] += 1
        try:
            yield
        finally:
            _IN_SETTINGS[0] -= 1
        return
    with detector_settings():
        _IN_SETTINGS[0] += 1
        try:
            yield
        finally:
            _IN_SETTINGS[0] -= 1


# -- which files to read -------------------------------------------------------------
@dataclass(frozen=True)
class FileRule:
    """What a file's name says: ``kind`` when the name alone is a finding (only
    ``name_only`` ones are reported without reading; others are reported by
    name when their contents cannot be read), ``read`` whether to scan its
    lines, ``line_rule`` the :data:`LINE_RULES` key for credential files."""

    kind: str | None
    read: bool = True
    name_only: bool = False
    line_rule: str | None = None
    ini: bool = False   # ``key = value`` lines without quotes: the keyword plugin reads it as an INI file
    env: bool = False   # ``KEY=value`` lines judged as variables (:func:`scan_assignment`)


_KEY_NAMES = re.compile(r"^(id_(rsa|dsa|ecdsa|ed25519)(_sk)?|ssh_host_\w+_key|.*\.(pem|key|ppk))$")
_KEYSTORES = re.compile(r"\.(p12|pfx|jks|keystore)$", re.IGNORECASE)
_CRED_NAMES = {
    ".npmrc": "npm config", ".yarnrc": "yarn config", ".yarnrc.yml": "yarn config", ".pypirc": "PyPI config",
    ".git-credentials": "git credentials", ".netrc": "netrc", "_netrc": "netrc", ".pgpass": "PostgreSQL password file",
    ".my.cnf": "MySQL config", ".s3cfg": "s3cmd config", ".boto": "boto config", ".htpasswd": "htpasswd",
    "credentials.json": "credentials file", ".dockercfg": "docker credentials", "secrets.yaml": "secrets file",
    "secrets.yml": "secrets file", "secrets.json": "secrets file",
}
_INI_NAMES = {".npmrc", ".yarnrc", ".pypirc", ".my.cnf", ".s3cfg", ".boto"}
_CRED_SUFFIXES = {
    ".aws/credentials": ("AWS credentials file", "ini"), ".docker/config.json": ("docker credentials", "docker"),
    ".kube/config": ("kube config", "kube"), ".config/gh/hosts.yml": ("GitHub CLI token file", None),
}
_TEXT_EXT = re.compile(r"\.(env|ini|cfg|conf|properties|ya?ml|json|toml|sh|txt|xml)$", re.IGNORECASE)
_SYSTEM_DIRS = re.compile(
    r"^(usr|lib|lib32|lib64|libx32|bin|sbin|proc|sys|var/lib|var/cache|var/log|etc/ssl/certs|"
    r"etc/ca-certificates|opt/conda/pkgs)(/|$)|/(node_modules|site-packages|dist-packages|\.cache|"
    r"__pycache__|\.git)/")


def file_rule(path: str) -> FileRule | None:
    """How the file at ``path`` (normalised, no leading ``/``) is scanned, or
    None when it is not a candidate."""
    base = path.rpartition("/")[2]
    if base.endswith(".pub"):
        return None
    if _KEYSTORES.search(base):
        return FileRule("keystore file", read=False, name_only=True)
    for suffix, (kind, rule) in _CRED_SUFFIXES.items():
        if path == suffix or path.endswith("/" + suffix):
            return FileRule(kind, line_rule=None if rule == "ini" else rule, ini=rule == "ini")
    if base in _CRED_NAMES:
        return FileRule(_CRED_NAMES[base], line_rule="netrc" if "netrc" in base else None, ini=base in _INI_NAMES)
    if base == ".env" or base.startswith(".env.") or base.endswith(".env"):
        return FileRule(None, ini=True, env=True)
    if _KEY_NAMES.match(base):
        return FileRule("private key file" if not base.endswith((".pem", ".key")) else None)
    if _TEXT_EXT.search(base) and not _SYSTEM_DIRS.search(path):
        return FileRule(None)
    return None


# layerlab's own line rules, only inside files of their kind (see the module docstring)
LINE_RULES: dict[str, tuple[re.Pattern, str]] = {
    "netrc": (re.compile(r"\bpassword\s+(\S+)"), "password in a netrc file"),
    "docker": (re.compile(r"\"(?:auth|identitytoken|registrytoken)\"\s*:\s*\"([^\"]{8,})\""),
               "docker registry credentials"),
    "kube": (re.compile(r"^\s*(?:token|client-key-data|password)\s*:\s*\"?([^\s\"]{8,})"), "Kubernetes credentials"),
}


_ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*?)\s*$")


def scan_file_line(line: str, filename: str, line_rule: str | None, ini: bool = False, env: bool = False) -> list[Hit]:
    """:func:`scan_line`, plus the file kind's own :data:`LINE_RULES` rule;
    ``ini``: judge ``key = value`` without quotes (detect-secrets' rules for INI files);
    ``env``: a ``KEY=value`` line is judged as a variable (:func:`scan_assignment`)."""
    m = _ENV_LINE.match(line) if env else None
    if m:
        value = m.group(2)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        return scan_assignment(m.group(1), value)
    hits = scan_line(line, filename + ".ini" if ini else filename)
    rule = LINE_RULES.get(line_rule or "")
    if rule is not None:
        m = rule[0].search(line)
        if m and all(h.value != m.group(1) for h in hits):
            hits.append(Hit(rule[1], m.group(1), f"layerlab:{line_rule}"))
    return hits


def mask_nested(obj, memo: dict[str, str] | None = None):
    """``obj`` (strings, lists, dicts, as in a notebook output or a Vega spec) with
    :func:`mask_secrets` applied to every string; dict keys are kept.  Strings
    under 8 characters are left as they are (no detector finds a secret that
    short); ``memo`` remembers strings already judged."""
    memo = {} if memo is None else memo
    with scanning():
        return _mask_nested(obj, memo)


def _mask_nested(obj, memo: dict[str, str]):
    if isinstance(obj, str):
        if len(obj) < 8:
            return obj
        if obj not in memo:
            memo[obj] = mask_secrets(obj)
        return memo[obj]
    if isinstance(obj, list):
        return [_mask_nested(x, memo) for x in obj]
    if isinstance(obj, dict):
        return type(obj)((k, _mask_nested(v, memo)) for k, v in obj.items()) if type(obj) is dict else \
            _mask_mapping(obj, memo)
    return obj


def _mask_mapping(obj, memo):
    for k in list(obj):
        obj[k] = _mask_nested(obj[k], memo)
    return obj
