"""The MLflow model registry: every trained model is a version; aliases say which to use.

Each trained policy and value model is logged as an MLflow model (the Hugging Face directory as its
artifact, explicit pip requirements so MLflow never resolves packages itself) and registered as a new
version of `treeflow-policy` / `treeflow-value` with the alias `candidate`. The alias `champion` moves
to an iteration's versions only when its evaluation passes the gate: the gate metric (e.g. greedy
accuracy) at least the reference plus a margin. The reference is the current champion's recorded value,
or, while there is no champion, the run's own starting models at iteration 0. Anything that loads a
model takes `models:/NAME@ALIAS` (or `models:/NAME/VERSION`) as well as a directory.
"""

from __future__ import annotations

from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import mlflow
from mlflow import MlflowClient

POLICY, VALUE, ORM = "treeflow-policy", "treeflow-value", "treeflow-orm"
GATE_TAG = "treeflow.gate_value"
#: the MLflow model, as code (no pickle)
MODEL_CODE = Path(__file__).with_name("mlflow_model.py")


def _requirements() -> list[str]:
    out = []
    for package in ("treeflow", "torch", "transformers"):
        try:
            out.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            out.append(package)
    return out


def register(model_dir: str, name: str, tags: dict[str, str], run_id: str) -> str:
    """Log `model_dir` under MLflow run `run_id`, register it as a new version of `name`, alias it
    `candidate`; returns the version. Once per snapshot: a restarted run that registered this snapshot
    before gets that version back."""
    client = MlflowClient()
    snapshot = tags.get("treeflow.snapshot")
    found = [] if snapshot is None else client.search_model_versions(
        f"name = '{name}' and tags.`treeflow.snapshot` = '{snapshot}'")
    if found:
        version_ = str(min(int(v.version) for v in found))
        client.set_registered_model_alias(name, "candidate", version_)
        return version_
    active = mlflow.active_run()
    if active is not None and active.info.run_id == run_id:
        info = _log(model_dir, name)
    else:
        with mlflow.start_run(run_id=run_id, nested=active is not None):
            info = _log(model_dir, name)
    # the version is created with its tags, so a version without its snapshot tag never exists
    with _quiet_mlflow():  # not "Registered model ... already exists" on stderr for every version after the first
        version_ = str(mlflow.register_model(info.model_uri, name, tags=tags).version)
    client.set_registered_model_alias(name, "candidate", version_)
    return version_


@contextmanager
def _quiet_mlflow():
    """MLflow's own event lines (`eprint`) muted for the duration; its errors still raise."""
    from mlflow.utils.logging_utils import MLFLOW_LOGGING_STREAM

    was, MLFLOW_LOGGING_STREAM.enabled = MLFLOW_LOGGING_STREAM.enabled, False
    try:
        yield
    finally:
        MLFLOW_LOGGING_STREAM.enabled = was


def _log(model_dir: str, name: str):
    return mlflow.pyfunc.log_model(name=name.removeprefix("treeflow-"), python_model=str(MODEL_CODE),
                                   artifacts={"model": model_dir}, pip_requirements=_requirements())


def champion_value(name: str) -> float | None:
    """The gate value recorded on the current champion of `name`, if there is one."""
    client = MlflowClient()
    try:
        mv = client.get_model_version_by_alias(name, "champion")
    except mlflow.exceptions.MlflowException:
        return None
    value = mv.tags.get(GATE_TAG)
    return None if value is None else float(value)


def gate(metric: float, reference: float, margin: float) -> bool:
    """Whether a candidate's metric passes: at least the reference plus the margin."""
    return metric >= reference + margin


def promote(versions: dict[str, str], metric: float, reference: float, margin: float) -> bool:
    """Move `champion` to these versions ({name: version}) if the gate passes; record the metric."""
    client = MlflowClient()
    for name, v in versions.items():
        client.set_model_version_tag(name, v, GATE_TAG, str(metric))
    if not gate(metric, reference, margin):
        return False
    for name, v in versions.items():
        client.set_registered_model_alias(name, "champion", v)
    return True
