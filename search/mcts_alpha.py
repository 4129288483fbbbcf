"""MCTS-alpha (TS-LLM): AlphaZero-style search over reasoning steps, guided by a value model.

At every real step, `simulations` PUCT simulations run from the current root; the move is drawn from
pi(a) = N(a)^(1/tau) / sum_b N(b)^(1/tau) (argmax when tau = 0); the chosen child becomes the new root
and its subtree is kept. Children are valued when created (one batched call for all k), and an
unvisited child's Q is that estimate. Trees of a batch advance in lockstep: each wave makes at most
one batched policy call and one batched value call for all of them.

    score(c) = Q(c) + P(c) * (ln((N_p + c_base + 1) / c_base) + c_init) * sqrt(N_p) / (1 + N_c)

With a token budget, a tree stops expanding once it has generated that many tokens (so it exceeds
the budget by at most the one expansion that crossed it); the remaining moves follow the visit counts
through the tree already built. If that walk ends short of an answer, the answer is the best-valued
answered terminal anywhere in the tree (none if there is none).

Several paths (`paths` > 1): when a path reaches a terminal, the next one starts from the original
root, reusing the tree with its statistics (`between_paths: keep`), with visits and backed-up values
reset (`reset`; nodes and their value estimates stay, so nothing is generated twice), or on a fresh
tree (`clear`: every path searches from scratch; the stored tree is the union of the paths' trees). The
answer then aggregates the paths' answers (majority, value-weighted vote, or the best-valued).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Literal

from search.aggregate import choose, unit
from search.expand import expand_batch, over_budget, value_new
from search.tree import SearchResult, Tree
from search.types import Canonical, Evaluate, Propose


@dataclass(frozen=True)
class MCTSAlphaConfig:
    """Settings of MCTS-alpha; c_base and c_init as in TS-LLM's released runs."""

    #: simulations from the current root before each real step
    simulations: int = 8
    #: candidate steps sampled per expansion
    k: int = 4
    #: PUCT c_base (TS-LLM: 19652)
    c_base: float = 19652.0
    #: PUCT c_init (TS-LLM: 3)
    c_init: float = 3.0
    #: temperature of the move chosen from visit counts (0: argmax)
    tau: float = 0.0
    #: steps at most in a path
    max_depth: int = 8
    #: sampling temperature of candidates (None: the policy's)
    temperature: float | None = None
    #: each expansion's first candidate is the greedy step
    greedy_first: bool = False
    #: Dirichlet noise on the root's priors
    root_noise: bool = False
    #: the noise's alpha
    dirichlet_alpha: float = 0.3
    #: the noise's weight
    dirichlet_frac: float = 0.25
    #: generated tokens a problem; the search stops at it
    token_budget: int | None = None
    #: paths per problem: after a terminal, search again from the original root
    paths: int = 1
    #: keep the tree's statistics between paths, reset them, or clear the tree
    between_paths: Literal["keep", "reset", "clear"] = "keep"
    #: how paths' answers become one: majority, value-weighted vote, or the max-value path
    aggregate: Literal["majority", "vote", "max"] = "majority"
    #: sampling seed
    seed: int = 0


def puct(tree: Tree, child: int, c_base: float, c_init: float) -> float:
    """The PUCT score of `child` under its parent."""
    n_p = tree.visits[tree.parent[child]]
    explore = (math.log((n_p + c_base + 1) / c_base) + c_init) * math.sqrt(n_p) / (1 + tree.visits[child])
    return tree.q(child) + tree.prior[child] * explore


def select_leaf(tree: Tree, root: int, config: MCTSAlphaConfig) -> int:
    """Descend from `root` by maximal PUCT score (first child wins ties) to a leaf or terminal node."""
    node = root
    while tree.children[node] and not tree.terminal[node]:
        node = max(tree.children[node], key=lambda c: puct(tree, c, config.c_base, config.c_init))
    return node


def choose_move(tree: Tree, root: int, tau: float, rng: random.Random) -> int:
    """A child of `root` by pi(a) ~ N(a)^(1/tau); argmax N (then Q, then first) when tau == 0."""
    kids = tree.children[root]
    if tau <= 0:
        return max(kids, key=lambda c: (tree.visits[c], tree.q(c)))
    weights = [tree.visits[c] ** (1.0 / tau) for c in kids]
    if sum(weights) == 0:
        weights = [1.0] * len(kids)
    return rng.choices(kids, weights=weights)[0]


def add_root_noise(tree: Tree, root: int, config: MCTSAlphaConfig, rng: random.Random) -> None:
    """P = (1 - frac) P + frac Dir(alpha) over the root's children."""
    noise = [rng.gammavariate(config.dirichlet_alpha, 1.0) for _ in tree.children[root]]
    total = sum(noise) or 1.0
    for c, eta in zip(tree.children[root], noise, strict=True):
        tree.prior[c] = (1 - config.dirichlet_frac) * tree.prior[c] + config.dirichlet_frac * eta / total


@dataclass
class _Run:
    tree: Tree
    rng: random.Random
    root: int = 0
    sims: int = 0
    chosen: list[int] = field(default_factory=lambda: [0])
    finished: list[int] = field(default_factory=list)
    done: bool = False
    archive: Tree | None = None  # the union of the cleared trees of earlier paths (`clear`)


def _restart_or_finish(run: _Run, config: MCTSAlphaConfig) -> None:
    """A path ended at `run.root`: record it, then start the next path from the original root or stop."""
    tree = run.tree
    run.finished.append(run.root)
    if len(run.finished) >= config.paths or over_budget(tree, config.token_budget):
        run.done = True
        return
    if config.between_paths == "reset":  # forget the statistics; keep the nodes (and their values)
        tree.visits = [0] * len(tree)
        tree.value_sum = [0.0] * len(tree)
    elif config.between_paths == "clear":  # a fresh tree; its counters carry on
        _archive(run)
        fresh = Tree(tree.prompt, max_depth=tree.max_depth, generated_tokens=tree.generated_tokens,
                     value_states=tree.value_states)
        fresh.value[0] = tree.value[0]
        run.tree = fresh
    run.root, run.chosen, run.sims = 0, [0], 0


def _archive(run: _Run) -> None:
    """Fold the current tree into the archive; the current path's finished node gets its archive id."""
    if run.archive is None:
        run.archive = run.tree
        return
    ids = run.archive.merge(run.tree)
    run.finished[-1] = ids[run.finished[-1]]


def _next_request(run: _Run, config: MCTSAlphaConfig) -> int | None:
    """Advance `run` until it needs an expansion; returns the leaf to expand, or None when finished."""
    while not run.done:
        tree = run.tree
        if tree.terminal[run.root]:
            _restart_or_finish(run, config)
        elif over_budget(tree, config.token_budget):
            while tree.children[run.root] and not tree.terminal[run.root]:
                run.root = choose_move(tree, run.root, config.tau, run.rng)
                run.chosen.append(run.root)
            run.finished.append(run.root)
            run.done = True
        elif run.sims >= config.simulations:
            run.root = choose_move(tree, run.root, config.tau, run.rng)
            run.chosen.append(run.root)
            run.sims = 0
        else:
            leaf = select_leaf(tree, run.root, config)
            if not tree.terminal[leaf]:
                return leaf
            tree.backup(leaf, tree.value[leaf])
            run.sims += 1
    return None


def _result(run: _Run, config: MCTSAlphaConfig, canonical: Canonical) -> SearchResult:
    """One path: its answer, else the best answered terminal anywhere. Several: aggregated."""
    if run.archive is not None:  # `clear`: answer on the union of the paths' trees
        if run.tree is not run.archive:
            _archive(run)
        run.tree = run.archive
    tree = run.tree
    if config.paths > 1:
        ends = [n for n in run.finished if tree.answer[n] is not None]
        pick = choose([tree.answer[n] for n in ends], [unit(tree.q(n)) for n in ends], config.aggregate,
                      key=canonical)
        return SearchResult.at(tree, None if pick is None else ends[pick])
    best = tree.best_terminal() if tree.answer[run.root] is None else None
    if best is None:
        return SearchResult(tree=tree, answer=tree.answer[run.root], chosen=run.chosen)
    return SearchResult.at(tree, best)


def mcts_alpha(prompts: list[str], config: MCTSAlphaConfig, *, propose: Propose, evaluate: Evaluate,
               canonical: Canonical = str.strip) -> list[SearchResult]:
    """Run MCTS-alpha on every prompt; the answer is the final state's on the chosen path."""
    runs = [_Run(Tree(p, max_depth=config.max_depth), random.Random(config.seed * 100003 + i))
            for i, p in enumerate(prompts)]
    for run, v in zip(runs, evaluate(prompts), strict=True):
        run.tree.value[0] = v
        run.tree.value_states += 1
    while True:
        requests = [(run, leaf) for run in runs if (leaf := _next_request(run, config)) is not None]
        if not requests:
            break
        kids = expand_batch([(run.tree, leaf) for run, leaf in requests], propose, k=config.k,
                            temperature=config.temperature, greedy_first=config.greedy_first)
        for (run, leaf), new in zip(requests, kids, strict=True):
            if config.root_noise and leaf == run.root and new:
                add_root_noise(run.tree, leaf, config, run.rng)
        value_new([(run.tree, c) for (run, _), new in zip(requests, kids, strict=True) for c in new], evaluate)
        for run, leaf in requests:
            v = run.tree.value[leaf]
            run.tree.backup(leaf, 0.0 if math.isnan(v) else v)
            run.sims += 1
    return [_result(run, config, canonical) for run in runs]
