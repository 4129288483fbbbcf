"""Which checker grades MATH-style answers: math-verify (Hugging Face's, the field's standard) where it is
installed, treeflow's own sympy checker (`problems.math.equivalent`) otherwise or when asked for.

`task.options.checker` chooses: `auto` (the default: math-verify if importable, else sympy), `math_verify`
(an error where it is not installed), or `sympy`. Every stored tree and evaluation row names the checker
that graded it (`trees.checker`, `evaluations.checker`).

math-verify bounds its own work with `signal.alarm`, which only the main thread may use; search grades in
worker threads too, so there its timeouts are off and an answer that could make sympy build an enormous
number (a power tower such as `9^{9^9}`, an exponent or factorial of four digits, a very long answer) is
graded by the sympy checker instead, which compares such values as text.
"""

from __future__ import annotations

import importlib.util
import re
import threading

CHECKERS = ("auto", "math_verify", "sympy")
_MAX_LENGTH = 300
#: a power whose exponent holds another power, an exponent or factorial of 4+ digits
_EXPLOSIVE = re.compile(r"\^\s*\{[^{}]*\^|\^\s*\(?[0-9.]+\s*\)?\s*\^|\^\s*\{?\s*-?\d{4,}|\d{4,}\s*!|\\uparrow")


class CheckerUnavailable(ValueError):
    """A checker that is asked for but cannot run here."""


def math_verify_installed() -> bool:
    return importlib.util.find_spec("math_verify") is not None


def resolve(name: str | None) -> str:
    """The checker `name` stands for here: `auto` (or None) is math_verify where installed, else sympy."""
    name = name or "auto"
    if name not in CHECKERS:
        raise CheckerUnavailable(f"task.options.checker: unknown checker {name!r}; known: {', '.join(CHECKERS)}")
    if name == "auto":
        return "math_verify" if math_verify_installed() else "sympy"
    if name == "math_verify" and not math_verify_installed():
        raise CheckerUnavailable("task.options.checker: math_verify is not installed here "
                                 "(pip install math-verify, or use checker: sympy)")
    return name


def _as_latex(text: str) -> str:
    """An answer as math-verify reads it: already delimited (`$...$`, `\\boxed{}`) or wrapped in `$...$`."""
    text = text.strip()
    return text if ("$" in text or "\\boxed" in text or "\\(" in text) else f"${text}$"


def explosive(text: str) -> bool:
    """Whether grading `text` symbolically could take unbounded time (see the module's note)."""
    return len(text) > _MAX_LENGTH or _EXPLOSIVE.search(text) is not None


def math_verify_equal(gold: str, answer: str) -> bool:
    """math-verify's verdict on `answer` against `gold`; in a worker thread, without its timeouts (the caller
    keeps explosive answers away from it)."""
    import logging

    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.ERROR)  # it warns at every call that runs untimed
    main = threading.current_thread() is threading.main_thread()
    timeout = {} if main else {"parsing_timeout": None}
    try:
        g = parse(_as_latex(gold), **timeout)
        a = parse(_as_latex(answer), **timeout)
        return bool(g and a and verify(g, a, **({} if main else {"timeout_seconds": None})))
    except Exception:  # noqa: BLE001  (math-verify's own errors and timeouts: not equal)
        return False
