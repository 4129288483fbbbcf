"""MLflow tracking: a local SQLite store by default; runs are addressed by id, never by global state."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

EXPERIMENT = "treeflow"


def tracking_uri(default_sqlite: Path) -> str:
    """$MLFLOW_TRACKING_URI when set (a team's server), else a SQLite file in the work directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{default_sqlite.resolve()}"


def setup(tracking_uri: str | None, artifacts: Path) -> str:
    """Point MLflow at `tracking_uri` (default: the workdir's SQLite file); return the experiment id."""
    import mlflow

    point_at(tracking_uri)
    exp = mlflow.get_experiment_by_name(EXPERIMENT)
    if exp is None:
        # a tracking server keeps artifacts where it was told to (its proxy serves them to every machine);
        # a local store keeps them in the work directory
        remote = (tracking_uri or "").startswith(("http://", "https://"))
        location = None if remote else artifacts.resolve().as_uri()
        return mlflow.create_experiment(EXPERIMENT, artifact_location=location)
    return exp.experiment_id


def point_at(tracking_uri: str | None) -> None:
    """Make `tracking_uri` this process's MLflow store (for runs and the model registry)."""
    import mlflow

    team = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(tracking_uri)
    # MLflow also exports the URI as $MLFLOW_TRACKING_URI, which `tracking_uri` reads as a team's server:
    # put it back, or every later run in this process (the next seed, the next work directory) would
    # log to this one's store.
    if team is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = team


def log_metrics(run_id: str, metrics: dict[str, float], step: int | None = None) -> None:
    """Log numeric metrics to a run by id (None values are skipped)."""
    from mlflow import MlflowClient

    client = MlflowClient()
    for key, value in metrics.items():
        if value is not None:
            client.log_metric(run_id, key, float(value), step=step or 0)


def log_curve(run_id: str, key: str, points: list[tuple[int, float]]) -> None:
    """A loss curve as one metric with steps."""
    from mlflow import MlflowClient

    client = MlflowClient()
    for step, value in points:
        client.log_metric(run_id, key, float(value), step=int(step))


def log_training(parent_run_id: str, name: str, params: dict, metrics: dict[str, float],
                 curve: list[tuple[int, float]]) -> str:
    """One finished training as its own MLflow run nested under `parent_run_id`; returns its id. Logged once:
    a restarted treeflow run finds the one it logged before (and replaces one it did not finish logging)."""
    from mlflow import MlflowClient

    client = MlflowClient()
    parent = client.get_run(parent_run_id)
    if (found := find_run(parent.info.experiment_id, name, parent_run_id)) is not None:
        if found.info.status == "FINISHED":
            return found.info.run_id
        client.delete_run(found.info.run_id)
    run = client.create_run(parent.info.experiment_id, run_name=name, tags={"mlflow.parentRunId": parent_run_id})
    run_id = run.info.run_id
    for key, value in params.items():
        client.log_param(run_id, key, value)
    log_metrics(run_id, metrics)
    log_curve(run_id, "loss", curve)
    client.set_terminated(run_id)
    return run_id


def find_run(experiment_id: str, name: str, parent_run_id: str | None = None):
    """The run called `name` (under `parent_run_id`, or at the top level) that an earlier attempt of the same
    treeflow run started, if any (run names are built from run ids, which hold no quotes)."""
    from mlflow import MlflowClient

    query = f"attributes.run_name = '{name}'"
    if parent_run_id is not None:
        query += f" and tags.mlflow.parentRunId = '{parent_run_id}'"
    runs = MlflowClient().search_runs([experiment_id], query, order_by=["attributes.start_time ASC"])
    runs = [r for r in runs if parent_run_id is not None or "mlflow.parentRunId" not in r.data.tags]
    return runs[0] if runs else None


@contextmanager
def resumable_run(experiment_id: str, name: str,
                  parent_run_id: str | None = None) -> Iterator[tuple[object, bool]]:
    """Start MLflow run `name` (nested under `parent_run_id`), or resume the one an earlier attempt of the same
    treeflow run started, so a restarted run logs into the runs it began. Yields (active run, whether that
    run had already finished: its figures are logged, do not log them twice)."""
    import mlflow

    found = find_run(experiment_id, name, parent_run_id)
    if found is not None:
        ctx = mlflow.start_run(run_id=found.info.run_id, nested=parent_run_id is not None)
    else:
        ctx = mlflow.start_run(experiment_id=experiment_id, run_name=name, nested=parent_run_id is not None,
                               parent_run_id=parent_run_id)
    with ctx as run:
        yield run, found is not None and found.info.status == "FINISHED"
