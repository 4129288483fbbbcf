"""The flywheel flow end to end on a very small configuration: Prefect, DuckDB, MLflow, TRL for real."""

import json
import subprocess
from html.parser import HTMLParser

import mlflow
import pytest

from flows.cli import main
from flows.config import EvaluationSettings, FlywheelConfig, ORMSettings, TaskSettings, ValueBootstrap
from models.training import RewardSettings, SFTSettings, ValueSettings
from search import MCTSAlphaConfig, SamplingConfig
from storage import store
from tasks.train import held_out_sql

METHODS = ["greedy", "self_consistency", "mcts_alpha", "bfs_v"]
LATER = ["greedy", "mcts_alpha", "best_of_n_orm"]  # evaluated after iteration 1 (`evaluation.later_methods`)
GREEDY_PROBLEMS = 6  # greedy on more test problems than the other methods' 4 (`evaluation.test_sizes`)


@pytest.fixture(scope="module")
def flywheel_run(prefect_harness, tmp_path_factory, tiny_recipe, tiny_policy_dir):
    from flows.flywheel import flywheel

    workdir = tmp_path_factory.mktemp("flywheel")
    config = FlywheelConfig(
        workdir=str(workdir), cache_dir=str(tiny_policy_dir.parent.parent), run_id="t1", iterations=1,
        batch_size=4, tiny=tiny_recipe, task=TaskSettings(train_per_iteration=6, test_size=4),
        value=ValueBootstrap(problems=6, rollouts=2), search=MCTSAlphaConfig(simulations=2, k=2, max_depth=5),
        evaluation=EvaluationSettings(token_budget=60, max_samples=4, methods=METHODS, later_methods=LATER,
                                      test_sizes={"greedy": GREEDY_PROBLEMS}),
        sft=SFTSettings(max_steps=2, batch_size=8), mix_demos=8,
        value_training=ValueSettings(max_steps=2, batch_size=8), value_targets="math_shepherd_hard",
        value_holdout=0.3, orm=ORMSettings(enabled=True, training=RewardSettings(max_steps=2, batch_size=4)))
    result = flywheel(config)
    return config, result["evaluations"], result["iterations"]


def test_table_has_every_method_and_iteration(flywheel_run):
    _, table, _ = flywheel_run
    assert {(r["iteration"], r["method"]) for r in table} == {(0, m) for m in METHODS} | {(1, m) for m in LATER}
    for r in table:
        assert 0 <= r["accuracy"] <= 1 and r["n_problems"] == (GREEDY_PROBLEMS if r["method"] == "greedy" else 4)
        assert (r["value_states_per_problem"] > 0) == (r["method"] in ("mcts_alpha", "bfs_v", "best_of_n_orm"))
        assert r["value_auc"] is None or 0 <= r["value_auc"] <= 1


def test_trees_are_in_duckdb(flywheel_run):
    config, _, _ = flywheel_run
    path = config.paths["store"]
    _, rows = store.query(path, "SELECT stage, iteration, method, count(*) FROM trees GROUP BY ALL ORDER BY ALL")
    expected = [("bootstrap", 0, "self_consistency", 6), ("search", 1, "mcts_alpha", 6)]
    expected += [("eval", i, m, GREEDY_PROBLEMS if m == "greedy" else 4)
                 for i, methods in ((0, METHODS), (1, LATER)) for m in methods]
    assert rows == sorted(expected)
    # every tree has exactly one root, and node rows match what the trees say they generated
    _, bad = store.query(path, "SELECT t.tree_id FROM trees t JOIN nodes n USING (tree_id) GROUP BY t.tree_id "
                               "HAVING count(*) FILTER (WHERE n.parent_id = -1) <> 1")
    assert bad == []
    _, mcts = store.query(path, "SELECT sum(n.visits) FILTER (WHERE n.node_id = 0) FROM nodes n JOIN trees t "
                                "USING (tree_id) WHERE t.method = 'mcts_alpha'")
    assert mcts[0][0] > 0
    _, evals = store.query(path, "SELECT count(*) FROM evaluations WHERE run_id = 't1'")
    assert evals == [(len(METHODS) + len(LATER),)]


def test_mlflow_has_the_iteration_runs_with_metrics(flywheel_run):
    config, table, _ = flywheel_run
    mlflow.set_tracking_uri(f"sqlite:///{config.paths['mlflow'].resolve()}")
    runs = mlflow.search_runs(experiment_names=["treeflow"], output_format="list")
    names = sorted(r.info.run_name for r in runs)
    orm = ["t1/iteration-1/orm"] if _orm_pairs(config) else []
    assert names == ["t1", "t1/iteration-0", "t1/iteration-1", *orm, "t1/iteration-1/sft", "t1/iteration-1/value"]
    it1 = next(r for r in runs if r.info.run_name == "t1/iteration-1")
    expected = next(r["accuracy"] for r in table if r["iteration"] == 1 and r["method"] == "mcts_alpha")
    assert it1.data.metrics["mcts_alpha/accuracy"] == pytest.approx(expected)
    assert "value/train_loss" in it1.data.metrics and it1.data.params["trace_snapshot"] == "t1@1"
    # each training is its own run under its iteration: snapshot, view, target method, settings, loss curve
    value_run = next(r for r in runs if r.info.run_name == "t1/iteration-1/value")
    assert value_run.data.tags["mlflow.parentRunId"] == it1.info.run_id
    params = value_run.data.params
    assert params["trace_snapshot"] == "t1/1/value" and params["view"] == "value_paths"
    assert value_run.data.params["target_method"] == "math_shepherd_hard"
    assert value_run.data.params["value.max_steps"] == "2"
    curve = mlflow.MlflowClient().get_metric_history(value_run.info.run_id, "loss")
    assert len(curve) >= 1 and value_run.data.metrics["train_loss"] == pytest.approx(
        it1.data.metrics["value/train_loss"])


def test_model_directories_are_written(flywheel_run):
    config, _, _ = flywheel_run
    models = config.paths["models"] / "t1"
    for name in ("policy-it1", "value-it1"):
        assert (models / name / "config.json").is_file()
        assert (models / name / "tokenizer.json").is_file()
    from models.value import TransformersValue

    scores = TransformersValue(str(models / "value-it1")).score(["Q: 1 +2 *3 -4\n"])
    assert len(scores) == 1


def test_training_snapshots_say_which_rows_trained_each_model(flywheel_run):
    import json

    config, _, _ = flywheel_run
    path = config.paths["store"]
    _, snaps = store.query(path, "SELECT model_kind, model_uri, query, query_params, n_rows, tree_ids, "
                                 "rows_sha256, extra_rows, source_view FROM training_snapshots "
                                 "WHERE run_id = 't1' AND iteration = 1 ORDER BY model_kind")
    orm = [("orm", "orm_rows")] if _orm_pairs(config) else []
    assert [(s[0], s[-1]) for s in snaps] == [*orm, ("policy", "sft_traces"), ("value", "value_paths")]
    snaps = snaps[len(orm):]
    policy = snaps[0]
    assert policy[1] == str(config.paths["models"] / "t1" / "policy-it1") and policy[7] == config.mix_demos
    # the recorded query gives the rows back, and they hash to the recorded digest
    _, rows = store.query(path, policy[2], json.loads(policy[3]))
    assert len(rows) == policy[4]
    assert store.rows_digest([{"prompt": p, "completion": c} for p, c in rows]) == policy[6]
    _, searched = store.query(path, "SELECT tree_id FROM trees WHERE run_id = 't1' AND stage = 'search'")
    assert set(policy[5]) <= {t for (t,) in searched}
    value = snaps[1]
    assert value[4] > 0 and len(value[5]) > 0
    _, [(version,)] = store.query(path, "SELECT code_version FROM runs WHERE run_id = 't1'")
    assert version.startswith("treeflow 0.")
    _, models = store.query(path, "SELECT model_kind, model_uri, role FROM run_models WHERE run_id = 't1'")
    assert ("policy", policy[1], "trained") in models and ("policy", policy[1], "used") in models


def test_export_and_datasets_give_the_same_rows(flywheel_run, tmp_path, capsys):
    import json

    import pyarrow.parquet as pq

    from storage.datasets import load

    config, _, _ = flywheel_run
    path = str(config.paths["store"])
    _, [(n,)] = store.query(path, "SELECT count(*) FROM prm_targets WHERE method = 'monte_carlo'")
    assert n > 0
    out = tmp_path / "prm.parquet"
    assert main(["export", "prm_targets", "--where", "method = 'monte_carlo'", "--out", str(out),
                 "--store", path]) == 0
    assert pq.read_table(out).num_rows == n
    jsonl = ["export", "prm_targets", "--format", "jsonl", "--out", str(tmp_path / "prm.jsonl"), "--store", path]
    assert main(jsonl) == 0
    lines = (tmp_path / "prm.jsonl").read_text().splitlines()
    dataset = load(path, "prm_targets")
    assert len(lines) == dataset.num_rows > n  # every method's rows, not only monte_carlo's
    assert set(dataset.column_names) >= {"prefix", "step", "method", "target"}
    keys = sorted((r["tree_id"], r["node_id"], r["method"], r["prefix"]) for r in map(json.loads, lines))
    assert keys == sorted(zip(dataset["tree_id"], dataset["node_id"], dataset["method"], dataset["prefix"],
                              strict=True))  # the same rows (in no particular order)
    assert main(["export", "no_such_view", "--out", str(tmp_path / "x.parquet"), "--store", path]) == 2
    assert "no table or view 'no_such_view'" in capsys.readouterr().err
    assert not (tmp_path / "x.parquet").exists()


def test_each_iterations_models_are_registered_and_the_gate_decides_the_champion(flywheel_run):
    config, table, _ = flywheel_run
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{config.paths['mlflow'].resolve()}")
    for name in ("treeflow-policy", "treeflow-value", *(("treeflow-orm",) if _orm_pairs(config) else ())):
        candidate = client.get_model_version_by_alias(name, "candidate")
        assert candidate.tags["treeflow.run_id"] == "t1" and candidate.tags["treeflow.iteration"] == "1"
    greedy = {r["iteration"]: r["accuracy"] for r in table if r["method"] == "greedy"}
    promoted = greedy[1] >= greedy[0]  # no champion before this run: the reference is iteration 0
    champion = client.get_registered_model("treeflow-policy").aliases.get("champion")
    assert (champion is not None) == promoted
    it1 = next(r for r in client.search_runs([client.get_experiment_by_name("treeflow").experiment_id])
               if r.info.run_name == "t1/iteration-1")
    assert it1.data.metrics["registry/promoted"] == float(promoted)
    assert it1.data.metrics["registry/gate_value"] == pytest.approx(greedy[1])


def test_value_training_is_measured_on_trees_it_did_not_see(flywheel_run):
    config, _, iterations = flywheel_run
    assert [it["iteration"] for it in iterations] == [0, 1]
    path = config.paths["store"]
    _, [(trained,)] = store.query(path, "SELECT tree_ids FROM training_snapshots WHERE snapshot_id = 't1/1/value'")
    _, held = store.query(path, "SELECT tree_id FROM trees WHERE run_id = 't1' AND stage <> 'eval' "
                                f"AND {held_out_sql('tree_id', 'run_id')}", [300])
    assert held and not {t for (t,) in held} & set(trained)
    metrics = json.loads((config.paths["models"] / "t1" / "value-it1" / "treeflow_value_metrics.json").read_text())
    assert metrics["heldout_states"] > 0 and metrics["heldout_mse"] >= 0
    assert iterations[1]["value_heldout_mse"] == pytest.approx(metrics["heldout_mse"])
    assert iterations[1]["generated_tokens_per_problem"] > 0 and iterations[1]["traces"] >= 0


def _orm_pairs(config) -> int:
    """Trees of the run's training data with both a right and a wrong answer (what the ORM trains on)."""
    _, [(n,)] = store.query(config.paths["store"], "SELECT count(*) FROM (SELECT tree_id FROM orm_rows WHERE "
                                                   "run_id = 't1' AND stage <> 'eval' GROUP BY tree_id "
                                                   "HAVING bool_or(label) AND NOT bool_and(label))")
    return n


def test_best_of_n_orm_reads_the_orm_once_one_is_trained(flywheel_run):
    """The tiny test policy rarely answers right, so whether an ORM could be trained depends on the data:
    with pairs, Best-of-N ORM reads it; without, it reads the value model, as at iteration 0."""
    config, _, _ = flywheel_run
    models = config.paths["models"] / "t1"
    verifier = models / "orm-it1" if _orm_pairs(config) else models / "value-it1"
    _, rows = store.query(config.paths["store"], "SELECT iteration, value_model FROM trees WHERE run_id = 't1' "
                                                 "AND method = 'best_of_n_orm' GROUP BY ALL")
    assert rows == [(1, str(verifier))]
    assert (models / "orm-it1").exists() == bool(_orm_pairs(config))


def test_rest_em_samples_under_the_same_cap_and_prints_each_iteration(flywheel_run, tmp_path, capsys):
    """`treeflow rest-em`: k samples per training problem cut to the token cap, SFT on the right ones
    (from the base policy every time, `sft_init: base`), the same value refit and evaluation; the
    per-iteration table is printed."""
    import yaml


    config, _, _ = flywheel_run
    data = config.model_dump(mode="json") | {"workdir": str(tmp_path), "run_id": None}
    data["evaluation"]["later_methods"] = ["greedy"]
    data["registry"]["enabled"] = False
    data |= {"rest_em": {"samples": 3, "token_budget": 40}, "sft_init": "base"}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    assert main(["rest-em", "--config", str(tmp_path / "c.yaml"), "--run-id", "r1", "--iterations", "2"]) == 0
    printed = capsys.readouterr().out
    assert "ReST-EM on arithmetic: per iteration" in printed and "value AUC (held out)" in printed
    assert "sibling AUC" in printed
    path = tmp_path / "traces.duckdb"
    _, rows = store.query(path, "SELECT iteration, method, budget, count(*) FROM trees "
                                "WHERE run_id = 'r1' AND stage = 'search' GROUP BY ALL ORDER BY 1")
    n = config.task.train_per_iteration
    assert rows == [(1, "self_consistency", 40, n), (2, "self_consistency", 40, n)]
    # a tree keeps the first samples that fit in 40 tokens, or its first sample alone when that one does not
    _, over = store.query(path, "SELECT t.tree_id, count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM nodes c "
                                "WHERE c.tree_id = n.tree_id AND c.parent_id = n.node_id)) AS leaves "
                                "FROM trees t JOIN nodes n USING (tree_id) WHERE t.run_id = 'r1' AND "
                                "t.stage = 'search' AND t.generated_tokens > 40 GROUP BY 1")
    assert all(leaves == 1 for _, leaves in over)
    _, [(kind,)] = store.query(path, "SELECT kind FROM runs WHERE run_id = 'r1'")
    _, snaps = store.query(path, "SELECT snapshot_id, init_uri FROM training_snapshots WHERE run_id = 'r1' "
                                 "AND model_kind = 'policy' ORDER BY 1")
    _, [(base,)] = store.query(path, "SELECT DISTINCT policy FROM trees WHERE run_id = 'r1' AND iteration = 0")
    assert kind == "rest_em" and snaps == [("r1/1/policy", base), ("r1/2/policy", base)]
    # the bootstrap value model is the flywheel's (the same config names the same cached model)
    _, values = store.query(path, "SELECT snapshot_id FROM training_snapshots WHERE model_kind = 'value'")
    assert sorted(values) == [("r1/1/value",), ("r1/2/value",)]
    # ... and its rollouts are in this run's store as they are in the run that trained it, for the refits
    rollouts = "SELECT problem_id, answer, generated_tokens FROM trees WHERE stage = 'bootstrap' ORDER BY 1"
    assert store.query(path, rollouts)[1] == store.query(config.paths["store"], rollouts)[1]
    assert len(store.query(path, rollouts)[1]) == config.value.problems


def test_iteration_figures_read_back_what_the_flow_returned(flywheel_run, tmp_path):
    from flows.figures import MissingRun, iteration_figures, plot_over_iterations

    config, table, iterations = flywheel_run
    rows = iteration_figures(config.paths["store"], "t1", config.evaluation.token_budget)
    assert [r["iteration"] for r in rows] == [0, 1]
    for r, it in zip(rows, iterations, strict=True):
        for method in ("greedy", "mcts_alpha"):
            assert r[method] == pytest.approx(next(
                t["accuracy"] for t in table if t["iteration"] == r["iteration"] and t["method"] == method))
        assert r["value_heldout_auc"] == it["value_heldout_auc"]
        assert r["value_heldout_sibling_auc"] == it["value_heldout_sibling_auc"]
    assert rows[1]["tokens_per_problem"] == pytest.approx(iterations[1]["generated_tokens_per_problem"])
    assert rows[1]["traces"] == iterations[1]["traces"] and rows[0]["traces"] is None
    png = plot_over_iterations({"flywheel": [rows], "again": [rows, rows]}, tmp_path / "it.png", "t")
    assert png.stat().st_size > 1000
    with pytest.raises(MissingRun, match="no evaluations for run 'nope'"):
        iteration_figures(config.paths["store"], "nope")


def test_generation_fans_out_over_shards_and_gives_the_same_trees(prefect_harness, tmp_path, tiny_policy_dir):
    """Eight problems as one shard, or as four shards two at a time (threads), then one ingest: the same
    trees node for node, since each batch samples from a stream keyed by its problems."""
    from flows.generate import generate, shard_slices
    from models.training import train_value

    assert shard_slices(10, 7, 3) == [(10, 3), (13, 3), (16, 1)]
    value = tmp_path / "value"
    train_value(tiny_policy_dir, [{"text": "Q: 1\n1+1=2\n", "target": 1.0}], value, ValueSettings(max_steps=1))
    kwargs = dict(task_name="arithmetic", task_options={}, split="train", method="mcts_alpha",
                  method_config=MCTSAlphaConfig(simulations=2, k=2, max_depth=4), policy_path=str(tiny_policy_dir),
                  value_path=str(value), temperature=0.7, max_step_tokens=24, max_batch_rows=512, batch_size=2,
                  seed=3, run_id="g", iteration=1, stage="search")
    trees = {}
    for name, size, parallel in (("one", 8, 1), ("four", 2, 2)):
        path = str(tmp_path / f"{name}.duckdb")
        out = generate(kwargs, start=5, count=8, shard=str(tmp_path / name / "search"), shard_size=size,
                       parallelism=parallel, store_path=path)
        assert out["added"] == 8 and len(out["shards"]) == 8 // size
        _, trees[name] = store.query(path, "SELECT tree_id, node_id, parent_id, step_text, visits, value_sum "
                                           "FROM nodes ORDER BY ALL")
        _, [(generated,)] = store.query(path, "SELECT sum(generated_tokens) FROM trees")
        assert out["generated_tokens"] == generated
    assert trees["one"] == trees["four"] and len({t for t, *_ in trees["one"]}) == 8


def test_shards_run_side_by_side_cost_the_wall_time_of_their_slowest_shard_per_wave():
    from flows.generate import summed_costs

    short = {200: {"wall_seconds": 1.0, "policy_calls": 2}}  # a budget only the first and last shard have
    results = [{"costs": {800: {"wall_seconds": w, "policy_calls": 1}, **(short if w < 4 else {})}}
               for w in (3.0, 5.0, 2.0)]
    side_by_side = summed_costs(results, 2)  # waves: (3, 5) then (2)
    assert side_by_side[800] == {"wall_seconds": 7.0, "worker_seconds": 10.0, "policy_calls": 3}
    assert side_by_side[200] == {"wall_seconds": 2.0, "worker_seconds": 2.0, "policy_calls": 4}
    assert summed_costs(results, 1)[800]["wall_seconds"] == 10.0  # one after another: the sum


@pytest.mark.skipif(__import__("importlib").util.find_spec("prefect_ray") is None,
                    reason="prefect-ray is not installed (pip install 'treeflow[ray]')")
def test_generation_on_ray_gives_the_same_trees(prefect_harness, tmp_path, tiny_policy_dir):
    """The shards searched as tasks on a local Ray cluster (prefect-ray), two at a time: the same trees as
    searching them here."""
    from prefect import flow

    from flows.generate import fan_out

    kwargs = dict(task_name="arithmetic", task_options={}, split="train", method="self_consistency",
                  method_config=SamplingConfig(n=3, max_depth=4), policy_path=str(tiny_policy_dir),
                  value_path=None, temperature=0.7, max_step_tokens=24, max_batch_rows=512, batch_size=2, seed=3,
                  run_id="g", iteration=1, stage="search")
    trees = {}
    for runner in ("local", "ray"):
        path = str(tmp_path / f"{runner}.duckdb")
        out = flow(fan_out)(kwargs, start=0, count=6, shard=str(tmp_path / runner / "search"), shard_size=2,
                            parallelism=2, store_path=path, runner=runner)
        assert out["added"] == 6 and len(out["shards"]) == 3
        _, trees[runner] = store.query(path, "SELECT tree_id, node_id, parent_id, step_text FROM nodes "
                                             "ORDER BY ALL")
    assert trees["ray"] == trees["local"] and len({t for t, *_ in trees["ray"]}) == 6


class _Rendered(HTMLParser):
    """The tree nodes (SVG groups) and chosen-path items of a page as Chromium left its DOM."""

    def __init__(self):
        super().__init__()
        self.nodes, self.path_items = {}, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "g" and "node" in attrs.get("class", "").split():
            self.nodes[int(attrs["data-node-id"])] = attrs
        if tag == "li" and "data-node-id" in attrs:
            self.path_items.append(int(attrs["data-node-id"]))


def test_the_tree_viewer_renders_what_the_store_holds(flywheel_run, tmp_path, capsys, chromium):
    """`treeflow view` writes a page; headless Chromium runs its script; the drawn tree has the store's nodes,
    values, visits, Monte Carlo targets, leaves and chosen path."""
    config, _, _ = flywheel_run
    path = config.paths["store"]
    _, [(problem,)] = store.query(path, "SELECT min(problem_id) FROM trees WHERE run_id = 't1' AND stage = 'eval'")
    out = tmp_path / "page" / "tree.html"
    assert main(["view", "t1", problem, "--store", str(path), "--out", str(out)]) == 0
    tree_id = capsys.readouterr().out.split(" -> ")[0]
    assert tree_id == f"t1/1/eval/mcts_alpha/b60/s0/{problem}"  # the last iteration's MCTS-alpha tree
    page = out.read_text()
    assert "<script src" not in page and "<link" not in page and "url(" not in page  # self-contained
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                          f"--user-data-dir={tmp_path / 'profile'}", out.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    rendered = _Rendered()
    rendered.feed(dom)
    _, rows = store.query(path, "SELECT n.node_id, n.value, n.visits, n.terminal, n.correct, m.soft_label "
                                "FROM nodes n LEFT JOIN math_shepherd m USING (tree_id, node_id) "
                                "WHERE n.tree_id = ? ORDER BY 1", [tree_id])
    _, [(chosen,)] = store.query(path, "SELECT chosen_path FROM trees WHERE tree_id = ?", [tree_id])
    assert len(rows) > 1 and sorted(rendered.nodes) == [r[0] for r in rows]
    for node_id, value, visits, terminal, correct, soft in rows:
        drawn = rendered.nodes[node_id]
        assert (drawn["data-value"] == "") == (value is None)
        assert value is None or float(drawn["data-value"]) == pytest.approx(value)
        assert int(drawn["data-visits"]) == visits
        assert soft is None or float(drawn["data-mc-target"]) == pytest.approx(2 * soft - 1)
        classes = drawn["class"].split()
        assert ("leaf-correct" in classes) == bool(terminal and correct)
        assert ("leaf-wrong" in classes) == bool(terminal and not correct)
        assert ("chosen" in classes) == (node_id in chosen)
    assert rendered.path_items == [n for n in chosen if n != 0]
    assert main(["view", "t1", "no-such-problem", "--store", str(path)]) == 2
    assert "run 't1' has no tree for problem 'no-such-problem'" in capsys.readouterr().err


def test_the_confidence_value_model_trains_guides_search_and_is_measured(prefect_harness, tmp_path, tiny_recipe,
                                                                         tiny_policy_dir):
    """`value_model: confidence`: every value model of the run is the LM with its fitted weights, the searches
    score states with it, and its held-out figures are recorded as the head's are. The run trains on BFS-V
    (`training_search`) and still evaluates MCTS-alpha."""
    from flows.flywheel import flywheel
    from models.confidence import CONFIDENCE_FILE

    config = FlywheelConfig(
        workdir=str(tmp_path), cache_dir=str(tiny_policy_dir.parent.parent), run_id="c1", iterations=1,
        batch_size=4, tiny=tiny_recipe, task=TaskSettings(train_per_iteration=4, test_size=4),
        value=ValueBootstrap(problems=6, rollouts=2), search=MCTSAlphaConfig(simulations=2, k=2, max_depth=5),
        evaluation=EvaluationSettings(token_budget=60, max_samples=4, methods=["greedy", "mcts_alpha"]),
        sft=SFTSettings(max_steps=1, batch_size=8), mix_demos=4, value_targets="math_shepherd_hard",
        value_holdout=0.3, value_model="confidence",
        training_search={"method": "bfs_v", "settings": {"k": 3, "beam": 1}})
    result = flywheel(config)
    # the training trees are BFS-V's: one kept state per depth, 3 children each, every state valued
    children = ("SELECT tree_id, parent_id, count(*) AS children, bool_and(value IS NOT NULL) AS valued "
                "FROM nodes WHERE parent_id >= 0 GROUP BY ALL")
    _, searched = store.query(config.paths["store"], "SELECT t.method, max(c.children), bool_and(c.valued) FROM "
                              f"trees t JOIN ({children}) c USING (tree_id) WHERE t.stage = 'search' GROUP BY 1")
    assert searched == [("bfs_v", 3, True)]
    mlflow.set_tracking_uri(f"sqlite:///{config.paths['mlflow'].resolve()}")
    [run] = mlflow.search_runs(experiment_names=["treeflow"], filter_string="attributes.run_name = 'c1'",
                               output_format="list")
    assert run.data.params["generator"] == "bfs_v"
    models = config.paths["models"] / "c1"
    assert (models / "value-it1" / CONFIDENCE_FILE).is_file()
    first = json.loads((models / "value-it1" / CONFIDENCE_FILE).read_text())
    assert first["states"] > 0 and len(first["weights"]) == 5
    mcts = [r for r in result["evaluations"] if r["method"] == "mcts_alpha"]
    assert {r["iteration"] for r in mcts} == {0, 1} and all(r["value_tokens_per_problem"] > 0 for r in mcts)
    heldout = result["iterations"][1]["value_heldout_auc"]
    metrics = json.loads((models / "value-it1" / "treeflow_value_metrics.json").read_text())
    assert metrics["heldout_states"] > 0 and heldout == metrics["heldout_auc"]


def test_the_demo_screen_says_what_the_run_showed_and_its_commands_work(flywheel_run, tmp_path, capsys):
    """`treeflow demo`'s screen and picture from a real run: greedy per iteration with its standard error, every
    method of iteration 0, the champion the registry holds, and commands that run as printed."""
    import io
    import re
    import shlex

    from rich.console import Console

    from flows import demo

    config, table, iterations = flywheel_run
    mlflow.set_tracking_uri(f"sqlite:///{config.paths['mlflow'].resolve()}")
    best = demo.champion()
    aliases = mlflow.MlflowClient().get_registered_model("treeflow-policy").aliases
    assert (best is None) == ("champion" not in aliases)
    result = {"run_id": "t1", "evaluations": table, "iterations": iterations}
    figure = demo.plot(result, tmp_path / "demo.png", "demo")
    assert figure.stat().st_size > 10_000
    console = Console(width=240, record=True, file=io.StringIO())
    demo.print_screen(console, config, result, 75.0, figure, best)
    text = console.export_text()
    for r in table:
        if r["method"] == "greedy":
            start = re.compile(rf"\W*{r['iteration']}\W+{r['n_problems']}\W")
            row = next(line for line in text.splitlines() if start.match(line))
            assert f"{100 * r['accuracy']:.1f}%" in row and f"{100 * demo.standard_error(r):.1f}" in row
    for method in METHODS:
        assert demo.NAMES[method] in text
    if best is None:
        assert "no version became champion" in text
    else:
        assert f"treeflow-policy version {aliases['champion']} is champion (iteration 1 of t1" in text
    assert str(figure) in text and "wall time 1.2 min" in text
    # the tree it points at is one where search found the answer greedy missed, when there is one
    view = shlex.split(re.search(r"treeflow view .*", text).group(0))[2:]
    _, found = store.query(config.paths["store"], "SELECT m.problem_id FROM trees m JOIN trees g USING "
                           "(problem_id) WHERE m.run_id = 't1' AND g.run_id = 't1' AND m.iteration = 0 AND "
                           "g.iteration = 0 AND m.stage = 'eval' AND g.stage = 'eval' AND m.method = 'mcts_alpha' "
                           "AND g.method = 'greedy' AND m.correct AND NOT g.correct ORDER BY 1 LIMIT 1")
    if found:
        assert view[1] == found[0][0]
    view[view.index("--out") + 1] = str(tmp_path / "tree.html")
    assert main(["view", *view]) == 0 and (tmp_path / "tree.html").is_file()
    for query in (demo.SQL_VALUE_VS_LABEL, demo.SQL_QUALITY_VALUES):
        assert f'"{query}"' in text
        assert main(["sql", query, "--store", str(config.paths["store"])]) == 0
    assert "reaches_answer" in capsys.readouterr().out


def test_the_search_gap_is_the_best_guided_method_against_self_consistency_in_standard_errors():
    from flows.demo import search_gap, standard_error

    rows = [{"iteration": 0, "method": m, "accuracy": a, "n_problems": 200}
            for m, a in (("greedy", 0.2), ("self_consistency", 0.2), ("mcts_alpha", 0.4), ("bfs_v", 0.35))]
    gap = search_gap(rows)
    se = (standard_error(rows[1]) ** 2 + standard_error(rows[2]) ** 2) ** 0.5
    assert gap["method"] == "mcts_alpha" and gap["points"] == pytest.approx(20.0)
    assert gap["z"] == pytest.approx(0.2 / se) and 4 < gap["z"] < 5
    assert search_gap([r for r in rows if r["method"] != "self_consistency"]) is None


def test_the_self_training_line_gives_the_rise_in_points_and_standard_errors_where_there_is_spread():
    from flows.demo import self_training_line

    line = self_training_line({"accuracy": 0.224, "n_problems": 2000}, {"accuracy": 0.286, "n_problems": 2000}, 3)
    assert line == "self-training: greedy 22.4% -> 28.6% (+6.2 points, +4.5 standard errors) over 3 iterations"
    # a tiny run whose policy stays at 0 % (or 100 %) has no spread: the points alone, no division by zero
    flat = self_training_line({"accuracy": 0.0, "n_problems": 3}, {"accuracy": 0.0, "n_problems": 3}, 1)
    assert flat == "self-training: greedy 0.0% -> 0.0% (+0.0 points) over 1 iterations"
