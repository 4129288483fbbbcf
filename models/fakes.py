"""Scripted fakes of the `Policy` and `ValueModel` protocols, for testing search logic deterministically.

They stand in for a model only in search tests; the real paths are tested on the tiny model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from models.policy import Candidate


@dataclass
class ScriptedPolicy:
    """Proposes scripted steps: `steps[state]` lists (text, mean log-prob) in order.

    A call for k candidates returns the first k entries (cycling when there are fewer); a state with
    no script proposes a final step stating `default_answer`. Every candidate costs `tokens_per_step`.
    """

    steps: dict[str, list[tuple[str, float]]]
    tokens_per_step: int = 5
    default_answer: str = "0"
    calls: list[list[str]] = field(default_factory=list)

    def propose_steps(self, prefixes: list[str], k: int, *, temperature: float | None = None
                      ) -> list[list[Candidate]]:
        self.calls.append(list(prefixes))
        out = []
        for prefix in prefixes:
            script = self.steps.get(prefix) or [(f"The answer is {self.default_answer}\n", 0.0)]
            out.append([Candidate(text=script[i % len(script)][0], tokens=self.tokens_per_step,
                                  logprob=script[i % len(script)][1]) for i in range(k)])
        return out


@dataclass
class ScriptedValue:
    """Values by state: the longest key that the state ends with wins; `default` otherwise."""

    values: dict[str, float]
    default: float = 0.0
    calls: list[list[str]] = field(default_factory=list)

    def score(self, states: list[str]) -> list[float]:
        self.calls.append(list(states))
        out = []
        for s in states:
            match = max((key for key in self.values if s.endswith(key)), key=len, default=None)
            out.append(self.values[match] if match is not None else self.default)
        return out
