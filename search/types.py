"""The callables search is built from: no model objects, no I/O."""

from __future__ import annotations

from collections.abc import Callable

from models.policy import Candidate

#: propose(prefixes, k, temperature=None) -> k candidate next steps per prefix
Propose = Callable[..., list[list[Candidate]]]
#: complete(prompts, n, temperature=None, max_depth=..., ends=...) -> n step sequences per prompt, decoded as far
#: as the policy can in one go (`ends(step_text)`: the path ends at this step); unfinished ones go on step by step
Complete = Callable[..., list[list[list[Candidate]]]]
#: evaluate(states) -> one value per state
Evaluate = Callable[[list[str]], list[float]]
#: canonical(answer) -> the key answers are compared by when voting
Canonical = Callable[[str], str]
