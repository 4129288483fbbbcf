"""Synthetic multi-step chain arithmetic, generated from a seed: any size, exact checking.

A problem is a start value and a chain of operations applied left to right, e.g.
`Q: 37 +12 *3 -20`; each step applies one operation and lists the operations left, as Game24's steps
list the numbers left (`37+12=49 (left: *3 -20)`), so a step depends only on the line before it.
The last step states the answer.
Every intermediate value stays in [0, max_value], so a small model can learn the task.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from problems.base import Problem, split_rng
from problems.steps import final_step


@dataclass(frozen=True)
class ArithmeticConfig:
    """How problems are drawn. Each split has its own seed stream derived from `seed`."""

    #: operations applied to the starting number
    n_ops: int = 3
    #: every intermediate value stays in 0..max_value
    max_value: int = 99
    #: smallest number added or subtracted
    min_addend: int = 2
    #: largest number added or subtracted
    max_addend: int = 30
    #: smallest multiplier
    min_multiplier: int = 2
    #: largest multiplier
    max_multiplier: int = 4
    #: seed of the problem streams (each split draws its own)
    seed: int = 0


#: problems are drawn, not read: `load(split, n=...)` gives any number
GENERATED = True


def _draw_op(value: int, rng: random.Random, cfg: ArithmeticConfig) -> tuple[str, int]:
    add, sub = rng.randint(cfg.min_addend, cfg.max_addend), rng.randint(cfg.min_addend, cfg.max_addend)
    mul = rng.randint(cfg.min_multiplier, cfg.max_multiplier)
    choices = [("+", add)] if value + add <= cfg.max_value else []
    choices += [("-", sub)] if value - sub >= 0 else []
    choices += [("*", mul)] if value * mul <= cfg.max_value else []
    return rng.choice(choices)


def apply(op: str, a: int, b: int) -> int:
    """Apply one chain operation."""
    return {"+": a + b, "-": a - b, "*": a * b}[op]


def parse_ops(question: str) -> tuple[int, list[tuple[str, int]]]:
    """Split `37 +12 *3 -20` into the start value and the operations."""
    first, *rest = question.split()
    return int(first), [(tok[0], int(tok[1:])) for tok in rest]


def generate(n: int, *, split: str = "train", config: ArithmeticConfig = ArithmeticConfig()) -> list[Problem]:
    """`n` problems of a split; the same (config, split) always gives the same sequence."""
    rng = split_rng(split, config.seed)
    problems = []
    for i in range(n):
        start = value = rng.randint(1, config.max_value)
        ops = []
        for _ in range(config.n_ops):
            op, arg = _draw_op(value, rng, config)
            ops.append(f"{op}{arg}")
            value = apply(op, value, arg)
        question = " ".join([str(start), *ops])
        problems.append(
            Problem(id=f"arith-{split}-{config.seed}-{i}", task="arithmetic", question=question,
                    answer=str(value), prompt=f"Q: {question}\n")
        )
    return problems


def load(split: str, *, n: int = 1000, **config) -> list[Problem]:
    """Loader entry point used by `problems.load_problems`."""
    return generate(n, split=split, config=ArithmeticConfig(**config))


def solution_steps(problem: Problem, *, rng: random.Random | None = None, error_rate: float = 0.0) -> list[str]:
    """A demonstration: one step per operation, then the answer.

    With probability `error_rate` one step gets a wrong result (off by 1-10) and the chain carries the
    error on, as a careless solver would; this is how the tiny policy's demonstrations are made noisy.
    """
    value, ops = parse_ops(problem.question)
    wrong_at = -1
    if rng is not None and rng.random() < error_rate:
        wrong_at = rng.randrange(len(ops))
    steps = []
    for j, (op, arg) in enumerate(ops):
        result = apply(op, value, arg)
        if j == wrong_at:
            result = max(0, result + rng.choice([-1, 1]) * rng.randint(1, 10))
        left = " ".join(f"{o}{a}" for o, a in ops[j + 1:])
        steps.append(f"{value}{op}{arg}={result}" + (f" (left: {left})" if left else "") + "\n")
        value = result
    return steps + [final_step(str(value))]


#: how answers are graded (recorded with every tree): the chain's value, exactly
CHECKER = "exact"


def check(problem: Problem, answer: str) -> bool:
    """Exact integer equality with the gold answer."""
    try:
        return int(answer.strip()) == int(problem.answer)
    except ValueError:
        return False


def canonical(answer: str) -> str:
    """Integers compare by value."""
    try:
        return str(int(answer.strip()))
    except ValueError:
        return answer.strip()


def on_track(problem: Problem, steps: list[str]) -> bool:
    """Whether every step so far is the gold solution's step (so the prefix can still reach the answer).

    For measuring value models only (held-out step labels); search never calls it.
    """
    gold = solution_steps(problem)
    return len(steps) <= len(gold) and all(s.strip() == g.strip() for s, g in zip(steps, gold, strict=False))
