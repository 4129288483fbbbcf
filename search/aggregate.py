"""Aggregation of final answers into one: pure functions over answers (and optional scores)."""

from __future__ import annotations

from collections.abc import Callable, Sequence


def majority_vote(answers: Sequence[str | None], *, key: Callable[[str], str] = str.strip) -> str | None:
    """The most frequent answer (compared by `key`); ties go to the answer seen first; None if none."""
    counts: dict[str, int] = {}
    first: dict[str, str] = {}
    for a in answers:
        if a is None:
            continue
        k = key(a)
        counts[k] = counts.get(k, 0) + 1
        first.setdefault(k, a)
    if not counts:
        return None
    best = max(counts, key=lambda k: counts[k])  # max keeps the first of equal counts (insertion order)
    return first[best]
