"""MATH: the jsonl loaders, `\\boxed{}` answers, equivalence and voting keys, and bad rows named."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.config import load_config
from problems import DatasetError, load_problems, select_problems
from problems import math as math_task
from problems.steps import final_answer


@pytest.mark.parametrize("text,boxed", [
    (r"so $\boxed{\frac{1}{2}}$ then, finally, $\boxed{3}$.", "3"),
    (r"Hence $x = \boxed{\frac{\sqrt{3}}{2}}$.", r"\frac{\sqrt{3}}{2}"),
    (r"The answer is $\boxed 5$.", "5"),
    (r"\fbox{(1, 2)}", "(1, 2)"),
    (r"no box here", None),
    (r"\boxed{unclosed", None),
])
def test_last_boxed_reads_nested_braces(text, boxed):
    assert math_task.last_boxed(text) == boxed


@pytest.mark.parametrize("a,b", [
    (r"\frac{1}{2}", "0.5"), (r"\dfrac12", "1/2"), (r"-\frac{3}{4}", "-0.75"), (".5", "0.5"),
    (r"2\sqrt{2}", r"\sqrt{8}"), (r"\sqrt[3]{8}", "2"), (r"\frac{\sqrt{3}}{2}", r"\frac{1}{2}\sqrt{3}"),
    (r"\pi/2", r"\frac{\pi}{2}"), (r"2\pi", r"2 \pi"), ("x^2+2x+1", "(x+1)^2"), (r"\infty", r"\infty"),
    ("x = 5", "5"), (r"10\%", "10"), (r"30^\circ", "30"), (r"5 \text{ cm}", "5"), ("1,000", "1000"),
    (r"\$18.00", "18"), (r"$\boxed{7}$", "7"), (r"\text{(A)}", "(A)"),
    (r"\left( 1, \frac{1}{2} \right)", "(1,0.5)"), ("3, 1, 2", "1,2,3"), (r"\{3, 1\}", r"\{1, 3\}"),
])
def test_equal_answers_written_differently_match(a, b):
    assert math_task.equivalent(a, b) and math_task.equivalent(b, a)


@pytest.mark.parametrize("a,b", [
    ("(1,2)", "(2,1)"),  # a tuple is ordered
    ("[1,2)", "(1,2)"),  # an interval's brackets matter
    ("1,2", "1,2,3"), (r"\frac{1}{3}", "0.333"), (r"2\sqrt{3}", r"\sqrt{8}"), ("x+1", "x-1"), ("5", ""),
    ("(A)", "(B)"), (r"\frac{1}{2", "0.5"),
])
def test_different_answers_do_not_match(a, b):
    assert not math_task.equivalent(a, b) and not math_task.equivalent(b, a)


@pytest.mark.parametrize("answer", ["__import__('os').system('true')", "quit()", "exit()", "open('x')",
                                    "lambda: 1", r"10^{10^{10}}", "2^{100000}", "9^9^9", "((99^99)^99)^99",
                                    "1e9999999", "1.e9999999"])
def test_a_models_answer_is_never_run_as_code_nor_expanded(answer):
    """Python that would exit or reach the OS is just a wrong answer; a tower of powers is compared as text."""
    assert math_task.to_sympy(math_task.normalize(answer)) is None
    assert not math_task.equivalent(answer, "1")
    assert math_task.equivalent(answer, answer)  # as text, it still equals itself


def test_big_but_buildable_powers_still_compare_by_value():
    assert math_task.equivalent("2^{10}", "1024") and math_task.equivalent("(9^9)^9", "9^{81}")
    assert math_task.equivalent("2^{2005}", r"2^{2004} \cdot 2")
    assert not math_task.equivalent("2^{2005}", "2^{2004}")
    assert math_task.equivalent("1e3", "1000") and math_task.equivalent("2.5e-3", r"\frac{1}{400}")


def test_votes_count_equal_numbers_under_one_key():
    keys = {math_task.canonical(a) for a in (r"\frac{1}{2}", "0.5", "1/2", r"$\boxed{\dfrac12}$")}
    assert keys == {"1/2"}
    assert math_task.canonical(r"\sqrt{8}") == math_task.canonical(r"2\sqrt{2}")
    assert math_task.canonical("0.333") != math_task.canonical(r"\frac{1}{3}")
    assert math_task.canonical(r"\left(1, 2\right)") == "(1,2)"


ROWS = [
    {"problem": "What is $1/2 + 1/4$?", "solution": r"We add: $\frac{2}{4} + \frac14 = \boxed{\frac{3}{4}}$.",
     "level": "Level 2", "type": "Prealgebra"},
    {"problem": "Solve $x+1=3$.", "solution": "Subtract 1.\n\nSo $x = 2$.", "answer": "2", "level": 1,
     "subject": "Algebra", "unique_id": "test/algebra/1.json"},
    {"problem": "Find $\\sqrt{8}$.", "solution": r"$\sqrt{8} = \boxed{2\sqrt{2}}$.", "level": "Level 5",
     "type": "Algebra"},
]


def _write(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_both_row_styles_load_and_check(tmp_path):
    for split in ("train", "test"):
        _write(tmp_path / f"{split}.jsonl", ROWS)
    problems = load_problems("math", "test", source=str(tmp_path))
    assert [p.answer for p in problems] == [r"\frac{3}{4}", "2", r"2\sqrt{2}"]
    assert [p.id for p in problems] == ["math-test-0", "math-test/algebra/1.json", "math-test-2"]
    assert problems[0].prompt == "Question: What is $1/2 + 1/4$?\nAnswer:\n"
    assert problems[0].check("0.75") and problems[0].check(r"\boxed{\dfrac34}") and not problems[0].check("3/5")
    assert problems[2].check(r"\sqrt{8}") and not problems[2].check(r"\sqrt{6}")
    assert problems[0].canonical("0.75") == problems[0].canonical(r"\frac{3}{4}")
    # the level and subject filters read `level` ("Level 2" or 2) and `subject` or `type`
    assert [p.answer for p in load_problems("math", "test", source=str(tmp_path), levels=[1, "Level 5"])] == \
        ["2", r"2\sqrt{2}"]
    assert len(load_problems("math", "test", source=str(tmp_path), subjects=["algebra"])) == 2
    one_file = load_problems("math", "train", source=str(tmp_path / "train.jsonl"), n=2)
    assert [p.answer for p in one_file] == [r"\frac{3}{4}", "2"]
    assert [p.answer for p in select_problems("math", "test", 2, 2, {"source": str(tmp_path)})] == \
        [r"2\sqrt{2}", r"\frac{3}{4}"]  # a fixed-size dataset wraps around


@pytest.mark.parametrize("rows,pattern", [
    ([ROWS[0], {"solution": r"\boxed{1}"}], r"test\.jsonl:2: field 'problem' is missing"),
    ([{"problem": "p", "solution": "no box"}], r"test\.jsonl:1: field 'solution' has no \\boxed"),
    ([{"problem": "p"}], r"test\.jsonl:1: no gold answer: neither field 'answer' nor field 'solution'"),
    ([{"problem": "p", "answer": [3]}], r"test\.jsonl:1: field 'answer' is not a non-empty string"),
    ([ROWS[0], "{oops"], r"test\.jsonl:2: not valid JSON"),
    (["[1, 2]"], r"test\.jsonl:1: expected a JSON object"),
])
def test_malformed_rows_are_named(tmp_path, rows, pattern):
    _write(tmp_path / "test.jsonl", rows)
    with pytest.raises(DatasetError, match=pattern):
        load_problems("math", "test", source=str(tmp_path))


def test_missing_files_and_bad_levels_are_named(tmp_path):
    with pytest.raises(DatasetError, match=r"train\.jsonl: MATH file not found .*hub id"):
        load_problems("math", "train", source=str(tmp_path))
    _write(tmp_path / "test.jsonl", ROWS)
    with pytest.raises(DatasetError, match="levels: expected 1-5"):
        load_problems("math", "test", source=str(tmp_path), levels=[7])


def test_a_solution_becomes_one_line_per_paragraph_and_a_final_answer(tmp_path):
    _write(tmp_path / "test.jsonl", ROWS)
    problem = load_problems("math", "test", source=str(tmp_path))[1]
    solution = "First we note\nthat $x + 1 = 3$.\n\nSubtract 1: $x = \\boxed{2}$."
    steps = math_task.solution_steps(problem, solution)
    assert steps == ["First we note that $x + 1 = 3$.\n", "Subtract 1: $x = 2$.\n", "The answer is 2\n"]
    assert problem.check(final_answer(steps[-1]))


def test_the_flywheel_config_takes_math_with_its_options(tmp_path):
    _write(tmp_path / "test.jsonl", ROWS)
    path = tmp_path / "c.yaml"
    path.write_text(f"task:\n  name: math\n  options: {{source: {tmp_path}, levels: [5]}}\n"
                    f"policy:\n  path: {tmp_path}\n")
    config = load_config(path)
    assert config.task.name == "math"
    problems = select_problems("math", "test", 0, 5, config.task.options)
    assert [p.answer for p in problems] == [r"2\sqrt{2}"]


PIECES = ["0", "1", "2", "9", "x", "e", "+", "-", "*", "/", "^", "(", ")", "{", "}", "[", "]", ",", ".", " ", "=",
          r"\frac", r"\sqrt", r"\pi", r"\infty", r"\cdot", r"\left(", r"\right)", r"\boxed{", r"\text{", "$", "%"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=14).map("".join),
       st.lists(st.sampled_from(PIECES), max_size=14).map("".join))
def test_any_garble_of_latex_is_answered_true_or_false_and_equals_itself(a, b):
    """Whatever a model writes, the checker answers (no exception, no hang) and is reflexive."""
    assert math_task.equivalent(a, b) in (True, False)
    assert isinstance(math_task.canonical(a), str)
    assert math_task.equivalent(a, a) == bool(math_task.normalize(a))
