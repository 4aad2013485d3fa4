"""Build steps as the planner compares them: the ``Step`` record, the trie key
rules shared by Dockerfiles and histories, and steps read from an image's
history (``normalise_created_by``, ``history_steps``)."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ...errors import AnalysisError
from ...model import Image


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

_NOP = re.compile(r"^(?:/bin/sh|/bin/bash|sh)\s+-c\s+#\(nop\)\s*(.*)$", re.S)
_SHELL_C = re.compile(r"^(?:/bin/sh|/bin/bash|sh|bash)\s+-c\s+(.*)$", re.S)
_BUILDKIT = re.compile(r"\s*#\s*buildkit\s*$")
_GO_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


def ws(text: str) -> str:
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
    position: int | None = None   # the position of the layer it made in ``source`` (images only)
    reordered: bool = False       # the plan runs it after other steps than the app did (size measured elsewhere)
    run_flags: tuple[str, ...] = ()  # BuildKit RUN flags as written (--mount=…, --network=…)

    @property
    def deferred(self) -> bool:
        return self.instruction in DEFERRED_INSTRUCTIONS


def from_step(app: str, base: str, source: str, *, size: int | None, makes_layer: bool | None,
              line: int | None = None) -> Step:
    """The ``FROM <base>`` step an app's chain starts with (its key is its text)."""
    text = f"FROM {base}"
    return Step(app=app, instruction="FROM", text=text, key=text, source=source, line=line,
                size=size, makes_layer=makes_layer, raw=text)


def split_build_args(text: str) -> tuple[list[str], str]:
    """``|2 A=1 B=2 /bin/sh -c make`` -> ``(["A=1", "B=2"], "/bin/sh -c make")``: the
    build-argument prefix BuildKit and the legacy builder write before a RUN
    command (``([], text)`` without one)."""
    m = re.match(r"^\|(\d+)\s+", text)
    if not m:
        return [], text
    n = int(m.group(1))
    parts = text[m.end():].split(" ", n)
    return parts[:n], parts[n] if len(parts) > n else ""


def _strip_run(text: str) -> str:
    """``RUN |2 A=1 B=2 /bin/sh -c make`` -> ``RUN make`` (build-arg prefix and shell removed)."""
    _args, rest = split_build_args(text[4:].lstrip())
    m = _SHELL_C.match(rest)
    if m:
        rest = m.group(1)
    return "RUN " + rest


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
        text = _strip_run(text)
    text = ws(text)
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
                position=layer.position if layer is not None else None,
            )
        )
    return out


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
