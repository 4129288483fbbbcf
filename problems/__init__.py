"""Reasoning tasks: one `Problem` type, loaders per task, exact answer checkers.

`TASKS` maps a task name to its module; every task module exposes `load(split, **options)`,
`check(problem, answer)` and `canonical(answer)` (the key majority voting compares).
"""

from problems import arithmetic, game24, gsm8k
from problems.base import DatasetError, Problem, load_problems, select_problems

TASKS = {"arithmetic": arithmetic, "game24": game24, "gsm8k": gsm8k}

__all__ = ["TASKS", "DatasetError", "Problem", "load_problems", "select_problems"]
