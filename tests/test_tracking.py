"""MLflow set-up: each work directory's runs land in its own store, even within one process."""

import os

import mlflow

from tasks import tracking


def test_a_second_workdir_in_the_same_process_gets_its_own_store(tmp_path):
    for name in ("a", "b"):
        uri = tracking.tracking_uri(tmp_path / name / "mlflow.db")
        (tmp_path / name).mkdir()
        experiment = tracking.setup(uri, tmp_path / name / "artifacts")
        with mlflow.start_run(experiment_id=experiment, run_name=f"run-{name}"):
            pass
        assert "MLFLOW_TRACKING_URI" not in os.environ  # MLflow exported it; setup takes it back
    for name in ("a", "b"):
        client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{(tmp_path / name / 'mlflow.db').resolve()}")
        runs = client.search_runs([client.get_experiment_by_name("treeflow").experiment_id])
        assert [r.info.run_name for r in runs] == [f"run-{name}"]


def test_a_teams_tracking_server_setting_is_kept(tmp_path, monkeypatch):
    team = f"sqlite:///{(tmp_path / 'team.db').resolve()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", team)
    assert tracking.tracking_uri(tmp_path / "mlflow.db") == team
    tracking.setup(team, tmp_path / "artifacts")
    assert os.environ["MLFLOW_TRACKING_URI"] == team
