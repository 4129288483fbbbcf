"""Reasoning tasks: one `Problem` type, loaders per task, exact answer checkers.

`TASKS` maps a task name to its module; every task module exposes `load(split, **options)`,
`check(problem, answer)` and `canonical(answer)` (the key majority voting compares).
"""

import importlib

from problems.base import TASK_NAMES, DatasetError, Problem, load_problems, select_problems

TASKS = {name: importlib.import_module(f"problems.{name}") for name in TASK_NAMES}

__all__ = ["TASKS", "DatasetError", "Problem", "load_problems", "select_problems"]
