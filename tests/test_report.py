"""`treeflow report` end to end on a tiny configuration: every method at two budgets over two seeds, the
flywheel against ReST-EM, calibration, tree pages, the markdown, MLflow and the Prefect artifact."""

import contextlib
import io
from pathlib import Path

import pytest

from flows.config import EvaluationSettings, FlywheelConfig, RegistrySettings, TaskSettings, ValueBootstrap
from flows.report import METHODS, reading
from models.training import SFTSettings, ValueSettings
from search import MCTSAlphaConfig
from storage import store

ROOT = Path(__file__).resolve().parents[1]


def test_the_reading_calls_a_win_only_beyond_the_spread():
    curves = {"mcts_alpha": [(200, 150, 30.0, 2.0, 3), (800, 600, 40.0, 1.0, 3)],
              "self_consistency": [(200, 200, 27.0, 1.0, 3), (800, 800, 45.0, 2.0, 3)],
              "greedy": [(None, 50, 20.0, 0.0, 3)]}
    assert reading(curves, [200, 800]) == [
        "- 200 tokens: mcts_alpha 30.0 ± 2.0 % against self_consistency 27.0 ± 1.0 %: search wins",
        "- 800 tokens: mcts_alpha 40.0 ± 1.0 % against self_consistency 45.0 ± 2.0 %: sampling wins",
        "- greedy decoding (20.0 ± 0.0 % on 50 tokens) is below the best method at 200, 800 tokens"]
    curves["mcts_alpha"][0] = (200, 150, 28.0, 2.0, 3)
    assert reading(curves, [200])[0].endswith("level (within the spread over seeds)")
    curves["greedy"] = [(None, 50, 43.0, 0.0, 3)]
    assert reading(curves, [200, 800])[-1] == (
        "- greedy decoding (43.0 ± 0.0 % on 50 tokens) is above the best method at 200 tokens; "
        "level with the best method at 800 tokens")


@pytest.fixture(scope="module")
def tiny_report(prefect_harness, tmp_path_factory, tiny_recipe, tiny_policy_dir):
    """`treeflow report` as a user runs it, on a tiny configuration written as YAML."""
    import yaml

    from flows.cli import main

    workdir = tmp_path_factory.mktemp("report")
    config = FlywheelConfig(
        workdir=str(workdir), cache_dir=str(tiny_policy_dir.parent.parent), iterations=1, batch_size=4,
        tiny=tiny_recipe, task=TaskSettings(train_per_iteration=4, test_size=4),
        value=ValueBootstrap(problems=4, rollouts=2), search=MCTSAlphaConfig(simulations=2, k=2, max_depth=5),
        evaluation=EvaluationSettings(token_budget=60, max_samples=4, methods=["greedy", "mcts_alpha"]),
        sft=SFTSettings(max_steps=2, batch_size=8), mix_demos=8,
        value_training=ValueSettings(max_steps=2, batch_size=8), registry=RegistrySettings(enabled=False))
    path = workdir / "tiny.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["report", "--config", str(path), "--seeds", "0,1", "--budgets", "30,60", "--prefix", "rep",
                     "--out", str(workdir / "out")]) == 0
    line = next(x for x in printed.getvalue().splitlines() if x.startswith("report: "))
    return config, {"mlflow_run": line.split("MLflow run ")[1].split(";")[0], "line": line}


def test_the_report_writes_every_figure_and_the_tables_behind_them(tiny_report):
    config, result = tiny_report
    out = config.paths["root"] / "out"
    for name in ("accuracy-vs-tokens.png", "flywheel-vs-rest-em.png", "calibration.png", "report.md"):
        assert (out / name).stat().st_size > 0, name
    assert sorted(p.name for p in (out / "trees").glob("*.html")) == sorted(
        f"{p}.html" for p in ("arith-test-0-0", "arith-test-0-1", "arith-test-0-2"))  # the first three
    text = (out / "report.md").read_text()
    for method in METHODS:
        assert f"| {method} |" in text
    # the table's cell for one method and budget is the mean over the seeds' evaluation rows in the store
    _, [(acc,)] = store.query(config.paths["store"], "SELECT 100 * avg(accuracy) FROM evaluations WHERE run_id "
                                                     "= 'rep-methods' AND method = 'mcts_alpha' AND budget = 60")
    assert text.split("| mcts_alpha |")[1].splitlines()[0].split("|")[1].strip().startswith(f"{acc:.1f} ± ")
    assert "At iteration 1 the flywheel's greedy accuracy ends" in text
    _, [(nodes,)] = store.query(config.paths["store"], """
        SELECT count(*) FROM nodes n JOIN trees t USING (tree_id) JOIN math_shepherd m USING (tree_id, node_id)
        WHERE t.run_id IN ('rep-flywheel-s0', 'rep-flywheel-s1') AND t.stage = 'eval' AND n.node_id <> 0
          AND n.value IS NOT NULL""")
    # the calibration table covers every node of the flywheel's evaluation trees the value model scored
    table = text.split("## Value model calibration")[1].split("## Trees")[0]
    rows = [line.split("|")[1:4] for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert [int(i) for i, _, _ in rows[1:]] == [0, 1] and sum(int(n) for *_, n in rows[1:]) == nodes
    assert all(0 <= float(e) <= 1 for _, e, _ in rows[1:])
    assert result["line"].endswith(" min") and "wall time" in result["line"]  # it prints its wall time


def test_the_report_is_in_mlflow_and_a_prefect_artifact(tiny_report):
    import mlflow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    config, result = tiny_report
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{config.paths['mlflow'].resolve()}")
    names = {f.path for f in client.list_artifacts(result["mlflow_run"], "report")}
    assert {"report/report.md", "report/accuracy-vs-tokens.png", "report/calibration.png", "report/trees"} <= names
    with get_client(sync_client=True) as prefect:
        by_key = ArtifactFilter(key=ArtifactFilterKey(any_=["treeflow-report"]))
        [artifact] = prefect.read_artifacts(artifact_filter=by_key, limit=1)
    assert artifact.type == "markdown"
    assert artifact.data == (config.paths["root"] / "out" / "report.md").read_text()


def test_quick_is_the_testbed_made_smaller_and_a_missing_config_is_one_error(tmp_path, capsys):
    from flows.cli import main
    from flows.config import load_config, report_config

    testbed = load_config(ROOT / "configs" / "testbed.yaml")
    quick = report_config(None, str(tmp_path), quick=True)
    assert (quick.iterations, quick.task.test_size, quick.task.train_per_iteration, quick.value.problems,
            quick.value_training.max_steps, quick.registry.enabled) == (1, 40, 64, 128, 50, False)
    assert quick.value_training.learning_rate == testbed.value_training.learning_rate
    assert quick.tiny == testbed.tiny and quick.search == testbed.search and quick.workdir == str(tmp_path)
    assert report_config(None, str(tmp_path), quick=False).task == testbed.task
    assert main(["report", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml: config file not found" in capsys.readouterr().err
