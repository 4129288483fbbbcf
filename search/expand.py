"""Expansion shared by the step-level methods: candidates -> children with normalised priors."""

from __future__ import annotations

import math

from models.policy import Candidate
from search.tree import Tree
from search.types import Evaluate, Propose


def expand(tree: Tree, node: int, candidates: list[Candidate]) -> list[int]:
    """Add the non-empty, distinct candidates as children of `node` (TS-LLM priors); return their ids.

    Every candidate's tokens count towards the tree's budget, dropped ones included. A node whose
    candidates are all empty becomes a terminal dead end with no answer.
    """
    tree.generated_tokens += sum(c.tokens for c in candidates)
    kept: dict[str, Candidate] = {}
    for c in candidates:
        if c.text.strip() and c.text not in kept and tree.child_with_text(node, c.text) is None:
            kept[c.text] = c
    if not kept and not tree.children[node]:
        tree.terminal[node] = True
        return []
    weights = [math.exp(c.logprob) for c in kept.values()]
    total = sum(weights) or 1.0
    return [tree.add(node, c.text, tokens=c.tokens, logprob=c.logprob, prior=w / total)
            for c, w in zip(kept.values(), weights, strict=True)]


def expand_batch(requests: list[tuple[Tree, int, bool]], propose: Propose, *, k: int,
                 temperature: float | None) -> list[list[int]]:
    """Expand every (tree, node, forced) request in at most two batched policy calls.

    Ordinary requests get k candidates at `temperature`; forced ones (a tree out of budget that must
    still finish) get one greedy candidate. Returns the new children of each request, in order.
    """
    out: list[list[int]] = [[] for _ in requests]
    for forced in (False, True):
        index = [i for i, (_, _, f) in enumerate(requests) if f == forced]
        if not index:
            continue
        kk, temp = (1, 0.0) if forced else (k, temperature)
        proposals = propose([requests[i][0].state(requests[i][1]) for i in index], kk, temperature=temp)
        for i, candidates in zip(index, proposals, strict=True):
            tree, node, _ = requests[i]
            out[i] = expand(tree, node, candidates)
    return out


def value_new(children: list[tuple[Tree, int]], evaluate: Evaluate) -> None:
    """Score newly created nodes in one batched value call and record the values on their trees."""
    if not children:
        return
    values = evaluate([tree.state(c) for tree, c in children])
    for (tree, c), v in zip(children, values, strict=True):
        tree.value[c] = v
        tree.value_states += 1
