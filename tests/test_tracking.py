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


def test_a_restarted_run_logs_into_the_runs_it_began(tmp_path):
    experiment = tracking.setup(tracking.tracking_uri(tmp_path / "mlflow.db"), tmp_path / "artifacts")
    # the first attempt finishes iteration 0, logs a training, then dies inside iteration 1
    with tracking.resumable_run(experiment, "r") as (parent, logged):
        assert not logged
        with tracking.resumable_run(experiment, "r/iteration-0", parent.info.run_id) as (it0, logged):
            assert not logged
            first_training = tracking.log_training(it0.info.run_id, "r/iteration-0/sft", {"a": 1}, {"x": 1.0},
                                                   [(1, 2.0)])
        # a killed process leaves its run RUNNING
        it1 = mlflow.MlflowClient().create_run(experiment, run_name="r/iteration-1",
                                               tags={"mlflow.parentRunId": parent.info.run_id})
    # the second attempt finds every run it began: a finished iteration says so, the killed one does not
    with tracking.resumable_run(experiment, "r") as (again, _):
        assert again.info.run_id == parent.info.run_id
        with tracking.resumable_run(experiment, "r/iteration-0", again.info.run_id) as (it0_again, logged):
            assert it0_again.info.run_id == it0.info.run_id and logged
            assert tracking.log_training(it0.info.run_id, "r/iteration-0/sft", {"a": 1}, {"x": 1.0},
                                         [(1, 2.0)]) == first_training
        with tracking.resumable_run(experiment, "r/iteration-1", again.info.run_id) as (it1_again, logged):
            assert it1_again.info.run_id == it1.info.run_id and not logged
    client = mlflow.MlflowClient()
    names = sorted(r.info.run_name for r in client.search_runs([experiment]))
    assert names == ["r", "r/iteration-0", "r/iteration-0/sft", "r/iteration-1"]
    assert len(client.get_metric_history(first_training, "loss")) == 1
