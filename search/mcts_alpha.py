"""MCTS-alpha (TS-LLM): AlphaZero-style search over reasoning steps, guided by a value model.

At every real step, `simulations` PUCT simulations run from the current root; the move is drawn from
pi(a) = N(a)^(1/tau) / sum_b N(b)^(1/tau) (argmax when tau = 0); the chosen child becomes the new root
and its subtree is kept. Children are valued when created (one batched call for all k), and an
unvisited child's Q is that estimate. Trees of a batch advance in lockstep: each wave makes at most
one batched policy call and one batched value call for all of them.

    score(c) = Q(c) + P(c) * (ln((N_p + c_base + 1) / c_base) + c_init) * sqrt(N_p) / (1 + N_c)

With a token budget, simulations stop once a tree has generated that many tokens; the remaining
moves follow the visit counts, and a root that was never expanded is completed greedily (k = 1,
temperature 0), so a tree exceeds its budget by at most that completion.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from search.expand import expand_batch, value_new
from search.tree import SearchResult, Tree
from search.types import Canonical, Evaluate, Propose


@dataclass(frozen=True)
class MCTSAlphaConfig:
    """Settings of MCTS-alpha; c_base and c_init as in TS-LLM's released runs."""

    simulations: int = 8
    k: int = 4
    c_base: float = 19652.0
    c_init: float = 3.0
    tau: float = 0.0
    max_depth: int = 8
    temperature: float | None = None
    root_noise: bool = False
    dirichlet_alpha: float = 0.3
    dirichlet_frac: float = 0.25
    token_budget: int | None = None
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
    done: bool = False


def _out_of_budget(run: _Run, config: MCTSAlphaConfig) -> bool:
    return config.token_budget is not None and run.tree.generated_tokens >= config.token_budget


def _next_request(run: _Run, config: MCTSAlphaConfig) -> tuple[int, bool] | None:
    """Advance `run` until it needs an expansion: (node, forced greedy?) or None when finished."""
    tree = run.tree
    while not run.done:
        if tree.terminal[run.root]:
            run.done = True
            break
        if run.sims >= config.simulations or _out_of_budget(run, config):
            if not tree.children[run.root]:
                return run.root, True  # out of budget at an unexpanded root: complete greedily
            run.root = choose_move(tree, run.root, config.tau, run.rng)
            run.chosen.append(run.root)
            run.sims = 0
            continue
        leaf = select_leaf(tree, run.root, config)
        if tree.terminal[leaf]:
            tree.backup(leaf, tree.value[leaf])
            run.sims += 1
            continue
        return leaf, False
    return None


def mcts_alpha(prompts: list[str], config: MCTSAlphaConfig, *, propose: Propose, evaluate: Evaluate,
               canonical: Canonical = str.strip) -> list[SearchResult]:
    """Run MCTS-alpha on every prompt; the answer is the final state's on the chosen path."""
    runs = [_Run(Tree(p, max_depth=config.max_depth), random.Random(config.seed * 100003 + i))
            for i, p in enumerate(prompts)]
    for run, v in zip(runs, evaluate(prompts), strict=True):
        run.tree.value[0] = v
        run.tree.value_states += 1
    while True:
        requests = [(run, req) for run in runs if (req := _next_request(run, config)) is not None]
        if not requests:
            break
        kids = expand_batch([(run.tree, node, forced) for run, (node, forced) in requests], propose,
                            k=config.k, temperature=config.temperature)
        for (run, (node, forced)), new in zip(requests, kids, strict=True):
            if config.root_noise and not forced and node == run.root and new:
                add_root_noise(run.tree, node, config, run.rng)
        value_new([(run.tree, c) for (run, _), new in zip(requests, kids, strict=True) for c in new], evaluate)
        for run, (node, _) in requests:
            v = run.tree.value[node]
            run.tree.backup(node, 0.0 if math.isnan(v) else v)
            run.sims += 1
    return [SearchResult(tree=r.tree, answer=r.tree.answer[r.root], chosen=r.chosen) for r in runs]
