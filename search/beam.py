"""Step-level beam searches on one lockstep core: BFS-V's engine, PRM beam search and DVTS.

A search keeps one or more groups of frontier nodes. Every wave, each frontier node of every group
of every tree proposes k children (one batched policy call for all trees), the new children are
valued in one batched call, terminal children are set aside as finished solutions, and each group keeps
its `width` best open children by `rank`. A tree stops expanding once it has spent its token budget,
so it exceeds the budget by at most the wave that crossed it.

- PRM beam search (Hugging Face search-and-learn): one group; n candidates per depth, the best
  n / width kept, each proposing `width`; nodes ranked by their path's aggregated PRM score.
- DVTS (diverse verifier tree search): n / width independent subtrees, each proposing `width`
  candidates per step and keeping its single PRM-best one.
Both answer by aggregating their finished solutions' path scores (vote or max).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from search.aggregate import choose, step_score, unit
from search.expand import expand_batch, over_budget, value_new
from search.tree import SearchResult, Tree
from search.types import Canonical, Evaluate, Propose

Rank = Callable[[Tree, int], float]


@dataclass
class _Group:
    frontier: list[int]
    finished: list[int] = field(default_factory=list)


def grow(prompts: list[str], *, groups: int, width: int, k: int, max_depth: int, temperature: float | None,
         token_budget: int | None, rank: Rank, propose: Propose, evaluate: Evaluate, greedy_first: bool = False
         ) -> list[tuple[Tree, list[int]]]:
    """Run the beam core on every prompt in lockstep; returns (tree, finished nodes) per prompt.

    Finished nodes are terminal (an answer, a dead end or the depth limit); each counts one visit on
    every node of its path.
    """
    searches = [(Tree(p, max_depth=max_depth), [_Group([0]) for _ in range(groups)]) for p in prompts]
    while True:
        requests = []
        for tree, gs in searches:
            for g in gs:
                if over_budget(tree, token_budget):
                    g.frontier = []
                requests += [(tree, g, n) for n in g.frontier]
        if not requests:
            break
        kids = expand_batch([(tree, n) for tree, _, n in requests], propose, k=k, temperature=temperature,
                            greedy_first=greedy_first)
        value_new([(tree, c) for (tree, _, _), new in zip(requests, kids, strict=True) for c in new], evaluate)
        proposed: dict[int, list[int]] = {}
        for (tree, g, n), new in zip(requests, kids, strict=True):
            if not new and tree.terminal[n]:
                g.finished.append(n)  # a dead end counts as finished, with no answer
            proposed.setdefault(id(g), [])
            proposed[id(g)] += [c for c in new if c not in proposed[id(g)]]
        for tree, gs in searches:
            for g in gs:
                if not g.frontier:
                    continue
                children = proposed.get(id(g), [])
                g.finished += [c for c in children if tree.terminal[c] and c not in g.finished]
                open_kids = [c for c in children if not tree.terminal[c]]
                g.frontier = sorted(open_kids, key=lambda c: -rank(tree, c))[:width]
    out = []
    for tree, gs in searches:
        finished = [n for g in gs for n in g.finished]
        for n in finished:
            for m in tree.path(n):
                tree.visits[m] += 1
        out.append((tree, finished))
    return out


def path_score(tree: Tree, node: int, how: str) -> float:
    """The PRM score of the solution ending at `node`: its steps' values (as [0, 1]) aggregated by `how`."""
    return step_score([unit(v) for v in tree.path_values(node)], how)


@dataclass(frozen=True)
class BeamConfig:
    """n candidates per depth, `width` proposed per kept node; PRM step scores aggregated by `step_agg`."""

    n: int = 8
    width: int = 4
    step_agg: Literal["last", "min", "prod"] = "min"
    aggregate: Literal["vote", "max"] = "vote"
    max_depth: int = 8
    temperature: float | None = None
    token_budget: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.width < 1 or self.n < self.width:
            raise ValueError(f"beam search needs 1 <= width <= n (got n={self.n}, width={self.width})")


def _answer(tree: Tree, finished: list[int], config: BeamConfig, canonical: Canonical) -> SearchResult:
    scores = [path_score(tree, n, config.step_agg) for n in finished]
    pick = choose([tree.answer[n] for n in finished], scores, config.aggregate, key=canonical)
    return SearchResult.at(tree, None if pick is None else finished[pick])


def _prm_search(prompts: list[str], config: BeamConfig, groups: int, width: int, *, propose: Propose,
                evaluate: Evaluate, canonical: Canonical) -> list[SearchResult]:
    grown = grow(prompts, groups=groups, width=width, k=config.width, max_depth=config.max_depth,
                 temperature=config.temperature, token_budget=config.token_budget,
                 rank=lambda tree, c: path_score(tree, c, config.step_agg), propose=propose, evaluate=evaluate)
    return [_answer(tree, finished, config, canonical) for tree, finished in grown]


def beam_search(prompts: list[str], config: BeamConfig, *, propose: Propose, evaluate: Evaluate,
                canonical: Canonical = str.strip) -> list[SearchResult]:
    """Step-level beam search with a PRM: keep the n / width best partial solutions at every depth."""
    return _prm_search(prompts, config, 1, config.n // config.width, propose=propose, evaluate=evaluate,
                       canonical=canonical)


def dvts(prompts: list[str], config: BeamConfig, *, propose: Propose, evaluate: Evaluate,
         canonical: Canonical = str.strip) -> list[SearchResult]:
    """DVTS: n / width independent subtrees, each greedily keeping its PRM-best step."""
    return _prm_search(prompts, config, config.n // config.width, 1, propose=propose, evaluate=evaluate,
                       canonical=canonical)
