from search.verifiers import calculator_guard

PROMPT = "Q: 3 +4 =8?\n"  # a question may write a false equation: only the steps are checked


def test_the_calculator_floors_a_slip_and_asks_the_value_model_about_the_rest():
    asked = []

    def value(states):
        asked.append(list(states))
        return [0.5 for _ in states]

    guarded = calculator_guard(value, [PROMPT, "Q:"])
    states = [PROMPT + "3+4=7\n", PROMPT + "3+4=8\n", PROMPT + "3+4=7\n7*2=15\n", PROMPT + "The answer is 7\n"]
    assert guarded(states) == [0.5, -1.0, -1.0, 0.5]
    assert asked == [[states[0], states[3]]]  # the value model never sees a slip
    assert guarded([PROMPT + "3+4=8\n"]) == [-1.0] and len(asked) == 1  # nothing left to ask


def test_without_a_value_model_a_state_that_passes_scores_zero():
    guarded = calculator_guard(None, [PROMPT], floor=-2.0)
    assert guarded([PROMPT, PROMPT + "3+4=7\n", PROMPT + "3+4=9\n"]) == [0.0, 0.0, -2.0]


def test_a_flow_search_with_the_calculator_floors_exactly_the_states_that_write_a_false_equation(
        tmp_path, tiny_policy_dir):
    """The flow's search task, on the real tiny policy, with `calculator` on and no value model: every state it
    scored holds -1 where its steps write a false equation and 0 elsewhere, as the store's own SQL check says."""
    from flows.config import FlywheelConfig, method_configs
    from flows.flywheel import search_kwargs
    from storage import store
    from tasks.search import run_search

    config = FlywheelConfig(workdir=str(tmp_path), calculator=True, bfs_v={"k": 4, "beam": 2})
    out = run_search(**search_kwargs(config, "r", str(tiny_policy_dir), None), split="train", start=0, count=8,
                     method="bfs_v", method_config=method_configs(config)["bfs_v"], iteration=1, stage="search",
                     shard=str(tmp_path / "shard"))
    with store.connect(tmp_path / "s.duckdb") as con:
        store.ingest(con, [out["shard"]])
        rows = con.execute("SELECT n.value, equations_hold(substr(s.state, length(pr.prompt) + 1)) FROM nodes n "
                           "JOIN node_states s USING (tree_id, node_id) JOIN trees t USING (tree_id) "
                           "JOIN problems pr USING (problem_id) WHERE n.value IS NOT NULL").fetchall()
    assert {(v, holds) for v, holds in rows} == {(0.0, True), (-1.0, False)}  # the policy slips, and not always
