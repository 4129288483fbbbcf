"""BFS-V (TS-LLM): step-level beam search that keeps the global top-`beam` children by value.

Every frontier node of a tree proposes k children (one batched policy call for all trees), all
children are valued in one batched call, terminal children are set aside as finished solutions, and
the `beam` highest-valued non-terminal children form the next frontier. The answer is the
highest-valued finished solution. With a token budget, expansion stops once a tree has generated that
many tokens; a tree with no finished solution then completes its best frontier node greedily.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from search.aggregate import orm_max
from search.expand import expand_batch, value_new
from search.tree import SearchResult, Tree
from search.types import Canonical, Evaluate, Propose


@dataclass(frozen=True)
class BFSVConfig:
    """k children per frontier node, `beam` kept per depth."""

    k: int = 4
    beam: int = 2
    max_depth: int = 8
    temperature: float | None = None
    token_budget: int | None = None
    seed: int = 0


@dataclass
class _Beam:
    tree: Tree
    frontier: list[int] = field(default_factory=lambda: [0])
    finished: list[int] = field(default_factory=list)
    forced: bool = False


def bfs_v(prompts: list[str], config: BFSVConfig, *, propose: Propose, evaluate: Evaluate,
          canonical: Canonical = str.strip) -> list[SearchResult]:
    """Run BFS-V on every prompt in lockstep."""
    beams = [_Beam(Tree(p, max_depth=config.max_depth)) for p in prompts]
    while True:
        for b in beams:
            over = config.token_budget is not None and b.tree.generated_tokens >= config.token_budget
            if over and b.frontier and not b.forced:
                b.frontier = [] if b.finished else [max(b.frontier, key=lambda n: b.tree.value[n])]
                b.forced = bool(b.frontier)
        active = [b for b in beams if b.frontier]
        if not active:
            break
        requests = [(b, n) for b in active for n in b.frontier]
        kids = expand_batch([(b.tree, n, b.forced) for b, n in requests], propose, k=config.k,
                            temperature=config.temperature)
        for (b, n), new in zip(requests, kids, strict=True):
            if not new and b.tree.terminal[n]:
                b.finished.append(n)  # a dead end counts as finished, with no answer
        value_new([(b.tree, c) for (b, _), new in zip(requests, kids, strict=True) for c in new], evaluate)
        for b in active:
            kids = [c for n in b.frontier for c in b.tree.children[n]]
            b.finished += [c for c in kids if b.tree.terminal[c]]
            open_kids = [c for c in kids if not b.tree.terminal[c]]
            width = 1 if b.forced else config.beam
            b.frontier = sorted(open_kids, key=lambda c: -b.tree.value[c])[:width]
    results = []
    for b in beams:
        tree = b.tree
        for n in b.finished:
            for m in tree.path(n):
                tree.visits[m] += 1
        answer = orm_max([tree.answer[n] for n in b.finished], [tree.value[n] for n in b.finished])
        best = max(b.finished, key=lambda n: (tree.answer[n] is not None, tree.value[n]), default=0)
        results.append(SearchResult(tree=tree, answer=answer, chosen=tree.path(best)))
    return results
