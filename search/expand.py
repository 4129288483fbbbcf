"""Expansion shared by the step-level methods: candidates -> children with normalised priors."""

from __future__ import annotations

import math

from models.policy import Candidate
from search.tree import Tree


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
