"""The `Problem` type shared by every task, and the error raised for malformed data."""

from __future__ import annotations

import importlib
import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: Where the shared datasets live: `../shared/data` beside the checkout, or $TREEFLOW_DATA.
DATA_DIR = Path(os.environ.get("TREEFLOW_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


class DatasetError(ValueError):
    """A dataset file or row that cannot be used; the message names the file, line and field."""


@dataclass(frozen=True)
class Problem:
    """One reasoning problem.

    `prompt` is the exact text the policy continues; steps are appended to it, one line each.
    `answer` is the gold answer in the task's canonical form (for Game24, the puzzle's numbers).
    `checker`: the checker that grades it where a task has a choice (MATH: `math_verify` or `sympy`);
    None is the task's own (`checker_name`).
    """

    id: str
    task: str
    question: str
    answer: str
    prompt: str
    checker: str | None = None
    #: the dataset's reference solution (GSM8K's rationale, MATH's solution), where it has one
    solution: str | None = None

    @property
    def checker_name(self) -> str:
        """The checker that grades this problem's answers, as every stored tree and evaluation records it."""
        return self.checker or _task_module(self.task).CHECKER

    def check(self, answer: str | None) -> bool:
        """Whether a final answer is correct, by the task's exact checker."""
        if answer is None:
            return False
        return _task_module(self.task).check(self, answer)

    def canonical(self, answer: str) -> str:
        """The key under which answers are compared when voting (never consults the gold answer)."""
        return _task_module(self.task).canonical(answer)

    def steps_right(self, steps: list[str]) -> bool | None:
        """Whether every step of a partial or whole solution is right, where the task's rules can tell
        (arithmetic, Countdown: their `on_track`); None where they cannot (GSM8K, MATH, Game24). A solution
        whose answer checks can still hold a wrong step. For measuring traces and value models only: search
        and training never call it."""
        on_track = getattr(_task_module(self.task), "on_track", None)
        return None if on_track is None else on_track(self, steps)


#: The built-in tasks; each is a module `problems.<name>`.
TASK_NAMES = ("arithmetic", "countdown", "game24", "gsm8k", "math")

#: the seed stream of each split of a generated task (one stream per split keeps the splits disjoint)
SPLIT_SEEDS = {"train": 1, "test": 2, "demo": 3}


def split_rng(split: str, seed: int) -> random.Random:
    """The random stream a generated task draws `split` from, for its config's `seed`."""
    if split not in SPLIT_SEEDS:
        raise ValueError(f"unknown split {split!r}; known: {sorted(SPLIT_SEEDS)}")
    return random.Random(seed * 1000 + SPLIT_SEEDS[split])


def jsonl_path(source: str, split: str) -> Path | None:
    """The jsonl file `source` names for `split` (a directory holding `{split}.jsonl`, or one `.jsonl` file),
    or None when `source` is a hub id."""
    if Path(source).is_dir():
        return Path(source) / f"{split}.jsonl"
    return Path(source) if Path(source).suffix == ".jsonl" else None


def read_jsonl(path: Path) -> Iterator[tuple[str, dict]]:
    """("FILE:LINE", row) for each non-blank line of a jsonl file; a line that is not a JSON object raises
    `DatasetError` naming it."""
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DatasetError(f"{where}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise DatasetError(f"{where}: expected a JSON object")
            yield where, row


def hub_rows(source: str, split: str, name: str | None = None) -> list[dict]:
    """A split of a hub dataset as rows; one that cannot be loaded here (no hub, no such split) is one
    DatasetError naming it."""
    import datasets

    try:
        return [dict(r) for r in datasets.load_dataset(source, name, split=split)]
    except (ConnectionError, FileNotFoundError, ValueError) as e:
        raise DatasetError(f"hub dataset {source} split {split!r} could not be loaded here ({e}); a local "
                           "jsonl file or directory works offline") from None


def _task_module(task: str):
    if task not in TASK_NAMES:
        raise KeyError(f"unknown task {task!r}; known: {', '.join(TASK_NAMES)}")
    return importlib.import_module(f"problems.{task}")


def load_problems(task: str, split: str, **options) -> list[Problem]:
    """Load a task's split (`train` or `test`) with task-specific options."""
    return _task_module(task).load(split, **options)


def select_problems(task: str, split: str, start: int, count: int, options: dict | None = None) -> list[Problem]:
    """Problems [start, start + count) of a split; fixed-size datasets wrap around, generators extend."""
    options = dict(options or {})
    if getattr(_task_module(task), "GENERATED", False):
        return load_problems(task, split, n=start + count, **options)[start:]
    pool = load_problems(task, split, **options)
    if not pool:
        raise DatasetError(f"task {task!r} split {split!r} has no problems")
    return [pool[(start + i) % len(pool)] for i in range(min(count, len(pool)))]
