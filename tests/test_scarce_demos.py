"""The scarce-demonstration benchmark: its rows, its clean demonstrations, and the traces it keeps."""

from __future__ import annotations

import random

import pytest


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("scarce_demos")


def test_every_round_trains_on_exactly_the_rows_asked_for_traces_first(bench):
    traces = [{"t": i} for i in range(3)]
    demos = [{"d": i} for i in range(4)]
    rows = bench.fill(traces, demos, 10, random.Random(0))
    assert len(rows) == 10 and rows[:3] == traces
    assert sorted(r["d"] for r in rows[3:7]) == [0, 1, 2, 3] and rows[7:] == rows[3:6]  # all of them, then again
    assert bench.fill(traces, demos, 2, random.Random(0)) == traces[:2]
    assert bench.fill([], demos, 4, random.Random(1)) != bench.fill([], demos, 4, random.Random(2))


def test_the_clean_demonstrations_are_new_problems_with_every_step_right(bench):
    from flows.config import load_config
    from models.tiny import TinyRecipe, demonstrations
    from problems.arithmetic import generate
    from problems.steps import final_answer

    config = load_config("configs/testbed.yaml", {"tiny": {"n_demos": 300}})
    clean = bench.clean_demonstrations(config, 50)
    assert not {d["prompt"] for d in demonstrations(TinyRecipe(n_demos=300))} & {d["prompt"] for d in clean}
    problems = generate(350, split="demo")[300:]
    assert [d["prompt"] for d in clean] == [p.prompt for p in problems]
    for d, p in zip(clean, problems, strict=True):
        steps = d["completion"].splitlines(keepends=True)
        assert p.steps_right(steps) and p.check(final_answer(steps[-1]))


def test_each_arm_keeps_its_share_of_the_right_answers(bench):
    from models.fakes import ScriptedPolicy
    from problems import Problem

    p = Problem(id="p", task="arithmetic", question="3 +4", answer="7", prompt="Q: 3 +4\n")
    policy = ScriptedPolicy({p.prompt: [("3+4=7\n", -0.1), ("3+4=8\n", -1.0), ("3+4=9\n", -2.0), ("7\n", -0.3)],
                             p.prompt + "3+4=7\n": [("The answer is 7\n", -0.2)],
                             p.prompt + "3+4=8\n": [("The answer is 7\n", -0.5)],  # right answer, wrong step
                             p.prompt + "3+4=9\n": [("The answer is 9\n", -0.1)],
                             p.prompt + "7\n": [("The answer is 7\n", -0.05)]})  # skips the step
    every = bench.correct_traces(policy, [p], 8)
    assert sorted((t["completion"], t["steps_right"], t["min_logprob"]) for t in every) == [
        ("3+4=7\nThe answer is 7\n", True, -0.2), ("3+4=8\nThe answer is 7\n", False, -1.0),
        ("7\nThe answer is 7\n", False, -0.3)]  # distinct: 8 samples, 3 kept; the weakest step's log-prob
    assert bench.select(every, "all") == every
    assert bench.select(every, "faithful") == [t for t in every if t["steps_right"]]
    assert [t["min_logprob"] for t in bench.select(every, "confident", 2 / 3)] == [-0.2, -0.3]
    assert [t["min_logprob"] for t in bench.select(every, "confident", 1.0)] == [-0.2, -0.3, -1.0]
    # the calculator drops the slip (3+4=8) but not the skipped step, which writes no equation
    assert [t["completion"] for t in bench.select(every, "checked")] == [
        t["completion"] for t in every if t["completion"] != "3+4=8\nThe answer is 7\n"]
    with pytest.raises(ValueError, match="unknown kind of traces 'best'"):
        bench.select(every, "best")
