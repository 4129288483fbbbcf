"""Greedy and Self-Consistency on a scripted policy, and the aggregation rules."""

import pytest

from models.fakes import ScriptedPolicy
from search import SamplingConfig, greedy, self_consistency
from search.aggregate import majority_vote

P = "Q\n"
# Four samples: two say 7, one says 5 through another route, one says 5 directly.
SCRIPT = {
    P: [("x\n", -0.1), ("y\n", -0.1), ("x\n", -0.1), ("The answer is 5\n", -0.1)],
    P + "x\n": [("The answer is 7\n", -0.2)],
    P + "y\n": [("The answer is 5\n", -0.2)],
}


def test_majority_vote_ties_and_keys():
    assert majority_vote(["3", "4", "4", "3"]) == "3"  # a tie goes to the answer seen first
    assert majority_vote([None, "4", None]) == "4"
    assert majority_vote([None, None]) is None
    assert majority_vote(["07", "7", "8"], key=lambda a: str(int(a))) == "07"


def test_self_consistency_votes_over_a_trie_of_samples():
    policy = ScriptedPolicy(SCRIPT)
    [r] = self_consistency([P], SamplingConfig(n=4), propose=policy.propose_steps)
    tree = r.tree
    assert r.answer == "7"  # 7 (twice via x) vs 5 (once via y, once direct): both twice -> first seen wins
    assert tree.children[0] == [1, 3, 5]  # x, y, direct answer: the two x samples share a node
    assert tree.visits[1] == 2
    assert r.generated_tokens == 4 * 5 + 3 * 5
    assert tree.text[r.chosen[-1]] == "The answer is 7\n"


def test_self_consistency_budget_keeps_the_first_samples():
    policy = ScriptedPolicy(SCRIPT)
    [r] = self_consistency([P], SamplingConfig(n=4, token_budget=20), propose=policy.propose_steps)
    assert r.generated_tokens == 20 and r.tree.visits[0] == 2  # two 10-token samples fit


def test_greedy_asks_for_temperature_zero():
    seen = []

    class Recorder(ScriptedPolicy):
        def propose_steps(self, prefixes, k, *, temperature=None):
            seen.append((k, temperature))
            return super().propose_steps(prefixes, k, temperature=temperature)

    [r] = greedy([P], SamplingConfig(), propose=Recorder(SCRIPT).propose_steps)
    assert r.answer == "7" and set(seen) == {(1, 0.0)}


def test_orm_max_and_orm_vote():
    from search.aggregate import orm_max, orm_vote

    answers, scores = ["3", "4", "4", None], [0.9, 0.5, 0.6, 5.0]
    assert orm_max(answers, scores) == "3"  # the single best-scored solution
    assert orm_vote(answers, scores) == "4"  # 0.5 + 0.6 > 0.9
    assert orm_max(["1", "2"], [0.5, 0.5]) == "1" and orm_vote(["1", "2"], [0.5, 0.5]) == "1"  # ties: first
    assert orm_max([None], [1.0]) is None and orm_vote([], []) is None


def test_step_score_aggregation():
    import pytest

    from search.aggregate import step_score

    assert step_score([0.9, 0.5, 0.8], "last") == 0.8
    assert step_score([0.9, 0.5, 0.8], "min") == 0.5
    assert step_score([0.5, 0.5], "prod") == pytest.approx(0.25)
    with pytest.raises(ValueError, match="unknown step aggregation"):
        step_score([0.5], "mean")


def test_roc_auc_by_hand():
    import pytest

    from models.metrics import roc_auc

    assert roc_auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == pytest.approx(0.75)
    assert roc_auc([0.5, 0.5], [True, False]) == pytest.approx(0.5)  # ties count half
    assert roc_auc([1.0, 2.0], [True, True]) is None


def test_choose_returns_the_solution_each_rule_picks():
    from search.aggregate import choose

    answers, scores = ["3", "4", None, "4", "3"], [0.9, 0.5, 1.0, 0.6, 0.1]
    assert choose(answers, scores, "max") == 0  # the best-scored answered solution
    assert choose(answers, scores, "vote") == 3  # "4" wins 1.1 to 1.0; its best-scored solution
    assert choose(answers, scores, "majority") == 0  # 2-2 tie: the answer seen first, its first solution
    assert choose(["5", "5"], [0.2, 0.2], "vote") == 0  # equal scores within the answer: the first
    assert choose([None, None], [1.0, 1.0], "vote") is None
    assert choose(["07", "7"], [0.1, 0.2], "max", key=lambda a: str(int(a))) == 1
    with pytest.raises(ValueError, match="unknown aggregation"):
        choose(["1"], [1.0], "mean")


def test_paths_a_policy_leaves_unfinished_go_on_a_step_at_a_time():
    policy = ScriptedPolicy(SCRIPT)
    asked = []

    def complete(prompts, n, *, temperature, max_depth, ends):
        """Decodes each path's first step only, as a policy out of positions would; says which steps end."""
        asked.append((n, temperature, max_depth, ends("x\n"), ends("The answer is 5\n"), ends(" \n")))
        return [[[c] for c in cands] for cands in policy.propose_steps(prompts, n)]

    [r] = self_consistency([P], SamplingConfig(n=4, temperature=0.5, max_depth=3), propose=policy.propose_steps,
                           complete=complete)
    assert asked == [(4, 0.5, 3, False, True, True)]
    # the three unfinished paths were continued by proposing their next steps, the finished one was not
    assert policy.calls[1:] == [[P + "x\n", P + "y\n", P + "x\n"]]
    assert r.answer == "7" and r.generated_tokens == 4 * 5 + 3 * 5
    [g] = greedy([P], SamplingConfig(max_depth=1), propose=policy.propose_steps, complete=complete)
    assert g.answer is None and len(policy.calls) == 3  # max_depth 1: "x" is not continued
