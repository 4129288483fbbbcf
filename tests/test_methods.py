"""Every search method on one scripted problem: golden trees, lockstep batching, budgets, answers.

The scripted policy's greedy path ends wrong ("1"); the right answer ("2") lies under b -> b2 and c,
and the scripted value model knows it. Golden trees (tests/golden/METHOD.json: steps, visits, backed-up
values, the chosen path, answer and tokens) pin each method's exact behaviour; the hand-derived tests
below pin the parts that the method's definition decides. Regenerate the golden files after an
intended change with TREEFLOW_UPDATE_GOLDEN=1 and review the diff.
"""

import json
import math
import os
from pathlib import Path

import pytest

from models.fakes import ScriptedPolicy, ScriptedValue
from search import METHODS, UNGUIDED
from search.aggregate import unit

P = "Q\n"
POLICY = {
    P: [("a\n", -0.1), ("b\n", -0.6), ("c\n", -0.9)],
    P + "a\n": [("The answer is 1\n", -0.1), ("a2\n", -0.3)],
    P + "a\na2\n": [("The answer is 1\n", -0.1)],
    P + "b\n": [("b2\n", -0.2), ("The answer is 5\n", -0.4)],
    P + "b\nb2\n": [("The answer is 2\n", -0.1), ("The answer is 3\n", -0.5)],
    P + "c\n": [("The answer is 2\n", -0.2)],
}
VALUE = {"a\n": 0.1, "b\n": 0.5, "c\n": 0.3, "a2\n": -0.2, "is 1\n": -0.8, "b2\n": 0.7, "is 5\n": -0.5,
         "is 2\n": 0.9, "is 3\n": -0.1}
TOKENS = 5  # per candidate
SETTINGS = {  # small settings so the golden trees stay readable
    "greedy": {}, "self_consistency": {"n": 4}, "best_of_n_orm": {"n": 4}, "best_of_n_prm": {"n": 4},
    "beam_prm": {"n": 4, "width": 2}, "dvts": {"n": 4, "width": 2}, "bfs_v": {"k": 3, "beam": 2},
    "dfs_v": {"k": 2, "paths": 2}, "mcts_alpha": {"simulations": 4, "k": 2},
    "mcts_rollout": {"simulations": 16, "paths": 3, "k": 2}, "mcts_star": {"simulations": 6, "branch": 2},
}
GOLDEN = Path(__file__).parent / "golden"


def run(method, prompts=(P,), **overrides):
    fn, config_cls = METHODS[method]
    policy, value = ScriptedPolicy(POLICY, tokens_per_step=TOKENS), ScriptedValue(VALUE)
    config = config_cls(**{**SETTINGS[method], **overrides})
    results = fn(list(prompts), config, propose=policy.propose_steps,
                 evaluate=None if method in UNGUIDED else value.score)
    return results, policy, value


def snapshot(result) -> dict:
    tree = result.tree
    return {"text": tree.text, "parent": tree.parent, "visits": tree.visits,
            "value": [None if math.isnan(v) else round(v, 6) for v in tree.value],
            "value_sum": [round(v, 6) for v in tree.value_sum], "chosen": result.chosen, "answer": result.answer,
            "generated_tokens": tree.generated_tokens, "value_states": tree.value_states}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_golden_tree(method):
    [result], _, _ = run(method)
    got = snapshot(result)
    path = GOLDEN / f"{method}.json"
    if os.environ.get("TREEFLOW_UPDATE_GOLDEN"):
        path.write_text(json.dumps(got, indent=1) + "\n")
    assert got == json.loads(path.read_text())
    chosen = result.chosen
    assert chosen[0] == 0 and all(result.tree.parent[b] == a for a, b in zip(chosen, chosen[1:], strict=False))
    if result.answer is not None:
        assert result.tree.answer[result.chosen[-1]] == result.answer


@pytest.mark.parametrize("method", sorted(METHODS))
def test_lockstep_batch_equals_each_tree_alone(method):
    prompts = [P, "R\n", P + "b\n", P]
    together, policy, _ = run(method, prompts)
    calls_alone = []
    for i, prompt in enumerate(prompts):
        [alone], alone_policy, _ = run(method, [prompt])
        assert snapshot(together[i]) == snapshot(alone)
        calls_alone.append(len(alone_policy.calls))
    # one batched policy call per wave for all trees (MCTS* adds up to rollout_steps greedy calls a wave)
    per_wave = 1 + METHODS[method][1]().rollout_steps if method == "mcts_star" else 1
    assert len(policy.calls) <= max(calls_alone) * per_wave and len(policy.calls) < sum(calls_alone)


def _one_wave(method: str, config) -> int:
    """The most tokens one tree can generate in one wave of the method (its unit of expansion)."""
    per = {"bfs_v": lambda c: c.beam * c.k, "beam_prm": lambda c: c.n, "dvts": lambda c: c.n,
           "mcts_star": lambda c: c.branch}
    return per.get(method, lambda c: getattr(c, "k", 0))(config) * TOKENS


@pytest.mark.parametrize("budget", [5, 10, 15, 20, 30, 45, 60])
@pytest.mark.parametrize("method", sorted(set(METHODS) - {"greedy"}))
def test_budget_is_never_exceeded_by_more_than_one_expansion(method, budget):
    [result], _, _ = run(method, token_budget=budget)
    config = METHODS[method][1](**SETTINGS[method])
    # sampling methods keep whole samples that fit (always at least one: the greedy-length floor)
    slack = _one_wave(method, config) if method not in ("self_consistency", "best_of_n_orm", "best_of_n_prm") \
        else 15
    assert result.generated_tokens <= budget + slack
    [unbounded], _, _ = run(method)
    assert result.generated_tokens <= unbounded.generated_tokens


@pytest.mark.parametrize("method", ["best_of_n_orm", "best_of_n_prm", "beam_prm", "dvts", "bfs_v", "dfs_v",
                                    "mcts_alpha", "mcts_rollout", "mcts_star"])
def test_value_guided_methods_find_the_answer_greedy_misses(method):
    [greedy], _, _ = run("greedy")
    # MCTS-alpha's PUCT leans on the prior (c_init = 3 against values within [-1, 1]): with the golden
    # file's 4 simulations per move it follows the prior to "1"; 6 let the values overrule it.
    [result], _, _ = run(method, **({"simulations": 6} if method == "mcts_alpha" else {}))
    assert greedy.answer == "1" and result.answer == "2"


def test_best_of_n_scores_samples_as_orm_and_as_prm():
    # 4 samples: a->1, b->b2->2, c->2, a->1 (the scripted policy cycles through its steps)
    [orm], _, value = run("best_of_n_orm")
    assert value.calls == [[P + "a\nThe answer is 1\n", P + "b\nb2\nThe answer is 2\n",
                            P + "c\nThe answer is 2\n"]]
    assert orm.answer == "2" and orm.tree.text[orm.chosen[1]] == "b\n"  # ties on .9: the first sample wins
    [prm], _, value = run("best_of_n_prm")
    assert len(value.calls[0]) == len(prm.tree) - 1  # every step of every sample, scored once
    # min over steps: b path min(.75, .85, .95) = .75 beats c path min(.65, .95) = .65
    assert prm.answer == "2" and prm.tree.text[prm.chosen[1]] == "b\n"
    [prm_c], _, _ = run("best_of_n_prm", step_agg="last", aggregate="max")
    assert prm_c.tree.text[prm_c.chosen[1]] == "b\n"  # last: .95 each, first wins


def test_beam_search_keeps_n_over_width_and_dvts_keeps_one_per_subtree():
    # beam: n=4, width 2: 2 kept, each proposing 2.  Root proposes a, b (c never proposed with k=2).
    [beam], policy, _ = run("beam_prm")
    assert [len(c) for c in policy.calls] == [1, 2, 2]
    assert beam.answer == "2"
    # dvts: 2 subtrees, each proposing 2 at the root (a, b both times) and keeping its best: b, b.
    [tree], policy, _ = run("dvts")
    assert [len(c) for c in policy.calls] == [2, 2, 2]
    assert tree.tree.children[0] == [1, 2] and tree.answer == "2"


def test_dfs_v_prunes_by_ratio_and_value():
    [r], _, _ = run("dfs_v", k=3, paths=1)
    # b (.5) is explored first, then its best child b2 (.7), then "2"
    assert r.answer == "2" and [r.tree.text[n] for n in r.chosen] == ["", "b\n", "b2\n", "The answer is 2\n"]
    [r], _, _ = run("dfs_v", k=3, paths=5, prune_value=0.2)  # a (.1), "1", "5", "3" are never pushed
    assert {r.tree.answer[n] for n in r.tree.terminals() if r.tree.visits[n]} == {"2"}
    [r], policy, _ = run("dfs_v", k=3, paths=5, prune_ratio=0.3)  # only the best child of each node
    assert [len(c) for c in policy.calls] == [1, 1, 1] and r.answer == "2"


def test_mcts_star_blends_rollouts_and_stops_at_the_end_gate():
    # Derived by hand (branch 2, rollout_steps 2, alpha .5, c_uct 1, end_gate .8):
    #  1: expand root -> a .1, b .5; roll b out greedily: b2 (.7), "2" (.9) -> V(b) = .5*.5 + .5*.9 = .7
    #  2: a is unvisited -> expand a -> "1" -.8, a2 -.2; roll a2 out: "1" (-.8) -> V(a2) = -.5 = V(a)
    #  3: UCT b = .7 + sqrt(2 ln 2) > a -> expand b -> b2 .7, "5" -.5; roll b2: "2" (.9) -> V(b2) = .8
    #  4: b again; "5" is unvisited -> back up the terminal: V(b) = (.8 - .5) / 2 = .15
    #  5: UCT a = -.5 + sqrt(2 ln 4) = 1.165 > b = .15 + sqrt(2 ln 4 / 3) = 1.11 -> "1": V(a) = -.65
    #  6: b -> b2 (UCT 2.28) -> expand b2 -> "2" .9, "3" -.1; "2" is terminal (no rollout): V(b2) = .9,
    #     V(b) = (2 * .9 - .5) / 3; "2" passes the end gate, so the search stops after 6 of 50 simulations.
    [r], _, _ = run("mcts_star", simulations=50)
    tree = r.tree
    V = {tree.text[n] + str(tree.depth[n]): tree.q(n) for n in range(len(tree)) if tree.visits[n]}
    assert V["a\n1"] == pytest.approx(-0.65) and V["a2\n2"] == pytest.approx(-0.5)
    assert V["b\n1"] == pytest.approx(1.3 / 3) and V["b2\n2"] == pytest.approx(0.9)
    assert tree.visits[0] == 6 and r.answer == "2"
    assert tree.generated_tokens == 60  # 4 expansions of 2 and 4 rollout steps, 5 tokens each
    [ungated], _, _ = run("mcts_star", simulations=50, end_gate=2.0)
    assert ungated.tree.visits[0] == 50


def test_mcts_alpha_several_paths_reuse_or_reset_the_tree():
    [one], _, _ = run("mcts_alpha")
    [kept], _, _ = run("mcts_alpha", paths=3)
    [reset], _, _ = run("mcts_alpha", paths=3, between_paths="reset")
    assert kept.tree.visits[0] > one.tree.visits[0]
    assert reset.tree.visits[0] < kept.tree.visits[0]  # statistics forgotten between paths
    assert reset.tree.generated_tokens <= kept.tree.generated_tokens + 2 * TOKENS * 3
    [cleared], _, _ = run("mcts_alpha", paths=3, between_paths="clear")
    # every path searched a fresh tree: its expansions were paid for again, and the stored tree is the
    # union of the three, so the root's visits add up over the paths and no step appears twice
    assert cleared.tree.generated_tokens > kept.tree.generated_tokens
    [single], _, _ = run("mcts_alpha", simulations=4)
    assert cleared.tree.visits[0] == 3 * single.tree.visits[0]
    tree = cleared.tree
    assert len({(tree.parent[n], tree.text[n]) for n in range(len(tree))}) == len(tree)
    assert cleared.answer == single.answer and cleared.tree.answer[cleared.chosen[-1]] == cleared.answer


def test_merging_trees_adds_statistics_and_keeps_one_node_per_step():
    from search.tree import Tree

    a, b = Tree("Q\n"), Tree("Q\n")
    x = a.add(0, "x\n", tokens=2, logprob=-0.1)
    a.backup(x, 1.0)
    y = b.add(0, "y\n", tokens=3, logprob=-0.2)
    x2 = b.add(0, "x\n", tokens=2, logprob=-0.1)
    z = b.add(x2, "The answer is 4\n", tokens=4, logprob=-0.3)
    b.backup(z, 0.5)
    b.generated_tokens = 9
    ids = a.merge(b)
    assert a.text == ["", "x\n", "y\n", "The answer is 4\n"] and ids == [0, 2, 1, 3]
    assert a.visits == [2, 2, 0, 1] and a.value_sum == pytest.approx([1.5, 1.5, 0.0, 0.5])
    assert a.answer[3] == "4" and a.terminal[3] and a.generated_tokens == 9 and y == 1


def test_value_weighted_aggregation_maps_values_to_unit_scores():
    assert unit(-1.0) == 0.0 and unit(1.0) == 1.0 and unit(0.0) == 0.5 and unit(3.0) == 1.0
