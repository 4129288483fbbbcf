"""The step-verifier benchmark's data: sibling sets from the real policy, labels, and the outcome filter on
demonstrations."""

from __future__ import annotations

import pytest

from problems import select_problems
from problems.arithmetic import generate, on_track, solution_steps


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("step_verifier")


def test_sibling_sets_sample_k_steps_at_every_gold_prefix_and_label_them_by_the_gold_step(bench, tiny_policy_dir):
    from models.hf_policy import TransformersPolicy

    problems = select_problems("arithmetic", "test", 0, 3, {})
    policy = TransformersPolicy.from_pretrained(str(tiny_policy_dir), temperature=1.0)
    sets = bench.sibling_sets(policy, problems, k=3)
    by_parent: dict[str, list] = {}
    for parent, step, ok in sets:
        by_parent.setdefault(parent, []).append((step, ok))
    expected = [p.prompt + "".join(solution_steps(p)[:d]) for p in problems for d in range(len(solution_steps(p)))]
    assert list(by_parent) == expected  # one family per gold prefix, in order
    assert all(len(family) == 3 for family in by_parent.values())
    for p in problems:
        for d in range(len(solution_steps(p))):
            gold = solution_steps(p)
            for step, ok in by_parent[p.prompt + "".join(gold[:d])]:
                assert ok == (step.strip() == gold[d].strip()) == on_track(p, [*gold[:d], step])


def test_a_scorer_that_reads_only_the_parent_ranks_siblings_at_chance(bench):
    problems = generate(4, split="test")
    sets = []
    for p in problems:
        gold = solution_steps(p)
        for d in range(len(gold) - 1):  # the operation steps (the answer line has no "=")
            parent = p.prompt + "".join(gold[:d])
            sets += [(parent, gold[d], True), (parent, gold[d].replace("=", "=1", 1), False)]

    class ByParentLength:  # longer parents score higher: the same score for every sibling
        def score(self, states):
            return [float(s.rstrip("\n").rfind("\n")) for s in states]

    gold = [parent + step for parent, step, ok in sets if ok]

    class ByStep:  # a scorer that has learnt the gold steps
        def score(self, states):
            return [float(s in gold) for s in states]

    assert bench.aucs(ByParentLength(), sets)[1] == 0.5
    assert bench.aucs(ByStep(), sets) == (1.0, 1.0)


def test_outcome_filtered_demonstrations_are_exactly_those_with_every_step_right(bench):
    import random

    problems = generate(300, split="demo")
    rng = random.Random(3)
    rows = [{"prompt": p.prompt, "completion": "".join(solution_steps(p, rng=rng, error_rate=0.5))}
            for p in problems]
    kept = bench.outcome_filtered(rows, problems)
    clean = [r for r, p in zip(rows, problems, strict=True)
             if on_track(p, r["completion"].splitlines(keepends=True)[:-1])]
    assert 100 < len(kept) < 250  # about half carry a wrong step
    assert kept == clean  # a wrong step always carries through to a wrong answer, so the answer check finds it
