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


def unit(v: float) -> float:
    """A value in [-1, 1] (the value model's scale) as a probability-like score in [0, 1].

    Votes sum these, and `prod` multiplies them, so both need non-negative scores.
    """
    return min(1.0, max(0.0, (v + 1.0) / 2.0))


def step_score(step_scores: Sequence[float], how: str) -> float:
    """One score for a solution from its per-step PRM scores: `last`, `min` or `prod` (scores in [0, 1])."""
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


def choose(answers: Sequence[str | None], scores: Sequence[float], how: str, *,
           key: Callable[[str], str] = str.strip) -> int | None:
    """Index of the solution a rule picks: `max` (ORM-max), `vote` (ORM-vote: the best-scored solution
    of the winning answer) or `majority` (the first solution of the most frequent answer)."""
    if how == "max":
        answer = orm_max(answers, scores)
    elif how == "vote":
        answer = orm_vote(answers, scores, key=key)
    elif how == "majority":
        answer = majority_vote(answers, key=key)
    else:
        raise ValueError(f"unknown aggregation {how!r}; known: max, vote, majority")
    if answer is None:
        return None
    same = [i for i, a in enumerate(answers) if a is not None and key(a) == key(answer)]
    return same[0] if how == "majority" else max(same, key=lambda i: scores[i])
