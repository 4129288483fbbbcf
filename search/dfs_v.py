"""DFS-V (TS-LLM): depth-first search in value order, with value and ratio pruning.

Each tree keeps a stack. A node popped from it is expanded into k children (one batched policy call
for all trees per wave, one batched value call), the children are pruned, and the survivors are
pushed so that the highest-valued one is explored next. Pruning keeps the best `prune_ratio` of a
node's children by value (at least one) and drops any child valued below `prune_value`. A terminal
node popped from the stack is a finished path; a tree stops after `paths` of them, when its stack is
empty, or once it has spent its token budget. The answer aggregates the finished paths by their values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from search.aggregate import choose, unit
from search.expand import expand_batch, over_budget, value_new
from search.tree import SearchResult, Tree
from search.types import Canonical, Evaluate, Propose


@dataclass(frozen=True)
class DFSVConfig:
    """k children per expansion; stop after `paths` finished paths."""

    k: int = 4
    paths: int = 1
    prune_ratio: float = 1.0
    prune_value: float | None = None
    aggregate: Literal["max", "vote", "majority"] = "max"
    max_depth: int = 8
    temperature: float | None = None
    token_budget: int | None = None
    seed: int = 0


@dataclass
class _DFS:
    tree: Tree
    stack: list[int] = field(default_factory=lambda: [0])
    finished: list[int] = field(default_factory=list)


def prune(values: list[float], ratio: float, floor: float | None) -> list[int]:
    """Indices of the children to keep, best value first: the top ceil(ratio * n), none below `floor`."""
    order = sorted(range(len(values)), key=lambda i: -values[i])
    keep = order[:max(1, math.ceil(ratio * len(values)))] if values else []
    return [i for i in keep if floor is None or values[i] >= floor]


def _next_request(d: _DFS, config: DFSVConfig) -> int | None:
    """Pop until a node needs expanding (returned) or the search is over (None)."""
    while d.stack and len(d.finished) < config.paths and not over_budget(d.tree, config.token_budget):
        node = d.stack.pop()
        if not d.tree.terminal[node]:
            return node
        d.finished.append(node)
    return None


def dfs_v(prompts: list[str], config: DFSVConfig, *, propose: Propose, evaluate: Evaluate,
          canonical: Canonical = str.strip) -> list[SearchResult]:
    """Run DFS-V on every prompt in lockstep."""
    searches = [_DFS(Tree(p, max_depth=config.max_depth)) for p in prompts]
    while True:
        requests = [(d, node) for d in searches if (node := _next_request(d, config)) is not None]
        if not requests:
            break
        kids = expand_batch([(d.tree, node) for d, node in requests], propose, k=config.k,
                            temperature=config.temperature)
        value_new([(d.tree, c) for (d, _), new in zip(requests, kids, strict=True) for c in new], evaluate)
        for (d, node), new in zip(requests, kids, strict=True):
            if not new and d.tree.terminal[node]:
                d.finished.append(node)  # a dead end: finished, with no answer
            keep = prune([d.tree.value[c] for c in new], config.prune_ratio, config.prune_value)
            d.stack += [new[i] for i in reversed(keep)]
    results = []
    for d in searches:
        tree = d.tree
        for n in d.finished:
            for m in tree.path(n):
                tree.visits[m] += 1
        pick = choose([tree.answer[n] for n in d.finished], [unit(tree.value[n]) for n in d.finished],
                      config.aggregate, key=canonical)
        results.append(SearchResult.at(tree, None if pick is None else d.finished[pick]))
    return results
