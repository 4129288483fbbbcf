"""Game of 24 (TS-LLM): four numbers, reach 24 with + - * / using each number exactly once.

Data: `24.csv` (1362 puzzles ranked by human solve time); TS-LLM trains on ranks 1-1000 and tests on
ranks 1001-1362. Step format: `a op b = c (left: x y z)`, final line `The answer is <expr> = 24`.
The checker is exact (Fractions) and insists that the expression uses exactly the puzzle's numbers.
"""

from __future__ import annotations

import ast
import csv
from collections import Counter
from fractions import Fraction
from pathlib import Path

from problems.base import DATA_DIR, DatasetError, Problem
from problems.steps import final_step

DEFAULT_CSV = DATA_DIR / "game24" / "24.csv"
SPLITS = {"train": (1, 1000), "test": (1001, 1362), "all": (1, 1362)}
_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


def _prompt(numbers: str) -> str:
    return f"Use {numbers} to make 24.\n"


def load(split: str, *, path: str | Path | None = None, ranks: tuple[int, int] | None = None,
         n: int | None = None) -> list[Problem]:
    """Puzzles of a split (TS-LLM ranks by default), or of an explicit inclusive `ranks` range."""
    path = Path(path or DEFAULT_CSV)
    if ranks is None:
        if split not in SPLITS:
            raise ValueError(f"unknown Game24 split {split!r}; known: {sorted(SPLITS)}")
        ranks = SPLITS[split]
    if not path.is_file():
        raise DatasetError(f"{path}: Game24 file not found")
    problems = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        for field in ("Rank", "Puzzles"):
            if field not in (reader.fieldnames or []):
                raise DatasetError(f"{path}: header has no '{field}' column")
        for lineno, row in enumerate(reader, start=2):
            where = f"{path}:{lineno}"
            try:
                rank = int(row["Rank"])
            except (TypeError, ValueError):
                raise DatasetError(f"{where}: field 'Rank' is not an integer: {row['Rank']!r}") from None
            numbers = (row["Puzzles"] or "").split()
            if len(numbers) != 4 or not all(x.isdigit() for x in numbers):
                raise DatasetError(f"{where}: field 'Puzzles' must be four integers, got {row['Puzzles']!r}")
            if ranks[0] <= rank <= ranks[1]:
                puzzle = " ".join(numbers)
                problems.append(Problem(id=f"game24-{rank}", task="game24", question=puzzle,
                                        answer=puzzle, prompt=_prompt(puzzle)))
    return problems[:n] if n is not None else problems


def _fmt(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"


def solve(numbers: list[int] | str, *, integers_only: bool = False, limit: int | None = None) -> list[list[str]]:
    """Every solution as a list of steps in the task's format (deduplicated by step text).

    `integers_only` keeps intermediate results non-negative integers (the larger number first, exact
    division only): fast, and the format a small model learns best, but it misses puzzles such as
    3 3 8 8 that need fractions.
    """
    if isinstance(numbers, str):
        numbers = [int(x) for x in numbers.split()]
    start = [(Fraction(x), str(x)) for x in numbers]
    solutions: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()

    def moves(a, b):
        x, y = a[0], b[0]
        out = [(x + y, "+", a, b), (x * y, "*", a, b)]
        if integers_only:
            hi, lo = (a, b) if x >= y else (b, a)
            out = [(hi[0] + lo[0], "+", hi, lo), (hi[0] * lo[0], "*", hi, lo), (hi[0] - lo[0], "-", hi, lo)]
            if lo[0] != 0 and hi[0] % lo[0] == 0:
                out.append((hi[0] / lo[0], "/", hi, lo))
            return out
        out += [(x - y, "-", a, b), (y - x, "-", b, a)]
        if y != 0:
            out.append((x / y, "/", a, b))
        if x != 0:
            out.append((y / x, "/", b, a))
        return out

    def rec(items, steps):
        if limit is not None and len(solutions) >= limit:
            return
        if len(items) == 1:
            value, expr = items[0]
            key = tuple(steps)
            if value == 24 and key not in seen:
                seen.add(key)
                solutions.append(steps + [final_step(f"{expr} = 24")])
            return
        for i in range(len(items)):
            for j in range(i + 1, len(items)):
                rest = [items[m] for m in range(len(items)) if m not in (i, j)]
                for value, op, (lx, le), (rx, re_) in moves(items[i], items[j]):
                    left = sorted([v for v, _ in rest] + [value])
                    step = f"{_fmt(lx)} {op} {_fmt(rx)} = {_fmt(value)} (left: {' '.join(map(_fmt, left))})\n"
                    expr = f"({le} {op} {re_})" if rest else f"{le} {op} {re_}"
                    rec(rest + [(value, expr)], steps + [step])

    rec(start, [])
    return solutions


def evaluate(expr: str) -> tuple[Fraction, list[int]]:
    """Exact value of an arithmetic expression and the integers it uses; ValueError if not one."""
    try:
        tree = ast.parse(expr.replace("x", "*").replace("×", "*").replace("÷", "/"), mode="eval")
    except SyntaxError:
        raise ValueError(f"not an arithmetic expression: {expr!r}") from None
    used: list[int] = []

    def ev(node) -> Fraction:
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(node.op, ast.Sub):
                return left - right
            if isinstance(node.op, ast.Mult):
                return left * right
            if right == 0:
                raise ValueError("division by zero")
            return left / right
        if isinstance(node, ast.Constant) and type(node.value) is int:
            used.append(node.value)
            return Fraction(node.value)
        raise ValueError(f"unsupported element in {expr!r}")

    return ev(tree.body), used


def makes(answer: str, numbers: str, target: int) -> bool:
    """Whether the answer `<expr> = ...` (or `<expr>`) uses exactly `numbers` (space-separated) and equals
    `target` exactly."""
    try:
        value, used = evaluate(answer.split("=")[0])
    except ValueError:
        return False
    return value == target and Counter(used) == Counter(int(x) for x in numbers.split())


#: how answers are graded (recorded with every tree): exact rational arithmetic over the puzzle's numbers
CHECKER = "exact"


def check(problem: Problem, answer: str) -> bool:
    """The answer `<expr> = 24` (or `<expr>`) uses exactly the puzzle's numbers and equals 24 exactly."""
    return makes(answer, problem.question, 24)


def canonical(answer: str) -> str:
    """The expression without spaces (answers all end in `= <target>`, so compare the expressions)."""
    return answer.split("=")[0].replace(" ", "")
