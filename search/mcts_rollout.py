"""MCTS-Rollout (TS-LLM): PUCT simulations from a fixed root until enough distinct complete paths.

Simulations select by PUCT (as MCTS-alpha) from the original root, expand the leaf into k valued
children and back the leaf's value up; a simulation that selects a terminal node backs up its value
and, the first time, records it as a complete path. A tree stops after `paths` distinct complete paths,
`simulations` simulations, or once it has spent its token budget (overshooting by at most the
expansion that crossed it). The answer aggregates the complete paths by their values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from search.aggregate import choose, unit
from search.expand import expand_batch, over_budget, value_new
from search.mcts_alpha import select_leaf
from search.tree import SearchResult, Tree
from search.types import Canonical, Evaluate, Propose


@dataclass(frozen=True)
class MCTSRolloutConfig:
    """PUCT constants as MCTS-alpha; at most `simulations`, stop at `paths` complete paths."""

    simulations: int = 64
    paths: int = 4
    k: int = 4
    c_base: float = 19652.0
    c_init: float = 3.0
    aggregate: Literal["max", "vote", "majority"] = "vote"
    max_depth: int = 8
    temperature: float | None = None
    token_budget: int | None = None
    seed: int = 0


@dataclass
class _Run:
    tree: Tree
    sims: int = 0
    found: list[int] = field(default_factory=list)


def _next_leaf(run: _Run, config: MCTSRolloutConfig) -> int | None:
    tree = run.tree
    while (run.sims < config.simulations and len(run.found) < config.paths
           and not over_budget(tree, config.token_budget) and not tree.terminal[0]):
        leaf = select_leaf(tree, 0, config)
        if not tree.terminal[leaf]:
            return leaf
        tree.backup(leaf, 0.0 if math.isnan(tree.value[leaf]) else tree.value[leaf])
        run.sims += 1
        if leaf not in run.found:
            run.found.append(leaf)
    return None


def mcts_rollout(prompts: list[str], config: MCTSRolloutConfig, *, propose: Propose, evaluate: Evaluate,
                 canonical: Canonical = str.strip) -> list[SearchResult]:
    """Run MCTS-Rollout on every prompt in lockstep."""
    runs = [_Run(Tree(p, max_depth=config.max_depth)) for p in prompts]
    value_new([(run.tree, 0) for run in runs], evaluate)
    while True:
        requests = [(run, leaf) for run in runs if (leaf := _next_leaf(run, config)) is not None]
        if not requests:
            break
        kids = expand_batch([(run.tree, leaf) for run, leaf in requests], propose, k=config.k,
                            temperature=config.temperature)
        value_new([(run.tree, c) for (run, _), new in zip(requests, kids, strict=True) for c in new], evaluate)
        for run, leaf in requests:
            v = run.tree.value[leaf]
            run.tree.backup(leaf, 0.0 if math.isnan(v) else v)
            run.sims += 1
    results = []
    for run in runs:
        tree = run.tree
        found = [n for n in run.found if tree.answer[n] is not None]
        pick = choose([tree.answer[n] for n in found], [unit(tree.value[n]) for n in found], config.aggregate,
                      key=canonical)
        results.append(SearchResult.at(tree, None if pick is None else found[pick]))
    return results
