"""MCTS-alpha on a scripted policy and value: visit counts, values and the chosen path as derived by hand."""

import json
import math

import pytest

from models.fakes import ScriptedPolicy, ScriptedValue
from search import MCTSAlphaConfig, mcts_alpha
from search.mcts_alpha import puct

P = "Q\n"
POLICY = {
    P: [("a\n", -0.1), ("b\n", -0.5)],
    P + "a\n": [("The answer is 1\n", -0.1), ("The answer is 2\n", -0.2)],
    P + "b\n": [("The answer is 3\n", -0.1)],
}
VALUE = {"a\n": 0.2, "b\n": 0.6, "is 1\n": -1.0, "is 2\n": 1.0, "is 3\n": 0.5}

# Golden tree for simulations=4, k=2, c_base=19652, c_init=3, tau=0, derived by hand:
#  sim 1 expands the root (children a, b with priors .599 / .401 and values .2 / .6); backs up 0.
#  sim 2: N_p=1, explore ~3.0: a = .2+.599*3 = 1.99 > b = .6+.401*3 = 1.80 -> expand a, back up .2.
#  sim 3: N_p=2, explore ~4.24: a = .2+.599*4.24/2 = 1.47 < b = .6+.401*4.24 = 2.30 -> expand b, back up .6
#         (b's two candidates are the same step: one child).
#  sim 4: N_p=3: a = 1.76 > b = 1.64; under a: "1" = -1+.525*3 = .57 < "2" = 1+.475*3 = 2.43 -> terminal
#         "2", back up 1.0.  Move: a (2 visits) over b (1).  Four more simulations from a all end at
#         terminals and back up their values: "2" each time (2.43 vs "1" at most .57+...).
GOLDEN = {
    "text": ["", "a\n", "b\n", "The answer is 1\n", "The answer is 2\n", "The answer is 3\n"],
    "visits": [8, 6, 1, 1, 4, 0],
    "value_sum": [3.8, 3.2, 0.6, -1.0, 4.0, 0.0],
    "chosen": [0, 1, 4],
    "answer": "2",
    "generated_tokens": 30,
}


def run(prompts=(P,), **overrides):
    policy, value = ScriptedPolicy(POLICY), ScriptedValue(VALUE)
    config = MCTSAlphaConfig(**{"simulations": 4, "k": 2, **overrides})
    return mcts_alpha(list(prompts), config, propose=policy.propose_steps, evaluate=value.score), policy, value


def test_golden_tree():
    [result], _, _ = run()
    tree = result.tree
    assert tree.text == GOLDEN["text"]
    assert tree.visits == GOLDEN["visits"]
    assert tree.value_sum == pytest.approx(GOLDEN["value_sum"])
    assert result.chosen == GOLDEN["chosen"] and result.answer == GOLDEN["answer"]
    assert tree.generated_tokens == GOLDEN["generated_tokens"]  # the duplicate "3" counts too
    assert tree.prior[1] == pytest.approx(math.exp(-0.1) / (math.exp(-0.1) + math.exp(-0.5)))
    json.dumps(tree.rows())  # rows are plain data


def test_puct_formula():
    [result], _, _ = run()
    tree = result.tree
    n_p, c = tree.visits[0], 2
    expected = tree.q(c) + tree.prior[c] * (math.log((n_p + 19652 + 1) / 19652) + 3) * math.sqrt(n_p) / (1 + 1)
    assert puct(tree, c, 19652, 3) == pytest.approx(expected)


def test_value_guides_the_choice():
    # Make "a" look bad: with one simulation per move, the first move goes to b instead.
    policy, value = ScriptedPolicy(POLICY), ScriptedValue({**VALUE, "a\n": -1.0})
    [result] = mcts_alpha([P], MCTSAlphaConfig(simulations=3, k=2), propose=policy.propose_steps,
                          evaluate=value.score)
    assert result.tree.text[result.chosen[1]] == "b\n" and result.answer == "3"


def test_subtree_is_kept_after_a_move():
    [result], _, _ = run()
    tree = result.tree
    # the node chosen at depth 1 keeps the visits it had before the move, plus the new simulations
    assert tree.visits[1] == 2 + 4


def test_lockstep_batch_equals_trees_run_alone():
    prompts = [P, "R\n", P]
    together, policy, value = run(prompts)
    for i, prompt in enumerate(prompts):
        [alone], _, _ = run([prompt])
        assert together[i].tree.rows() == alone.tree.rows()
    # one batched policy call per wave covers every tree
    assert max(len(call) for call in policy.calls) == 3


@pytest.mark.parametrize("budget,answer", [(10, None), (20, "2"), (25, "3"), (1000, "2")])
def test_budget_stops_expansion(budget, answer):
    [result], _, _ = run(simulations=50, token_budget=budget)
    # expansion stops once the budget is spent: at most the one expansion (k=2 x 5 tokens) that crossed it
    assert result.generated_tokens <= budget + 2 * 5
    # then the moves follow (visits, Q) through the tree built so far:
    #  10: only the root was expanded; b (Q .6) beats a (.2) and was never expanded -> no answer anywhere;
    #  20: a was expanded and visited once -> a -> "2";  25: b was expanded too (30 tokens) and ties a on
    #  visits -> b by Q -> "3".
    assert result.answer == answer
    assert result.tree.text[result.chosen[-1]] == ("b\n" if answer is None else f"The answer is {answer}\n")


def test_out_of_budget_falls_back_to_the_best_terminal_anywhere():
    # the walk ends at "a" (higher Q, never expanded); the only answer in the tree is the root's other child
    policy = ScriptedPolicy({P: [("a\n", -0.1), ("The answer is 7\n", -0.5)]})
    value = ScriptedValue({"a\n": 0.9, "is 7\n": 0.1})
    [r] = mcts_alpha([P], MCTSAlphaConfig(simulations=3, k=2, token_budget=10), propose=policy.propose_steps,
                     evaluate=value.score)
    assert r.generated_tokens == 10
    assert r.answer == "7" and r.chosen == [0, 2]


def test_sampling_moves_with_temperature_is_seeded():
    a, _, _ = run(tau=1.0, seed=3)
    b, _, _ = run(tau=1.0, seed=3)
    assert a[0].chosen == b[0].chosen


def test_dirichlet_root_noise_mixes_priors_reproducibly():
    [plain], _, _ = run()
    [noisy], _, _ = run(root_noise=True, seed=5)
    [again], _, _ = run(root_noise=True, seed=5)
    kids = noisy.tree.children[0]
    priors = [noisy.tree.prior[c] for c in kids]
    assert priors != [plain.tree.prior[c] for c in kids]
    assert sum(priors) == pytest.approx(1.0)
    assert all(p >= 0.75 * plain.tree.prior[c] - 1e-12 for p, c in zip(priors, kids, strict=True))
    assert priors == [again.tree.prior[c] for c in kids]
