"""The step format shared by every task: one step per delimiter (a line, `"\\n"`, for the built-in tiny models;
`"\\n\\n"` for instruct models, `policy.step_delimiter`), the last one states the answer."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

ANSWER_PREFIX = "The answer is "
_ANSWER_RE = re.compile(r"The answer is\s*(.+?)\s*$")
_QUESTION_RE = re.compile(r"\AQuestion: (.*)\nAnswer:\n\Z", re.S)


def question_prompt(question: str) -> str:
    """The prompt of a word problem (GSM8K, MATH): the question, then the steps that answer it."""
    return f"Question: {question.strip()}\nAnswer:\n"


def question_of(prompt: str) -> str:
    """The question a prompt asks (`question_prompt` undone; any other prompt is its own question)."""
    match = _QUESTION_RE.match(prompt)
    return (match.group(1) if match else prompt).strip()


def split_steps(text: str, delimiter: str = "\n") -> tuple[str, ...]:
    """The steps of a state's text, each with its delimiter (the last one may have none)."""
    parts = text.split(delimiter)
    return tuple(p + delimiter for p in parts[:-1]) + ((parts[-1],) if parts[-1] else ())


def split_state(steps_of: Callable[[str], str], state: str) -> tuple[str, str]:
    """(prompt, steps) of a state, by `prompt_splitter`'s `steps_of`; a state of no known prompt is read as its
    first line, then the steps."""
    steps = steps_of(state)
    if steps == state:
        steps = state[state.find("\n") + 1:] if "\n" in state else ""
    return state[:len(state) - len(steps)], steps


def prompt_splitter(prompts: Iterable[str]) -> Callable[[str], str]:
    """A function from a state to its steps: the text after the longest of `prompts` the state starts with
    (the whole state when none). Every built-in task's prompt ends its line, so the state's line prefixes are
    looked up, longest first; the prompts are scanned only for one that does not (a scan per state costs as
    many prompts as a shard holds)."""
    known = set(prompts)
    ordered = sorted(known, key=len, reverse=True)

    def steps_of(state: str) -> str:
        end = len(state)
        while (end := state.rfind("\n", 0, end)) >= 0:
            if state[:end + 1] in known:
                return state[end + 1:]
        return next((state[len(p):] for p in ordered if state.startswith(p)), state)

    return steps_of


def final_step(answer: str) -> str:
    """The final step that states `answer`."""
    return f"{ANSWER_PREFIX}{answer}\n"


def final_answer(step: str) -> str | None:
    """The answer a step states (`The answer is ...`, else the last `\\boxed{...}`, as instruct models write
    it), or None when it is not a final step."""
    if "\\boxed" in step or "\\fbox" in step:  # `The answer is \\boxed{5}.` included
        from problems.math import last_boxed

        boxed = last_boxed(step)
        if boxed and boxed.strip():
            return boxed.strip()
    match = _ANSWER_RE.search(step.strip("\n"))
    return None if match is None else match.group(1).rstrip(".").strip()


def is_final(step: str) -> bool:
    """Whether a step ends the solution: it states an answer, or the policy stopped mid-line (EOS). Every step
    delimiter ends in a newline (`"\\n"`, `"\\n\\n"`), so a step that does not stopped before its delimiter."""
    return final_answer(step) is not None or not step.endswith("\n")


# A calculator's check of written arithmetic; storage/views/05_equations.sql is the same check in SQL.
_RUN_RE = re.compile(r"[0-9.+\-*/$ \t]+=[ \t]*\$?-?[0-9]+(?:\.[0-9]+)?")
_BINARY_RE = re.compile(r"^[^0-9+\-*/]*?([0-9]+(?:\.[0-9]+)?)[ \t]*([-+*/])[ \t]*([0-9]+(?:\.[0-9]+)?)"
                        r"[ \t]*=[ \t]*(-?[0-9]+(?:\.[0-9]+)?)$")


def equations_hold(text: str) -> bool:
    """Whether every binary equation `a op b = c` that `text` writes holds (op one of + - * /, numbers with
    optional decimals and a leading $; c is compared at its own precision, so 10/3 = 3.33 holds and 10/3 = 3.4
    does not). A run of arithmetic that is not binary (2 * 3 + 4 = 10) is not checked. Reads neither the
    question nor the gold answer: a calculator over what the solution wrote, which a flow may use
    (`sft_filter.equations`); the SQL macro `equations_hold` in the trace store gives the same verdicts."""
    for run in _RUN_RE.findall(text):
        match = _BINARY_RE.match(run.replace("$", ""))
        if match is None:
            continue
        a, op, b, c = match.groups()
        x, y = float(a), float(b)
        if op == "/" and y == 0:
            return False
        result = {"+": x + y, "-": x - y, "*": x * y}[op] if op != "/" else x / y
        decimals = len(c.partition(".")[2])
        if not abs(result - float(c)) < 0.5 * 10 ** -decimals:
            return False
    return True
