"""GSM8K: the official jsonl files (gold answer after `####`), or a hub id through `datasets`.

Steps are the lines of the reference rationale with the `<<calc>>` annotations removed; the last
step states the answer. Answers compare numerically.
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

from problems.base import DATA_DIR, DatasetError, Problem, hub_rows, jsonl_path, read_jsonl
from problems.steps import final_step, question_prompt

DEFAULT_DIR = DATA_DIR / "gsm8k"
HUB_ID = "openai/gsm8k"
_NUMBER_RE = re.compile(r"^-?\d+(\.\d+)?(/\d+)?$")
_CALC_RE = re.compile(r"<<[^>]*>>")


def parse_number(text: str) -> Fraction | None:
    """A number written as 1,234 or -3.5 or 7/2 (dollar signs and commas dropped), else None."""
    cleaned = text.strip().replace(",", "").replace("$", "").rstrip(".")
    if not _NUMBER_RE.match(cleaned):
        return None
    return Fraction(cleaned)


def _row_to_problem(row: dict, where: str, index: int, split: str) -> Problem:
    for field in ("question", "answer"):
        if not isinstance(row.get(field), str) or not row[field].strip():
            raise DatasetError(f"{where}: field '{field}' is missing or empty")
    if "####" not in row["answer"]:
        raise DatasetError(f"{where}: field 'answer' has no '####' before the gold answer")
    gold = row["answer"].rsplit("####", 1)[1].strip()
    number = parse_number(gold)
    if number is None:
        raise DatasetError(f"{where}: field 'answer': gold answer {gold!r} after '####' is not a number")
    return Problem(id=f"gsm8k-{split}-{index}", task="gsm8k", question=row["question"].strip(),
                   answer=canonical(gold), prompt=question_prompt(row["question"]), solution=row["answer"])


def load_jsonl(path: str | Path, split: str = "test") -> list[Problem]:
    """Problems from an official GSM8K jsonl file; a malformed row raises `DatasetError`."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: GSM8K file not found")
    return [_row_to_problem(row, where, i, split) for i, (where, row) in enumerate(read_jsonl(path))]


def load(split: str, *, source: str | None = None, n: int | None = None) -> list[Problem]:
    """A split from a directory of `{train,test}.jsonl` (default: ../shared/data/gsm8k) or a hub id."""
    source = source or str(DEFAULT_DIR)
    path = jsonl_path(source, split)
    if path is not None:
        problems = load_jsonl(path, split)
    else:  # a hub id such as openai/gsm8k, where a hub is reachable
        rows = hub_rows(source, split, "main")
        problems = [_row_to_problem(r, f"{source}[{split}][{i}]", i, split) for i, r in enumerate(rows)]
    return problems[:n] if n is not None else problems


def solution_steps(problem: Problem, rationale: str) -> list[str]:
    """The reference rationale as steps: one line each, calculator annotations removed."""
    body = rationale.rsplit("####", 1)[0]
    lines = [_CALC_RE.sub("", line).strip() for line in body.splitlines() if line.strip()]
    return [f"{line}\n" for line in lines] + [final_step(problem.answer)]


#: how answers are graded (recorded with every tree): numeric equality with the gold number
CHECKER = "numeric"


def check(problem: Problem, answer: str) -> bool:
    """Numeric equality with the gold answer."""
    value = parse_number(answer)
    return value is not None and value == parse_number(problem.answer)


def canonical(answer: str) -> str:
    """Numbers compare by value (`1,000.0` and `1000` are one answer)."""
    value = parse_number(answer)
    if value is None:
        return answer.strip()
    return str(value.numerator) if value.denominator == 1 else f"{float(value):g}"
