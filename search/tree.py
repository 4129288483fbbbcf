"""The search tree as a flat table: one row per node, root = 0, parent = -1.

Fields (one list each, indexed by node id), mapping 1:1 to the trace store's `nodes` table:
  parent    parent node id (-1 for the root)
  depth     steps from the root (root = 0)
  text      the step's text (the root's is empty: the prompt is `Tree.prompt`)
  prior     policy prior among its siblings (TS-LLM: exp(mean log-prob), normalised)
  value     value-model estimate of the state ending at this node (nan if never valued)
  visits    simulations through this node;  value_sum: sum of values backed up through it
  tokens    generated tokens of this step;  logprob: its mean token log-prob
  terminal  whether the state is final (an answer, a dead end or the depth limit)
  answer    the answer a terminal step states, else None
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from problems.steps import final_answer, is_final


@dataclass
class Tree:
    """A flat search tree over reasoning steps for one prompt."""

    prompt: str
    max_depth: int = 16
    parent: list[int] = field(default_factory=lambda: [-1])
    depth: list[int] = field(default_factory=lambda: [0])
    text: list[str] = field(default_factory=lambda: [""])
    prior: list[float] = field(default_factory=lambda: [1.0])
    value: list[float] = field(default_factory=lambda: [math.nan])
    visits: list[int] = field(default_factory=lambda: [0])
    value_sum: list[float] = field(default_factory=lambda: [0.0])
    tokens: list[int] = field(default_factory=lambda: [0])
    logprob: list[float] = field(default_factory=lambda: [0.0])
    terminal: list[bool] = field(default_factory=lambda: [False])
    answer: list[str | None] = field(default_factory=lambda: [None])
    children: list[list[int]] = field(default_factory=lambda: [[]])
    generated_tokens: int = 0  # every sampled candidate's tokens, kept or dropped as a duplicate
    value_states: int = 0  # states scored by the value model

    def __len__(self) -> int:
        return len(self.parent)

    def add(self, parent: int, text: str, *, tokens: int, logprob: float, prior: float = 1.0) -> int:
        """Append a child of `parent`; terminal-ness and answer follow from the step format."""
        node = len(self.parent)
        depth = self.depth[parent] + 1
        self.parent.append(parent)
        self.depth.append(depth)
        self.text.append(text)
        self.prior.append(prior)
        self.value.append(math.nan)
        self.visits.append(0)
        self.value_sum.append(0.0)
        self.tokens.append(tokens)
        self.logprob.append(logprob)
        self.terminal.append(is_final(text) or depth >= self.max_depth)
        self.answer.append(final_answer(text))
        self.children.append([])
        self.children[parent].append(node)
        return node

    def child_with_text(self, node: int, text: str) -> int | None:
        """The child of `node` whose step is `text`, if any."""
        return next((c for c in self.children[node] if self.text[c] == text), None)

    def path(self, node: int) -> list[int]:
        """Node ids from the root to `node`, inclusive."""
        out = [node]
        while self.parent[out[-1]] != -1:
            out.append(self.parent[out[-1]])
        return out[::-1]

    def state(self, node: int) -> str:
        """The prompt followed by every step on the path to `node`."""
        return self.prompt + "".join(self.text[n] for n in self.path(node))

    def q(self, node: int) -> float:
        """Mean backed-up value, or the value-model estimate while unvisited."""
        return self.value_sum[node] / self.visits[node] if self.visits[node] else self.value[node]

    def backup(self, node: int, v: float) -> None:
        """visits += 1 and value_sum += v on every node from `node` up to the root."""
        for n in self.path(node):
            self.visits[n] += 1
            self.value_sum[n] += v

    def path_values(self, node: int) -> list[float]:
        """The value-model scores of the steps on the path to `node` (the root excluded)."""
        return [self.value[n] for n in self.path(node)[1:]]

    def terminals(self) -> list[int]:
        """Terminal nodes that state an answer, in creation order."""
        return [n for n in range(len(self)) if self.terminal[n] and self.answer[n] is not None]

    def best_terminal(self) -> int | None:
        """The answered terminal node with the highest Q (ties: the first created); None if there is none."""
        return max(self.terminals(), key=lambda n: -math.inf if math.isnan(self.q(n)) else self.q(n), default=None)

    def merge(self, other: Tree) -> list[int]:
        """Add `other`'s nodes (a tree of the same prompt) to this one; returns each of its nodes' ids here.

        A node with the same parent and step is the same node: visits and backed-up values add up, the
        first value estimate stays. Token and value counters are taken from `other`, whose counts are
        cumulative (a search that clears its tree carries them over).
        """
        ids = [0]
        for n in range(len(other)):
            if n:
                m = self.child_with_text(ids[other.parent[n]], other.text[n])
                if m is None:
                    m = self.add(ids[other.parent[n]], other.text[n], tokens=other.tokens[n],
                                 logprob=other.logprob[n], prior=other.prior[n])
                    self.value[m], self.terminal[m] = other.value[n], other.terminal[n]
                ids.append(m)
            self.visits[ids[n]] += other.visits[n]
            self.value_sum[ids[n]] += other.value_sum[n]
        self.generated_tokens, self.value_states = other.generated_tokens, other.value_states
        return ids

    def rows(self) -> list[dict]:
        """The nodes as rows of the trace store's `nodes` table (without tree id and correctness)."""
        return [
            {"node_id": i, "parent_id": self.parent[i], "depth": self.depth[i], "step_text": self.text[i],
             "prior": self.prior[i], "value": None if math.isnan(self.value[i]) else self.value[i],
             "visits": self.visits[i], "value_sum": self.value_sum[i], "tokens": self.tokens[i],
             "logprob": self.logprob[i], "terminal": self.terminal[i], "answer": self.answer[i]}
            for i in range(len(self))
        ]


@dataclass
class SearchResult:
    """What a search method returns for one prompt: its tree, final answer and chosen path."""

    tree: Tree
    answer: str | None
    chosen: list[int]

    @property
    def generated_tokens(self) -> int:
        return self.tree.generated_tokens

    @classmethod
    def at(cls, tree: Tree, node: int | None) -> SearchResult:
        """The result that answers with `node` (its path is the chosen one); no answer when None."""
        if node is None:
            return cls(tree=tree, answer=None, chosen=[0])
        return cls(tree=tree, answer=tree.answer[node], chosen=tree.path(node))
