"""CI budgets for one image: size, layers, dive's efficiency rules, pull time.

``layerlab check`` (the command) is a thin layer over this module:
:func:`dive_budgets` turns a ``.dive-ci`` file's rules into :class:`Budget`
objects with dive's meaning, :func:`flag_budget` does the same for the
command's flags, :func:`merge_budgets` lets flags override the file, and
:func:`check_budgets` measures the image and returns a :class:`BudgetCheck`
(one row per rule, PASS/FAIL/SKIP, plus JSON and JUnit XML renderings).

The rules (``rule`` names; a value equal to its limit passes):

``max-size``
    the image's size as ``docker images`` counts it (the sum of its layers'
    uncompressed sizes, :attr:`layerlab.Image.size`) is at most the limit;
    when the source does not report layer sizes (compressed OCI blobs) they
    are measured from the layer contents with Docker's rule.
``max-layers``
    the number of filesystem layers is at most the limit.
``min-efficiency`` (dive's ``lowestEfficiency``)
    dive's efficiency score (:func:`layerlab.efficiency`, dive-exact) is not
    below the limit, a ratio 0-1.
``max-wasted`` (dive's ``highestWastedBytes``)
    dive's wasted bytes (``inefficient_bytes``: every copy of a path stored
    in more than one layer, dive issue #684) are at most the limit.
``max-wasted-percent`` (dive's ``highestUserWastedPercent``)
    wasted bytes / user bytes (every layer but the first, dive's "user size")
    is at most the limit — and, beside dive's rule, the rule only fails when
    the wasted bytes also exceed an absolute floor (``floor``).  Small images
    trip percentage rules on metadata churn alone: an ``apt-get install``
    layer rewrites ``/var/lib/dpkg/status`` and the apt lists, a few hundred
    kB that are a large share of a thin app layer but nothing worth failing a
    build for.  Rules read from a ``.dive-ci`` file keep dive's meaning (floor
    0) unless a floor is given; the command's ``--max-wasted-percent`` has a
    5 MB floor by default (``--wasted-floor``).  With no user bytes the ratio
    is dive's: 0/0 is NaN (passes), anything/0 is infinite (fails above the floor).
``max-pull``
    the predicted wall time of ``docker pull`` on a cold host (no layer
    present) with the moby engine's defaults, at the given bandwidth
    (:func:`layerlab.analysis.pull.pull_time`), is at most the limit.

Sizes are written in dive's and Docker's units (:func:`parse_size`): ``500MB``
is 500,000,000 bytes, ``500MiB`` is 500·2²⁰.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..errors import AnalysisError, FormatError
from ._result import Result
from .diveci import DIVE_DEFAULTS, go_format_float

RULES = ("max-size", "max-layers", "min-efficiency", "max-wasted", "max-wasted-percent", "max-pull")
#: dive's rule behind each of ours.
DIVE_NAMES = {"min-efficiency": "lowestEfficiency", "max-wasted": "highestWastedBytes",
              "max-wasted-percent": "highestUserWastedPercent"}
#: the absolute floor of ``--max-wasted-percent`` when the command line does not set one.
DEFAULT_WASTED_FLOOR = 5_000_000

# go-humanize's ParseBytes table (what dive uses for highestWastedBytes), keys lower-cased
_SIZE_UNITS = {"": 1, "b": 1}
for _i, _p in enumerate("kmgtpe", start=1):
    _SIZE_UNITS.update({_p: 1000**_i, _p + "b": 1000**_i, _p + "i": 1024**_i, _p + "ib": 1024**_i})
_GO_FLOAT = re.compile(r"^[-+]?((\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|inf|infinity|nan)$", re.IGNORECASE)
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)")
_SIZE_HELP = "a size such as 500MB (= 500,000,000 bytes), 20kB, 1.5GB, 512MiB or a plain number of bytes"


def parse_size(text: str, *, what: str = "size") -> int:
    """Bytes from a size string, exactly as dive's ``highestWastedBytes`` reads it
    (go-humanize's ``ParseBytes``): a number (digits, ``.``, ``,`` as thousands
    separator) then, after optional spaces, a unit in any case — ``B``;
    ``kB``/``KB``/``k``, ``MB``/``M``, ``GB``/``G``, ``TB``, ``PB``, ``EB``
    (powers of 1000, Docker's units); ``KiB``/``Ki``, ``MiB``, ``GiB``, ``TiB``,
    ``PiB``, ``EiB`` (powers of 1024); none: bytes.  Fractions are truncated
    (``0.032025MB`` is 32,024 bytes, as in dive).  Raises FormatError naming
    ``what`` for anything else (a sign, leading spaces, an unknown unit)."""
    s = str(text)
    n = 0
    while n < len(s) and (s[n] in "0123456789.,"):
        n += 1
    number, unit = s[:n].replace(",", ""), s[n:].strip().lower()
    value = float(number) if re.fullmatch(r"\d+\.?\d*|\.\d+", number) else None
    if value is None or unit not in _SIZE_UNITS:
        why = "no number first" if value is None else f"unknown unit {s[n:].strip()!r}"
        raise FormatError(f"{what} {text!r} is not a size ({why}); give {_SIZE_HELP}")
    value *= _SIZE_UNITS[unit]
    if value >= 2.0**64:
        raise FormatError(f"{what} {text!r} is too large (dive's limit is 2^64 bytes)")
    return int(value)


def parse_ratio(text: str, *, what: str) -> float:
    """A ratio 0-1 as dive reads ``lowestEfficiency`` and ``highestUserWastedPercent``
    (Go's ``strconv.ParseFloat``, then the range check).  ``NaN`` is accepted, as by
    dive, and then never fails a rule."""
    s = str(text)
    if not _GO_FLOAT.match(s):
        raise FormatError(f"{what} {text!r} is not a number; give a ratio between 0 and 1 such as 0.9")
    value = float(s)
    if value < 0 or value > 1:
        raise FormatError(f"{what} {text!r} is outside the allowed range 0-1 (a ratio: 0.9 means 90%)")
    return value


def parse_duration(text: str, *, what: str = "duration") -> float:
    """Seconds from ``90``, ``60s``, ``1.5m``, ``1m30s``, ``500ms`` or ``1h`` (Go's
    duration units h, m, s, ms; a bare number is seconds)."""
    s = str(text).strip()
    if re.fullmatch(r"\d+(?:\.\d*)?|\.\d+", s):
        return float(s)
    parts = _DURATION_PART.findall(s)
    if not s or "".join(a + b for a, b in parts) != s:
        raise FormatError(f"{what} {text!r} is not a duration; give seconds such as 60s, 1m30s, 2.5m or 90")
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(a) * scale[b] for a, b in parts)


def parse_pull_budget(text: str, *, what: str = "--max-pull") -> tuple[float, float]:
    """``(seconds, bytes per second)`` from ``60s@20MB/s``: a duration
    (:func:`parse_duration`), ``@``, a bandwidth in the size units of
    :func:`parse_size` per second (``20MB/s`` = 20,000,000 B/s; the ``/s`` may
    be left out)."""
    s = str(text)
    if s.count("@") != 1:
        raise FormatError(f"{what} {text!r}: give TIME@BANDWIDTH, such as 60s@20MB/s (60 seconds at 20,000,000 B/s)")
    left, right = s.split("@")
    seconds = parse_duration(left, what=f"{what} time")
    rate_text = right.strip()
    rate_text = rate_text[:-2] if rate_text.lower().endswith("/s") else rate_text
    rate = parse_size(rate_text, what=f"{what} bandwidth")
    if rate <= 0:
        raise FormatError(f"{what} {text!r}: the bandwidth must be more than 0 bytes per second")
    return seconds, float(rate)


# -- budgets -------------------------------------------------------------------------

@dataclass(frozen=True)
class Budget:
    """One rule and its limit.  ``limit`` None: the rule is disabled (SKIP).
    ``text``: the limit as written; ``origin``: where it came from (a flag, a
    ``.dive-ci`` key, dive's default); ``floor``: the absolute wasted-bytes
    floor of ``max-wasted-percent``; ``bandwidth``: bytes/s of ``max-pull``."""

    rule: str
    limit: float | int | None
    text: str
    origin: str
    floor: int = 0
    bandwidth: float | None = None

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise AnalysisError(f"budget rule {self.rule!r}: use one of {', '.join(RULES)}")


def dive_budgets(values: dict[str, str], origin: str = ".dive-ci", *, floor: int = 0) -> list[Budget]:
    """Budgets from a ``.dive-ci`` file's rule values (``parse_dive_ci``'s output:
    the rules the file sets, as text), dive's defaults for the others.

    dive's meaning: ``disabled`` (that exact word) turns a rule off;
    ``lowestEfficiency`` and ``highestUserWastedPercent`` are ratios 0-1,
    ``highestWastedBytes`` a size (:func:`parse_size`).  A value dive would
    call MISCONFIGURED raises FormatError naming the file, the key and the value."""
    out = []
    for rule, key in DIVE_NAMES.items():
        given = key in values
        text = values[key] if given else DIVE_DEFAULTS[key]
        where = f"{origin}: rules.{key}" if given else f"dive's default for {key}"
        if text == "disabled":
            out.append(Budget(rule, None, text, where))
            continue
        what = f"{origin}: rules.{key}"
        if rule == "max-wasted":
            limit: float | int = parse_size(text, what=what)
        else:
            limit = parse_ratio(text, what=what)
        out.append(Budget(rule, limit, text, where, floor=floor if rule == "max-wasted-percent" else 0))
    return out


def flag_budget(rule: str, text: str, *, floor: int = DEFAULT_WASTED_FLOOR) -> Budget:
    """The budget of one command-line flag (``--<rule> text``).

    ``max-size``, ``max-wasted``: a size (:func:`parse_size`); ``max-layers``: a
    whole number; ``min-efficiency``: a ratio 0-1; ``max-wasted-percent``: a
    percentage 0-100 (``10`` or ``10%``; dive's file says the same as 0.1) with
    the absolute ``floor`` in bytes; ``max-pull``: ``TIME@BANDWIDTH``
    (:func:`parse_pull_budget`).  ``disabled`` turns off the three rules dive
    also has (overriding a ``.dive-ci``)."""
    flag = f"--{rule}"
    s = str(text)
    if s == "disabled" and rule in DIVE_NAMES:
        return Budget(rule, None, s, flag)
    if rule in ("max-size", "max-wasted"):
        return Budget(rule, parse_size(s, what=flag), s, flag)
    if rule == "max-layers":
        if not re.fullmatch(r"\d+", s.strip()):
            raise FormatError(f"{flag} {text!r} is not a whole number of layers (0 or more)")
        return Budget(rule, int(s), s, flag)
    if rule == "min-efficiency":
        return Budget(rule, parse_ratio(s, what=flag), s, flag)
    if rule == "max-wasted-percent":
        p = s.strip().removesuffix("%").strip()
        if not _GO_FLOAT.match(p) or not (0 <= float(p) <= 100):
            raise FormatError(f"{flag} {text!r}: give a percentage between 0 and 100, such as 10 (= 10% of the "
                              "user bytes)")
        return Budget(rule, float(p) / 100, s, flag, floor=floor)
    if rule == "max-pull":
        seconds, rate = parse_pull_budget(s, what=flag)
        return Budget(rule, seconds, s, flag, bandwidth=rate)
    raise AnalysisError(f"budget rule {rule!r}: use one of {', '.join(RULES)}")


def merge_budgets(*layers: Iterable[Budget]) -> list[Budget]:
    """One budget per rule, later layers overriding earlier ones (``merge_budgets(
    file_budgets, flag_budgets)``: the command line wins), in :data:`RULES` order."""
    by_rule: dict[str, Budget] = {}
    for budgets in layers:
        for b in budgets:
            by_rule[b.rule] = b
    return [by_rule[r] for r in RULES if r in by_rule]


# -- the result ----------------------------------------------------------------------

def _bytes_text(n: int) -> str:
    from ..frames import human_bytes

    return f"{human_bytes(n)} ({n:,} bytes)"


@dataclass(repr=False)
class BudgetCheck(Result):
    """The verdict of :func:`check_budgets`: ``rules`` (one row per rule: ``rule``,
    ``status`` PASS/FAIL/SKIP, ``value`` and ``limit`` (Float64; ratios as
    0-1, sizes in bytes, seconds, layers), ``value_bytes``/``limit_bytes``
    (Int64, exact, for the byte rules; the percent rule's wasted bytes and
    floor), ``value_text``, ``limit_text``, ``origin``, ``message``),
    ``figures`` (what was measured), ``notes``; ``passed`` is True when no rule
    failed.  :meth:`lines`, :meth:`to_json` and :meth:`to_junit` render it."""

    image: str
    rows: list[dict[str, Any]] = field(repr=False)
    figures: dict[str, Any] = field(default_factory=dict, repr=False)
    notes: list[str] = field(default_factory=list, repr=False)

    _frame_names = ("rules",)

    @property
    def passed(self) -> bool:
        return not self.failed

    @property
    def failed(self) -> list[str]:
        """The rules that failed."""
        return [r["rule"] for r in self.rows if r["status"] == "FAIL"]

    def rules(self):
        import pandas as pd

        cols = ["rule", "status", "value", "limit", "value_bytes", "limit_bytes", "value_text", "limit_text",
                "origin", "message"]
        df = pd.DataFrame([{c: r.get(c) for c in cols} for r in self.rows], columns=cols)
        for c in ("value", "limit"):
            df[c] = pd.array([None if v is None else float(v) for v in df[c]], dtype="Float64")
        for c in ("value_bytes", "limit_bytes"):
            df[c] = pd.array(list(df[c]), dtype="Int64")
        for c in ("rule", "status", "value_text", "limit_text", "origin", "message"):
            df[c] = df[c].astype("string")
        return df

    def _summary(self) -> str:
        n_fail, n_skip = len(self.failed), sum(r["status"] == "SKIP" for r in self.rows)
        verdict = "PASS" if self.passed else "FAIL"
        return (f"{self.image!r}: {verdict}, {n_fail} of {len(self.rows) - n_skip} budgets broken"
                + (f", {n_skip} skipped" if n_skip else ""))

    def lines(self) -> list[str]:
        """One line per rule (``PASS  rule  value  limit …  [origin]``), the verdict, the notes."""
        width = max((len(r["rule"]) for r in self.rows), default=0)
        out = [f"{r['status']}  {r['rule']:<{width}}  {r['value_text']}  limit {r['limit_text']}  [{r['origin']}]"
               for r in self.rows]
        out.append(self._summary())
        out.extend(f"note: {n}" for n in self.notes)
        return out

    def to_json(self) -> str:
        """The verdict as a JSON document: ``image``, ``passed``, ``rules`` (the rows,
        exact numbers; a NaN ratio is null), ``figures``, ``notes``."""
        def clean(v: Any) -> Any:
            return None if isinstance(v, float) and (math.isnan(v) or math.isinf(v)) else v

        doc = {
            "image": self.image,
            "passed": self.passed,
            "failed": self.failed,
            "rules": [{k: clean(v) for k, v in r.items()} for r in self.rows],
            "figures": {k: clean(v) for k, v in self.figures.items()},
            "notes": list(self.notes),
        }
        return json.dumps(doc, indent=2)

    def to_junit(self, suite: str = "layerlab check") -> str:
        """JUnit XML (GitLab, Jenkins): one ``testsuite``, one ``testcase`` per rule;
        a broken budget is a ``<failure>``, a disabled rule ``<skipped>``."""
        from xml.etree import ElementTree as ET

        fails = len(self.failed)
        skips = sum(r["status"] == "SKIP" for r in self.rows)
        root = ET.Element("testsuites", name=_xml_text(suite), tests=str(len(self.rows)), failures=str(fails),
                          errors="0", skipped=str(skips))
        ts = ET.SubElement(root, "testsuite", name=_xml_text(f"{suite}: {self.image}"), tests=str(len(self.rows)),
                           failures=str(fails), errors="0", skipped=str(skips), time="0")
        for r in self.rows:
            case = ET.SubElement(ts, "testcase", classname=_xml_text(f"layerlab.check.{self.image}"),
                                 name=_xml_text(r["rule"]), time="0")
            detail = f"{r['value_text']} (limit {r['limit_text']}) [{r['origin']}]"
            if r["status"] == "FAIL":
                f = ET.SubElement(case, "failure", message=_xml_text(r["message"]), type="budget")
                f.text = _xml_text(detail)
            elif r["status"] == "SKIP":
                ET.SubElement(case, "skipped", message=_xml_text(r["message"]))
            else:
                out = ET.SubElement(case, "system-out")
                out.text = _xml_text(detail)
        if self.notes:
            out = ET.SubElement(ts, "system-out")
            out.text = _xml_text("\n".join(self.notes))
        ET.indent(root)
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(s: Any) -> str:
    """Text XML 1.0 can carry (ElementTree escapes & < > and quotes, but writes
    control characters that no XML parser accepts)."""
    return _XML_BAD.sub("\ufffd", str(s))


# -- evaluation ----------------------------------------------------------------------

class _Facts:
    """What the rules measure, each measured once and only when a rule needs it."""

    def __init__(self, img, progress: bool, cache_dir: Any) -> None:
        self.img = img
        self.progress = progress
        self.cache_dir = cache_dir
        self.figures: dict[str, Any] = {"layers": len(img.layer_list), "size_bytes": img.size,
                                        "compressed_size_bytes": img.compressed_size}
        self.notes: list[str] = []
        self._eff = None
        self._pulls: dict[float, float] = {}

    def size(self) -> int:
        size = self.img.size
        if size is None and self.img.has_file_tables:
            size = self._size_from_contents()
        if size is None:
            raise AnalysisError(
                f"{self.img.reference}: its size is unknown from this source ({self.img.source}), so --max-size "
                "cannot be judged; load it from a docker archive, an OCI layout or the engine"
            )
        return size

    def _size_from_contents(self) -> int:
        """Docker's size of every layer from its file table, for sources that do not
        report layer sizes (compressed OCI blobs)."""
        from ..contents.sizes import table_docker_size

        files = self.img.files(hash=None, progress=self.progress, cache_dir=self.cache_dir)
        size = sum(table_docker_size(files[files["position"] == layer.position]) for layer in self.img.layer_list)
        self.figures["size_bytes"] = size
        self.notes.append("the image size was measured from the layer contents (the source does not report it)")
        return int(size)

    def efficiency(self):
        if self._eff is None:
            from .efficiency import efficiency

            e = efficiency(self.img, progress=self.progress, cache_dir=self.cache_dir)
            self._eff = e
            self.figures.update(
                efficiency_score=e.score, dive_size_bytes=e.size_bytes, wasted_bytes=e.inefficient_bytes,
                user_size_bytes=e.user_size_bytes, wasted_user_ratio=_user_ratio(e),
                reclaimable_bytes=e.reclaimable_bytes,
            )
            self.notes.extend(e.notes)
        return self._eff

    def pull_seconds(self, bandwidth: float) -> float:
        if bandwidth not in self._pulls:
            from .pull import pull_time

            frame = self.img.layers()
            target = str(frame["image"].iloc[0]) if len(frame) else self.img.reference
            # a limit check: where the source states no wire size, the uncompressed size stands in
            # (an upper bound, so a pass is a pass; pull_time's note says so)
            p = pull_time(frame, target, present=(), bandwidth=bandwidth, engine="moby", unknown_wire="uncompressed")
            self._pulls[bandwidth] = float(p.seconds)
            self.figures[f"pull_seconds_at_{int(bandwidth)}_Bps"] = float(p.seconds)
            self.notes.extend(n for n in p.notes if n not in self.notes)
        return self._pulls[bandwidth]


def _user_ratio(e) -> float:
    """dive's userWastedPercent: wasted / user bytes, as Go divides floats (0/0 NaN, x/0 infinite)."""
    if e.user_size_bytes:
        return e.inefficient_bytes / e.user_size_bytes
    return math.nan if e.inefficient_bytes == 0 else math.inf


def _ratio_text(r: float) -> str:
    return "n/a (no user bytes)" if math.isnan(r) else f"{r:.4f} ({r:.2%})"


def _row(b: Budget, status: str, value: Any, value_text: str, limit_text: str, message: str,
         value_bytes: int | None = None, limit_bytes: int | None = None) -> dict[str, Any]:
    return {"rule": b.rule, "status": status, "value": value, "limit": b.limit, "value_bytes": value_bytes,
            "limit_bytes": limit_bytes, "value_text": value_text, "limit_text": limit_text, "origin": b.origin,
            "message": message}


def _verdict(b: Budget, failed: bool, value_text: str, limit_text: str, over: str) -> tuple[str, str]:
    if failed:
        return "FAIL", f"{b.rule}: {value_text} {over} the limit {limit_text}"
    return "PASS", ""


def _evaluate(b: Budget, facts: _Facts) -> dict[str, Any]:
    from ..frames import human_bytes

    if b.limit is None:
        return _row(b, "SKIP", None, "not measured", "disabled", "rule disabled")
    if b.rule in ("max-size", "max-wasted"):
        value = facts.size() if b.rule == "max-size" else facts.efficiency().inefficient_bytes
        vt, lt = _bytes_text(value), _bytes_text(int(b.limit))
        status, msg = _verdict(b, value > b.limit, vt, lt, "is over")
        return _row(b, status, value, vt, lt, msg, value, int(b.limit))
    if b.rule == "max-layers":
        n = len(facts.img.layer_list)
        vt, lt = f"{n} layers", f"{b.limit} layers"
        status, msg = _verdict(b, n > b.limit, vt, lt, "is over")
        return _row(b, status, n, vt, lt, msg)
    if b.rule == "min-efficiency":
        score = facts.efficiency().score
        vt, lt = _ratio_text(score), f"{go_format_float(float(b.limit))} (lowest allowed)"
        status, msg = _verdict(b, b.limit > score, vt, lt, "is below")
        return _row(b, status, score, vt, lt, msg)
    if b.rule == "max-wasted-percent":
        e = facts.efficiency()
        ratio, wasted = _user_ratio(e), e.inefficient_bytes
        vt = f"{_ratio_text(ratio)} of user bytes ({wasted:,} of {e.user_size_bytes:,} bytes wasted)"
        lt = f"{go_format_float(float(b.limit))} ({float(b.limit):.2%})"
        if b.floor:
            lt += f", failing only above {_bytes_text(b.floor)} wasted"
        over = ratio > b.limit
        status, msg = _verdict(b, over and wasted > b.floor, vt, lt, "is over")
        if over and wasted <= b.floor:
            facts.notes.append(
                f"max-wasted-percent: {ratio:.2%} of the user bytes are wasted, over the limit, but the "
                f"{human_bytes(wasted)} wasted do not exceed the floor of {human_bytes(b.floor)}: passed"
            )
        return _row(b, status, ratio, vt, lt, msg, wasted, b.floor)
    # max-pull
    assert b.bandwidth is not None
    seconds = facts.pull_seconds(b.bandwidth)
    rate = f"{human_bytes(b.bandwidth)}/s"
    vt = f"{seconds:.1f} s at {rate} (cold host, moby)"
    lt = f"{go_format_float(float(b.limit))} s"
    status, msg = _verdict(b, seconds > b.limit, vt, lt, "is over")
    return _row(b, status, seconds, vt, lt, msg)


def check_budgets(img, budgets: Iterable[Budget], *, progress: bool = False, cache_dir: Any = None) -> BudgetCheck:
    """Judge ``img`` (a :class:`layerlab.Image`) against ``budgets`` (one per rule,
    e.g. from :func:`merge_budgets`); see the module doc for each rule.

    Only what a rule needs is measured: the efficiency rules read the layer
    contents once (:func:`layerlab.efficiency`; ``progress`` and ``cache_dir``
    as there), ``max-pull`` runs the pull-time model, ``max-size`` and
    ``max-layers`` need only the manifest's facts.  Returns a
    :class:`BudgetCheck`.  Raises AnalysisError when a needed fact is unknown
    (e.g. the size from a source without layer sizes)."""
    from ..model import Image

    if not isinstance(img, Image):
        raise AnalysisError(f"check_budgets(): pass a layerlab.Image, not {type(img).__name__}")
    budgets = list(budgets)
    if not budgets:
        raise AnalysisError("check_budgets(): no budgets to check; give at least one rule")
    facts = _Facts(img, progress, cache_dir)
    rows = [_evaluate(b, facts) for b in budgets]
    return BudgetCheck(img.reference, rows, facts.figures, facts.notes)


__all__ = ["Budget", "BudgetCheck", "DEFAULT_WASTED_FLOOR", "RULES", "check_budgets", "dive_budgets",
           "flag_budget", "merge_budgets", "parse_duration", "parse_pull_budget", "parse_ratio", "parse_size"]
