"""`treeflow evaluate`: every method at several budgets and seeds, on the tiny model, for real.

Prefect (the session's test harness), the DuckDB trace store, MLflow on SQLite and the real
transformers policy and value model; the figure is a real PNG.
"""

import json

import mlflow
import pytest
from pydantic import TypeAdapter

from flows.cli import main
from models.tiny import TinyRecipe
from storage import store

METHODS = ["greedy", "self_consistency", "best_of_n_prm", "mcts_alpha", "dfs_v"]
BUDGETS = [30, 90]
SEEDS = [0, 1]


@pytest.fixture(scope="module")
def evaluated(prefect_harness, tmp_path_factory, tiny_recipe, tiny_policy_dir):
    work = tmp_path_factory.mktemp("evaluate")
    config = work / "config.yaml"
    config.write_text(json.dumps({  # JSON is YAML
        "workdir": str(work), "cache_dir": str(tiny_policy_dir.parent.parent), "run_id": "ev",
        "tiny": TypeAdapter(TinyRecipe).dump_python(tiny_recipe, mode="json"), "batch_size": 4,
        "value": {"problems": 4, "rollouts": 2}, "value_training": {"max_steps": 2, "batch_size": 8},
        "search": {"simulations": 2, "k": 2, "max_depth": 5}, "evaluation": {"max_samples": 4},
    }))
    png = work / "curve.png"
    status = main(["evaluate", "--config", str(config), "--budgets", ",".join(map(str, BUDGETS)),
                   "--methods", ",".join(METHODS), "--seeds", ",".join(map(str, SEEDS)), "--test-size", "3",
                   "--plot", str(png)])
    return status, work, png


def test_one_row_per_method_budget_and_seed(evaluated):
    status, work, _ = evaluated
    assert status == 0
    _, rows = store.query(work / "traces.duckdb", "SELECT method, budget, seed, n_problems, tokens_per_problem, "
                                                  "policy_calls FROM evaluations WHERE run_id = 'ev'")
    keys = sorted((m, b, s) for m, b, s, *_ in rows)
    expected = [(m, b, s) for m in METHODS for b in ([None] if m == "greedy" else BUDGETS) for s in SEEDS]
    assert keys == sorted(expected)
    assert all(n == 3 and calls > 0 for *_, n, _, calls in rows)
    for m, b, _, _, tokens, _ in rows:
        if b is not None and m != "mcts_alpha" and m != "dfs_v":
            assert tokens <= b + 24  # whole samples that fit (the first one always: up to one step over)


def test_pooled_methods_cut_one_sample_pool_to_each_budget(evaluated):
    _, work, _ = evaluated
    # for every problem and seed, the Self-Consistency tree at the small budget is a prefix of the large one
    _, rows = store.query(work / "traces.duckdb", """
        SELECT t.problem_id, t.seed, t.budget, list(n.step_text ORDER BY n.node_id)
        FROM trees t JOIN nodes n USING (tree_id)
        WHERE t.run_id = 'ev' AND t.stage = 'eval' AND t.method = 'self_consistency' GROUP BY ALL""")
    by = {(p, s, b): steps for p, s, b, steps in rows}
    for (p, s, b), steps in by.items():
        if b == BUDGETS[0]:
            big = by[(p, s, BUDGETS[1])]
            assert big[:len(steps)] == steps
    # and the seeds differ: different pools
    assert any(by[(p, 0, BUDGETS[1])] != by[(p, 1, BUDGETS[1])] for p, s, b in by if s == 0)


def test_mlflow_has_a_run_per_seed_and_the_figure(evaluated):
    _, work, png = evaluated
    mlflow.set_tracking_uri(f"sqlite:///{(work / 'mlflow.db').resolve()}")
    runs = mlflow.search_runs(experiment_names=["treeflow"], output_format="list")
    assert sorted(r.info.run_name for r in runs) == ["ev", "ev/seed-0", "ev/seed-1"]
    seed0 = next(r for r in runs if r.info.run_name == "ev/seed-0")
    _, [(acc,)] = store.query(work / "traces.duckdb", "SELECT accuracy FROM evaluations WHERE run_id = 'ev' "
                                                      "AND method = 'mcts_alpha' AND budget = 90 AND seed = 0")
    assert seed0.data.metrics["mcts_alpha/b90/accuracy"] == pytest.approx(acc)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    parent = next(r for r in runs if r.info.run_name == "ev")
    artifacts = mlflow.artifacts.list_artifacts(run_id=parent.info.run_id)
    assert [a.path for a in artifacts] == [png.name]


@pytest.mark.parametrize("args,message", [
    (["--methods", "greedy,telepathy"], "evaluation.methods"),
    (["--budgets", "0"], "budgets"),
    (["--budgets", "many"], "--budgets"),
])
def test_bad_arguments_exit_2_before_anything_is_written(tmp_path, capsys, args, message):
    assert main(["evaluate", "--workdir", str(tmp_path / "w"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("treeflow: error:") and message in err, err
    assert not (tmp_path / "w").exists()


def test_plot_redraws_an_evaluation_from_the_store(evaluated, tmp_path, capsys):
    _, work, _ = evaluated
    out = tmp_path / "again.png"
    assert main(["plot", "ev", "--store", str(work / "traces.duckdb"), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    missing = ["plot", "no-such-run", "--store", str(work / "traces.duckdb"), "--out", str(tmp_path / "x.png")]
    assert main(missing) == 2
    assert "no evaluations for run 'no-such-run'" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
