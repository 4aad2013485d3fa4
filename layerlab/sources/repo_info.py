"""``repo-info:PATH`` — docker-library/repo-info markdown (``repos/<image>/remote/<tag>.md``).

The public record of Docker's official images: for each tag and platform the
manifest digest, the Image ID (config digest), the total compressed size, the
history as Dockerfile commands with dates, and each layer's digest, compressed
byte size and media type.

>>> img = layerlab.load("repo-info:repos/debian/remote/jessie.md")           # linux/amd64
>>> img = layerlab.load("repo-info:repos/debian/remote/jessie.md", platform="linux/arm64/v8")
>>> fleet = layerlab.load_many("repo-info:repos")                            # every tag, linux/amd64
>>> fleet = layerlab.load_many("repo-info:repos/debian", platform=None)      # every platform

Both formats are read: the 2018 one (Docker manifest lists, ``# ARGS:`` lines
before legacy RUNs with build args, single-platform files whose only digest is
the file's) and the current one (OCI indexes, BuildKit ``# buildkit`` history,
``unknown; unknown`` attestation sections — these are not images: the platform
filter drops them, and ``platform=None`` drops them too).  Sections are matched
to ``platform=`` by the rule every source shares
(:mod:`layerlab.sources._platform`: ``linux/arm64`` takes ``arm64 variant v8``,
``linux/arm`` takes ``arm variant v7``, a section spelt exactly as asked wins).

What the model gets (and what it cannot get):

* ``Image.id`` = the Image ID, ``Image.manifest_digest`` = the platform's
  manifest digest (the file's own digest when the file has one platform and
  no per-platform digest), ``Image.platform`` = ``os/arch[/variant]``
  (Windows: ``windows/amd64``; its OS version is kept in the reference).
* ``Layer.digest``, ``Layer.media_type``, ``Layer.compressed_size``: exact.
  repo-info prints sizes as ``29.8 MB (29780765 bytes)``; under 1 KB it prints
  only ``249.0 B``.  That figure *is* exact (the byte count is an integer below
  1000 printed with one decimal), so it is kept when its decimal is ``.0``;
  any other sub-KB figure is left ``None``.  ``Layer.diff_id`` and
  ``Layer.size`` (uncompressed) are unknown here: ``None``, never guessed.
* ``HistoryStep.created_by`` = the command as printed (``RUN …``, ``ENV …``),
  ``created`` = its date.  A ``# ARGS: K=V …`` line (build args of a legacy
  RUN) is kept in ``HistoryStep.comment``.  ``Image.created`` is the last
  step's date (the builder stamps the config with the same time).
* Pairing commands to layers: repo-info does not say which commands made no
  layer, so :func:`layerlab.sources._pairing.pair_by_evidence` aligns them
  using the layer count, the instruction kinds and the layers' compressed
  sizes (see that module; the method is recorded per history row).
* A ``Total Size`` that differs from the sum of the layers, or history that
  cannot be paired unambiguously, is reported in ``Image.warnings``.

Speed: the files are parsed with a handful of compiled regular expressions
over each section's text (no line-by-line state machine, no markdown
library — repo-info's output is machine-written and regular, and a generic
markdown parser would be ~50x slower on the 3,256-file 2018 corpus).
``workers=2`` parses files in a process pool; on the 2018 corpus it is
slower than one process (1.8 s vs 1.1 s wall, benchmarks/bench_repo_info.py:
sending the parsed model back costs more than parsing it), so the default is 1.
"""
from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from ..errors import FormatError, SourceError
from ..model import HistoryStep, Image, Layer
from ._pairing import pair_by_evidence
from ._platform import is_attestation, matches, matching

DEFAULT_PLATFORM = "linux/amd64"

_TITLE = re.compile(r"^## `([^`\n]+)`", re.M)
_SECTION_HEAD = re.compile(r"`([^`\n]+)` - ([^\n]+)")
_PULL = re.compile(r"^\$ docker pull [^@\s]+@(sha256:[0-9a-f]{64})", re.M)
_IMAGE_ID = re.compile(r"^-\tImage ID: `([^`]+)`", re.M)
_TOTAL = re.compile(r"^-\tTotal Size: \*\*([^*]+)\*\*", re.M)
_LAYER = re.compile(
    r"^\t-\t`(sha256:[0-9a-f]{64})`[ \t]*\n"
    r"(?:\t\tLast Modified: [^\n]*\n)?"
    r"\t\tSize: ([^\n]*?)[ \t]*\n"
    r"(?:\t\tMIME: ([^\n]*?)[ \t]*(?:\n|$))?",
    re.M,
)
_EXACT = re.compile(r"\((\d+) bytes\)")
_SUB_KB = re.compile(r"^(\d+)\.0 B$")
_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}


def parse_size(text: str) -> int | None:
    """Exact bytes from repo-info's size text: ``1.3 MB (1293276 bytes)`` -> 1293276,
    ``249.0 B`` -> 249 (exact: an integer under 1000 printed with ``.0``); else None."""
    m = _EXACT.search(text)
    if m:
        return int(m.group(1))
    m = _SUB_KB.match(text.strip())
    if m:
        return int(m.group(1))
    return None


def normalise_platform(text: str) -> tuple[str, str | None]:
    """``linux; arm variant v7`` -> (``linux/arm/v7``, None);
    ``windows version 10.0.14393.2007; amd64`` -> (``windows/amd64``, ``10.0.14393.2007``)."""
    os_part, _, arch_part = text.partition(";")
    os_words = os_part.split()
    os_name = os_words[0] if os_words else "unknown"
    os_version = os_words[2] if len(os_words) >= 3 and os_words[1] == "version" else None
    arch_words = arch_part.split()
    arch = arch_words[0] if arch_words else "unknown"
    variant = arch_words[2] if len(arch_words) >= 3 and arch_words[1] == "variant" else None
    plat = f"{os_name}/{arch}" + (f"/{variant}" if variant else "")
    return plat, os_version


_date_cache: dict[str, datetime] = {}


def _parse_date(text: str) -> datetime | None:
    d = _date_cache.get(text)
    if d is None:
        # "Wed, 24 Jan 2018 04:29:35 GMT" — fixed layout, sliced by hand (strptime is
        # locale-dependent for month names and ~10x slower)
        try:
            d = datetime(int(text[12:16]), _MONTHS[text[8:11]], int(text[5:7]),
                         int(text[17:19]), int(text[20:22]), int(text[23:25]), tzinfo=timezone.utc)
        except (KeyError, ValueError):
            return None
        _date_cache[text] = d
    return d


# ---------------------------------------------------------------------------
# one file
# ---------------------------------------------------------------------------
def parse_text(text: str, where: str, platform: str | None = DEFAULT_PLATFORM,
               *, platform_suffix: bool | None = None) -> tuple[list[Image], list[str]]:
    """Parse one repo-info markdown text.

    Returns (images for the matching platforms, every platform the file lists
    except attestation ``unknown`` ones).  ``platform=None`` keeps every real
    platform.  References are ``image:tag``, with ``@platform`` appended when
    ``platform_suffix`` (default: when ``platform`` is None).
    """
    # str.split, not a regex: the 2018 corpus is 69 MB and most of it is other platforms
    parts = text.split("\n### ")
    head = parts[0]
    m = _TITLE.search(head)
    if not m:
        raise FormatError(f"{where}: not a repo-info tag file (no '## `image:tag`' title); "
                          "pass a repos/<image>/remote/<tag>.md file or a directory of them")
    file_digest = _PULL.search(head)
    file_digest = file_digest.group(1) if file_digest else None
    sections = parts[1:]
    if platform_suffix is None:
        platform_suffix = platform is None
    listed: list[str] = []
    found: list[tuple[str, str, str, str | None]] = []
    for sec in sections:
        eol = sec.find("\n")
        hm = _SECTION_HEAD.match(sec, 0, eol if eol >= 0 else len(sec))
        if not hm:
            continue
        plat, os_version = normalise_platform(hm.group(2).strip())
        if is_attestation(plat):
            continue  # attestation manifest (in-toto), not an image
        listed.append(plat + (f" (os.version {os_version})" if os_version else ""))
        if platform is not None and not matches(plat, platform):
            continue
        found.append((sec, hm.group(1), plat, os_version))
    if platform is not None and len(found) > 1:  # an exact spelling wins, as in an index
        found = [found[i] for i in matching([f[2] for f in found], platform)]
    images = [_section_image(sec, name, plat, os_version, where, file_digest if len(sections) == 1 else None,
                             platform_suffix) for sec, name, plat, os_version in found]
    return images, listed


def _steps(block: str) -> list[HistoryStep]:
    """The ``# <date>`` / [``# ARGS: …``] / command triples of a dockerfile block.

    A plain line loop: the block is machine-written and regular, and this is
    several times faster than one regex with a look-ahead per line.  A command
    that spans several lines (none in the published files, but possible) is
    joined back with newlines."""
    steps: list[HistoryStep] = []
    date = args = None
    cmd: list[str] | None = None

    def flush() -> None:
        if cmd is not None:
            steps.append(HistoryStep(index=len(steps), created_by="\n".join(cmd).rstrip(),
                                     created=_parse_date(date) if date else None,
                                     comment=("ARGS: " + args) if args is not None else None))

    for line in block.split("\n"):
        if line.startswith("# ") and line.endswith(" GMT") and len(line) == 31 and line[5] == ",":
            flush()
            date, args, cmd = line[2:], None, None
        elif cmd is None and line.startswith("# ARGS: "):
            args = line[8:]
        elif cmd is None:
            if not line and date is None:
                continue
            cmd = [line]
        else:
            cmd.append(line)
    flush()
    return steps


def _section_image(sec: str, name: str, plat: str, os_version: str | None, where: str,
                   fallback_digest: str | None, suffix: bool) -> Image:
    df_start = sec.find("```dockerfile\n")
    meta = sec if df_start < 0 else sec[:df_start]
    pull = _PULL.search(meta)
    manifest_digest = pull.group(1) if pull else fallback_digest
    image_id = _IMAGE_ID.search(meta)
    total = _TOTAL.search(meta)
    warnings: list[str] = []

    steps: list[HistoryStep] = []
    rest = 0
    if df_start >= 0:
        body = df_start + len("```dockerfile\n")
        end = sec.find("\n```", body - 1)  # body - 1: an empty block closes at once
        if end < 0:
            end = len(sec)
        steps = _steps(sec[body:end + 1])
        rest = end

    layers: list[Layer] = []
    ls = sec.find("\n-\tLayers:", rest)
    if ls >= 0:
        for i, lm in enumerate(_LAYER.finditer(sec, ls)):
            layers.append(Layer(
                position=i,
                diff_id=None,
                digest=lm.group(1),
                media_type=lm.group(3),
                size=None,
                compressed_size=parse_size(lm.group(2)),
            ))

    pair_by_evidence(steps, len(layers), compressed_sizes=[l.compressed_size for l in layers],
                     digests=[l.digest for l in layers])
    unpaired = [s.index for s in steps if s.pairing == "unpaired"]
    if unpaired:
        warnings.append(_unpaired_warning(unpaired))
    total_bytes = parse_size(total.group(1)) if total else None
    known = [l.compressed_size for l in layers]
    if total_bytes is not None and None not in known and sum(known) != total_bytes:  # type: ignore[arg-type]
        warnings.append(f"Total Size {total_bytes} bytes differs from the sum of the layers, {sum(known)} bytes")  # type: ignore[arg-type]
    ref = name
    if suffix:
        ref = f"{name}@{plat}" + (f":{os_version}" if os_version else "")
    return Image(
        reference=ref,
        source="repo-info",
        layer_list=layers,
        history_list=steps,
        id=image_id.group(1) if image_id else None,
        manifest_digest=manifest_digest,
        repo_tags=[name],
        platform=plat,
        created=steps[-1].created if steps else None,
        location=where,
        warnings=warnings,
    )


def base_cuts(images: Sequence[Image], which: Iterable[int] | None = None) -> dict[int, list[tuple[int, int]]]:
    """Cross-image evidence for the pairing: for each image (by index in
    ``images``) the cuts ``(h, k)`` its base images prove.

    Image B is a base of image X when B's layer digests are X's first ``k``
    layers and B's ``h`` history steps are X's first ``h`` (same command, same
    date: the same build step).  Then X's first ``h`` steps made exactly
    its first ``k`` layers, which splits X's alignment into independent
    parts — an ambiguity inside the base no longer spreads to the steps
    above it.  Identical sections (tags of the same image) prove nothing.
    """
    by_layers: dict[tuple, list[int]] = {}
    for idx, img in enumerate(images):
        by_layers.setdefault(tuple(l.digest for l in img.layer_list), []).append(idx)
    out: dict[int, list[tuple[int, int]]] = {}
    for idx in (range(len(images)) if which is None else which):
        img = images[idx]
        digs = tuple(l.digest for l in img.layer_list)
        hist = img.history_list
        cuts: set[tuple[int, int]] = set()
        seen_h: set[int] = set()
        for k in range(1, len(digs) + 1):
            for b in by_layers.get(digs[:k], ()):
                if b == idx or len(images[b].history_list) in seen_h:
                    continue
                bh = images[b].history_list
                h = len(bh)
                if h > len(hist) or (h == len(hist) and k == len(digs)):
                    continue
                if all(x.created_by == y.created_by and x.created == y.created for x, y in zip(bh, hist)):
                    cuts.add((h, k))
                    seen_h.add(h)
        if cuts:
            out[idx] = sorted(cuts)
    return out


def _repair_with_bases(images: list[Image]) -> None:
    """Re-pair, with the cuts their bases prove, the images whose pairing was ambiguous."""
    todo = [i for i, img in enumerate(images) if any(s.pairing == "unpaired" for s in img.history_list)]
    if not todo:
        return
    cuts = base_cuts(images, todo)
    for i in todo:
        if i not in cuts:
            continue
        img = images[i]
        pair_by_evidence(img.history_list, len(img.layer_list),
                         compressed_sizes=[l.compressed_size for l in img.layer_list],
                         digests=[l.digest for l in img.layer_list], cuts=cuts[i])
        img.warnings[:] = [w for w in img.warnings if not w.startswith("history steps ")]
        unpaired = [s.index for s in img.history_list if s.pairing == "unpaired"]
        if unpaired:
            img.warnings.insert(0, _unpaired_warning(unpaired))


def _unpaired_warning(unpaired: list[int]) -> str:
    return (f"history steps {unpaired} could not be paired with layers unambiguously "
            "(repo-info does not say which commands made no layer); they are kept with pairing='unpaired'")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise SourceError(f"repo-info:{path}: cannot read it ({e.strerror or e})") from e


def _parse_file(args: tuple[str, str | None, bool | None]) -> tuple[list[Image], list[str]]:
    path, platform, suffix = args
    return parse_text(_read(Path(path)), str(path), platform, platform_suffix=suffix)


# ---------------------------------------------------------------------------
# transport entry points
# ---------------------------------------------------------------------------
def load(ref: str, transport: str = "repo-info", *, platform: str | None = DEFAULT_PLATFORM,
         **_options) -> Image:
    """One tag file, one platform (default linux/amd64)."""
    path = Path(ref)
    if path.is_dir():
        raise SourceError(f"repo-info:{ref}: a directory holds many tags; use layerlab.load_many('repo-info:{ref}')")
    if not path.is_file():
        raise SourceError(f"repo-info:{ref}: no such file")
    want = platform or DEFAULT_PLATFORM
    images, listed = parse_text(_read(path), str(path), want, platform_suffix=False)
    if not images:
        raise SourceError(
            f"repo-info:{ref}: no {want} image in this file; it lists "
            f"{', '.join(listed) if listed else 'no platforms'} — pass platform=… to choose one"
        )
    if len(images) > 1:
        raise SourceError(
            f"repo-info:{ref}: {len(images)} sections match {want} "
            f"({', '.join(i.reference for i in images)}); use layerlab.load_many() with platform=None"
        )
    return images[0]


def tag_files(path: Path) -> list[Path]:
    """The tag files under ``path``: itself if a file; ``**/remote/*.md`` under a directory
    (a repo-info tree, ``repos/``, ``repos/<image>`` or a ``remote/`` directory)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise SourceError(f"repo-info:{path}: no such file or directory")
    if path.name == "remote":
        files = sorted(path.glob("*.md"))
    else:
        files = sorted(path.glob("**/remote/*.md"))
        if not files:
            files = sorted(path.glob("*.md"))
    return files


def load_many(ref: str, transport: str = "repo-info", *, platform: str | None = DEFAULT_PLATFORM,
              workers: int = 1, progress: bool | None = None, cross_image: bool = True,
              **_options) -> Iterator[Image]:
    """Every tag (and platform) under ``ref``: a tag file, ``repos/<image>``, ``repos/`` or the tree.

    ``platform`` filters sections (default linux/amd64; None keeps all but attestations).
    ``workers`` > 1 parses files in a process pool of that size.
    ``cross_image`` (default True): settle ambiguous pairings with the base
    images found among the loaded ones (:func:`base_cuts`).
    """
    files = tag_files(Path(ref))
    if not files:
        raise SourceError(f"repo-info:{ref}: no repos/<image>/remote/<tag>.md files under it")
    suffix = platform is None
    jobs = [(str(f), platform, suffix) for f in files]
    if progress is None:
        progress = len(files) > 200
    results: Iterable[tuple[list[Image], list[str]]]
    if workers and workers > 1 and len(files) > 1:
        import concurrent.futures as cf

        with cf.ProcessPoolExecutor(max_workers=workers) as pool:
            chunk = max(1, len(jobs) // (workers * 8))
            results = list(_progress(pool.map(_parse_file, jobs, chunksize=chunk), len(jobs), progress, ref))
    else:
        results = _progress(map(_parse_file, jobs), len(jobs), progress, ref)
    images = [img for batch, _listed in results for img in batch]
    if cross_image:
        _repair_with_bases(images)
    return iter(images)


def _progress(it, total: int, enabled: bool, ref: str):
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, total=total, desc=f"repo-info {os.path.basename(str(ref).rstrip('/')) or ref}", unit="file")
