from fractions import Fraction

import pytest

from problems import DatasetError, game24, load_problems
from problems.steps import final_answer


def test_ts_llm_split_sizes():
    assert len(load_problems("game24", "train")) == 1000
    test = load_problems("game24", "test")
    assert len(test) == 362 and test[0].id == "game24-1001" and test[-1].id == "game24-1362"


@pytest.mark.parametrize("puzzle", ["4 4 6 8", "1 1 4 6", "2 3 5 12", "1 3 4 6", "3 3 8 8"])
def test_every_emitted_solution_checks(puzzle):
    problem = next(p for p in load_problems("game24", "all") if p.question == puzzle)
    solutions = game24.solve(puzzle)
    assert solutions, puzzle
    for steps in solutions:
        assert problem.check(final_answer(steps[-1])), steps
        assert all(s.endswith("\n") for s in steps)
        assert len(steps) == 4  # three operations, then the answer


def test_integer_solver_keeps_integers_and_misses_fraction_only_puzzles():
    assert game24.solve("3 3 8 8", integers_only=True) == []
    problem = next(p for p in load_problems("game24", "all") if p.question == "4 4 6 8")
    solutions = game24.solve("4 4 6 8", integers_only=True)
    assert solutions
    for steps in solutions:
        assert problem.check(final_answer(steps[-1]))
        assert all("/" not in s.split("=")[1] for s in steps[:-1])  # every intermediate is an integer


@pytest.mark.parametrize("puzzle", ["1 1 1 1", "1 1 1 2", "5 5 5 7"])
def test_unsolvable_puzzles_have_no_solution(puzzle):
    assert game24.solve(puzzle) == []


@pytest.mark.parametrize("answer,ok", [
    ("8 / (3 - 8 / 3) = 24", True),
    ("(8 / (3 - (8 / 3))) = 24", True),
    ("8 * 3 = 24", False),              # does not use every number
    ("8 / (3 - 8 / 3) + 0 = 24", False),  # uses a number the puzzle lacks
    ("8 / 3 * 3 * 3 = 24", False),      # wrong multiset of numbers
    ("3 * 8 + 8 - 8 / 3", False),       # not 24
    ("8 / (3 - 3) + 8 * 3", False),     # division by zero
    ("__import__('os')", False),
    ("", False),
])
def test_checker_is_exact(answer, ok):
    problem = next(p for p in load_problems("game24", "all") if p.question == "3 3 8 8")
    assert problem.check(answer) is ok


def test_evaluate_uses_fractions():
    value, used = game24.evaluate("1 / 3 + 2 / 3")
    assert value == Fraction(1) and used == [1, 3, 2, 3]


def test_malformed_csv_rows_name_file_line_and_field(tmp_path):
    bad = tmp_path / "24.csv"
    bad.write_text("Rank,Puzzles\n1,1 1 4 6\n2,1 1 x 11\n")
    with pytest.raises(DatasetError, match=r"24\.csv:3: field 'Puzzles'"):
        game24.load("all", path=bad)
    bad.write_text("Rank,Puzzles\nfirst,1 1 4 6\n")
    with pytest.raises(DatasetError, match=r"24\.csv:2: field 'Rank'"):
        game24.load("all", path=bad)
