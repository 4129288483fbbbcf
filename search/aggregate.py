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


def orm_max(answers: Sequence[str | None], scores: Sequence[float]) -> str | None:
    """The answer of the highest-scored solution (ties: the first); None if no solution has an answer."""
    best = max((i for i, a in enumerate(answers) if a is not None), key=lambda i: scores[i], default=None)
    return None if best is None else answers[best]


def orm_vote(answers: Sequence[str | None], scores: Sequence[float], *,
             key: Callable[[str], str] = str.strip) -> str | None:
    """argmax over answers a of the summed scores of the solutions that give a (ties: first seen)."""
    totals: dict[str, float] = {}
    first: dict[str, str] = {}
    for a, s in zip(answers, scores, strict=True):
        if a is None:
            continue
        k = key(a)
        totals[k] = totals.get(k, 0.0) + s
        first.setdefault(k, a)
    if not totals:
        return None
    return first[max(totals, key=lambda k: totals[k])]


def step_score(step_scores: Sequence[float], how: str) -> float:
    """One score for a solution from its per-step PRM scores: `last`, `min` or `prod`."""
    if not step_scores:
        raise ValueError("a solution needs at least one step score")
    if how == "last":
        return step_scores[-1]
    if how == "min":
        return min(step_scores)
    if how == "prod":
        out = 1.0
        for s in step_scores:
            out *= s
        return out
    raise ValueError(f"unknown step aggregation {how!r}; known: last, min, prod")
