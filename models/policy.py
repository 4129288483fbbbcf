"""The narrow protocols search sees: a policy that proposes steps and a value model that scores states."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Candidate:
    """One sampled next step.

    text: the step, ending in "\\n" unless the policy stopped (EOS or the step length limit).
    tokens: generated tokens of this candidate (budget accounting counts all of them).
    logprob: mean token log-probability under the policy (the TS-LLM prior is exp of this).
    """

    text: str
    tokens: int
    logprob: float


class Policy(Protocol):
    """Proposes next steps for a batch of partial solutions."""

    def propose_steps(self, prefixes: list[str], k: int, *, temperature: float | None = None
                      ) -> list[list[Candidate]]:
        """k candidate next steps for every prefix (temperature 0 = greedy; None = the policy's default)."""
        ...


class ValueModel(Protocol):
    """Scores partial or complete solutions: higher means more likely to end correct."""

    def score(self, states: list[str]) -> list[float]:
        """One value per state."""
        ...

    def scorer(self, prompts: list[str]) -> Callable[[list[str]], list[float]]:
        """`score` for states that start with one of `prompts` (a model that reads the steps alone needs to
        know where the prompt ends)."""
        ...
