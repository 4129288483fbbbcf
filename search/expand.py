"""Expansion shared by the step-level methods: candidates -> children with normalised priors."""

from __future__ import annotations

import math

from models.policy import Candidate
from search.tree import Tree
from search.types import Evaluate, Propose


def expand(tree: Tree, node: int, candidates: list[Candidate]) -> list[int]:
    """Add the non-empty, distinct candidates as children of `node`; return the children they name.

    The result lists one child per distinct non-empty candidate, in candidate order: a new node, or the
    existing child with that step (a node expanded twice, as DVTS does with the root, reuses it). New
    children get TS-LLM priors, exp(mean log-prob) normalised over this expansion's new children.
    Every candidate's tokens count towards the tree's budget, dropped ones included. A node with no
    children after its candidates are all empty becomes a terminal dead end with no answer.
    """
    tree.generated_tokens += sum(c.tokens for c in candidates)
    named: dict[str, int | Candidate] = {}
    for c in candidates:
        if c.text.strip() and c.text not in named:
            existing = tree.child_with_text(node, c.text)
            named[c.text] = existing if existing is not None else c
    new = [c for c in named.values() if isinstance(c, Candidate)]
    if not named and not tree.children[node]:
        tree.terminal[node] = True
        return []
    total = sum(math.exp(c.logprob) for c in new) or 1.0
    return [c if isinstance(c, int) else tree.add(node, c.text, tokens=c.tokens, logprob=c.logprob,
                                                  prior=math.exp(c.logprob) / total)
            for c in named.values()]


def expand_batch(requests: list[tuple[Tree, int]], propose: Propose, *, k: int,
                 temperature: float | None, greedy_first: bool = False) -> list[list[int]]:
    """Expand every (tree, node) request with k candidates in one batched policy call.

    `greedy_first`: the first candidate of every node is the greedy step (temperature 0), the other
    k - 1 are sampled; a second batched call, and every token of both counts.
    """
    if not requests:
        return []
    states = [tree.state(node) for tree, node in requests]
    proposals = propose(states, k - 1 if greedy_first else k, temperature=temperature) if k > greedy_first \
        else [[] for _ in states]
    if greedy_first:
        proposals = [g + c for g, c in zip(propose(states, 1, temperature=0.0), proposals, strict=True)]
    return [expand(tree, node, cands) for (tree, node), cands in zip(requests, proposals, strict=True)]


def value_new(children: list[tuple[Tree, int]], evaluate: Evaluate) -> None:
    """Score the nodes that have no value yet in one batched value call; record them on their trees."""
    todo = list({(id(tree), c): (tree, c) for tree, c in children if math.isnan(tree.value[c])}.values())
    if not todo:
        return
    values = evaluate([tree.state(c) for tree, c in todo])
    for (tree, c), v in zip(todo, values, strict=True):
        tree.value[c] = v
        tree.value_states += 1


def over_budget(tree: Tree, budget: int | None) -> bool:
    """Whether the tree has spent its generated-token budget (None = unlimited)."""
    return budget is not None and tree.generated_tokens >= budget
