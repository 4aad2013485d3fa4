"""One exception family for everything layerlab raises on purpose.

Every message says *which input* was wrong, *what* was wrong with it and,
where there is one, *what to do*.
"""
from __future__ import annotations


class LayerlabError(Exception):
    """Base class of every error layerlab raises on purpose."""


class SourceError(LayerlabError):
    """A source string could not be understood or opened (unknown transport,
    missing file, unreachable engine or registry)."""


class FormatError(LayerlabError):
    """An input was readable but malformed: bad JSON, truncated or corrupt
    tar, unknown media type, a missing blob."""


class DigestMismatchError(FormatError):
    """Content did not hash to the digest that names it."""


class LimitError(FormatError):
    """An input exceeded one of the documented limits of :func:`layerlab.limits`
    (entries or path bytes per layer, uncompressed bytes, layers per image,
    document sizes).  The message names the input, the limit, its value and how
    to raise it."""


class EngineError(SourceError):
    """The Docker Engine could not be reached, or does not have the image."""


class AnalysisError(LayerlabError):
    """An analysis was asked for something its input cannot answer."""


__all__ = [
    "LayerlabError",
    "SourceError",
    "FormatError",
    "DigestMismatchError",
    "LimitError",
    "EngineError",
    "AnalysisError",
]
