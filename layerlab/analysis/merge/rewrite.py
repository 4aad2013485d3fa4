"""The Dockerfile lines of a merge: the RUN steps of a group joined into one RUN.

The commands come from the image history (``RUN |1 A=1 /bin/sh -c make #
buildkit`` -> ``make``) or, when the Dockerfile is given, from its lines:
BuildKit leaves RUN flags such as ``--mount=type=secret`` out of the history,
so only the Dockerfile can keep them.  The merged line is ``RUN`` + every flag
of the group's steps (each once, in order) + the commands joined with
``&&``.  Config-only steps between them (ENV, ARG, LABEL, …) move above the
merged RUN; a group that holds a COPY/ADD, a USER/WORKDIR/SHELL change, an
exec-form RUN or a command that a ``&&`` cannot follow (a shell comment, a
heredoc, a trailing ``&``) gets no line, and the reason says why.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ...model import Image

_BUILDKIT = re.compile(r"\s*#\s*buildkit\s*$")
_FLAG = re.compile(r"^(--[a-z][a-z-]*=\S+)\s+")
_SHELL = re.compile(r"^(?:/bin/sh|/bin/bash|sh|bash)\s+-c\s+(.*)$", re.S)
# instructions whose move above earlier commands changes what those commands do
_ORDER_MATTERS = {"USER", "WORKDIR", "SHELL", "COPY", "ADD", "FROM", "ONBUILD"}


@dataclass
class Line:
    """One history step as a Dockerfile line."""

    instruction: str          # RUN, ENV, COPY, …
    text: str                 # the Dockerfile line
    flags: tuple[str, ...] = ()
    command: str | None = None    # a RUN's shell command


def run_parts(created_by: str | None) -> tuple[list[str], str] | None:
    """``(flags, shell command)`` of a shell-form RUN history step, else None."""
    from ..plan.steps import split_build_args

    text = _BUILDKIT.sub("", (created_by or "").strip())
    if text.startswith("RUN "):
        text = text[4:].lstrip()
    flags = []
    while (m := _FLAG.match(text)) is not None:
        flags.append(m.group(1))
        text = text[m.end():]
    _args, text = split_build_args(text)
    m = _SHELL.match(text)
    if not m or m.group(1).lstrip().startswith("#(nop)"):
        return None
    return flags, m.group(1)


def history_lines(img: Image) -> dict[int, Line]:
    """Per history index: the step as a Dockerfile line (other steps than RUN as
    the planner writes them: :func:`layerlab.analysis.plan.steps.history_steps`)."""
    from ..plan.steps import history_steps

    out = {}
    for s, st in zip(img.history_list, history_steps(img)):
        parts = run_parts(s.created_by)
        if parts is not None:
            flags, cmd = parts
            out[s.index] = Line("RUN", " ".join(["RUN", *flags, cmd]), tuple(flags), cmd)
        else:
            out[s.index] = Line(st.instruction, st.raw)
    return out


def dockerfile_lines(img: Image, dockerfile, notes: list[str]) -> dict[int, Line]:
    """Per history index: the Dockerfile's own line where it matches the history
    (the Dockerfile's steps are the history's last steps, instruction for
    instruction, RUN commands equal); the history's line otherwise."""
    from ..plan.steps import PlanError, normalise_created_by, ws
    from ..plan.dockerfile import parse_dockerfile

    lines = history_lines(img)
    if dockerfile is None:
        return lines
    try:
        parsed = parse_dockerfile(dockerfile)
    except PlanError as e:
        notes.append(f"dockerfile= not used (the lines come from the history): {e}")
        return lines
    hist = img.history_list[-len(parsed.steps):] if parsed.steps else []
    if len(hist) != len(parsed.steps):
        notes.append(f"dockerfile= not used: it has {len(parsed.steps)} steps, the history only {len(hist)}")
        return lines
    for h, st in zip(hist, parsed.steps):
        instr, text = normalise_created_by(h.created_by)
        if instr != st.instruction or (instr == "RUN" and text != st.text):
            notes.append(f"dockerfile= not used: its line {st.line} ({st.text[:60]!r}) is not history step "
                         f"{h.index} ({text[:60]!r}); pass the Dockerfile this image was built from")
            return lines
    for h, st in zip(hist, parsed.steps):
        if st.instruction == "RUN":
            raw = ws(st.raw)
            m = re.match(r"^RUN\s+((?:--\S+\s+)*)", raw, re.I)
            flags = tuple(m.group(1).split()) if m else ()
            cmd = st.text[4:]
            lines[h.index] = Line("RUN", " ".join(["RUN", *flags, cmd]), flags, cmd)
        else:
            lines[h.index] = Line(st.instruction, ws(st.raw))
    return lines


def _has_comment(cmd: str) -> bool:
    """Whether ``cmd`` holds a shell comment: an unquoted ``#`` at the start of a
    word (POSIX shell grammar 2.3, rule 9).  Written here because shlex treats a
    ``#`` inside a word (``${X#y}``, ``a#b``) as a comment too, and a full shell
    parser is not a dependency; quotes and backslashes are all that decide it."""
    quote, prev, i = "", " ", 0
    while i < len(cmd):
        c = cmd[i]
        if quote == "'":
            quote = "" if c == "'" else quote
        elif c == "\\":
            i += 1
            c = "x"
        elif quote == '"':
            quote = "" if c == '"' else quote
        elif c in "'\"":
            quote = c
        elif c == "#" and (prev.isspace() or prev in ";&|()<>"):
            return True
        prev = c
        i += 1
    return False


def _joinable(cmd: str) -> str | None:
    """Why ``cmd && next`` would not run ``next`` as written (None: it would)."""
    if re.search(r"<<-?\s*['\"]?\w", cmd):
        return "it uses a heredoc"
    if _has_comment(cmd):
        return "it ends in a shell comment, which would swallow the commands joined after it"
    if re.search(r"(^|[^&])&\s*$", cmd):
        return "it ends in '&' (a background job)"
    return None


def merged_lines(img: Image, first: int, last: int, lines: dict[int, Line]) -> tuple[str, str | None, str | None]:
    """``(lines before, lines after, why not)`` for merging layers ``first``..``last``:
    the original Dockerfile lines, the rewritten ones (None when the group cannot
    be one RUN) and the reason it cannot."""
    by_pos = {s.layer_position: s.index for s in img.history_list if s.layer_position is not None}
    if first not in by_pos or last not in by_pos:
        return "", None, "the history does not say which steps made these layers"
    layer_steps = {by_pos[p] for p in range(first, last + 1) if p in by_pos}
    group = [(lines[i], i in layer_steps) for i in range(by_pos[first], by_pos[last] + 1) if i in lines]
    before = "\n".join(ln.text for ln, _ in group)
    moved, run, why = join_lines(group)
    if run is None:
        return before, None, why
    return before, "\n".join([*moved, run.text]), None


def join_lines(group: list[tuple[Line, bool]]) -> tuple[list[str], Line | None, str | None]:
    """``(config lines moved above, the merged RUN, why not)`` for a run of
    Dockerfile lines (each with whether it makes a layer) joined into one RUN:
    every flag once, in order, the commands joined with ``&&``."""
    moved: list[str] = []
    flags: list[str] = []
    cmds: list[str] = []
    for ln, makes_layer in group:
        if makes_layer or ln.instruction in {"RUN", "COPY", "ADD"}:
            if ln.instruction != "RUN" or ln.command is None:
                return moved, None, f"{ln.text[:60]!r} is not a shell-form RUN; it cannot join a RUN"
            why = _joinable(ln.command)
            if why:
                return moved, None, f"{ln.text[:60]!r}: {why}"
            flags.extend(f for f in ln.flags if f not in flags)
            cmds.append(re.sub(r"[\s;]+$", "", ln.command))
        elif ln.instruction in _ORDER_MATTERS:
            return moved, None, f"{ln.text[:60]!r} sits between the steps and changes how the later ones run"
        else:
            moved.append(ln.text)
    cmd = " && ".join(cmds)
    return moved, Line("RUN", " ".join(["RUN", *flags, cmd]), tuple(flags), cmd), None


__all__ = ["Line", "dockerfile_lines", "history_lines", "join_lines", "merged_lines", "run_parts"]
