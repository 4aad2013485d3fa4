"""Dockerfiles into the final image's chain of steps (``parse_dockerfile``).

Parsed with ``dockerfile-parse``; ARG/ENV values are substituted into the
instructions Docker substitutes them in (not RUN: the shell does that at run
time, and history keeps ``$X``); BuildKit's RUN flags and exec-form brackets
are left out of the step's text; ``COPY --from=<stage>`` carries a hash of
that stage's steps.  Dockerfiles this cannot read faithfully raise
:class:`PlanError` naming the file and line.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .steps import KNOWN_INSTRUCTIONS, SUBSTITUTED, PlanError, Step, ws

_HEREDOC = re.compile(r"(^|\s)<<-?\s*[\"']?[A-Za-z_][A-Za-z0-9_]*")
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::([-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")
_RUN_FLAG_PREFIX = re.compile(r"^(?:--(?:mount|network|security)=\S+\s+)*")
_RUN_FLAGS = re.compile(r"--(?:mount|network|security)=\S+")
_FROM_AS = re.compile(r"^(?P<image>\S+)(?:\s+as\s+(?P<name>\S+))?\s*$", re.I)


@dataclass
class ParsedDockerfile:
    """A parsed Dockerfile: the final image's chain of steps plus notes."""

    name: str
    source: str
    base: str                                 # FROM of the chain's first stage (substituted)
    steps: list[Step]                         # the final image's chain (without FROM)
    stages: list[dict[str, Any]] = field(default_factory=list)  # every stage: name, base, first/last line
    stage_text: dict[str, str] = field(default_factory=dict)    # stage name -> its Dockerfile text
    global_args: str = ""                     # ARG lines before the first FROM
    notes: list[str] = field(default_factory=list)


def _substitute(text: str, env: Mapping[str, str], unresolved: set[str]) -> str:
    def rep(m: re.Match) -> str:
        name = m.group(1) or m.group(4)
        op, word = m.group(2), m.group(3)
        val = env.get(name)
        if op == "-":
            return val if val else (word or "")
        if op == "+":
            return (word or "") if val else ""
        if val is None:
            unresolved.add(name)
            return m.group(0)
        return val

    return _VAR.sub(rep, text)


def _pairs(value: str, legacy_space: bool) -> list[tuple[str, str]]:
    """``K=V K2="v 2"`` (or the legacy ``K V`` form) into pairs."""
    from dockerfile_parse.util import WordSplitter

    value = value.strip()
    if legacy_space and "=" not in value.split(None, 1)[0]:
        parts = value.split(None, 1)
        return [(parts[0], parts[1] if len(parts) > 1 else "")]
    out = []
    for word in WordSplitter(value).split(dequote=True):
        k, _, v = word.partition("=")
        out.append((k, v))
    return out


def _read_source(src: str | os.PathLike, name: str | None) -> tuple[str, str]:
    """(text, source-label) from a path or Dockerfile text."""
    if isinstance(src, os.PathLike) or (isinstance(src, str) and "\n" not in src and len(src) < 4096):
        p = Path(src)
        try:
            if p.is_dir():
                p = p / "Dockerfile"
            if p.is_file():
                try:
                    return p.read_text(encoding="utf-8"), str(p)
                except (OSError, UnicodeDecodeError) as e:
                    raise PlanError(f"{p}: cannot read this Dockerfile ({e})") from e
        except OSError:
            pass
        if isinstance(src, os.PathLike) or not re.match(r"^\s*(#|FROM\b|ARG\b)", str(src), re.I):
            raise PlanError(f"{src}: no such Dockerfile (pass a path to a file, or the Dockerfile's text)")
    if not isinstance(src, str):
        raise PlanError(f"{src!r}: a Dockerfile must be a path or its text")
    return src, f"{name} (Dockerfile text)" if name else "<Dockerfile text>"


def _structure(text: str, label: str) -> list[dict]:
    from dockerfile_parse import DockerfileParser

    try:
        parser = DockerfileParser(fileobj=io.BytesIO(text.encode("utf-8")), env_replace=False)
        return parser.structure
    except Exception as e:  # noqa: BLE001 - the parser's own errors, reported with the file
        raise PlanError(f"{label}: dockerfile-parse rejected it ({type(e).__name__}: {e})") from e


def _check_item(instr: str, item: dict, where: str) -> None:
    """Raise PlanError for what the planner cannot read faithfully."""
    if instr not in KNOWN_INSTRUCTIONS:
        raise PlanError(
            f"{where}: unknown instruction {item['instruction']!r} "
            f"({ws(item['content'])[:80]!r}); fix the Dockerfile (is a line continuation '\\' missing?)"
        )
    value = item["value"]
    if instr in {"RUN", "COPY", "ADD"} and _HEREDOC.search(value):
        raise PlanError(
            f"{where}: {instr} uses a heredoc ({ws(value)[:60]!r}); the planner cannot read heredocs "
            "faithfully (dockerfile-parse splits them into separate instructions) — rewrite the step "
            "as a single-line RUN (join commands with &&) or COPY a file"
        )


class _Reader:
    """One Dockerfile's stages, and the steps of a chain of them."""

    def __init__(self, label: str, app: str, build_args: Mapping[str, str]):
        self.label = label
        self.app = app
        self.build_args = dict(build_args)
        self.global_args: dict[str, str] = {}
        self.global_arg_lines: list[str] = []
        self.stages: list[dict[str, Any]] = []
        self.unresolved: set[str] = set()
        self.by_name: dict[str, dict] = {}
        self.stage_keys: dict[str, str] = {}

    # -- stages ------------------------------------------------------------
    def read(self, structure: list[dict]) -> None:
        cur: dict[str, Any] | None = None
        for item in structure:
            instr = item["instruction"].upper()
            line = item["startline"] + 1
            if instr == "COMMENT":
                continue
            where = f"{self.label}:{line}"
            _check_item(instr, item, where)
            if instr == "FROM":
                cur = self._new_stage(item, where)
                continue
            if cur is None:
                if instr == "ARG":
                    for k, v in _pairs(item["value"], legacy_space=False):
                        self.global_args[k] = self.build_args.get(k, v)
                    self.global_arg_lines.append(item["content"].rstrip("\n"))
                    continue
                raise PlanError(f"{where}: {instr} before the first FROM; only ARG may come before FROM")
            cur["items"].append(item)
            cur["last_line"] = item["endline"] + 1
        if not self.stages:
            raise PlanError(f"{self.label}: no FROM instruction; a Dockerfile must start its build with FROM")
        self.by_name = {s["name"]: s for s in self.stages}
        self.by_name.update({str(s["index"]): s for s in self.stages})

    def _new_stage(self, item: dict, where: str) -> dict[str, Any]:
        value = item["value"]
        base_text = _substitute(ws(value), {**self.global_args}, self.unresolved)
        m = _FROM_AS.match(re.sub(r"--platform=\S+\s+", "", base_text))
        if not m:
            raise PlanError(f"{where}: cannot read FROM {value!r}; expected 'FROM image[:tag] [AS name]'")
        stage = {
            "index": len(self.stages),
            "name": m.group("name") or str(len(self.stages)),
            "base": m.group("image"),
            "first_line": item["startline"] + 1,
            "last_line": item["endline"] + 1,
            "items": [],
            "env": {},
        }
        self.stages.append(stage)
        return stage

    def chain(self, stage: dict, seen: tuple = ()) -> list[dict]:
        """The stages ``stage`` builds on, oldest first, ending with it."""
        if stage["name"] in seen:
            raise PlanError(f"{self.label}:{stage['first_line']}: stage {stage['name']!r} builds FROM itself")
        parent = self.by_name.get(stage["base"])
        if parent is not None and parent["index"] < stage["index"]:
            return self.chain(parent, seen + (stage["name"],)) + [stage]
        return [stage]

    # -- steps -------------------------------------------------------------
    def steps(self, chain: list[dict]) -> list[Step]:
        """The steps of a chain of stages (ARG/ENV substituted as Docker does)."""
        out: list[Step] = []
        env: dict[str, str] = {}
        for st in chain:
            declared: dict[str, str] = {}
            for item in st["items"]:
                out.append(self._step(item, chain, declared, env))
        return out

    def _step(self, item: dict, chain: list[dict], declared: dict[str, str], env: dict[str, str]) -> Step:
        instr = item["instruction"].upper()
        value = ws(item["value"])
        scope = {**declared, **env}
        if instr == "ARG":
            for k, v in _pairs(item["value"], legacy_space=False):
                v = self.build_args.get(k, v if v else self.global_args.get(k, ""))
                declared[k] = _substitute(v, scope, self.unresolved)
        elif instr in SUBSTITUTED:
            value = _substitute(value, scope, self.unresolved)
        if instr == "ENV":
            pairs = _pairs(value, legacy_space=True)
            for k, v in pairs:
                env[k] = v
            value = " ".join(f"{k}={v}" for k, v in pairs)
        flags: tuple[str, ...] = ()
        if instr == "RUN":
            flags = tuple(_RUN_FLAGS.findall(_RUN_FLAG_PREFIX.match(value).group(0)))
            value = _run_value(value)
        text = f"{instr} {value}".strip()
        key, needs = text, ()
        if instr in {"COPY", "ADD"}:
            key, needs = self._copy_from_key(text, value, chain)
        return Step(
            app=self.app,
            instruction=instr,
            text=text,
            key=key,
            source=self.label,
            line=item["startline"] + 1,
            makes_layer=True if instr in {"RUN", "COPY", "ADD"} else (None if instr == "WORKDIR" else False),
            raw=item["content"].rstrip("\n"),
            needs_stages=needs,
            run_flags=flags,
        )

    def _copy_from_key(self, text: str, value: str, chain: list[dict]) -> tuple[str, tuple[str, ...]]:
        """A ``COPY --from=<stage>`` step's key carries a hash of that stage's steps."""
        m = re.search(r"--from=(\S+)", value)
        if not m:
            return text, ()
        ref = m.group(1)
        if ref not in self.by_name or self.by_name[ref]["index"] >= chain[-1]["index"] + 1:
            return text, ()
        src_stage = self.by_name[ref]
        if src_stage["name"] not in self.stage_keys:
            sub = self.steps(self.chain(src_stage))
            h = hashlib.sha256(("\n".join([src_stage["base"]] + [s.key for s in sub])).encode()).hexdigest()[:12]
            self.stage_keys[src_stage["name"]] = h
        return f"{text} [stage {self.stage_keys[src_stage['name']]}]", (src_stage["name"],)


def _run_value(value: str) -> str:
    """A RUN's arguments as the history records them."""
    # BuildKit's RUN flags (--mount, --network, --security) shape the build, not the
    # layer, and the history omits them: leave them out of the key (kept in `raw`)
    value = _RUN_FLAG_PREFIX.sub("", value)
    if value.startswith("["):
        try:
            argv = json.loads(value)
            if isinstance(argv, list):
                value = " ".join(str(a) for a in argv)
        except json.JSONDecodeError:
            pass
    return value


def parse_dockerfile(
    src: str | os.PathLike,
    *,
    name: str | None = None,
    build_args: Mapping[str, str] | None = None,
) -> ParsedDockerfile:
    """Parse a Dockerfile (path or text) into the final image's step chain.

    Multi-stage builds: only the final stage's chain (following ``FROM
    <earlier stage>``) makes the image; the other stages are listed in
    ``stages`` and noted.  Raises :class:`PlanError` naming file and line for
    unknown instructions, heredocs, instructions before ``FROM`` and files
    without ``FROM``.
    """
    text, label = _read_source(src, name)
    app = name or label
    structure = _structure(text, label)
    reader = _Reader(label, app, build_args or {})
    reader.read(structure)
    stages = reader.stages
    chain = reader.chain(stages[-1])
    steps = reader.steps(chain)
    lines = text.splitlines()
    for s in stages:
        s["text"] = "\n".join(lines[s["first_line"] - 1 : s["last_line"]])
    notes: list[str] = []
    unused = [s["name"] for s in stages if s not in chain]
    if unused:
        notes.append(
            f"{label}: multi-stage build; the image is made by stage(s) "
            f"{' -> '.join(s['name'] for s in chain)}; stage(s) {', '.join(unused)} only feed COPY --from"
        )
    if reader.unresolved:
        notes.append(f"{label}: variables without a value were left as written: {', '.join(sorted(reader.unresolved))}")
    return ParsedDockerfile(
        name=app,
        source=label,
        base=chain[0]["base"],
        steps=steps,
        stages=[{k: v for k, v in s.items() if k not in {"items", "env"}} for s in stages],
        stage_text={s["name"]: s["text"] for s in stages},
        global_args="\n".join(reader.global_arg_lines),
        notes=notes,
    )
