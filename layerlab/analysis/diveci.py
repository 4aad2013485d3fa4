"""dive's ``.dive-ci`` file, read the way the ``dive`` binary (0.13) reads it.

A ``.dive-ci`` file is YAML with up to three rules under ``rules:``::

    rules:
      lowestEfficiency: 0.95          # fail when the efficiency score is below this ratio
      highestWastedBytes: 20MB        # fail when dive's wasted bytes are above this size
      highestUserWastedPercent: 0.20  # fail when wasted / user bytes is above this ratio

:func:`read_dive_ci` returns each rule's value as the *text* dive then
parses, so :mod:`layerlab.analysis.budget` can judge it with dive's own
parsers.  What dive does, measured on the ``dive`` 0.13.1 binary and kept here:

* a rule the file leaves out, or gives an empty value (``lowestEfficiency:``,
  ``~``, ``null``), keeps dive's default (:data:`DIVE_DEFAULTS`: 0.9,
  ``disabled``, 0.1); an empty file or one without ``rules:`` is all defaults;
  only the exact word ``disabled`` turns a rule off (``off``, ``false``,
  ``Disabled`` are errors);
* keys are matched without regard to case (``Rules:``, ``LowestEfficiency:``);
  unknown keys are ignored; a key given twice in one mapping is an error
  (dive refuses the same spelling twice, and of two spellings such as
  ``highestWastedBytes`` and ``HighestWastedBytes`` keeps one at random);
* dive (through viper and yaml.v3) turns a plain YAML number back into text in
  Go's shortest form: ``1e5`` becomes ``100000``, ``010`` becomes ``8``,
  ``0x10`` becomes ``16``, ``1_000`` becomes ``1000``, ``.inf`` becomes
  ``+Inf``; ``true``/``false`` stay words (and then fail to parse); quoted and
  block scalars are taken as written (``"1e5"`` stays ``1e5``);
* a rule whose value is a list or a mapping, or ``rules:`` itself being a
  scalar or a list, gives the text ``""``, which no rule accepts;
* YAML that does not parse, or a document that is not a mapping, is an error.

Explicit YAML tags (``!!str 0.5``) are not modelled: the value is resolved as if
it were plain.
"""
from __future__ import annotations

import math
import re
from decimal import Decimal
from pathlib import Path

from ..errors import FormatError, SourceError

#: The three rules, in dive's spelling.
DIVE_RULES = ("lowestEfficiency", "highestWastedBytes", "highestUserWastedPercent")
#: dive's defaults for a rule the file leaves out.
DIVE_DEFAULTS = {"lowestEfficiency": "0.9", "highestWastedBytes": "disabled", "highestUserWastedPercent": "0.1"}

_NULL = {"", "~", "null", "Null", "NULL"}
_BOOL = {"true": "true", "True": "true", "TRUE": "true", "false": "false", "False": "false", "FALSE": "false"}
_SPECIAL_FLOATS = {
    **{s: math.nan for s in (".nan", ".NaN", ".NAN")},
    **{s: math.inf for s in (".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF")},
    **{s: -math.inf for s in ("-.inf", "-.Inf", "-.INF")},
}
_YAML_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_GO_INT = re.compile(r"^[-+]?(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)$")
_DECIMAL_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def go_format_float(value: float) -> str:
    """Go's ``strconv.FormatFloat(value, 'f', -1, 64)``: the shortest digits that
    read back as ``value``, never with an exponent (``1e22`` -> ``10000000000000000000000``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _go_int(plain: str) -> int | None:
    """Go's ``strconv.ParseInt(plain, 0, 64)``, then ``ParseUint``: the integer, or None."""
    if not _GO_INT.match(plain):
        return None
    sign = -1 if plain[0] == "-" else 1
    body = plain.lstrip("+-")
    if len(body) > 1 and body[0] == "0" and body[1] in "0123456789":
        n = int(body, 8)
    else:
        n = int(body, 0)
    n *= sign
    if -(2**63) <= n < 2**63:
        return n
    if 2**63 <= n < 2**64 and plain[0] != "+":  # ParseUint takes no sign
        return n
    return None


def _resolve_plain(value: str) -> str | None:
    """The text viper hands dive for a plain (unquoted) YAML scalar; None for null."""
    if value in _NULL:
        return None
    if value in _BOOL:
        return _BOOL[value]
    if value in _SPECIAL_FLOATS:
        return go_format_float(_SPECIAL_FLOATS[value])
    if value[0] == ".":
        return go_format_float(float(value)) if _DECIMAL_FLOAT.match(value) else value
    if value[0] not in "+-0123456789":
        return value
    plain = value.replace("_", "")
    n = _go_int(plain)
    if n is not None:
        return str(n)
    if _YAML_FLOAT.match(plain):
        f = float(plain)
        if not math.isinf(f):
            return go_format_float(f)
    return value


def _mapping(node, path: Path, where: str) -> dict[str, object]:
    """A YAML mapping node as {lower-cased key: value node}; a repeated key is an error."""
    out: dict[str, object] = {}
    spelled: dict[str, str] = {}
    for key, value in node.value:
        name = str(getattr(key, "value", "")).lower()
        if name in out:
            # the same spelling twice: yaml.v3 refuses the file; two spellings: viper keeps one at random
            raise FormatError(
                f"{path}: the key {key.value!r} appears twice in {where} (line {key.start_mark.line + 1}"
                + (f", also spelled {spelled[name]!r}" if spelled[name] != key.value else "")
                + "); keep one (dive refuses a repeated key and picks one of two spellings at random)"
            )
        out[name] = value
        spelled[name] = str(key.value)
    return out


def _rule_text(node) -> str | None:
    import yaml

    if not isinstance(node, yaml.ScalarNode):
        return ""
    if node.style is None:
        return _resolve_plain(node.value)
    return node.value


def parse_dive_ci(text: str, path: str | Path = ".dive-ci") -> dict[str, str]:
    """The rule values a ``.dive-ci`` document sets, as dive reads them (see the
    module doc): ``{"lowestEfficiency": "0.95", "highestWastedBytes": "20MB"}``
    in dive's spelling; a rule left out (or empty) is absent, and dive then uses
    :data:`DIVE_DEFAULTS` for it.  Raises FormatError when the YAML does not
    parse, is not a mapping, or repeats a key."""
    import yaml

    path = Path(path)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise FormatError(f"{path}: not valid YAML{at}: {problem}; fix the file (dive's format: `rules:` "
                          "with lowestEfficiency, highestWastedBytes, highestUserWastedPercent)") from None
    values: dict[str, str] = {}
    if root is None or (isinstance(root, yaml.ScalarNode) and root.tag.endswith(":null")):
        return values
    if not isinstance(root, yaml.MappingNode):
        raise FormatError(f"{path}: a .dive-ci file is a YAML mapping with a `rules:` key, not a "
                          f"{'list' if isinstance(root, yaml.SequenceNode) else 'single value'}")
    top = _mapping(root, path, "the top level")
    rules = top.get("rules")
    if rules is None or (isinstance(rules, yaml.ScalarNode) and rules.style is None and rules.value in _NULL):
        return values
    if not isinstance(rules, yaml.MappingNode):
        # viper then reads every rule as "", which no rule accepts
        return {name: "" for name in DIVE_RULES}
    given = _mapping(rules, path, "`rules:`")
    for name in DIVE_RULES:
        if name.lower() in given:
            text_value = _rule_text(given[name.lower()])
            if text_value is not None:
                values[name] = text_value
    return values


def read_dive_ci(path: str | Path) -> dict[str, str]:
    """:func:`parse_dive_ci` of the file at ``path``.

    Unlike dive, which silently falls back to its defaults when the file is
    missing, a missing or unreadable file raises SourceError: a CI job pointing
    at the wrong path should not pass on defaults."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise SourceError(f"the .dive-ci file {path}: no such file; give the path of a dive .dive-ci YAML file") from None
    except IsADirectoryError:
        raise SourceError(f"the .dive-ci file {path}: is a directory; give the path of a dive .dive-ci YAML file") from None
    except OSError as e:
        raise SourceError(f"the .dive-ci file {path}: cannot be read ({e.strerror or e})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"the .dive-ci file {path}: not UTF-8 text; a .dive-ci file is YAML") from None
    return parse_dive_ci(text, p)


__all__ = ["DIVE_DEFAULTS", "DIVE_RULES", "go_format_float", "parse_dive_ci", "read_dive_ci"]
