"""Countdown: combine four small numbers with + - * / into a target, each number used once.

A task where checking is easier than producing. Which first move still reaches the target is a planning
question (the policy must look ahead), while whether a state can still reach it is a property of the
numbers it has left, written on the state's last line: the kind of step value a value model can learn
and a search can use. Game24 is the special case target 24; this generator draws its own puzzles, of
any number, from a seed (Stream of Search and TinyZero train search on Countdown).

Steps use Game24's format, `a op b = c (left: x y z)`, the final line `The answer is <expr> = <target>`.
A puzzle is made by playing random legal moves from four numbers in 1-`max_number`, every
intermediate result a whole number in 1-`max_value` (subtraction larger minus smaller, exact division);
the last result is the target, and that path is the demonstration. The checker is exact: any expression
that uses exactly the puzzle's numbers and equals the target is right, however it was found.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from problems.base import Problem, split_rng
from problems.game24 import canonical, makes  # noqa: F401 - canonical is part of the task interface
from problems.steps import final_answer, final_step


@dataclass(frozen=True)
class CountdownConfig:
    """How puzzles are drawn; each split has its own seed stream derived from `seed`."""

    n_numbers: int = 4
    max_number: int = 9
    max_value: int = 99
    min_target: int = 10
    seed: int = 0


#: puzzles are drawn, not read: `load(split, n=...)` gives any number
GENERATED = True


def moves(a: int, b: int, max_value: int) -> list[tuple[str, int, int, int]]:
    """The legal moves on two numbers: (op, left, right, result), larger operand first."""
    hi, lo = max(a, b), min(a, b)
    out = [("+", hi, lo, hi + lo), ("*", hi, lo, hi * lo)]
    if hi > lo:
        out.append(("-", hi, lo, hi - lo))
    if lo > 1 and hi % lo == 0:
        out.append(("/", hi, lo, hi // lo))
    return [m for m in out if 1 <= m[3] <= max_value]


def _step(op: str, a: int, b: int, c: int, left: list[int]) -> str:
    return f"{a} {op} {b} = {c} (left: {' '.join(map(str, sorted(left)))})\n"


def _draw(rng: random.Random, cfg: CountdownConfig) -> tuple[list[int], int, list[str]] | None:
    """Four numbers, the target a random play reaches, and that play's steps (None: a dead end)."""
    numbers = [rng.randint(1, cfg.max_number) for _ in range(cfg.n_numbers)]
    items = [(x, str(x)) for x in numbers]
    steps = []
    while len(items) > 1:
        i, j = sorted(rng.sample(range(len(items)), 2))
        options = moves(items[i][0], items[j][0], cfg.max_value)
        if not options:
            return None
        op, a, b, c = rng.choice(options)
        (_, ea), (_, eb) = (items[i], items[j]) if items[i][0] >= items[j][0] else (items[j], items[i])
        rest = [items[m] for m in range(len(items)) if m not in (i, j)]
        expr = f"{ea} {op} {eb}"
        items = rest + [(c, f"({expr})" if rest else expr)]
        steps.append(_step(op, a, b, c, [v for v, _ in items]))
    target, expr = items[0]
    if target < cfg.min_target:
        return None
    return sorted(numbers), target, steps + [final_step(f"{expr} = {target}")]


def _draws(n: int, split: str, cfg: CountdownConfig):
    rng = split_rng(split, cfg.seed)
    count = 0
    while count < n:
        draw = _draw(rng, cfg)
        if draw is not None:
            count += 1
            yield draw


def _problem(i: int, split: str, cfg: CountdownConfig, numbers: list[int], target: int) -> Problem:
    question = " ".join(map(str, numbers))
    return Problem(id=f"countdown-{split}-{cfg.seed}-{i}", task="countdown", question=question,
                   answer=str(target), prompt=f"Use {question} to make {target}.\n")


def solved(n: int, *, split: str = "train", config: CountdownConfig = CountdownConfig()
           ) -> list[tuple[Problem, list[str]]]:
    """`n` puzzles of a split, each with the random play that made it (one solution of the many it may have);
    the same (config, split) always gives the same sequence."""
    return [(_problem(i, split, config, numbers, target), steps)
            for i, (numbers, target, steps) in enumerate(_draws(n, split, config))]


def generate(n: int, *, split: str = "train", config: CountdownConfig = CountdownConfig()) -> list[Problem]:
    """`n` puzzles of a split."""
    return [p for p, _ in solved(n, split=split, config=config)]


def demonstrations(n: int, *, split: str = "demo", config: CountdownConfig = CountdownConfig()
                   ) -> list[dict]:
    """`n` `{"prompt", "completion"}` rows: each puzzle with the random play that made it."""
    return [{"prompt": p.prompt, "completion": "".join(steps)}
            for p, steps in solved(n, split=split, config=config)]


def load(split: str, *, n: int = 1000, **config) -> list[Problem]:
    """Loader entry point used by `problems.load_problems`."""
    return generate(n, split=split, config=CountdownConfig(**config))


#: how answers are graded (recorded with every tree): the expression uses the numbers and hits the target
CHECKER = "exact"


def check(problem: Problem, answer: str) -> bool:
    """The answer `<expr> = <target>` (or `<expr>`) uses exactly the puzzle's numbers and equals the target."""
    return makes(answer, problem.question, int(problem.answer))


@lru_cache(maxsize=1 << 18)
def reachable(numbers: tuple[int, ...], target: int, max_value: int = 99) -> bool:
    """Whether the (sorted) numbers can still make the target with the task's legal moves."""
    if len(numbers) == 1:
        return numbers[0] == target
    for i in range(len(numbers)):
        for j in range(i + 1, len(numbers)):
            rest = numbers[:i] + numbers[i + 1:j] + numbers[j + 1:]
            for *_, c in moves(numbers[i], numbers[j], max_value):
                if reachable(tuple(sorted((*rest, c))), target, max_value):
                    return True
    return False


def fault(problem: Problem, steps: list[str], max_value: int = 99) -> str | None:
    """Why a state can no longer reach the target, or None when it still can: "malformed" (a step that is not
    `a op b = c`), "miscomputed" (a wrong result, an illegal move or a number it does not have), "dead end"
    (every step right, but the numbers left cannot make the target) or "wrong answer" (a final step that does
    not check). For measuring value models only; search never calls it."""
    left = Counter(int(x) for x in problem.question.split())
    for step in steps:
        answer = final_answer(step)
        if answer is not None:
            return None if check(problem, answer) else "wrong answer"
        try:
            lhs, rhs = step.split("(left:")[0].split("=")
            a, op, b = lhs.split()
            a, b, c = int(a), int(b), int(rhs)
        except ValueError:
            return "malformed"
        legal = moves(a, b, max_value)
        if not ((op, a, b, c) in legal or op in "+*" and (op, b, a, c) in legal):
            return "miscomputed"
        if left[a] < 1 or left[b] < 1 + (a == b):
            return "miscomputed"
        left -= Counter([a, b])
        left[c] += 1
    return None if reachable(tuple(sorted(left.elements())), int(problem.answer), max_value) else "dead end"


def on_track(problem: Problem, steps: list[str], max_value: int = 99) -> bool:
    """Whether every step so far is a legal, correctly computed move and the numbers left can still make the
    target (after a final step: whether its answer checks). For measuring value models only."""
    return fault(problem, steps, max_value) is None
