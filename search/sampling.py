"""Sampling baselines: CoT greedy and Self-Consistency (k samples, majority vote).

All paths of all prompts advance together: one batched policy call per step.
Samples that share a prefix share nodes (the tree is a trie of the samples); every sampled token
still counts. With a token budget, Self-Consistency votes over the first samples that fit in it
(n = 1, 2, 4, ... all come from one pool), and only those samples are kept in the tree.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.policy import Candidate
from problems.steps import is_final
from search.aggregate import choose
from search.tree import SearchResult, Tree
from search.types import Canonical, Complete, Evaluate, Propose


@dataclass(frozen=True)
class SamplingConfig:
    """n samples per prompt at `temperature` (0 = greedy); `token_budget` caps generated tokens."""

    n: int = 8
    temperature: float | None = None
    max_depth: int = 8
    token_budget: int | None = None


def sample_paths(prompts: list[str], *, propose: Propose, n: int, temperature: float | None,
                 max_depth: int, complete: Complete | None = None) -> list[list[list[Candidate]]]:
    """n complete step sequences per prompt (a sequence ends at a final step or `max_depth`). With
    `complete` (a policy's `propose_paths`), the policy decodes the paths as far as it can in one go and
    the ones it leaves unfinished go on a step at a time."""
    if complete is not None:
        paths = complete(prompts, n, temperature=temperature, max_depth=max_depth, ends=_ends)
    else:
        paths = [[[c] for c in cands] for cands in propose(prompts, n, temperature=temperature)]
    active = [(i, j) for i, group in enumerate(paths) for j in range(len(group))]
    while True:
        active = [(i, j) for i, j in active if len(paths[i][j]) < max_depth and not _ends(paths[i][j][-1].text)]
        if not active:
            return paths
        states = [prompts[i] + "".join(c.text for c in paths[i][j]) for i, j in active]
        for (i, j), cands in zip(active, propose(states, 1, temperature=temperature), strict=True):
            paths[i][j].append(cands[0])


def _ends(step: str) -> bool:
    """Whether a path ends at this step: an empty step or a final answer."""
    return not step.strip() or is_final(step)


def within_budget(samples: list[list[Candidate]], budget: int | None) -> list[list[Candidate]]:
    """The first samples whose tokens fit in `budget` (at least one): n = 1, 2, 4, ... from one pool."""
    if budget is None:
        return samples
    used, kept = 0, []
    for s in samples:
        cost = sum(c.tokens for c in s)
        if kept and used + cost > budget:
            break
        kept.append(s)
        used += cost
    return kept


def trie(prompt: str, samples: list[list[Candidate]], max_depth: int) -> tuple[Tree, list[int]]:
    """The samples as one tree (shared prefixes share nodes); returns it and each sample's last node."""
    tree = Tree(prompt, max_depth=max_depth)
    leaves = []
    for steps in samples:
        node = 0
        tree.visits[0] += 1
        for c in steps:
            tree.generated_tokens += c.tokens
            if not c.text.strip():
                break
            child = tree.child_with_text(node, c.text)
            node = child if child is not None else tree.add(node, c.text, tokens=c.tokens, logprob=c.logprob)
            tree.visits[node] += 1
        leaves.append(node)
    return tree, leaves


def vote_pool(prompts: list[str], pool: list[list[list[Candidate]]], config: SamplingConfig, *,
              evaluate: Evaluate | None = None, canonical: Canonical = str.strip) -> list[SearchResult]:
    """Self-Consistency from a sample pool: majority vote over the samples that fit the budget (the value
    model, if given, is not consulted; the parameter keeps the pooled methods' one signature)."""
    results = []
    for prompt, samples in zip(prompts, pool, strict=True):
        tree, leaves = trie(prompt, within_budget(samples, config.token_budget), config.max_depth)
        pick = choose([tree.answer[leaf] for leaf in leaves], [0.0] * len(leaves), "majority", key=canonical)
        results.append(SearchResult.at(tree, None if pick is None else leaves[pick]))
    return results


def self_consistency(prompts: list[str], config: SamplingConfig, *, propose: Propose,
                     evaluate: Evaluate | None = None, canonical: Canonical = str.strip,
                     complete: Complete | None = None) -> list[SearchResult]:
    """Majority vote over the final answers of independent samples (`complete`: see `sample_paths`)."""
    pool = sample_paths(prompts, propose=propose, n=config.n, temperature=config.temperature,
                        max_depth=config.max_depth, complete=complete)
    return vote_pool(prompts, pool, config, canonical=canonical)


def greedy(prompts: list[str], config: SamplingConfig, *, propose: Propose, evaluate: Evaluate | None = None,
           canonical: Canonical = str.strip, complete: Complete | None = None) -> list[SearchResult]:
    """Chain-of-thought greedy decoding: one sample at temperature 0."""
    cfg = SamplingConfig(n=1, temperature=0.0, max_depth=config.max_depth)
    return self_consistency(prompts, cfg, propose=propose, canonical=canonical, complete=complete)
