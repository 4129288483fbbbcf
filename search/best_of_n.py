"""Best-of-N: independent samples scored by a verifier, then aggregated.

The verifier is the value model read two ways: as an ORM (the score of each sample's final state) or
as a PRM (the score of every step's state, aggregated by last / min / prod). The answer is the
best-scored sample's (`max`, ORM-max) or the answer with the largest summed score (`vote`, ORM-vote);
scores are mapped from [-1, 1] to [0, 1] first. As for Self-Consistency, budgets truncate one sample
pool, so n = 1, 2, 4, ... come from the same samples. All verifier calls of a batch are one call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from models.policy import Candidate
from search.aggregate import choose, unit
from search.beam import path_score
from search.expand import value_new
from search.sampling import sample_paths, trie, within_budget
from search.tree import SearchResult
from search.types import Canonical, Evaluate, Propose


@dataclass(frozen=True)
class BestOfNConfig:
    """n samples at `temperature`; `scorer` reads the value model as an ORM or a PRM."""

    n: int = 8
    temperature: float | None = None
    max_depth: int = 8
    token_budget: int | None = None
    scorer: Literal["orm", "prm"] = "orm"
    step_agg: Literal["last", "min", "prod"] = "min"
    aggregate: Literal["max", "vote"] = "max"
    seed: int = 0


@dataclass(frozen=True)
class PRMBestOfNConfig(BestOfNConfig):
    """Best-of-N with the value model as a PRM (the `best_of_n_prm` method's defaults)."""

    scorer: Literal["orm", "prm"] = "prm"


def best_of_n_pool(prompts: list[str], pool: list[list[list[Candidate]]], config: BestOfNConfig, *,
                   evaluate: Evaluate, canonical: Canonical = str.strip) -> list[SearchResult]:
    """Best-of-N over a sample pool (the samples that fit the budget)."""
    tries = [trie(p, within_budget(samples, config.token_budget), config.max_depth)
             for p, samples in zip(prompts, pool, strict=True)]
    if config.scorer == "orm":
        to_score = [(tree, leaf) for tree, leaves in tries for leaf in leaves if leaf != 0]
    else:
        to_score = [(tree, n) for tree, _ in tries for n in range(1, len(tree))]
    value_new(to_score, evaluate)
    results = []
    for tree, leaves in tries:
        leaves = [leaf for leaf in leaves if leaf != 0]
        if config.scorer == "orm":
            scores = [unit(tree.value[leaf]) for leaf in leaves]
        else:
            scores = [path_score(tree, leaf, config.step_agg) for leaf in leaves]
        pick = choose([tree.answer[leaf] for leaf in leaves], scores, config.aggregate, key=canonical)
        results.append(SearchResult.at(tree, None if pick is None else leaves[pick]))
    return results


def best_of_n(prompts: list[str], config: BestOfNConfig, *, propose: Propose, evaluate: Evaluate,
              canonical: Canonical = str.strip) -> list[SearchResult]:
    """Sample n solutions per prompt and keep the one the verifier prefers."""
    pool = sample_paths(prompts, propose=propose, n=config.n, temperature=config.temperature,
                        max_depth=config.max_depth)
    return best_of_n_pool(prompts, pool, config, evaluate=evaluate, canonical=canonical)
