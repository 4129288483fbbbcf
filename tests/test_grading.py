"""Grading MATH-style answers as the field does: math-verify where installed (the sympy checker otherwise or on
request), its verdicts on equivalent forms, worker threads that cannot hang, AIME / MATH-500 rows, and the
checker recorded with every tree and evaluation row."""

import json
import threading
import time

import pytest

from problems import DatasetError, grading, load_problems
from problems.base import Problem
from problems.steps import question_prompt

# (gold, answer, math-verify's verdict), written by hand
CASES = [
    (r"\frac{1}{2}", "0.5", True),
    ("3", r"\boxed{x=3}", True),
    (r"\frac{\sqrt{3}}{2}", r"\sqrt{3}/2", True),
    ("x^2+2x+1", "(x+1)^2", True),
    ("[1,2)", "[1, 2)", True),
    ("[1,2)", "(1,2)", False),  # an interval's ends matter
    (r"(-\infty, 3]", r"(-\infty, 3)", False),
    ("10", "10.0", True),
    ("2", "3", False),
    (r"\frac{1}{3}", "0.33", False),
]


def _problem(gold: str, checker: str | None) -> Problem:
    return Problem(id="m", task="math", question="q", answer=gold, prompt=question_prompt("q"), checker=checker)


@pytest.mark.parametrize("gold, answer, verdict", CASES)
def test_math_verify_accepts_and_rejects_as_it_does(gold, answer, verdict):
    from math_verify import parse, verify

    ours = _problem(gold, "math_verify").check(answer)
    theirs = verify(parse(f"${gold}$"), parse(answer if "boxed" in answer else f"${answer}$"))
    assert ours == theirs == verdict


def test_in_a_worker_thread_the_verdicts_hold_and_an_explosive_answer_returns_at_once():
    found = {}

    def grade():
        found["cases"] = [_problem(g, "math_verify").check(a) for g, a, _ in CASES]
        t0 = time.perf_counter()
        found["tower"] = _problem("3", "math_verify").check("9^{9^{9}}")  # math-verify untimed would hang here
        found["seconds"] = time.perf_counter() - t0

    worker = threading.Thread(target=grade)
    worker.start()
    worker.join(60)
    assert not worker.is_alive()
    assert found["cases"] == [v for *_, v in CASES]
    assert found["tower"] is False and found["seconds"] < 5
    assert grading.explosive("2^{2^{2^{2}}}") and grading.explosive("10^{10000}") and grading.explosive("1000!")
    assert not grading.explosive(r"\frac{2^{10}}{3}")


def test_the_checker_is_chosen_per_load_and_a_missing_one_is_a_clear_error(tmp_path, monkeypatch):
    source = tmp_path / "test.jsonl"
    source.write_text(json.dumps({"problem": "What is 1/2?", "answer": r"\frac{1}{2}"}) + "\n")
    [auto] = load_problems("math", "test", source=str(source))
    [sympy] = load_problems("math", "test", source=str(source), checker="sympy")
    assert (auto.checker_name, sympy.checker_name) == ("math_verify", "sympy")
    assert auto.check("0.5") and sympy.check("0.5")
    assert auto.check(r"\sin(\pi/6)") and not sympy.check(r"\sin(\pi/6)")  # where they differ
    monkeypatch.setattr(grading, "math_verify_installed", lambda: False)
    [fallback] = load_problems("math", "test", source=str(source))
    assert fallback.checker_name == "sympy"
    with pytest.raises(DatasetError, match="math_verify is not installed here"):
        load_problems("math", "test", source=str(source), checker="math_verify")
    with pytest.raises(DatasetError, match="unknown checker 'exact'"):
        load_problems("math", "test", source=str(source), checker="exact")


def test_aime_and_math500_rows_load_as_math_problems(tmp_path):
    source = tmp_path / "test.jsonl"
    source.write_text("\n".join(json.dumps(r) for r in [
        {"ID": "2024-I-1", "Problem": "Find the number of ...", "Answer": 204, "Solution": "..."},  # AIME 2024
        {"id": 60, "problem": "Let $x$ ...", "answer": "33", "url": "https://..."},  # AIMO's AIME validation
        {"problem": "Compute $\\dbinom{31}{28}$.", "solution": "... $\\boxed{4495}$.", "answer": "4495",
         "subject": "Counting & Probability", "level": 2, "unique_id": "test/counting_and_probability/25.json"},
    ]) + "\n")
    problems = load_problems("math", "test", source=str(source))
    assert [(p.id, p.answer) for p in problems] == [
        ("math-2024-I-1", "204"), ("math-60", "33"), ("math-test/counting_and_probability/25.json", "4495")]
    assert problems[0].question == "Find the number of ..." and problems[0].check("204.0")


def test_every_tree_and_evaluation_row_names_its_checker(tmp_path, tiny_policy_dir):
    from flows.config import FlywheelConfig, method_configs
    from flows.flywheel import search_kwargs
    from storage import store
    from tasks.search import run_search
    from tasks.store import summarize_task

    source = tmp_path / "test.jsonl"
    source.write_text("".join(json.dumps({"problem": f"What is {a} + 1?", "answer": str(a + 1)}) + "\n"
                              for a in range(3)))
    rows = {}
    for task, options in (("math", {"source": str(source), "checker": "sympy"}), ("math", {"source": str(source)}),
                          ("arithmetic", {})):
        config = FlywheelConfig(workdir=str(tmp_path), task={"name": task, "options": options})
        out = run_search(**search_kwargs(config, "r", str(tiny_policy_dir), None), split="test", start=0,
                         count=2, method="greedy", method_config=method_configs(config)["greedy"], iteration=0,
                         stage="eval", shard=str(tmp_path / f"{task}-{len(rows)}"))
        path = tmp_path / f"{len(rows)}.duckdb"
        with store.connect(path) as con:
            store.ingest(con, [out["shard"]])
        row = summarize_task.fn(str(path), "r", 0, "greedy", "test", None, 1.0)
        _, trees = store.query(path, "SELECT DISTINCT checker FROM trees")
        rows[len(rows)] = (trees, row["checker"])
    assert rows == {0: ([("sympy",)], "sympy"), 1: ([("math_verify",)], "math_verify"), 2: ([("exact",)], "exact")}
