"""BFS-V (TS-LLM): step-level beam search that keeps the global top-`beam` children by value.

Every frontier node of a tree proposes k children (one batched policy call for all trees), all
children are valued in one batched call, terminal children are set aside as finished solutions, and
the `beam` highest-valued non-terminal children form the next frontier (`search.beam.grow`). The
answer is the highest-valued finished solution. With a token budget a tree stops expanding once it
has spent it; if nothing finished by then it has no answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from search.aggregate import choose
from search.beam import grow
from search.tree import SearchResult
from search.types import Canonical, Evaluate, Propose


@dataclass(frozen=True)
class BFSVConfig:
    """k children per frontier node, `beam` kept per depth."""

    #: candidate steps sampled per frontier node
    k: int = 4
    #: states kept per depth, by value
    beam: int = 2
    #: steps at most in a path
    max_depth: int = 8
    #: sampling temperature (None: the policy's)
    temperature: float | None = None
    #: each expansion's first candidate is the greedy step
    greedy_first: bool = False
    #: generated tokens a problem; the search stops at it
    token_budget: int | None = None
    #: sampling seed
    seed: int = 0


def bfs_v(prompts: list[str], config: BFSVConfig, *, propose: Propose, evaluate: Evaluate,
          canonical: Canonical = str.strip) -> list[SearchResult]:
    """Run BFS-V on every prompt in lockstep."""
    grown = grow(prompts, groups=1, width=config.beam, k=config.k, max_depth=config.max_depth,
                 temperature=config.temperature, greedy_first=config.greedy_first,
                 token_budget=config.token_budget, rank=lambda tree, c: tree.value[c], propose=propose,
                 evaluate=evaluate)
    results = []
    for tree, finished in grown:
        pick = choose([tree.answer[n] for n in finished], [tree.value[n] for n in finished], "max")
        results.append(SearchResult.at(tree, None if pick is None else finished[pick]))
    return results
