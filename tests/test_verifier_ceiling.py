"""The verifier-ceiling benchmark's verifier: its labels, its noise, and AUC over all states against AUC between
siblings (the choice a search makes)."""

from __future__ import annotations

import pytest

from problems import select_problems
from problems.arithmetic import solution_steps


@pytest.fixture(scope="module")
def ceiling(load_benchmark):
    return load_benchmark("verifier_ceiling")


@pytest.fixture(scope="module")
def problems():
    return select_problems("arithmetic", "test", 0, 6, {})


def _states(problems) -> list[str]:
    """Every gold prefix, and at each depth a wrong sibling step followed by the rest of the gold steps (so
    wrong states are deeper on average, as in a search tree that keeps going after a slip)."""
    out = []
    for p in problems:
        gold = solution_steps(p)
        for d in range(1, len(gold) + 1):
            out.append(p.prompt + "".join(gold[:d]))
            wrong = gold[d - 1].replace("=", "=1", 1)
            out += [p.prompt + "".join(gold[:d - 1]) + wrong + "".join(gold[d:e]) for e in range(d, len(gold) + 1)]
    return out


class ByDepth:
    """A 'value model' that only knows how deep a state is: shallower scores higher."""

    def score(self, states: list[str]) -> list[float]:
        return [-s.count("\n") / 10 for s in states]


def test_a_noiseless_verifier_ranks_every_state_and_every_sibling_pair(ceiling, problems):
    verifier = ceiling.Verifier(problems, noise=0.0)
    values = verifier(_states(problems))
    assert sorted({round(v, 4) for v in values}) == [-0.7616, 0.7616]  # tanh(-1), tanh(+1)
    assert verifier.auc() == 1.0 and verifier.sibling_auc() == 1.0


def test_noise_is_fixed_per_state_and_lowers_both_aucs(ceiling, problems):
    states = _states(problems)
    noisy = ceiling.Verifier(problems, noise=3.0, seed=1)
    first = noisy(states)
    assert noisy(list(reversed(states))) == list(reversed(first))  # the same state, the same value
    assert ceiling.Verifier(problems, noise=3.0, seed=2)(states) != first  # another seed, other noise
    assert 0.5 < noisy.auc() < 1.0 and noisy.sibling_auc() < 1.0


def test_a_verifier_that_only_sees_depth_is_above_chance_overall_and_at_chance_between_siblings(ceiling, problems):
    verifier = ceiling.Verifier(problems, model=ByDepth())
    verifier(_states(problems))
    assert verifier.auc() > 0.55
    assert verifier.sibling_auc() == 0.5  # siblings are equally deep: every pair ties


def test_the_policys_confidence_is_its_weakest_step_so_a_longer_path_never_scores_higher(ceiling, problems,
                                                                                          tiny_policy_dir):
    scorer = ceiling.LogProbScorer(str(tiny_policy_dir))
    p = problems[0]
    gold = solution_steps(p)
    paths = [p.prompt + "".join(gold[:d]) for d in range(1, len(gold) + 1)]
    values = scorer.score(paths)
    assert all(-1.0 < v <= 1.0 for v in values)
    assert all(later <= earlier + 1e-9 for earlier, later in zip(values, values[1:], strict=False))
    assert scorer.score(paths[1:2]) == pytest.approx(values[1:2])  # batching does not change a score


def test_each_verifier_level_is_scored_by_its_own_model(ceiling, tiny_policy_dir, problems):
    value = ByDepth()
    prompts = [p.prompt for p in problems]
    assert ceiling.verifier_model(None, value, None, prompts) is value
    assert ceiling.verifier_model(1.5, value, str(tiny_policy_dir), prompts) is None  # synthetic: reads the gold
    for label in (ceiling._logprob_label(True), ceiling._logprob_label(str(tiny_policy_dir))):
        scorer = ceiling.verifier_model(label, value, str(tiny_policy_dir), prompts)
        assert isinstance(scorer, ceiling.LogProbScorer)
    p = problems[0]
    right = p.prompt + solution_steps(p)[0]
    slip = right.replace("=", "=1", 1)  # the first step's result, wrong
    alone, over = (ceiling.verifier_model(level, value, str(tiny_policy_dir), prompts)
                   for level in ceiling.CALCULATOR)
    assert alone.score([right, slip]) == [0.0, -1.0]
    confident = ceiling.LogProbScorer(str(tiny_policy_dir)).score([right])
    assert over.score([slip, right]) == [-1.0, pytest.approx(confident[0])]
