"""MATH (Hendrycks et al.): the standard jsonl files, `\\boxed{}` answers, equivalence checked with sympy.

A row is `{"problem", "solution"}` (the competition's files: the gold answer is the solution's last
`\\boxed{...}`) or also carries `"answer"` (the MATH-500 / PRM800K splits: used as given). `source` is a
directory of `{train,test}.jsonl`, one `.jsonl` file, or a hub id read through `datasets` where a hub is
reachable (e.g. HuggingFaceH4/MATH-500, test split only). `levels` (1-5) and `subjects` ("Algebra", ...)
select problems by the rows' `level` and `subject` (or `type`) fields.

Answers are compared after the usual normalisation (dollar signs, `\\left` / `\\right`, `\\dfrac`, spacing,
degrees, percent, units in `\\text{}`, `x = ...`), then by value where both sides parse as an expression
(`\\frac{1}{2}` = `0.5` = `1/2`, `\\sqrt{8}` = `2\\sqrt{2}`, `(x+1)^2` = `x^2+2x+1`), element by element for
tuples and intervals (in order) and for bare lists (in any order), else as normalised strings. Only
expressions of digits, operators, single-letter variables, `sqrt`, `pi` and `oo` ever reach sympy's parser,
so a model's output is never evaluated as code, and an answer whose value would have more than 10,000 digits
(`9^{9^9}`) is compared as text, never expanded.

That is the `sympy` checker. Loaded with `checker: auto` (the default) where math-verify is installed, or
`checker: math_verify`, problems are graded by math-verify instead (`problems.grading`). AIME releases
(`Problem` / `Answer` / `ID` fields, integer answers) load as MATH rows.
"""

from __future__ import annotations

import math
import re
import warnings
from functools import lru_cache

from problems import grading
from problems.base import DATA_DIR, DatasetError, Problem, hub_rows, jsonl_path, read_jsonl
from problems.steps import final_step, question_prompt

DEFAULT_DIR = DATA_DIR / "math"
HUB_ID = "HuggingFaceH4/MATH-500"

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\b")
_TEXT_RE = re.compile(r"\\(?:text|textbf|mbox|mathrm)\{([^{}]*)\}")
_UNITS_RE = re.compile(r"^(.+?)\s*\\(?:text|mbox|mathrm)\{\s*[A-Za-z][A-Za-z ]*\}(\^\{?\d\}?)?$")
_THOUSANDS_RE = re.compile(r"^-?\d{1,3}(,\d{3})+(\.\d+)?$")
_LEVEL_RE = re.compile(r"^(?:level\s*)?([1-5])$", re.IGNORECASE)
_SAFE_RE = re.compile(r"^[0-9A-Za-z+\-*/().\s]*$")
_NAME_RE = re.compile(r"[A-Za-z]+")
_HUGE_LITERAL_RE = re.compile(r"\d\.?[eE][+-]?\d{4,}")
_FUNCTIONS = {"sqrt", "pi", "oo"}
_MAX_LENGTH = 120
_MAX_DIGITS = 10_000  #: numbers an answer may build on the way (2^{2005} has 604 digits)


def last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{...}` (or `\\fbox{...}`, or `\\boxed 5`) in `text`, else None."""
    matches = list(_BOX_RE.finditer(text))
    if not matches:
        return None
    rest = text[matches[-1].end():]
    if not rest.lstrip().startswith("{"):  # `\boxed 5`: up to the next space or dollar sign
        token = re.match(r"\s*([^\s$]+)", rest)
        return token.group(1) if token else None
    inner = _braced(rest, rest.index("{"))
    return None if inner is None else inner[0]


def _braced(text: str, start: int, pair: str = "{}") -> tuple[str, int] | None:
    """The text inside the group opening at `start` (braces, or another `pair` of brackets), and the index
    after its closing bracket; None when it never closes."""
    depth = 0
    for i in range(start, len(text)):
        depth += {pair[0]: 1, pair[1]: -1}.get(text[i], 0)
        if depth == 0:
            return text[start + 1:i], i + 1
    return None


@lru_cache(maxsize=8192)
def normalize(answer: str) -> str:
    """The answer without presentation: what two equal answers written differently still share."""
    s = answer.strip()
    boxed = last_boxed(s)
    if boxed is not None:
        s = boxed
    for mark in ("\\$", "$", "\\!", "\\,", "\\;", "\\:", "\\displaystyle", "\\left", "\\right"):
        s = s.replace(mark, "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = re.sub(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|\\degree", "", s)
    s = s.replace("\\%", "").replace("%", "")
    units = _UNITS_RE.match(s.strip())
    if units:
        s = units.group(1)
    s = _TEXT_RE.sub(r"\1", s).strip().rstrip(".").strip()
    if re.match(r"^[A-Za-z]\w?\s*=", s) and s.count("=") == 1:  # `x = 5` -> `5`
        s = s.split("=", 1)[1]
    s = re.sub(r"\s+", "", s)
    if _THOUSANDS_RE.match(s):
        s = s.replace(",", "")
    s = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac\{([^{}]*)\}(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\sqrt(\d+)", r"\\sqrt{\1}", s)
    s = re.sub(r"(?<![\d.])\.(\d)", r"0.\1", s)
    return s


@lru_cache(maxsize=8192)  # the gold answer is parsed once, not once per leaf checked against it
def to_sympy(normalized: str):
    """A sympy expression for a normalised answer of numbers, operators, single-letter variables,
    `\\frac`, `\\sqrt`, `\\pi`, `\\infty`; None for anything else (tuples, text, numbers too big to build)."""
    text = _latex_to_python(normalized)
    if text is None or not text.strip() or len(text) > _MAX_LENGTH or not _SAFE_RE.match(text):
        return None
    if any(len(name) > 1 and name not in _FUNCTIONS for name in _NAME_RE.findall(text)):
        return None  # only known functions and single-letter symbols reach the parser
    if _HUGE_LITERAL_RE.search(text):
        return None  # 1e9999999: reading the literal alone takes minutes
    import sympy

    try:
        unevaluated = _parse(text, evaluate=False)  # the syntax only: nothing is computed yet
        if not isinstance(unevaluated, sympy.Expr) or _digits(unevaluated) > _MAX_DIGITS:
            return None  # 9^9^9 would take hours to expand
        return sympy.nsimplify(_parse(text, evaluate=True), rational=True)
    except Exception:  # noqa: BLE001 - a garbled answer is a wrong answer, whatever sympy raises
        return None


def _parse(text: str, *, evaluate: bool):
    import sympy
    from sympy.parsing.sympy_parser import (
        implicit_multiplication_application,
        parse_expr,
        standard_transformations,
    )

    names = {c: sympy.Symbol(c) for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"}
    names.update(sqrt=sympy.sqrt, pi=sympy.pi, oo=sympy.oo)
    atoms = {name: getattr(sympy, name) for name in ("Integer", "Float", "Rational", "Symbol", "Add", "Mul",
                                                     "Pow")}  # what the parser's own code calls; no builtins
    with warnings.catch_warnings():  # sympy's deprecation notes on odd input such as `(,)`: a wrong answer
        warnings.simplefilter("ignore")
        return parse_expr(text, local_dict=names, global_dict={"__builtins__": {}, **atoms}, evaluate=evaluate,
                          transformations=(*standard_transformations, implicit_multiplication_application))


def _digits(expr) -> float:
    """An upper bound on the decimal digits of the numbers evaluating `expr` builds (at least 1)."""
    if expr.is_Rational:
        return float(max(len(str(abs(expr.p))), len(str(expr.q))))
    if expr.is_Float:  # 1e99999: a short literal, but a 100,000-digit number once made exact
        return 1.0 if expr.is_zero else abs(float(math.log10(2) * (expr._mpf_[2] + expr._mpf_[3]))) + 1
    if expr.is_Pow:
        base, exponent = expr.args
        return max(_digits(base) * max(_size(exponent), 1.0), _digits(exponent))
    if expr.is_Mul or expr.is_Add:
        return sum(_digits(a) for a in expr.args) + 1
    return max((_digits(a) for a in expr.args), default=1.0) + 1


def _size(expr) -> float:
    """An upper bound on |value of `expr`| (inf past a float's range); a symbol counts as 1."""
    try:
        if expr.is_Number:
            return abs(float(expr))
        if expr.is_Pow:
            base, exponent = expr.args
            return max(_size(base), 1.0) ** _size(exponent)
        if expr.is_Mul:
            return math.prod(max(_size(a), 1.0) for a in expr.args)
        if expr.is_Add:
            return sum(_size(a) for a in expr.args)
        return max((_size(a) for a in expr.args), default=1.0)
    except OverflowError:
        return math.inf


def _latex_to_python(s: str) -> str | None:
    """`\\frac{a}{b}` -> ((a)/(b)), `\\sqrt[n]{a}` -> ((a)**(1/(n))), `\\sqrt{a}` -> sqrt(a), `^` -> **, ..."""
    out, i = [], 0
    while i < len(s):
        if s.startswith("\\frac", i):
            num = _braced(s, i + 5) if s[i + 5:i + 6] == "{" else None
            den = _braced(s, num[1]) if num and s[num[1]:num[1] + 1] == "{" else None
            if den is None:
                return None
            a, b = _latex_to_python(num[0]), _latex_to_python(den[0])
            if a is None or b is None:
                return None
            out.append(f"(({a})/({b}))")
            i = den[1]
        elif s.startswith("\\sqrt", i):
            j, index = i + 5, None
            if s[j:j + 1] == "[":
                close = s.find("]", j)
                if close < 0:
                    return None
                index, j = _latex_to_python(s[j + 1:close]), close + 1
            arg = _braced(s, j) if s[j:j + 1] == "{" else None
            inner = None if arg is None else _latex_to_python(arg[0])
            if inner is None or (index is None and s[j:j + 1] == "["):
                return None
            out.append(f"sqrt({inner})" if index is None else f"(({inner})**(1/({index})))")
            i = arg[1]
        elif s[i] == "\\":
            name = re.match(r"\\([A-Za-z]+)", s[i:])
            word = name.group(1) if name else ""
            symbol = {"pi": "pi", "infty": "oo", "cdot": "*", "times": "*", "div": "/"}.get(word)
            if symbol is None:
                return None
            out.append(f" {symbol} ")
            i += 1 + len(word)
        else:
            out.append({"^": "**", "{": "(", "}": ")"}.get(s[i], s[i]))
            i += 1
    return "".join(out)


def equivalent(a: str, b: str) -> bool:
    """Whether two answers are the same (see the module docstring)."""
    na, nb = normalize(a), normalize(b)
    if not na or not nb:
        return False
    if na == nb:
        return True
    pa, pb = _parts(na), _parts(nb)
    if pa is not None or pb is not None:
        if pa is None or pb is None or pa[0] != pb[0] or len(pa[1]) != len(pb[1]):
            return False
        if pa[0] == "":  # a bare list: the same answers in any order
            left = list(pb[1])
            for x in pa[1]:
                match = next((y for y in left if _same_value(x, y)), None)
                if match is None:
                    return False
                left.remove(match)
            return True
        return all(_same_value(x, y) for x, y in zip(pa[1], pb[1], strict=True))
    return _same_value(na, nb)


def _parts(s: str) -> tuple[str, list[str]] | None:
    """A tuple, interval or list: (its brackets, its top-level elements); None for a single answer."""
    brackets = ""
    if len(s) > 1 and s[0] in "([" and s[-1] in ")]" and _balanced(s[1:-1]):
        brackets, s = s[0] + s[-1], s[1:-1]
    elif s.startswith("\\{") and s.endswith("\\}"):
        brackets, s = "{}", s[2:-2]
    items, depth, start = [], 0, 0
    for i, c in enumerate(s):
        depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(c, 0)
        if c == "," and depth == 0:
            items.append(s[start:i])
            start = i + 1
    items.append(s[start:])
    if len(items) == 1:
        return None
    return ("" if brackets == "{}" else brackets), items


def _balanced(s: str) -> bool:
    depth = 0
    for c in s:
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(c, 0)
        if depth < 0:
            return False
    return depth == 0


def _same_value(a: str, b: str) -> bool:
    if a == b:
        return True
    ea, eb = to_sympy(a), to_sympy(b)
    if ea is None or eb is None:
        return False
    import sympy

    try:
        return ea == eb or sympy.simplify(ea - eb) == 0
    except Exception:  # noqa: BLE001 - sympy could not decide: not shown equal
        return False


def canonical(answer: str) -> str:
    """The key votes are counted under: one key for equal numbers however written (`\\frac{1}{2}`,
    `0.5`, `1/2` -> `1/2`), the normalised text otherwise."""
    s = normalize(answer)
    expr = to_sympy(s)
    if expr is None or expr.free_symbols:
        return s
    import sympy

    try:
        return str(sympy.nsimplify(sympy.simplify(expr), rational=True))
    except Exception:  # noqa: BLE001
        return s


#: the checker of a MATH problem loaded without one (problems.grading)
CHECKER = "sympy"


def check(problem: Problem, answer: str) -> bool:
    """Whether `answer` equals the gold answer: by math-verify where the problem was loaded with it (and the
    answer cannot make its work explode), else by `equivalent`."""
    if problem.checker == "math_verify" and not (grading.explosive(answer) or grading.explosive(problem.answer)):
        return grading.math_verify_equal(problem.answer, answer)
    return equivalent(answer, problem.answer)


def _level(value) -> int | None:
    match = _LEVEL_RE.match(str(value).strip()) if value is not None else None
    return int(match.group(1)) if match else None


#: the field names of other releases in this format: AIME sets (Problem / Answer / ID, or id), question for problem
_ALIASES = {"Problem": "problem", "question": "problem", "Answer": "answer", "Solution": "solution",
            "ID": "unique_id", "id": "unique_id"}


def _row_to_problem(row: dict, where: str, index: int, split: str, checker: str = CHECKER) -> Problem:
    row = {**{_ALIASES[k]: v for k, v in row.items() if k in _ALIASES and _ALIASES[k] not in row}, **row}
    if not isinstance(row.get("problem"), str) or not row["problem"].strip():
        raise DatasetError(f"{where}: field 'problem' is missing or empty")
    gold = row.get("answer")
    if isinstance(gold, int | float) and not isinstance(gold, bool):  # AIME answers are integers
        gold = str(gold)
    if gold is not None and (not isinstance(gold, str) or not gold.strip()):
        raise DatasetError(f"{where}: field 'answer' is not a non-empty string")
    if gold is None:
        solution = row.get("solution")
        if not isinstance(solution, str):
            raise DatasetError(f"{where}: no gold answer: neither field 'answer' nor field 'solution'")
        gold = last_boxed(solution)
        if gold is None or not gold.strip():
            raise DatasetError(f"{where}: field 'solution' has no \\boxed{{...}} answer (and there is no "
                               "field 'answer')")
    ident = str(row.get("unique_id") or f"{split}-{index}")
    solution = row.get("solution") if isinstance(row.get("solution"), str) and row["solution"].strip() else None
    return Problem(id=f"math-{ident}", task="math", question=row["problem"].strip(), answer=gold.strip(),
                   prompt=question_prompt(row["problem"]), checker=checker, solution=solution)


def _selected(row: dict, levels: set[int] | None, subjects: set[str] | None) -> bool:
    if levels is not None and _level(row.get("level")) not in levels:
        return False
    subject = str(row.get("subject") or row.get("type") or "").strip().lower()
    return subjects is None or subject in subjects


def load(split: str, *, source: str | None = None, n: int | None = None, levels: list | None = None,
         subjects: list[str] | None = None, checker: str = "auto", sources: dict | None = None) -> list[Problem]:
    """A split from a directory of `{train,test}.jsonl` (default: ../shared/data/math), one `.jsonl` file,
    or a hub id; a malformed row raises `DatasetError` naming the file, line and field. `sources` gives a split
    its own source (e.g. {train: DigitalLearningGmbH/MATH-lighteval, test: HuggingFaceH4/MATH-500}: MATH-500 has
    no train split). `checker` grades the answers (`problems.grading`: auto, math_verify or sympy)."""
    if sources is not None and split in sources:
        source = sources[split]
    try:
        checker = grading.resolve(checker)
    except grading.CheckerUnavailable as e:
        raise DatasetError(str(e)) from None
    wanted_levels = None
    if levels is not None:
        wanted_levels = {_level(x) for x in levels}
        if None in wanted_levels:
            raise DatasetError(f"levels: expected 1-5 or 'Level 1'-'Level 5', got {list(levels)}")
    wanted_subjects = None if subjects is None else {s.strip().lower() for s in subjects}
    source = source or str(DEFAULT_DIR)
    path = jsonl_path(source, split)
    if path is not None:
        if not path.is_file():
            raise DatasetError(f"{path}: MATH file not found (task.options.source: a directory of "
                               f"train/test .jsonl files, one .jsonl file, or a hub id such as {HUB_ID})")
        rows = [(where, i, row) for i, (where, row) in enumerate(read_jsonl(path))]
    else:  # a hub id, where a hub is reachable
        rows = [(f"{source}[{split}][{i}]", i, r) for i, r in enumerate(hub_rows(source, split))]
    problems = [_row_to_problem(row, where, i, split, checker) for where, i, row in rows
                if _selected(row, wanted_levels, wanted_subjects)]
    return problems[:n] if n is not None else problems


def solution_steps(problem: Problem, solution: str) -> list[str]:
    """A reference solution as steps: one line per paragraph (its line breaks joined), `\\boxed{x}` written
    as x, then the final step stating the gold answer."""
    text = solution
    while (match := _BOX_RE.search(text)) is not None:
        group = _braced(text, match.end()) if text[match.end():match.end() + 1] == "{" else None
        if group is None:
            break
        text = text[:match.start()] + group[0] + text[group[1]:]
    paragraphs = [" ".join(line.strip() for line in block.splitlines() if line.strip())
                  for block in re.split(r"\n\s*\n", text)]
    return [f"{p}\n" for p in paragraphs if p] + [final_step(problem.answer)]
