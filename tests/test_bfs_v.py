"""BFS-V on a scripted policy and value: the beam, the finished solutions and the answer, by hand."""

import pytest

from models.fakes import ScriptedPolicy, ScriptedValue
from search import BFSVConfig, bfs_v

P = "Q\n"
POLICY = {
    P: [("a\n", -0.1), ("b\n", -0.5), ("c\n", -0.3)],
    P + "b\n": [("The answer is 3\n", -0.1)],
    P + "c\n": [("d\n", -0.2), ("The answer is 4\n", -0.1)],
    P + "c\nd\n": [("The answer is 5\n", -0.1)],
}
VALUE = {"a\n": 0.2, "b\n": 0.6, "c\n": 0.4, "is 3\n": 0.5, "d\n": 0.9, "is 4\n": 0.1, "is 5\n": 0.8}


def run(prompts=(P,), **overrides):
    policy, value = ScriptedPolicy(POLICY), ScriptedValue(VALUE)
    config = BFSVConfig(**{"k": 3, "beam": 2, **overrides})
    return bfs_v(list(prompts), config, propose=policy.propose_steps, evaluate=value.score), policy


def test_golden_beam():
    # depth 1: a .2, b .6, c .4 -> keep b, c.  depth 2: b -> "3" (.5, finished; duplicates dropped),
    # c -> d (.9), "4" (.1, finished) -> keep d.  depth 3: d -> "5" (.8, finished).  Best finished: "5".
    [r], policy = run()
    tree = r.tree
    assert tree.text == ["", "a\n", "b\n", "c\n", "The answer is 3\n", "d\n", "The answer is 4\n",
                         "The answer is 5\n"]
    assert r.answer == "5" and r.chosen == [0, 3, 5, 7]
    assert r.generated_tokens == 3 * 5 + 6 * 5 + 3 * 5  # every candidate, duplicates included
    assert [len(call) for call in policy.calls] == [1, 2, 1]  # one batched call per depth
    assert tree.visits[0] == 3 and tree.visits[1] == 0  # visits count finished solutions through a node


def test_a_beam_of_one_is_greedy_by_value():
    [r], _ = run(beam=1)
    assert r.answer == "3" and r.chosen == [0, 2, 4]


def test_lockstep_equals_alone():
    together, policy = run([P, "R\n", P])
    for i, prompt in enumerate([P, "R\n", P]):
        [alone], _ = run([prompt])
        assert together[i].tree.rows() == alone.tree.rows()
    # one call per depth for all trees: 3 roots; two beams of two ("R" finished at once); two beams of one
    assert [len(call) for call in policy.calls] == [3, 4, 2]


@pytest.mark.parametrize("budget,tokens,answer", [(15, 15, None), (40, 45, "3"), (1000, 60, "5")])
def test_budget(budget, tokens, answer):
    # a tree stops expanding once it has spent its budget (overshooting by at most the wave that crossed
    # it); 15 buys only the root's expansion: nothing finished, no answer.  40 buys depth 2, where "3"
    # (.5) and "4" (.1) finished.
    [r], _ = run(token_budget=budget)
    assert r.generated_tokens == tokens and r.answer == answer
