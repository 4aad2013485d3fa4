"""Pair history steps with layers when the source has no ``empty_layer`` flags.

Sources that carry the image config (archives, OCI, manifests) use
``model.pair_by_empty_layer``.  The engine's history API, saved ``docker
history`` output and repo-info markdown do not say which steps made a layer,
so we use the best evidence there is, and record which evidence decided:

1. a reported step size > 0 means the step made a layer (``size``);
2. the instruction kind: RUN/COPY/ADD and imports make layers, metadata
   instructions (ENV, LABEL, CMD, ``#(nop)`` …) do not (``alignment``);
3. the layer count, when known, settles the remaining ambiguous steps
   (WORKDIR, unknown text, zero-size RUNs) if exactly one assignment fits.

Steps that cannot be settled are kept and flagged ``unpaired``.
"""
from __future__ import annotations

import re

from ..model import (
    PAIRING_ALIGNMENT,
    PAIRING_EMPTY,
    PAIRING_SIZE,
    PAIRING_UNPAIRED,
    HistoryStep,
)

LAYER_INSTRUCTIONS = {"RUN", "COPY", "ADD"}
EMPTY_INSTRUCTIONS = {
    "ENV", "LABEL", "CMD", "ENTRYPOINT", "EXPOSE", "USER", "ARG", "ONBUILD",
    "STOPSIGNAL", "HEALTHCHECK", "SHELL", "VOLUME", "MAINTAINER",
}
_NOP = re.compile(r"#\(nop\)\s*(\w+)")
_WORD = re.compile(r"^\s*([A-Za-z]+)\b")
_BUILD_ARGS_RUN = re.compile(r"^\|\d+\s")  # "|1 FOO=bar /bin/sh -c ..." (legacy RUN with build args)


def instruction_of(created_by: str | None) -> str | None:
    """The Dockerfile instruction a history command came from, upper-case.

    Handles the legacy builder's ``/bin/sh -c #(nop) ENV …`` and
    ``/bin/sh -c apt-get …`` (a RUN), BuildKit's ``RUN /bin/sh -c … # buildkit``,
    ``|2 A=1 B=2 /bin/sh -c …`` (RUN with build args), ``ADD file:… in /``.
    ``IMPORT`` for an empty command (``docker import``), None when unknown.
    """
    if created_by is None:
        return None
    text = created_by.strip()
    if not text:
        return "IMPORT"
    m = _NOP.search(text)
    if m:
        return m.group(1).upper()
    if _BUILD_ARGS_RUN.match(text):
        return "RUN"
    if text.startswith(("/bin/sh -c", "/bin/bash -c", "sh -c", "cmd /S /C", "powershell")):
        return "RUN"
    m = _WORD.match(text)
    if m:
        word = m.group(1).upper()
        if word in LAYER_INSTRUCTIONS | EMPTY_INSTRUCTIONS | {"WORKDIR", "FROM"}:
            return word
    return None


def classify(step: HistoryStep) -> str:
    """'layer', 'empty' or 'maybe' for one step, from its size and text."""
    if step.size is not None and step.size > 0:
        return "layer"
    kind = instruction_of(step.created_by)
    if kind in EMPTY_INSTRUCTIONS:
        return "empty"
    if kind in LAYER_INSTRUCTIONS or kind == "IMPORT":
        return "layer"
    return "maybe"  # WORKDIR, unknown text


def pair_by_evidence(steps: list[HistoryStep], n_layers: int | None) -> None:
    """Set ``layer_position`` and ``pairing`` on ``steps`` (oldest first)."""
    kinds = [classify(s) for s in steps]
    n_layer = kinds.count("layer")
    n_maybe = kinds.count("maybe")
    if n_layers is None:
        n_layers = n_layer  # no layer list: trust the evidence, maybes stay unpaired
        resolve_maybe = None
    elif n_layer == n_layers:
        resolve_maybe = "empty"
    elif n_layer + n_maybe == n_layers:
        resolve_maybe = "layer"
    else:
        resolve_maybe = None
    consistent = n_layer + (n_maybe if resolve_maybe == "layer" else 0) == n_layers
    pos = 0
    for s, k in zip(steps, kinds):
        if k == "maybe":
            k = resolve_maybe or "unpaired"
        if k == "empty":
            s.layer_position, s.pairing = None, PAIRING_EMPTY
        elif k == "layer" and consistent and pos < n_layers:
            s.layer_position = pos
            s.pairing = PAIRING_SIZE if (s.size or 0) > 0 else PAIRING_ALIGNMENT
            pos += 1
        else:
            s.layer_position, s.pairing = None, PAIRING_UNPAIRED
