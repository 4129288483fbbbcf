"""Checks a search can put in front of its value model; pure functions of the state text, no I/O."""

from __future__ import annotations

from collections.abc import Iterable

from problems.steps import equations_hold, prompt_splitter
from search.types import Evaluate


def calculator_guard(evaluate: Evaluate | None, prompts: Iterable[str], floor: float = -1.0) -> Evaluate:
    """`evaluate`, except that a state whose steps write an equation that does not hold (`a op b = c`, checked
    by `problems.steps.equations_hold`: a calculator, which reads neither the question nor the gold answer)
    scores `floor`, the lowest value. Only the steps are checked, not the prompt a state starts with (the
    longest of `prompts` it starts with). With `evaluate` None, a state that passes scores 0: the search is
    then guided by the calculator and the policy's priors alone. A slip of computation is the mistake a policy
    makes with confidence, so its own value model, which knows what it knows, does not catch it; the calculator
    does, since checking a step is easier than taking it."""
    steps_of = prompt_splitter(prompts)

    def guarded(states: list[str]) -> list[float]:
        ok = [equations_hold(steps_of(s)) for s in states]
        passed = [s for s, good in zip(states, ok, strict=True) if good]
        values = iter(evaluate(passed) if evaluate is not None and passed else [0.0] * len(passed))
        return [next(values) if good else floor for good in ok]

    return guarded
