"""The step format shared by every task: one line per step, the last one states the answer."""

from __future__ import annotations

import re

ANSWER_PREFIX = "The answer is "
_ANSWER_RE = re.compile(r"The answer is\s*(.+?)\s*$")


def question_prompt(question: str) -> str:
    """The prompt of a word problem (GSM8K, MATH): the question, then the steps that answer it."""
    return f"Question: {question.strip()}\nAnswer:\n"


def final_step(answer: str) -> str:
    """The final step that states `answer`."""
    return f"{ANSWER_PREFIX}{answer}\n"


def final_answer(step: str) -> str | None:
    """The answer a step states, or None when it is not a final step."""
    match = _ANSWER_RE.search(step.strip("\n"))
    if match is None:
        return None
    return match.group(1).rstrip(".").strip()


def is_final(step: str) -> bool:
    """Whether a step ends the solution: it states an answer, or the policy stopped mid-line (EOS)."""
    return final_answer(step) is not None or not step.endswith("\n")
