"""The generator-yield benchmark: its variants, and D+ read back as the flow's SFT reads it."""

from __future__ import annotations

import pytest

from search import Tree
from search.tree import SearchResult

A7 = "The answer is 7\n"


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("generator_yield")


def test_a_variant_is_a_name_a_method_and_json_settings_and_anything_else_is_refused(bench):
    assert bench.parse_variant('p3=mcts_alpha:{"paths": 3, "k": 2}') == ("p3", "mcts_alpha", {"paths": 3, "k": 2})
    assert bench.parse_variant("sc=self_consistency") == ("sc", "self_consistency", {})
    bad_ones = ("mcts_alpha", "x=nope", "x=mcts_alpha:{paths: 3}", "x=mcts_alpha:[3]", "=mcts_alpha",
                "../x=mcts_alpha")
    for bad in bad_ones:
        with pytest.raises(SystemExit, match="--variant"):
            bench.parse_variant(bad)


def test_settings_a_method_does_not_have_are_refused(bench):
    from flows.config import FlywheelConfig

    config = FlywheelConfig()
    assert bench._method_config(config, "mcts_alpha", {"paths": 3}).paths == 3
    assert bench._method_config(config, "self_consistency", {}).n == config.rest_em.samples
    with pytest.raises(SystemExit, match="unknown settings.*'pathz'"):
        bench._method_config(config, "mcts_alpha", {"pathz": 3})


def _tree(paths: list[list[str]]) -> Tree:
    """A tree holding these step sequences (shared prefixes share nodes; the last step states the answer)."""
    tree = Tree("Q")
    for steps in paths:
        node = 0
        for step in steps:
            node = tree.child_with_text(node, step) or tree.add(node, step, tokens=len(step), logprob=-1.0)
            tree.generated_tokens += len(step)
    return tree


def test_d_plus_counts_each_correct_path_once_per_problem_and_a_problem_once_however_many(bench, tmp_path):
    from problems.base import Problem
    from storage.store import write_shard
    from storage.traces import problem_row, result_rows

    one = Problem(id="p1", task="arithmetic", question="3 +4", answer="7", prompt="Q: 3 +4\n")
    two = Problem(id="p2", task="arithmetic", question="2 *3", answer="6", prompt="Q: 2 *3\n")
    # two right answers, one through a wrong step; and a wrong answer
    tree_a = _tree([["3+4=7\n", A7], ["3+4=8\n", A7], ["3+4=8\n", "The answer is 8\n"]])
    tree_b = _tree([["3+4=7\n", A7]])  # the same right path again, in another tree of p1
    tree_c = _tree([["2*3=5\n", "The answer is 5\n"]])  # p2: nothing right
    trees, nodes = [], []
    for tid, (tree, problem) in enumerate([(tree_a, one), (tree_b, one), (tree_c, two)]):
        t, n = result_rows(SearchResult(tree, None, []), problem, tree_id=f"r/{tid}", run_id="r", iteration=1,
                           stage="search", split="train", method="m", policy=None, value_model=None)
        trees.append(t)
        nodes += n
    problems = [problem_row(one), problem_row(two)]
    shard = write_shard(tmp_path / "shard", trees=trees, nodes=nodes, problems=problems)
    out = bench.yield_of(tmp_path / "y.duckdb", str(shard))
    assert out["traces"] == 2  # the two right answers; the repeat in tree_b and the wrong answer 8 are not D+
    assert out["faithful"] == 1  # 3+4=8 reached the right answer through a wrong step
    assert out["solved"] == {"p1": True, "p2": False}
    assert out["tokens"] == sum(t.generated_tokens for t in (tree_a, tree_b, tree_c))
    again = bench.yield_of(tmp_path / "y.duckdb", str(shard))  # the scratch store is rebuilt, not added to
    assert again["traces"] == 2
    checked = bench.yield_of(tmp_path / "y.duckdb", str(shard), equations=True)  # as SFT reads it with the filter
    assert (checked["traces"], checked["faithful"]) == (1, 1)  # 3+4=8 is false: that trace is not trained on


def test_the_real_generators_run_on_the_tiny_policy_and_greedy_answers_match_d_plus(bench, tiny_policy_dir,
                                                                                     tmp_path):
    from flows.config import FlywheelConfig

    config = FlywheelConfig(workdir=str(tmp_path), task={"train_per_iteration": 6}, search={"token_budget": 300},
                            rest_em={"samples": 3})
    greedy = bench._run(config, "g", "greedy", {}, str(tiny_policy_dir), None, 0, 6)
    sampled = bench._run(config, "s", "self_consistency", {}, str(tiny_policy_dir), None, 0, 6)
    assert len(greedy["answered"]) == len(sampled["answered"]) == 6
    import duckdb

    # greedy is one path at temperature 0 whatever the method config's n and temperature: one first step a tree
    with duckdb.connect(str(config.paths["root"] / "generator-yield" / "g.duckdb"), read_only=True) as con:
        firsts = con.execute("SELECT count(*) FROM nodes WHERE parent_id = 0 GROUP BY tree_id").fetchall()
    assert firsts == [(1,)] * 6
    # one greedy path per problem: D+ holds a trace exactly for the problems it answered right
    assert greedy["solved"] == greedy["answered"]
    assert greedy["traces"] == sum(greedy["answered"].values())
    assert 0 <= greedy["faithful"] <= greedy["traces"] and 0 <= sampled["faithful"] <= sampled["traces"]
    assert 0 < sampled["tokens"] <= 6 * (300 + config.policy.max_step_tokens * 3)
    assert sampled["traces"] <= 3 * 6
