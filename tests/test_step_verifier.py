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
    sets = bench.sibling_sets(policy, [(p, solution_steps(p)) for p in problems], k=3)
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


def test_countdown_sibling_sets_are_labelled_by_reachability_and_split_by_fault(bench, tiny_policy_dir):
    """On Countdown a step is right when the numbers left can still make the target, whichever move it is;
    each wrong one is named by its fault, and the AUC is split by fault."""
    from models.hf_policy import TransformersPolicy
    from problems.countdown import fault, solved

    plays = solved(3, split="test")
    policy = TransformersPolicy.from_pretrained(str(tiny_policy_dir), temperature=1.0)
    sets = bench.sibling_sets(policy, plays, k=2)
    assert len(sets) == 2 * sum(len(steps) for _, steps in plays)
    kinds = bench.faults(sets, plays)
    assert [k is None for k in kinds] == [ok for *_, ok in sets]
    assert set(kinds) - {None} <= {"malformed", "miscomputed", "dead end", "wrong answer"}
    # the gold plays themselves, and a move that leaves numbers which cannot make the target
    p, steps = plays[0]
    gold = [(p.prompt + "".join(steps[:d]), steps[d], True) for d in range(len(steps))]
    assert bench.faults(gold, plays) == [None] * len(steps)
    dead = [(p.prompt, s, fault(p, [s]) is None) for s in _first_moves(p)]
    kinds = bench.faults(dead, plays)
    assert "dead end" in kinds and None in kinds

    class Oracle:
        def score(self, states):
            return [float(fault(p, states_steps(s)) is None) for s in states]

    def states_steps(state):
        return state[len(p.prompt):].splitlines(keepends=True)

    auc, sib, by_fault = bench.aucs(Oracle(), dead, kinds)
    assert sib == 1.0 and by_fault == {"dead end": 1.0}


def _first_moves(p):
    from problems.countdown import moves

    nums = [int(x) for x in p.question.split()]
    out = []
    for i in range(4):
        for j in range(i + 1, 4):
            rest = [nums[m] for m in range(4) if m not in (i, j)]
            for op, a, b, c in moves(nums[i], nums[j], 99):
                out.append(f"{a} {op} {b} = {c} (left: {' '.join(map(str, sorted([*rest, c])))})\n")
    return out


def test_head_backbones_are_the_policy_a_bigger_lm_on_its_demonstrations_or_that_shape_untrained(
        bench, tiny_recipe, tiny_policy_dir, tmp_path):
    import argparse
    import dataclasses

    from transformers import AutoModelForCausalLM, AutoTokenizer

    recipe = dataclasses.replace(tiny_recipe, sft=dataclasses.replace(tiny_recipe.sft, max_steps=4))
    assert bench.head_backbone("policy", recipe, str(tiny_policy_dir), tmp_path, tmp_path) == str(tiny_policy_dir)
    policy_vocab = AutoTokenizer.from_pretrained(str(tiny_policy_dir)).get_vocab()
    weights = {}
    for backbone in ("3x64", "3x64-scratch"):
        path = bench.head_backbone(backbone, recipe, str(tiny_policy_dir), tmp_path / "cache", tmp_path)
        model = AutoModelForCausalLM.from_pretrained(path)
        assert (model.config.n_layer, model.config.n_embd, model.config.n_head) == (3, 64, 2)
        assert AutoTokenizer.from_pretrained(path).get_vocab() == policy_vocab  # scores the policy's text
        weights[backbone] = model.transformer.h[0].mlp.c_fc.weight.detach().clone()
    assert not weights["3x64"].equal(weights["3x64-scratch"])  # the LM one was trained
    assert "recipe" in (tmp_path / "cache").joinpath(
        f"tiny-{dataclasses.replace(recipe, n_layer=3, n_embd=64, n_head=2).digest()}", "policy",
        "treeflow_recipe.json").read_text()  # bootstrapped and cached under its own recipe's hash
    for bad in ("wide", "8x", "8x256-random"):
        with pytest.raises(argparse.ArgumentTypeError, match="LAYERSxWIDTH"):
            bench._backbone(bad)
