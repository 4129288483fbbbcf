"""MCTS* (ReST-MCTS*): UCT search valued by a process reward model, with greedy value rollouts.

Each simulation descends from the root by UCT,

    UCT(c) = V(c) + c_uct * sqrt(2 ln N(parent) / N(c))      (an unvisited child first, best V first),

expands the leaf into `branch` children valued by the PRM, and rolls the best new child out greedily for
up to `rollout_steps` steps, scoring each rollout state; the child's value becomes

    V(child) <- (1 - alpha) V(child) + alpha * max(values along the rollout).

Visits then go up the path, and every ancestor's V becomes the visit-weighted mean of its visited
children's. The search ends when a terminal node reaches V >= `end_gate`, after `simulations`, or once
the tree has spent its token budget (rollouts count; at most the expansion or rollout step that crossed
it is over). Rollout steps are generated and counted but not added to the tree, as in the paper. The
answer is the best-valued terminal's, or a value-weighted vote over terminals (`vote`).

Values stay on the value model's [-1, 1] scale: the default end gate 0.8 is the paper's 0.9 on [0, 1].
On the stored tree, `value` is the PRM's estimate and value_sum / visits is the final V.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from problems.steps import is_final
from search.aggregate import choose, unit
from search.expand import expand_batch, over_budget, value_new
from search.tree import SearchResult, Tree
from search.types import Canonical, Evaluate, Propose


@dataclass(frozen=True)
class MCTSStarConfig:
    """ReST-MCTS*'s settings (values on [-1, 1])."""

    simulations: int = 16
    branch: int = 3
    c_uct: float = 1.0
    alpha: float = 0.5
    rollout_steps: int = 2
    end_gate: float = 0.8
    vote: bool = False
    max_depth: int = 8
    temperature: float | None = None
    token_budget: int | None = None
    seed: int = 0


@dataclass
class _Run:
    tree: Tree
    V: list[float] = field(default_factory=list)
    sims: int = 0
    done: bool = False
    rollout: str | None = None  # the state being rolled out
    rollout_node: int = 0
    rollout_values: list[float] = field(default_factory=list)


def uct(run: _Run, child: int, c_uct: float) -> float:
    """UCT of a visited child: V + c * sqrt(2 ln N_parent / N_child)."""
    tree = run.tree
    n_p = tree.visits[tree.parent[child]]
    return run.V[child] + c_uct * math.sqrt(2 * math.log(max(n_p, 1)) / tree.visits[child])


def select(run: _Run, c_uct: float) -> int:
    """Descend from the root: an unvisited child first (best V, then first), else the best UCT."""
    tree, node = run.tree, 0
    while tree.children[node] and not tree.terminal[node]:
        kids = tree.children[node]
        unvisited = [c for c in kids if tree.visits[c] == 0]
        node = (max(unvisited, key=lambda c: run.V[c]) if unvisited
                else max(kids, key=lambda c: uct(run, c, c_uct)))
    return node


def backup(run: _Run, node: int) -> None:
    """One visit on the path to `node`; ancestors' V = visit-weighted mean of their visited children."""
    tree = run.tree
    path = tree.path(node)
    for n in path:
        tree.visits[n] += 1
    for n in reversed(path[:-1]):
        kids = [c for c in tree.children[n] if tree.visits[c] > 0]
        run.V[n] = sum(tree.visits[c] * run.V[c] for c in kids) / sum(tree.visits[c] for c in kids)


def _sync_values(run: _Run) -> None:
    tree = run.tree
    run.V += [0.0 if math.isnan(v) else v for v in tree.value[len(run.V):]]


def _passes_gate(run: _Run, nodes: list[int], config: MCTSStarConfig) -> bool:
    """Whether one of `nodes` is an answered terminal valued at the end gate or above. A terminal's V is
    its PRM value from the moment it is created (it has no rollout and no children), so checking the new
    children of each expansion is checking every terminal."""
    tree = run.tree
    return any(tree.terminal[n] and tree.answer[n] is not None and run.V[n] >= config.end_gate for n in nodes)


def _next_leaf(run: _Run, config: MCTSStarConfig) -> int | None:
    tree = run.tree
    while not run.done:
        if run.sims >= config.simulations or over_budget(tree, config.token_budget) or tree.terminal[0]:
            run.done = True
            break
        leaf = select(run, config.c_uct)
        if not tree.terminal[leaf]:
            return leaf
        backup(run, leaf)
        run.sims += 1
    return None


def _roll_out(runs: list[_Run], config: MCTSStarConfig, propose: Propose, evaluate: Evaluate) -> None:
    """Advance every pending rollout greedily, one batched step at a time, then blend its node's V."""
    for _ in range(config.rollout_steps):
        active = [r for r in runs if r.rollout is not None and not over_budget(r.tree, config.token_budget)]
        if not active:
            break
        scored: list[tuple[_Run, str]] = []
        for r, [c] in zip(active, propose([r.rollout for r in active], 1, temperature=0.0), strict=True):
            r.tree.generated_tokens += c.tokens
            state = r.rollout + c.text
            r.rollout = state if c.text.endswith("\n") and not is_final(c.text) else None
            if c.text.strip():
                scored.append((r, state))
        values = evaluate([state for _, state in scored]) if scored else []
        for (r, _), v in zip(scored, values, strict=True):
            r.tree.value_states += 1
            r.rollout_values.append(v)
    for r in runs:
        if r.rollout_values:
            b = r.rollout_node
            r.V[b] = (1 - config.alpha) * r.V[b] + config.alpha * max(r.rollout_values)
        r.rollout, r.rollout_values = None, []


def mcts_star(prompts: list[str], config: MCTSStarConfig, *, propose: Propose, evaluate: Evaluate,
              canonical: Canonical = str.strip) -> list[SearchResult]:
    """Run MCTS* on every prompt in lockstep."""
    runs = [_Run(Tree(p, max_depth=config.max_depth)) for p in prompts]
    value_new([(run.tree, 0) for run in runs], evaluate)
    for run in runs:
        _sync_values(run)
    while True:
        requests = [(run, leaf) for run in runs if (leaf := _next_leaf(run, config)) is not None]
        if not requests:
            break
        kids = expand_batch([(run.tree, leaf) for run, leaf in requests], propose, k=config.branch,
                            temperature=config.temperature)
        value_new([(run.tree, c) for (run, _), new in zip(requests, kids, strict=True) for c in new], evaluate)
        for (run, leaf), new in zip(requests, kids, strict=True):
            _sync_values(run)
            run.done = _passes_gate(run, new, config)  # finishes this simulation, then stops
            best = max(new, key=lambda c: run.V[c], default=leaf)
            run.rollout_node = best
            if best != leaf and not run.tree.terminal[best]:
                run.rollout = run.tree.state(best)
        _roll_out([run for run, _ in requests], config, propose, evaluate)
        for run, _ in requests:
            backup(run, run.rollout_node)
            run.sims += 1
    results = []
    for run in runs:
        tree = run.tree
        for n in range(len(tree)):
            tree.value_sum[n] = run.V[n] * tree.visits[n]
        ends = tree.terminals()
        pick = choose([tree.answer[n] for n in ends], [unit(run.V[n]) for n in ends],
                      "vote" if config.vote else "max", key=canonical)
        results.append(SearchResult.at(tree, None if pick is None else ends[pick]))
    return results
