"""Labels people read: build steps, image names, file modes.  Written once,
here, for every floor (sources, analyses, charts, widgets, the CLI): this
module imports nothing of layerlab's (pandas only for the vectorised forms).

Step labels
    A history ``created_by`` becomes the Dockerfile instruction and the
    distinctive part of its command:

    - ``/bin/sh -c #(nop)  CMD ["sh"]`` (legacy builder) -> ``CMD ["sh"]``
    - ``/bin/sh -c apt-get update`` (legacy RUN) -> ``RUN apt-get update``
    - ``|1 DEBIAN_FRONTEND=noninteractive /bin/sh -c apt-get …`` (legacy, with an
      ARG) and BuildKit's ``RUN |1 DEBIAN_FRONTEND=noninteractive /bin/sh -c
      apt-get … # buildkit`` -> ``RUN apt-get …``
    - ``COPY a.txt /app/ # buildkit`` -> ``COPY a.txt /app/``
    - ``/bin/sh -c #(nop) COPY file:7a379d0e…c8 in /app/`` -> ``COPY file:7a379d0ef3d3… in /app/``
    - the base layer — ``ADD file:e7ac45…f7 in /``, ``ADD rootfs.tar.xz /``, an
      empty command or no step at position 0 -> ``base: debian:bookworm`` when
      the image says its base, else ``base layer (ADD file:e7ac45803c3a… in /)``;
      docker-library's ``# debian.sh --arch 'amd64' out/ 'trixie' '@1785715200'``
      -> ``base: debian:trixie``

    Longer than ``width`` characters, a label keeps its start (the
    instruction and the first words) and its end, with ``…`` in the middle.
    A label is never null.

Image labels
    :func:`short_image_names` gives each image the shortest form of its name
    that no other image of the same set shares (``docker.io/library/`` and a
    registry every image shares dropped, ``:latest`` dropped), so a chart can
    show names whole instead of truncating them until they look alike;
    :func:`distinct_labels` keeps labels one-to-one with layer keys, so a
    chart grouping by a label never merges two layers.

File modes
    :func:`mode_text`: ``-rwxr-xr-x`` as ``ls -l`` and dive show them.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

if TYPE_CHECKING:
    import pandas as pd

KNOWN_INSTRUCTIONS = frozenset({
    "FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY",
    "ENTRYPOINT", "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL",
    "HEALTHCHECK", "SHELL",
})

BASE_NAME_LABEL = "org.opencontainers.image.base.name"
"""The OCI annotation (and image label) naming the image a build started from."""

# the shell a RUN ran in: Linux's `sh -c`, Windows' `cmd /S /C` and a `SHELL ["powershell", "-Command"]`
_SHELLS = r"(?:(?:/bin/sh|/bin/bash|sh|bash)\s+-c|cmd\s+/S\s+/C|powershell(?:\s+-Command)?)"
# the legacy builder's metadata step, also as repo-info prints a Windows one ("RUN cmd /S /C #(nop) CMD …")
_NOP = re.compile(rf"^(?:RUN\s+)?(?:{_SHELLS}\s+)?#\(nop\)\s*(.*)$", re.S)
_SHELL_C = re.compile(rf"^{_SHELLS}(?:\s+(.*))?$", re.S)
_BUILDKIT = re.compile(r"\s*#\s*buildkit\s*$")
_BUILD_ARGS = re.compile(r"^\|(\d+)\s+")
_ROOT_ADD = re.compile(r"^ADD (?:file|dir|multi):[0-9a-f]+ in /$|^ADD \S+ /$")
# docker-library's debian images record how the rootfs was made: "# debian.sh --arch 'amd64' out/ 'trixie' '@1785715200'"
_DEBIAN_SH = re.compile(r"^(?:RUN )?# debian\.sh\b.*'([a-z]+)' '@\d+'$")
_CONTENT_HASH = re.compile(r"\b(file|dir|multi):([0-9a-f]{12})[0-9a-f]{8,}")
_SET_E = re.compile(r"^RUN set -[a-zA-Z]+ *(?:;|&&) *")


def ws(text: str) -> str:
    """Collapse runs of whitespace (a documented simplification: two spaces
    inside a quoted argument compare equal to one)."""
    return " ".join(text.split())


def split_build_args(text: str) -> tuple[list[str], str]:
    """``|2 A=1 B=2 /bin/sh -c make`` -> ``(["A=1", "B=2"], "/bin/sh -c make")``: the
    build-argument prefix BuildKit and the legacy builder write before a RUN
    command (``([], text)`` without one)."""
    m = _BUILD_ARGS.match(text)
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
        rest = m.group(1) or ""
    return "RUN " + rest


def normalise_created_by(created_by: str | None) -> tuple[str, str]:
    """``(instruction, normalised text)`` for a history ``created_by``.

    ``/bin/sh -c #(nop)  ENV A=1`` -> ``("ENV", "ENV A=1")``;
    ``RUN |1 V=2 /bin/sh -c make # buildkit`` -> ``("RUN", "RUN make")``;
    ``/bin/sh -c make`` (legacy RUN) -> ``("RUN", "RUN make")``; Windows'
    ``cmd /S /C #(nop) EXPOSE 80`` (repo-info prints it after ``RUN``) ->
    ``("EXPOSE", "EXPOSE 80")`` and ``cmd /S /C dir`` or ``powershell
    -Command …`` -> a RUN; empty (or None) -> ``("IMPORT", "IMPORT")``; text
    of no known instruction -> ``("UNKNOWN", text)``.  Whitespace is
    collapsed.  This is also the instruction the sources pair history steps
    by (``sources/_pairing.py``).
    """
    text = (created_by or "").strip()
    text = _BUILDKIT.sub("", text)
    if not text:
        return "IMPORT", "IMPORT"
    m = _NOP.match(text)
    if m:
        text = m.group(1).strip()
    elif _BUILD_ARGS.match(text):  # legacy builder's RUN with build args: "|1 V=2 /bin/sh -c ..."
        text = "RUN " + text
    else:
        m = _SHELL_C.match(text)
        if m:
            text = "RUN " + (m.group(1) or "")
    if text.upper().startswith("RUN "):
        text = _strip_run(text)
    text = ws(text)
    word = text.split(" ", 1)[0].upper()
    if word not in KNOWN_INSTRUCTIONS:
        return "UNKNOWN", text
    return word, word + text[len(word):]


def shorten_middle(text: str, width: int) -> str:
    """``text`` if it fits ``width`` characters, else its start (two thirds)
    and its end (one third) with `` … `` between, each cut at a space (or,
    for the end, a ``/``) when that loses little."""
    if width is None or width < 2 or len(text) <= width:
        return text
    if width < 12:
        return text[:width - 1].rstrip() + "…"
    room = width - 3  # " … "
    tail_n = room // 3
    head_n = room - tail_n
    head = text[:head_n]
    if text[head_n] != " ":
        cut = head.rfind(" ")
        if cut >= head_n * 2 // 3:
            head = head[:cut]
    start = len(text) - tail_n
    tail = text[start:]
    if text[start - 1] != " ":
        cut = tail.find(" ")
        if 0 <= cut <= tail_n // 2:
            tail = tail[cut + 1:]
        else:
            cut = tail.find("/")
            if 0 <= cut <= tail_n // 2:
                tail = tail[cut:]
    return f"{head.rstrip()} … {tail.lstrip()}"


def _short_hashes(text: str) -> str:
    """``file:7a379d0ef3d3…`` for a content hash the legacy builder writes in full."""
    return _CONTENT_HASH.sub(lambda m: f"{m.group(1)}:{m.group(2)}…", text)


def _is_base_text(instruction: str, text: str) -> bool:
    return instruction == "IMPORT" or bool(_ROOT_ADD.match(text))


def step_label(created_by: str | None, width: int = 60, *, position: int | None = None,
               base: str | None = None) -> str:
    """One history step as a person recognises it (see the module doc); never empty.

    ``position`` is the layer's position when known: a step with no command
    (``None`` or empty) or ``ADD file:… in /`` at position 0 (or at an unknown
    position) is the base layer, labelled ``base: <base>`` when ``base`` (the
    image it came from, e.g. :func:`base_name`) is given.  A missing step
    elsewhere is ``(no history step)``."""
    at_base = position is None or position == 0
    if created_by is None and not at_base:
        return "(no history step)"
    instruction, text = normalise_created_by(created_by)
    made_by = _DEBIAN_SH.match(text) or _DEBIAN_SH.match(ws(created_by or ""))
    if at_base and made_by:  # the history itself says which base this is
        return shorten_middle(f"base: {base or 'debian:' + made_by.group(1)}", width)
    if at_base and (created_by is None or _is_base_text(instruction, text)):
        if base:
            return shorten_middle(f"base: {base}", width)
        if created_by is None:
            return "base layer"
        if instruction == "IMPORT":
            return "base layer (imported)"
        return shorten_middle("base layer (" + _short_hashes(text) + ")", width)
    if instruction == "IMPORT":
        return "(no command recorded)"
    text = _short_hashes(text)
    if instruction == "RUN":
        text = _SET_E.sub("RUN ", text)
    return shorten_middle(text, width)


def step_labels(created_by: "pd.Series | Sequence[str | None]", width: int = 60, *,
                positions: "pd.Series | Sequence[int | None] | None" = None,
                bases: "pd.Series | Sequence[str | None] | None" = None) -> "pd.Series":
    """:func:`step_label` of each row (a ``string`` Series, index reset, no
    nulls); ``positions`` and ``bases`` align with ``created_by`` row by row."""
    import pandas as pd

    cmds = list(pd.Series(created_by, dtype="object"))
    pos = [None] * len(cmds) if positions is None else [None if pd.isna(p) else int(p) for p in positions]
    base = [None] * len(cmds) if bases is None else [b if isinstance(b, str) and b else None for b in bases]
    memo: dict[tuple, str] = {}
    out = []
    for c, p, b in zip(cmds, pos, base):
        c = c if isinstance(c, str) else None
        key = (c, p if p in (None, 0) or c is None else 1, b)
        label = memo.get(key)
        if label is None:
            label = memo[key] = step_label(c, width, position=p, base=b)
        out.append(label)
    return pd.Series(pd.array(out, dtype="string"))


def base_name(config: Mapping | None, annotations: Mapping | None = None) -> str | None:
    """The image a build started from, when the image says it: the
    ``org.opencontainers.image.base.name`` annotation, else the image
    config's label of that name (shortened: ``docker.io/library/`` dropped);
    None when neither says."""
    name = (annotations or {}).get(BASE_NAME_LABEL)
    if not name and isinstance(config, Mapping):
        labels = (config.get("config") or {}).get("Labels") or {}
        name = labels.get(BASE_NAME_LABEL) if isinstance(labels, Mapping) else None
    if not isinstance(name, str) or not name.strip():
        return None
    return _plain_name(name.strip())


_DEFAULT_REGISTRY = re.compile(r"^(?:docker\.io|index\.docker\.io|registry-1\.docker\.io)/(?:library/)?")


def _plain_name(name: str) -> str:
    """``docker.io/library/debian:bookworm`` -> ``debian:bookworm``."""
    return _DEFAULT_REGISTRY.sub("", name)


def _drop_latest(name: str) -> str:
    return name[:-len(":latest")] if name.endswith(":latest") and "/" not in name.rsplit(":", 1)[1] else name


def short_image_names(names: Iterable[str]) -> dict[str, str]:
    """Each name's shortest form that stays unique among ``names``.

    Tried in turn, each kept only when no two names end up alike:
    ``docker.io/library/`` (Docker Hub's spelling) dropped; ``:latest``
    dropped; the leading path parts every name shares (a common registry
    and namespace, ``registry:5000/team/``) dropped.  A name is never cut
    inside a word and never loses what tells it from another: names that
    would collide keep their longer form."""
    names = [str(n) for n in dict.fromkeys(names)]
    current = {n: n for n in names}
    for step in (_plain_name, _drop_latest):
        current = _apply_if_unique(current, step)
    current = _apply_if_unique(current, _common_prefix_dropper(list(current.values())))
    return current


def _apply_if_unique(current: dict[str, str], step) -> dict[str, str]:
    """``step`` applied to each short name; a name whose result would equal
    another's (or be empty) keeps its form."""
    proposed = {n: (step(s) or s) for n, s in current.items()}
    counts: dict[str, int] = {}
    for s in proposed.values():
        counts[s] = counts.get(s, 0) + 1
    taken = set(current.values())
    out = {}
    for n, s in proposed.items():
        unique = counts[s] == 1 and (s == current[n] or s not in taken - {current[n]})
        out[n] = s if unique else current[n]
    return out


def _common_prefix_dropper(shorts: list[str]):
    """A function dropping the leading ``a/b/`` path parts all of ``shorts`` share
    (never the last part: the repository's own name stays)."""
    if len(shorts) < 2:
        return lambda s: s
    split = [s.split("/") for s in shorts]
    n = 0
    while all(len(p) > n + 1 for p in split) and len({p[n] for p in split}) == 1:
        n += 1
    if n == 0:
        return lambda s: s
    return lambda s: "/".join(s.split("/")[n:])


def distinct_labels(labels: Sequence[str], keys: Sequence[object]) -> list[str]:
    """``labels`` made one-to-one with ``keys``: where rows of different keys
    share a label, each such label gets its key's short form (``sha256:``
    dropped, 12 characters) after it, so a chart that groups by the label
    never merges different things (rows of one key keep one label)."""
    keys = ["" if k is None else str(k) for k in keys]
    owners: dict[str, set[str]] = {}
    for lab, k in zip(labels, keys):
        owners.setdefault(lab, set()).add(k)
    out = []
    for i, (lab, k) in enumerate(zip(labels, keys)):
        if len(owners[lab]) > 1:
            short = k.split(":", 1)[-1][:12] or f"row {i}"
            lab = f"{lab} [{short}]"
        out.append(lab)
    return out


_TYPE_BITS = {"file": 0o100000, "hardlink": 0o100000, "dir": 0o040000, "symlink": 0o120000, "char": 0o020000,
              "block": 0o060000, "fifo": 0o010000}


def mode_text(mode: int | None, type: str | None = "file") -> str:
    """Permission bits as ``ls -l`` and dive show them: ``-rwxr-xr-x``,
    ``drwxr-xr-x``, ``lrwxrwxrwx``, setuid/setgid/sticky as ``s``/``t``
    (``stat.filemode``; the entry's ``type`` from the files frame gives the
    first letter; ``?`` for whiteouts and unknown types, ``""`` when the mode
    is unknown)."""
    import stat

    import pandas as pd

    if mode is None or pd.isna(mode):
        return ""
    text = stat.filemode(_TYPE_BITS.get(type or "", 0) | (int(mode) & 0o7777))
    return text if (type or "") in _TYPE_BITS else "?" + text[1:]


def mode_texts(modes: "pd.Series | Sequence[int | None]", types: "pd.Series | Sequence[str | None] | None" = None
               ) -> "pd.Series":
    """:func:`mode_text` of each row (a ``string`` Series, index reset)."""
    import pandas as pd

    modes = list(modes)
    types = ["file"] * len(modes) if types is None else [t if isinstance(t, str) else None for t in types]
    return pd.Series(pd.array([mode_text(None if pd.isna(m) else int(m), t) for m, t in zip(modes, types)],
                              dtype="string"))
