"""Build steps as the planner compares them: the ``Step`` record, the trie key
rules shared by Dockerfiles and histories, and steps read from an image's
history (``normalise_created_by``, ``history_steps``)."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ...errors import AnalysisError
# the step text rules live in layerlab.labels (one implementation); re-exported for the planner
from ...labels import KNOWN_INSTRUCTIONS, normalise_created_by, split_build_args, ws  # noqa: F401
from ...model import Image


class PlanError(AnalysisError):
    """A Dockerfile (or history) the planner cannot read faithfully."""


LAYER_INSTRUCTIONS = {"RUN", "COPY", "ADD", "IMPORT"}
# config-only: they change the final image's config, never how later steps build
DEFERRED_INSTRUCTIONS = {
    "LABEL", "MAINTAINER", "CMD", "ENTRYPOINT", "EXPOSE", "HEALTHCHECK", "STOPSIGNAL", "ONBUILD",
}
# no layer (WORKDIR may make an empty one), but later steps depend on them
CONTEXT_INSTRUCTIONS = {"ENV", "ARG", "WORKDIR", "USER", "SHELL", "VOLUME"}
# instructions whose arguments Docker substitutes ARG/ENV into
SUBSTITUTED = {"ADD", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR", "ONBUILD"}

_GO_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


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
    estimated: bool = False       # size estimated (an install unit's share of a layer split by package)
    layers: tuple[int, ...] = ()  # the image's layers a step joined from several RUNs stands for

    @property
    def deferred(self) -> bool:
        return self.instruction in DEFERRED_INSTRUCTIONS


def from_step(app: str, base: str, source: str, *, size: int | None, makes_layer: bool | None,
              line: int | None = None) -> Step:
    """The ``FROM <base>`` step an app's chain starts with (its key is its text)."""
    text = f"FROM {base}"
    return Step(app=app, instruction="FROM", text=text, key=text, source=source, line=line,
                size=size, makes_layer=makes_layer, raw=text)


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
