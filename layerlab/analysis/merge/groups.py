"""Step groups: what the user may ask to merge, normalised."""
from __future__ import annotations

from ...errors import AnalysisError

__all__ = ["parse_groups"]


def parse_groups(steps, n_layers: int, *, label: str = "image") -> list[list[int]]:
    """Normalise ``steps`` to a sorted list of groups of consecutive positions."""

    def one(g) -> list[int]:
        if isinstance(g, range):
            pos = list(g)
        elif isinstance(g, tuple) and len(g) == 2 and all(isinstance(x, int) for x in g):
            a, b = g
            if b < a:
                raise AnalysisError(f"{label}: group {g!r} runs backwards; write (first, last) with first <= last")
            pos = list(range(a, b + 1))
        elif isinstance(g, (list, tuple)) and all(isinstance(x, int) and not isinstance(x, bool) for x in g):
            pos = sorted(set(g))
        else:
            raise AnalysisError(
                f"{label}: cannot read the step group {g!r}; use (first, last), range(a, b) or a list of positions"
            )
        if len(pos) < 2:
            raise AnalysisError(f"{label}: group {g!r} has {len(pos)} layer; a merge needs at least two")
        if pos != list(range(pos[0], pos[-1] + 1)):
            raise AnalysisError(
                f"{label}: group {g!r} is not consecutive; only neighbouring layers can be merged without reordering steps"
            )
        bad = [p for p in pos if p < 0 or p >= n_layers]
        if bad:
            raise AnalysisError(f"{label}: position(s) {bad} do not exist (the image has layers 0..{n_layers - 1})")
        return pos

    if isinstance(steps, range) or (
        isinstance(steps, tuple) and len(steps) == 2 and all(isinstance(x, int) for x in steps)
    ):
        groups = [one(steps)]
    elif isinstance(steps, (list, tuple)) and steps and all(isinstance(x, int) and not isinstance(x, bool) for x in steps):
        groups = [one(list(steps))]
    elif isinstance(steps, (list, tuple)) and steps:
        groups = [one(g) for g in steps]
    else:
        raise AnalysisError(f"{label}: no step groups given ({steps!r}); e.g. what_if_merge(img, [(2, 4), [6, 7]])")
    groups.sort()
    for a, b in zip(groups, groups[1:]):
        if set(a) & set(b):
            raise AnalysisError(f"{label}: groups {a} and {b} overlap; give each layer to at most one group")
    return groups
