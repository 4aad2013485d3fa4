"""The shared-base planner: the article's method on paper.

Write down each application's build steps, overlay the step sequences as a
trie, merge identical nodes, and cut the shared trunk into base images at the
branch points (``f1 -> f2 -> ...``), each app ``FROM`` the last base it shares.

>>> plan = ll.plan_bases({"app1": "app1/Dockerfile", "app2": "app2/Dockerfile"},
...                      images={"app1": img1, "app2": img2})   # sizes (optional)
>>> plan.trie          # one row per trie node
>>> plan.dockerfiles   # {"f1": "FROM debian...\\nRUN ...", ..., "app1": "FROM f2\\n..."}
>>> plan.savings       # storage on one host and bytes pulled per image, before/after

Inputs are Dockerfiles (paths or text, parsed with ``dockerfile-parse``) or
:class:`~layerlab.model.Image` objects (steps from their history).

How steps are compared (the trie key):

* whitespace is collapsed, BuildKit's ``# buildkit`` suffix, the legacy
  builder's ``/bin/sh -c #(nop)`` and the ``/bin/sh -c`` of RUN (and the
  ``|N A=1 …`` build-arg prefix) are removed, so a Dockerfile's
  ``RUN apt-get  update`` matches the history's ``RUN /bin/sh -c apt-get update # buildkit``;
* ARG/ENV values are substituted into the instructions Docker substitutes
  them in (not RUN: the shell does that at run time, and history keeps ``$X``);
* from images, COPY/ADD/import steps also carry the layer's diff_id in the
  key (BuildKit's history text ``COPY app /app`` says nothing about the
  content); RUN steps compare by text (a rebuilt ``apt-get install`` has a new
  diff_id but is the same step);
* ``COPY --from=<stage>`` carries a hash of that stage's steps;
* metadata-only instructions (LABEL, CMD, ENTRYPOINT, EXPOSE, HEALTHCHECK,
  STOPSIGNAL, MAINTAINER, ONBUILD) do not change later steps, so they are
  kept out of the trie and re-attached to the app's own Dockerfile;
  ENV/ARG/WORKDIR/USER/SHELL/VOLUME change how later steps run, so they stay
  in the trie as zero-byte nodes (a shared trunk that holds only such
  steps does not become a base image of its own).

Dockerfiles layerlab cannot read faithfully raise :class:`~layerlab.errors.PlanError`
(a ``LayerlabError``) naming the file and line: unknown instructions,
heredocs (``RUN <<EOF``; dockerfile-parse splits them into bogus
instructions), instructions before ``FROM``, a Dockerfile without ``FROM``.
Sizes never are guessed: a step whose size no image tells is ``<NA>`` and so
is every total that needs it.
"""
from __future__ import annotations

import hashlib
import html
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from ..errors import AnalysisError
from ..model import Fleet, Image

__all__ = [
    "PlanError",
    "Step",
    "ParsedDockerfile",
    "BasePlan",
    "parse_dockerfile",
    "history_steps",
    "normalise_created_by",
    "plan_bases",
]


class PlanError(AnalysisError):
    """A Dockerfile (or history) the planner cannot read faithfully."""


KNOWN_INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY",
    "ENTRYPOINT", "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL",
    "HEALTHCHECK", "SHELL",
}
LAYER_INSTRUCTIONS = {"RUN", "COPY", "ADD", "IMPORT"}
# config-only: they change the final image's config, never how later steps build
DEFERRED_INSTRUCTIONS = {
    "LABEL", "MAINTAINER", "CMD", "ENTRYPOINT", "EXPOSE", "HEALTHCHECK", "STOPSIGNAL", "ONBUILD",
}
# no layer (WORKDIR may make an empty one), but later steps depend on them
CONTEXT_INSTRUCTIONS = {"ENV", "ARG", "WORKDIR", "USER", "SHELL", "VOLUME"}
# instructions whose arguments Docker substitutes ARG/ENV into
SUBSTITUTED = {"ADD", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR", "ONBUILD"}

_HEREDOC = re.compile(r"(^|\s)<<-?\s*[\"']?[A-Za-z_][A-Za-z0-9_]*")
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::([-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")
_NOP = re.compile(r"^(?:/bin/sh|/bin/bash|sh)\s+-c\s+#\(nop\)\s*(.*)$", re.S)
_SHELL_C = re.compile(r"^(?:/bin/sh|/bin/bash|sh|bash)\s+-c\s+(.*)$", re.S)
_BUILDKIT = re.compile(r"\s*#\s*buildkit\s*$")
_FROM_AS = re.compile(r"^(?P<image>\S+)(?:\s+as\s+(?P<name>\S+))?\s*$", re.I)


def _ws(text: str) -> str:
    """Collapse runs of whitespace (a documented simplification: two spaces
    inside a quoted argument compare equal to one)."""
    return " ".join(text.split())


@dataclass
class Step:
    """One build step of one application, as the trie sees it."""

    app: str
    instruction: str              # upper-case keyword; IMPORT for a base layer from an image
    text: str                     # normalised instruction text (without any content suffix)
    key: str                      # the trie key (text, plus content identity where known)
    source: str                   # file or image the step came from
    line: int | None = None       # 1-based line in the Dockerfile
    size: int | None = None       # bytes of the layer it makes (None: unknown)
    makes_layer: bool | None = None
    raw: str = ""                 # the text to emit in a Dockerfile
    needs_stages: tuple[str, ...] = ()
    diff_id: str | None = None
    chain_id: str | None = None
    reordered: bool = False       # the plan runs it after other steps than the app did (size measured elsewhere)

    @property
    def deferred(self) -> bool:
        return self.instruction in DEFERRED_INSTRUCTIONS


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
    from dockerfile_parse import DockerfileParser

    text, label = _read_source(src, name)
    app = name or label
    try:
        parser = DockerfileParser(fileobj=io.BytesIO(text.encode("utf-8")), env_replace=False)
        structure = parser.structure
    except Exception as e:  # noqa: BLE001 - the parser's own errors, reported with the file
        raise PlanError(f"{label}: dockerfile-parse rejected it ({type(e).__name__}: {e})") from e

    build_args = dict(build_args or {})
    global_args: dict[str, str] = {}
    global_arg_lines: list[str] = []
    stages: list[dict[str, Any]] = []
    lines = text.splitlines()
    unresolved: set[str] = set()
    notes: list[str] = []

    cur: dict[str, Any] | None = None
    for item in structure:
        instr = item["instruction"].upper()
        line = item["startline"] + 1
        if instr == "COMMENT":
            continue
        value = item["value"]
        where = f"{label}:{line}"
        if instr not in KNOWN_INSTRUCTIONS:
            raise PlanError(
                f"{where}: unknown instruction {item['instruction']!r} "
                f"({_ws(item['content'])[:80]!r}); fix the Dockerfile (is a line continuation '\\' missing?)"
            )
        if instr in {"RUN", "COPY", "ADD"} and _HEREDOC.search(value):
            raise PlanError(
                f"{where}: {instr} uses a heredoc ({_ws(value)[:60]!r}); the planner cannot read heredocs "
                "faithfully (dockerfile-parse splits them into separate instructions) — rewrite the step "
                "as a single-line RUN (join commands with &&) or COPY a file"
            )
        if instr == "FROM":
            env = {**global_args}
            base_text = _substitute(_ws(value), env, unresolved)
            m = _FROM_AS.match(re.sub(r"--platform=\S+\s+", "", base_text))
            if not m:
                raise PlanError(f"{where}: cannot read FROM {value!r}; expected 'FROM image[:tag] [AS name]'")
            cur = {
                "index": len(stages),
                "name": m.group("name") or str(len(stages)),
                "base": m.group("image"),
                "first_line": line,
                "last_line": item["endline"] + 1,
                "items": [],
                "env": {},
            }
            stages.append(cur)
            continue
        if cur is None:
            if instr == "ARG":
                for k, v in _pairs(value, legacy_space=False):
                    global_args[k] = build_args.get(k, v)
                global_arg_lines.append(item["content"].rstrip("\n"))
                continue
            raise PlanError(f"{where}: {instr} before the first FROM; only ARG may come before FROM")
        cur["items"].append(item)
        cur["last_line"] = item["endline"] + 1

    if not stages:
        raise PlanError(f"{label}: no FROM instruction; a Dockerfile must start its build with FROM")

    by_name = {s["name"]: s for s in stages}
    by_name.update({str(s["index"]): s for s in stages})

    def stage_chain(stage: dict, seen: tuple = ()) -> list[dict]:
        if stage["name"] in seen:
            raise PlanError(f"{label}:{stage['first_line']}: stage {stage['name']!r} builds FROM itself")
        parent = by_name.get(stage["base"])
        if parent is not None and parent["index"] < stage["index"]:
            return stage_chain(parent, seen + (stage["name"],)) + [stage]
        return [stage]

    stage_keys: dict[str, str] = {}

    def steps_of(chain: list[dict]) -> list[Step]:
        out: list[Step] = []
        env: dict[str, str] = {}
        for st in chain:
            declared: dict[str, str] = {}
            for item in st["items"]:
                instr = item["instruction"].upper()
                line = item["startline"] + 1
                value = _ws(item["value"])
                needs: tuple[str, ...] = ()
                scope = {**declared, **env}
                if instr == "ARG":
                    for k, v in _pairs(item["value"], legacy_space=False):
                        v = build_args.get(k, v if v else global_args.get(k, ""))
                        declared[k] = _substitute(v, scope, unresolved)
                elif instr in SUBSTITUTED:
                    value = _substitute(value, scope, unresolved)
                if instr == "ENV":
                    pairs = _pairs(value, legacy_space=True)
                    for k, v in pairs:
                        env[k] = v
                    value = " ".join(f"{k}={v}" for k, v in pairs)
                if instr == "RUN":
                    # BuildKit's RUN flags (--mount, --network, --security) shape the build, not the
                    # layer, and the history omits them: leave them out of the key (kept in `raw`)
                    value = re.sub(r"^(?:--(?:mount|network|security)=\S+\s+)+", "", value)
                if instr == "RUN" and value.startswith("["):
                    try:
                        argv = json.loads(value)
                        if isinstance(argv, list):
                            value = " ".join(str(a) for a in argv)
                    except json.JSONDecodeError:
                        pass
                text_ = f"{instr} {value}".strip()
                key = text_
                if instr in {"COPY", "ADD"}:
                    m = re.search(r"--from=(\S+)", value)
                    if m:
                        ref = m.group(1)
                        if ref in by_name and by_name[ref]["index"] < chain[-1]["index"] + 1:
                            src_stage = by_name[ref]
                            needs = (src_stage["name"],)
                            if src_stage["name"] not in stage_keys:
                                sub = steps_of(stage_chain(src_stage))
                                h = hashlib.sha256(
                                    ("\n".join([src_stage["base"]] + [s.key for s in sub])).encode()
                                ).hexdigest()[:12]
                                stage_keys[src_stage["name"]] = h
                            key = f"{text_} [stage {stage_keys[src_stage['name']]}]"
                raw = item["content"].rstrip("\n")
                out.append(
                    Step(
                        app=app,
                        instruction=instr,
                        text=text_,
                        key=key,
                        source=label,
                        line=line,
                        makes_layer=True if instr in {"RUN", "COPY", "ADD"} else (None if instr == "WORKDIR" else False),
                        raw=raw,
                        needs_stages=needs,
                    )
                )
        return out

    final = stages[-1]
    chain = stage_chain(final)
    steps = steps_of(chain)
    base = chain[0]["base"]
    for s in stages:
        s_text = "\n".join(lines[s["first_line"] - 1 : s["last_line"]])
        s["text"] = s_text
    unused = [s["name"] for s in stages if s not in chain]
    if unused:
        notes.append(
            f"{label}: multi-stage build; the image is made by stage(s) "
            f"{' -> '.join(s['name'] for s in chain)}; stage(s) {', '.join(unused)} only feed COPY --from"
        )
    if unresolved:
        notes.append(f"{label}: variables without a value were left as written: {', '.join(sorted(unresolved))}")
    return ParsedDockerfile(
        name=app,
        source=label,
        base=base,
        steps=steps,
        stages=[{k: v for k, v in s.items() if k not in {"items", "env"}} for s in stages],
        stage_text={s["name"]: s["text"] for s in stages},
        global_args="\n".join(global_arg_lines),
        notes=notes,
    )


def normalise_created_by(created_by: str | None) -> tuple[str, str]:
    """``(instruction, normalised text)`` for a history ``created_by``.

    ``/bin/sh -c #(nop)  ENV A=1`` -> ``("ENV", "ENV A=1")``;
    ``RUN |1 V=2 /bin/sh -c make # buildkit`` -> ``("RUN", "RUN make")``;
    ``/bin/sh -c make`` (legacy RUN) -> ``("RUN", "RUN make")``; empty -> ``IMPORT``.
    """
    text = (created_by or "").strip()
    text = _BUILDKIT.sub("", text)
    if not text:
        return "IMPORT", "IMPORT"
    m = _NOP.match(text)
    if m:
        text = m.group(1).strip()
    elif re.match(r"^\|\d+\s", text):  # legacy builder's RUN with build args: "|1 V=2 /bin/sh -c ..."
        text = "RUN " + text
    else:
        m = _SHELL_C.match(text)
        if m:
            text = "RUN " + m.group(1)
    if text.upper().startswith("RUN "):
        rest = text[4:].lstrip()
        m = re.match(r"^\|(\d+)\s+", rest)
        if m:  # BuildKit/legacy build-arg prefix: "|2 A=1 B=2 /bin/sh -c ..."
            n = int(m.group(1))
            parts = rest[m.end():].split(" ", n)
            rest = parts[n] if len(parts) > n else ""
        m = _SHELL_C.match(rest)
        if m:
            rest = m.group(1)
        text = "RUN " + rest
    text = _ws(text)
    word = text.split(" ", 1)[0].upper()
    if word not in KNOWN_INSTRUCTIONS:
        return "UNKNOWN", text
    return word, word + text[len(word):]


def history_steps(img: Image, *, name: str | None = None) -> list[Step]:
    """The build steps of an image, from its history, sized from its layers."""
    app = name or img.reference
    sizes = {l.position: l for l in img.layer_list}
    out: list[Step] = []
    for h in img.history_list:
        instr, text = normalise_created_by(h.created_by)
        layer = sizes.get(h.layer_position) if h.layer_position is not None else None
        if layer is None and h.pairing == "unpaired" and instr in LAYER_INSTRUCTIONS | {"UNKNOWN", "WORKDIR"}:
            makes_layer: bool | None = None
        else:
            makes_layer = layer is not None
        key = text
        if layer is not None and instr in {"COPY", "ADD", "IMPORT", "UNKNOWN"}:
            key = f"{text} @{(layer.diff_id or layer.digest or '?')[:19]}"
        if instr == "IMPORT" and layer is not None:
            text = f"IMPORT {(layer.diff_id or '?')[:19]}"
        out.append(
            Step(
                app=app,
                instruction=instr,
                text=text,
                key=key,
                source=img.reference,
                size=(layer.size if layer is not None else (0 if makes_layer is False else None)),
                makes_layer=makes_layer,
                raw=_dockerfile_text(instr, text),
                diff_id=layer.diff_id if layer is not None else None,
                chain_id=layer.chain_id if layer is not None else None,
            )
        )
    return out


_GO_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


def _dockerfile_text(instr: str, text: str) -> str:
    """A history step's text as a valid Dockerfile line.

    BuildKit writes exec-form lists Go-style without commas (``CMD ["sh" "-c"]``)
    and label values unquoted (``LABEL k=a b``); both would mean something else
    in a Dockerfile."""
    rest = text[len(instr):].strip()
    if instr in {"CMD", "ENTRYPOINT", "SHELL", "VOLUME"} and rest.startswith("[") and rest.endswith("]"):
        try:
            json.loads(rest)
            return text
        except json.JSONDecodeError:
            items = [json.loads(f'"{m}"') for m in _GO_QUOTED.findall(rest[1:-1])]
            return f"{instr} {json.dumps(items)}"
    if instr == "LABEL" and "=" in rest:
        k, _, v = rest.partition("=")
        if not (v.startswith('"') and v.endswith('"')) and (" " in v or not v):
            return f"{instr} {k}={json.dumps(v)}"
    return text


def _size_steps_from_image(parsed: ParsedDockerfile, img: Image) -> tuple[int | None, list[str], list[Step]]:
    """Give the Dockerfile's steps the sizes of the matching history steps of
    ``img`` (matched in order by normalised text).  Returns (bytes below the
    first matched step = the FROM image's size, notes, the image's own steps)."""
    hist = history_steps(img, name=parsed.name)
    notes: list[str] = []
    j = 0
    first_match: int | None = None
    for s in parsed.steps:
        k = j
        while k < len(hist) and hist[k].text != s.text:
            k += 1
        if k == len(hist):
            if s.makes_layer is not False:
                notes.append(f"{parsed.source}:{s.line}: {s.text[:60]!r} not found in {img.reference}'s history; size unknown")
            s.size = None if s.makes_layer is not False else 0
            continue
        h = hist[k]
        if first_match is None:
            first_match = k
        s.makes_layer = h.makes_layer
        s.size = h.size
        s.diff_id, s.chain_id = h.diff_id, h.chain_id
        j = k + 1
    base_size: int | None = None
    if first_match is not None:
        below = hist[:first_match]
        if all(b.size is not None for b in below):
            base_size = sum(b.size for b in below if b.makes_layer)  # type: ignore[misc]
    return base_size, notes, hist


@dataclass
class _Node:
    node: int
    parent: int | None
    key: str
    step: Step | None
    apps: list[str] = field(default_factory=list)
    sizes: list[int | None] = field(default_factory=list)
    children: dict[str, int] = field(default_factory=dict)
    in_place: list[bool] = field(default_factory=list)


class BasePlan:
    """The planner's answer: the trie, the proposed images and Dockerfiles, the savings.

    ``trie``        one row per trie node: node, parent, depth, instruction, step, apps,
                    n_apps, makes_layer, size, size_varies, image (the proposed image that holds it)
    ``images``      one row per proposed image: image, kind (base/app), parent, steps, layers,
                    own_size (its new layers), size (with everything below)
    ``layers``      one row per (proposed image, layer): image, position, node, size
                    (node ids are chain identities: the same node = the same layer on a host)
    ``dockerfiles`` dict image -> Dockerfile text (bases first)
    ``savings``     one row per app and one ``host`` row: layers and bytes before/after
    ``notes``       what the planner assumed or could not read
    """

    def __init__(self, trie, images, layers, dockerfiles, savings, notes, apps):
        self.trie: pd.DataFrame = trie
        self.images: pd.DataFrame = images
        self.layers: pd.DataFrame = layers
        self.dockerfiles: dict[str, str] = dockerfiles
        self.savings: pd.DataFrame = savings
        self.notes: list[str] = notes
        self.apps: list[str] = apps

    @property
    def bases(self) -> list[str]:
        return [i for i in self.images.loc[self.images["kind"] == "base", "image"]]

    def __repr__(self) -> str:
        from ..frames import human_bytes

        host = self.savings[self.savings["scope"] == "host"]
        tail = ""
        if len(host):
            b, a = host["stored_before"].iloc[0], host["stored_after"].iloc[0]
            tail = f"; one host stores {human_bytes(None if pd.isna(b) else int(b))} -> {human_bytes(None if pd.isna(a) else int(a))}"
        return (
            f"<layerlab.BasePlan: {len(self.apps)} apps, {len(self.bases)} base images "
            f"({', '.join(self.bases) or 'none'}){tail}>"
        )

    def _repr_html_(self) -> str:
        e = html.escape
        parts = [f"<div class='layerlab-plan'><strong>layerlab.BasePlan</strong> {e(repr(self)[1:-1])}"]
        for name, text in self.dockerfiles.items():
            parts.append(f"<details><summary><code>{e(name)}</code></summary><pre>{e(text)}</pre></details>")
        parts.append(self.savings.to_html(index=False, escape=True, na_rep="?"))
        if self.notes:
            parts.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in self.notes) + "</ul>")
        parts.append("</div>")
        return "".join(parts)


def _base_of(img: Image, pool: Sequence[Image]) -> Image | None:
    """The image of ``pool`` with the most layers whose layer chain is a proper
    prefix of ``img``'s (the image it was built FROM, as far as layers tell)."""
    chains = [l.chain_id for l in img.layer_list]
    best: Image | None = None
    for b in pool:
        if b is img or b.reference == img.reference:
            continue
        bc = [l.chain_id for l in b.layer_list]
        if 0 < len(bc) < len(chains) and None not in bc and chains[: len(bc)] == bc:
            if best is None or len(bc) > len(best.layer_list):
                best = b
    return best


def _as_apps(apps, names) -> list[tuple[str, Any]]:
    if isinstance(apps, Mapping):
        return [(str(k), v) for k, v in apps.items()]
    if isinstance(apps, (str, os.PathLike, Image)):
        raise PlanError("plan_bases needs several applications (a dict name -> Dockerfile/Image, or a list)")
    items = list(apps)
    out = []
    for i, a in enumerate(items):
        if names is not None:
            n = names[i]
        elif isinstance(a, Image):
            n = a.reference
        elif isinstance(a, os.PathLike) or (isinstance(a, str) and "\n" not in a):
            p = Path(a)
            n = p.parent.name if p.name == "Dockerfile" and p.parent.name else p.name
        else:
            n = f"app{i + 1}"
        out.append((n, a))
    seen: set[str] = set()
    for i, (n, a) in enumerate(out):
        if n in seen:
            out[i] = (f"{n}#{i + 1}", a)
        seen.add(out[i][0])
    return out


def plan_bases(
    apps,
    *,
    images: Mapping[str, Image] | Sequence[Image] | Fleet | None = None,
    names: Sequence[str] | None = None,
    build_args: Mapping[str, str] | None = None,
    base_prefix: str = "",
    size_column: str = "size",
    split: str = "branch",
    reorder: bool = False,
    base_images: Fleet | Sequence[Image] | None = None,
) -> BasePlan:
    """Propose shared base images for several applications.

    ``apps``: a dict name -> Dockerfile (path or text) or Image, or a list of
    them.  ``images``: built images of the apps (dict by app name, or a list in
    the same order) to take layer sizes from — for Dockerfile apps, their steps
    are matched to the image's history by normalised text.  Base images are
    named ``f1``, ``f2``, … (prefixed by ``base_prefix``, e.g. a registry path)
    in the order of the trie, as in the article.  ``split="branch"`` cuts the
    shared trunk at branch points only; ``split="step"`` makes one base per
    shared layer-making step (each team owning its layer, as the article does).
    ``base_images``: images that apps given as Images may stand on; an app
    whose layers start with one of them (same chain ids) starts
    ``FROM <that image>`` (else from its first history step, flagged in the
    emitted Dockerfile).  ``reorder=True`` overlays apps that run the same steps in different orders:
    steps more apps share move first (the order of the first app that runs
    them), each app's own steps follow in their order; the notes name every
    reordered app (check the shared steps do not need its earlier ones).  A
    reordered step's size is taken from an app that ran it in the planned
    position where there is one (``size_varies`` flags sizes that differ).

    ``savings`` assumes, *before*, the apps as they are: for images, the
    layers they really share (chain ids); for Dockerfiles, apps built
    independently (no shared build cache), sharing only their FROM image.
    *After*, every app stands on the proposed bases.  ``pulled_*`` is the
    bytes a host that starts empty pulls for each app, apps pulled in the
    order given; ``pulled_with_bases`` what a host that already holds the
    bases pulls.  Sizes are ``size_column`` of the layers (``size``:
    uncompressed, Docker's accounting; ``compressed_size``: registry blobs).
    """
    items = _as_apps(apps, names)
    base_pool = [b for b in (base_images or []) if isinstance(b, Image)]
    if len(items) < 2:
        raise PlanError(f"plan_bases needs at least two applications, got {len(items)}")
    img_map: dict[str, Image] = {}
    if images is not None:
        if isinstance(images, Mapping):
            img_map = {str(k): v for k, v in images.items()}
        else:
            lst = list(images)
            if len(lst) != len(items):
                raise PlanError(f"images= has {len(lst)} images for {len(items)} apps; pass a dict app -> Image")
            img_map = {n: im for (n, _), im in zip(items, lst)}
        for k in img_map:
            if k not in {n for n, _ in items}:
                raise PlanError(f"images= names {k!r}, which is not one of the apps ({', '.join(n for n, _ in items)})")

    def layer_size(layer) -> int | None:
        v = getattr(layer, size_column, None)
        return None if v is None else int(v)

    notes: list[str] = []
    chains: dict[str, list[Step]] = {}
    deferred: dict[str, list[Step]] = {}
    parsed_by_app: dict[str, ParsedDockerfile] = {}
    root_steps: dict[str, Step] = {}
    before_layers: dict[str, list[tuple[str, int | None]]] = {}  # app -> [(identity, size)]
    for app, src in items:
        if isinstance(src, Image):
            steps = history_steps(src, name=app)
            base_img = _base_of(src, base_pool)
            if base_img is not None:
                nb = len(base_img.layer_list)
                bh = [h.created_by for h in base_img.history_list]
                if bh and [h.created_by for h in src.history_list[: len(bh)]] == bh:
                    cut = len(bh)  # the app's history starts with its base's
                else:
                    cut = 0
                    for i, h in enumerate(src.history_list):
                        if h.layer_position is not None and h.layer_position >= nb:
                            break
                        cut = i + 1
                # the base image's own steps (and its CMD, LABELs) belong to it, not to the app
                steps = [
                    Step(app=app, instruction="FROM", text=f"FROM {base_img.reference}",
                         key=f"FROM {base_img.reference}", source=src.reference,
                         size=base_img.size, makes_layer=True, raw=f"FROM {base_img.reference}")
                ] + steps[cut:]
            if size_column != "size":
                by_pos = {l.diff_id: l for l in src.layer_list}
                for s in steps:
                    if s.diff_id in by_pos:
                        s.size = layer_size(by_pos[s.diff_id])
            for s in steps:
                if s.instruction == "UNKNOWN":
                    notes.append(f"{app}: history step {s.text[:60]!r} is not a Dockerfile instruction; kept as written")
                if s.makes_layer is None:
                    notes.append(f"{app}: history step {s.text[:60]!r} could not be paired with a layer; its size is unknown")
            before_layers[app] = [(l.chain_id or f"{app}:{l.position}", layer_size(l)) for l in src.layer_list]
            chain = [s for s in steps if not s.deferred]
            deferred[app] = [s for s in steps if s.deferred]
            chains[app] = chain
            if src.history_list and not any(s.makes_layer for s in steps) and src.layer_list:
                notes.append(f"{app}: no history step is paired with a layer; the trie cannot size it")
        else:
            parsed = parse_dockerfile(src, name=app, build_args=build_args)
            parsed_by_app[app] = parsed
            notes.extend(parsed.notes)
            base_size: int | None = None
            if app in img_map:
                base_size, more, _ = _size_steps_from_image(parsed, img_map[app])
                notes.extend(more)
                if size_column != "size":
                    lmap = {l.diff_id: l for l in img_map[app].layer_list}
                    for s in parsed.steps:
                        if s.diff_id in lmap:
                            s.size = layer_size(lmap[s.diff_id])
            root = Step(
                app=app, instruction="FROM", text=f"FROM {parsed.base}", key=f"FROM {parsed.base}",
                source=parsed.source, line=parsed.stages[0]["first_line"] if parsed.stages else None,
                size=base_size, makes_layer=None if base_size is None else base_size > 0,
                raw=f"FROM {parsed.base}",
            )
            root_steps[app] = root
            chain = [root] + [s for s in parsed.steps if not s.deferred]
            deferred[app] = [s for s in parsed.steps if s.deferred]
            chains[app] = chain
            # before: independent builds, sharing only the FROM image
            lay: list[tuple[str, int | None]] = [(f"FROM {parsed.base}", base_size)]
            for s in parsed.steps:
                if s.makes_layer or (s.makes_layer is None and s.instruction in LAYER_INSTRUCTIONS):
                    lay.append((f"{app}:{s.line}", s.size))
                elif s.makes_layer is None and s.instruction == "WORKDIR" and app in img_map:
                    pass
            before_layers[app] = lay

    # -- optional reordering: the article's "merge duplicate nodes" ---------
    if reorder:
        # Steps that more apps share move first (most-shared first), in the order the first app
        # that has them runs them; each app's own steps keep their relative order after them.
        # This assumes the shared steps do not depend on an app's own earlier steps: the notes
        # list every app whose order changed so a person can check.
        count: dict[str, int] = {}
        first_seen: dict[str, tuple[int, int]] = {}
        for ai, (app, _) in enumerate(items):
            for si, st in enumerate(chains[app]):
                if st.instruction == "FROM":
                    continue
                count[st.key] = count.get(st.key, 0) + 1
                first_seen.setdefault(st.key, (ai, si))
        for app, _ in items:
            chain = chains[app]
            head = [s for s in chain if s.instruction == "FROM"]
            rest = [s for s in chain if s.instruction != "FROM"]
            shared = sorted(
                (s for s in rest if count[s.key] > 1), key=lambda s: (-count[s.key], first_seen[s.key])
            )
            own = [s for s in rest if count[s.key] <= 1]
            new = head + shared + own
            if [s.key for s in new] != [s.key for s in chain]:
                notes.append(
                    f"{app}: steps reordered so that shared steps come first (reorder=True); check that they "
                    "do not depend on the app's own earlier steps"
                )
                for i, s in enumerate(new):
                    if i >= len(chain) or chain[i].key != s.key or any(
                        a.key != b.key for a, b in zip(new[:i], chain[:i])
                    ):
                        s.reordered = True
            chains[app] = new

    # -- the trie --------------------------------------------------------
    nodes: list[_Node] = [_Node(0, None, "", None)]
    nodes[0].apps = [a for a, _ in items]
    paths: dict[str, list[int]] = {}
    for app, _ in items:
        cur = 0
        path = []
        for s in chains[app]:
            nxt = nodes[cur].children.get(s.key)
            if nxt is None:
                nxt = len(nodes)
                nodes.append(_Node(nxt, cur, s.key, s))
                nodes[cur].children[s.key] = nxt
            nodes[nxt].apps.append(app)
            nodes[nxt].sizes.append(s.size if s.makes_layer is not False else 0)
            nodes[nxt].in_place.append(not s.reordered)
            path.append(nxt)
            cur = nxt
        paths[app] = path

    def node_size(n: _Node) -> int | None:
        # a layer's size depends on what ran before it (a package another step already installed
        # is not installed again): prefer a size measured with the same steps below it
        for v, ok in zip(n.sizes, n.in_place):
            if ok and v is not None:
                return v
        if not n.sizes or any(v is None for v in n.sizes):
            return None
        return max(n.sizes)

    def node_layer(n: _Node) -> bool | None:
        flags = {s.makes_layer for s in [n.step] if s is not None}
        if n.step is None:
            return False
        if n.step.instruction == "FROM":
            return None if n.step.size is None else True
        vals = {m for m in flags}
        return vals.pop() if len(vals) == 1 else None

    # -- segments: maximal single-branch runs with the same app set ----------
    seg_of: dict[int, int] = {}
    segments: list[dict[str, Any]] = []

    def walk(nid: int, seg: int | None) -> None:
        n = nodes[nid]
        for cid in n.children.values():
            c = nodes[cid]
            if seg is None or set(c.apps) != set(nodes[nid].apps):
                segments.append({"nodes": [cid], "parent": seg, "apps": list(c.apps)})
                s = len(segments) - 1
            else:
                segments[seg]["nodes"].append(cid)
                s = seg
            seg_of[cid] = s
            walk(cid, s)

    import sys

    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 10000))
    try:
        walk(0, None)
    finally:
        sys.setrecursionlimit(old)

    if split not in {"branch", "step"}:
        raise PlanError(f"split={split!r}: use 'branch' (one base per branch point) or 'step' (one base per shared layer)")
    if split == "step":
        # one base image per shared layer-making step (the article's f1 -> f2 -> f3 -> f4, each team
        # owning its layer); zero-byte steps (ENV, ARG…) go with the layer step that follows them
        new_segments: list[dict[str, Any]] = []
        remap: dict[int, int] = {}
        for si, seg in enumerate(segments):
            parent = remap.get(seg["parent"]) if seg["parent"] is not None else None
            if len(seg["apps"]) < 2:
                new_segments.append({**seg, "parent": parent})
                remap[si] = len(new_segments) - 1
                continue
            chunk: list[int] = []
            for nid in seg["nodes"]:
                chunk.append(nid)
                st = nodes[nid].step
                if st is not None and st.instruction != "FROM" and node_layer(nodes[nid]) is not False:
                    new_segments.append({"nodes": chunk, "parent": parent, "apps": seg["apps"]})
                    parent = len(new_segments) - 1
                    chunk = []
            if chunk:
                new_segments.append({"nodes": chunk, "parent": parent, "apps": seg["apps"]})
                parent = len(new_segments) - 1
            remap[si] = parent
        segments[:] = new_segments
        seg_of.clear()
        for si, seg in enumerate(segments):
            for nid in seg["nodes"]:
                seg_of[nid] = si

    # fold shared segments that make no layer (only ENV/ARG/WORKDIR… or a FROM) into their children
    def makes_any_layer(seg: dict) -> bool:
        for nid in seg["nodes"]:
            st = nodes[nid].step
            if st is None:
                continue
            if st.instruction == "FROM":
                continue
            if node_layer(nodes[nid]) is not False:
                return True
        return False

    for si, seg in enumerate(segments):
        seg["kind"] = "base" if len(seg["apps"]) >= 2 else "app"
        seg["prefix"] = []  # nodes folded in from a parent that is not an image
        seg["folded"] = False
    for si, seg in enumerate(segments):
        if seg["kind"] == "base" and not makes_any_layer(seg):
            seg["folded"] = True
    # resolve image parents and prefixes
    for si, seg in enumerate(segments):
        p = seg["parent"]
        prefix: list[int] = []
        while p is not None and segments[p]["folded"]:
            prefix = segments[p]["nodes"] + prefix
            p = segments[p]["parent"]
        seg["image_parent"] = p
        seg["prefix"] = prefix

    # names: bases f1.. in trie order, apps by name
    counter = 0
    for seg in segments:
        if seg["folded"]:
            seg["name"] = None
        elif seg["kind"] == "base":
            counter += 1
            seg["name"] = f"{base_prefix}f{counter}"
        else:
            seg["name"] = seg["apps"][0]

    image_of_node: dict[int, str | None] = {}
    for seg in segments:
        for nid in seg["nodes"]:
            image_of_node[nid] = seg["name"]
    for seg in segments:
        # a folded (layer-less) shared segment is repeated in each image that follows it
        for nid in seg["prefix"]:
            if seg["name"] is not None:
                prev = image_of_node.get(nid)
                image_of_node[nid] = seg["name"] if not prev else f"{prev},{seg['name']}"

    # -- Dockerfiles -------------------------------------------------------
    def arg_lines(nids: Iterable[int]) -> list[str]:
        return [nodes[n].step.raw for n in nids if nodes[n].step and nodes[n].step.instruction == "ARG"]

    def ancestors(seg_idx: int | None) -> list[int]:
        out: list[int] = []
        while seg_idx is not None:
            seg = segments[seg_idx]
            out = seg["prefix"] + seg["nodes"] + out
            seg_idx = seg["image_parent"]
        return out

    dockerfiles: dict[str, str] = {}
    order = [s for s in segments if not s["folded"] and s["kind"] == "base"] + [
        s for s in segments if s["kind"] == "app"
    ]
    # apps whose last shared node is a full app path (an app that ends inside a base)
    for seg in order:
        idx = segments.index(seg)
        body_nodes = seg["prefix"] + seg["nodes"]
        lines: list[str] = []
        stages_needed: list[str] = []
        app_for_stages = seg["apps"][0]
        for nid in body_nodes:
            st = nodes[nid].step
            if st and st.needs_stages:
                stages_needed.extend(x for x in st.needs_stages if x not in stages_needed)
        parsed = parsed_by_app.get(app_for_stages)
        if stages_needed and parsed is not None:
            if parsed.global_args:
                lines.append(parsed.global_args)
            for sname in stages_needed:
                lines.append(parsed.stage_text.get(sname, f"# stage {sname} (text not available)"))
            lines.append("")
        first = nodes[body_nodes[0]].step if body_nodes else None
        if seg["image_parent"] is not None:
            lines.append(f"FROM {segments[seg['image_parent']]['name']}")
            lines.extend(arg_lines(ancestors(seg["image_parent"])))
        elif first is not None and first.instruction == "FROM":
            pass
        else:
            lines.append("FROM scratch")
            lines.append(
                "# the steps below start from an image's base layer, not a Dockerfile FROM: "
                "replace FROM scratch and the IMPORT/ADD line with the base image that provides it"
            )
        for nid in body_nodes:
            st = nodes[nid].step
            if st is None:
                continue
            if st.instruction == "IMPORT":
                lines.append(f"# {st.text} (a base layer made by docker import)")
            elif st.instruction == "UNKNOWN":
                lines.append(f"# not a Dockerfile instruction in the history: {st.text}")
            else:
                lines.append(st.raw)
        if seg["kind"] == "app":
            app = seg["apps"][0]
            lines.extend(s.raw for s in deferred.get(app, []))
        dockerfiles[seg["name"]] = "\n".join(lines) + "\n"
    # an app whose whole path is shared (it ends inside a base) gets FROM <that base>
    for app, _ in items:
        if app in dockerfiles:
            continue
        last = paths[app][-1] if paths[app] else None
        seg_idx = seg_of.get(last) if last is not None else None
        while seg_idx is not None and segments[seg_idx]["folded"]:
            seg_idx = segments[seg_idx]["parent"]
        if seg_idx is None:
            raise PlanError(f"{app}: no build steps at all")
        body = [f"FROM {segments[seg_idx]['name']}"] + arg_lines(ancestors(seg_idx))
        body.extend(s.raw for s in deferred.get(app, []))
        dockerfiles[app] = "\n".join(body) + "\n"
        notes.append(f"{app}: every step is shared with another app; its image is {segments[seg_idx]['name']} plus its metadata")

    # -- frames ------------------------------------------------------------
    trie_rows = []
    for n in nodes:
        st = n.step
        sizes_known = [v for v in n.sizes if v is not None]
        trie_rows.append(
            {
                "node": n.node,
                "parent": n.parent,
                "depth": 0 if n.parent is None else None,
                "instruction": "ROOT" if st is None else st.instruction,
                "step": "" if st is None else st.text,
                "apps": tuple(n.apps),
                "n_apps": len(n.apps),
                "makes_layer": False if st is None else node_layer(n),
                "size": None if st is None else node_size(n),
                "size_varies": len(set(sizes_known)) > 1,
                "image": None if st is None else image_of_node.get(n.node),
            }
        )
    depth = {0: 0}
    for r in trie_rows[1:]:
        depth[r["node"]] = depth[r["parent"]] + 1
        r["depth"] = depth[r["node"]]
    trie_rows[0]["depth"] = 0
    trie = pd.DataFrame(trie_rows)
    trie = trie.astype(
        {
            "node": "Int64", "parent": "Int64", "depth": "Int64", "instruction": "string", "step": "string",
            "n_apps": "Int64", "makes_layer": "boolean", "size": "Int64", "size_varies": "boolean", "image": "string",
        }
    )

    # layers after: each proposed image = path of layer-making nodes
    def layer_nodes(nids: list[int]) -> list[int]:
        return [n for n in nids if node_layer(nodes[n]) is not False]

    img_paths: dict[str, list[int]] = {}
    img_rows = []
    for seg in order:
        idx = segments.index(seg)
        full = ancestors(idx)
        img_paths[seg["name"]] = layer_nodes(full)
    for app, _ in items:
        if app not in img_paths:
            img_paths[app] = layer_nodes(paths[app])
    layer_rows = []
    for name, lnodes in img_paths.items():
        for pos, nid in enumerate(lnodes):
            layer_rows.append({"image": name, "position": pos, "node": nid, "size": node_size(nodes[nid])})
    layers_df = pd.DataFrame(layer_rows, columns=["image", "position", "node", "size"]).astype(
        {"image": "string", "position": "Int64", "node": "Int64", "size": "Int64"}
    )

    def total(vals: Iterable[int | None]) -> int | None:
        vals = list(vals)
        return None if any(v is None for v in vals) else int(sum(vals))  # type: ignore[arg-type]

    for seg in order:
        name = seg["name"]
        parent = segments[seg["image_parent"]]["name"] if seg["image_parent"] is not None else None
        own = [n for n in layer_nodes(seg["prefix"] + seg["nodes"])]
        img_rows.append(
            {
                "image": name,
                "kind": seg["kind"],
                "parent": parent,
                "apps": tuple(seg["apps"]),
                "steps": len(seg["prefix"] + seg["nodes"]),
                "layers": len(img_paths[name]),
                "own_size": total(node_size(nodes[n]) for n in own),
                "size": total(node_size(nodes[n]) for n in img_paths[name]),
            }
        )
    for app, _ in items:
        if app not in {r["image"] for r in img_rows}:
            img_rows.append(
                {
                    "image": app, "kind": "app", "parent": None, "apps": (app,), "steps": 0,
                    "layers": len(img_paths[app]), "own_size": 0,
                    "size": total(node_size(nodes[n]) for n in img_paths[app]),
                }
            )
    images_df = pd.DataFrame(img_rows).astype(
        {"image": "string", "kind": "string", "parent": "string", "steps": "Int64", "layers": "Int64",
         "own_size": "Int64", "size": "Int64"}
    )

    # savings
    base_nodes: set[int] = set()
    for seg in order:
        if seg["kind"] == "base":
            base_nodes.update(img_paths[seg["name"]])
    host_before: dict[str, int | None] = {}
    host_after: dict[int, int | None] = {}
    sav_rows = []
    for app, _ in items:
        before = before_layers[app]
        pulled_b = [sz for ident, sz in before if ident not in host_before]
        for ident, sz in before:
            host_before.setdefault(ident, sz)
        after_nodes = img_paths[app]
        pulled_a = [node_size(nodes[n]) for n in after_nodes if n not in host_after]
        for n in after_nodes:
            host_after.setdefault(n, node_size(nodes[n]))
        sav_rows.append(
            {
                "scope": "app",
                "image": app,
                "layers_before": len(before),
                "layers_after": len(after_nodes),
                "size_before": total(sz for _, sz in before),
                "size_after": total(node_size(nodes[n]) for n in after_nodes),
                "pulled_before": total(pulled_b),
                "pulled_after": total(pulled_a),
                "pulled_with_bases": total(node_size(nodes[n]) for n in after_nodes if n not in base_nodes),
                "stored_before": None,
                "stored_after": None,
            }
        )
    stored_b = total(host_before.values())
    stored_a = total(host_after.values())
    sav_rows.append(
        {
            "scope": "host",
            "image": "(one host, all apps)",
            "layers_before": len(host_before),
            "layers_after": len(host_after),
            "size_before": None,
            "size_after": None,
            "pulled_before": stored_b,
            "pulled_after": stored_a,
            "pulled_with_bases": None,
            "stored_before": stored_b,
            "stored_after": stored_a,
        }
    )
    savings = pd.DataFrame(sav_rows)
    int_cols = [c for c in savings.columns if c not in {"scope", "image"}]
    savings = savings.astype({"scope": "string", "image": "string", **{c: "Int64" for c in int_cols}})
    savings["saved"] = (savings["pulled_before"] - savings["pulled_after"]).astype("Int64")
    notes.append(f"sizes: layer {size_column!r}; <NA> where no image tells a step's size (never guessed)")
    return BasePlan(trie, images_df, layers_df, dockerfiles, savings, notes, [a for a, _ in items])
