"""The MLflow model registry: versions, the candidate and champion aliases, the gate, loading by alias."""

from pathlib import Path

import mlflow
import pytest

from models.errors import ModelDirError, resolve_model
from models.hf_policy import TransformersPolicy
from tasks import registry, tracking


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    monkeypatch.setenv("TREEFLOW_MODEL_CACHE", str(tmp_path / "model-cache"))
    experiment = tracking.setup(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts")
    with mlflow.start_run(experiment_id=experiment) as run:
        yield run.info.run_id


def test_versions_aliases_and_the_gate(mlflow_store, tiny_policy_dir):
    client = mlflow.MlflowClient()
    v1 = registry.register(str(tiny_policy_dir), registry.POLICY, {"treeflow.iteration": "1"}, mlflow_store)
    assert registry.champion_value(registry.POLICY) is None  # no champion yet
    assert registry.promote({registry.POLICY: v1}, metric=0.30, reference=0.26, margin=0.0)
    v2 = registry.register(str(tiny_policy_dir), registry.POLICY, {"treeflow.iteration": "2"}, mlflow_store)
    assert (v1, v2) == ("1", "2")
    assert str(client.get_model_version_by_alias(registry.POLICY, "candidate").version) == "2"
    # the gate fails against the champion's recorded 0.30: champion stays on version 1
    reference = registry.champion_value(registry.POLICY)
    assert reference == pytest.approx(0.30)
    assert not registry.promote({registry.POLICY: v2}, metric=0.29, reference=reference, margin=0.0)
    assert str(client.get_model_version_by_alias(registry.POLICY, "champion").version) == "1"
    assert client.get_model_version(registry.POLICY, "2").tags[registry.GATE_TAG] == "0.29"
    # a margin the candidate does not clear keeps it out too; one it clears moves the champion
    assert not registry.promote({registry.POLICY: v2}, metric=0.32, reference=0.30, margin=0.05)
    assert registry.promote({registry.POLICY: v2}, metric=0.36, reference=0.30, margin=0.05)
    assert str(client.get_model_version_by_alias(registry.POLICY, "champion").version) == "2"


def test_registering_says_nothing_on_stderr_but_its_errors_still_raise(mlflow_store, tiny_policy_dir, capfd):
    for iteration in ("1", "2"):
        registry.register(str(tiny_policy_dir), registry.VALUE, {"treeflow.iteration": iteration}, mlflow_store)
    err = capfd.readouterr().err
    assert "already exists" not in err and "Created version" not in err, err
    from mlflow.utils.logging_utils import MLFLOW_LOGGING_STREAM

    with pytest.raises(mlflow.exceptions.MlflowException), registry._quiet_mlflow():
        assert not MLFLOW_LOGGING_STREAM.enabled
        mlflow.MlflowClient().get_registered_model("no-such-model")
    assert MLFLOW_LOGGING_STREAM.enabled  # MLflow's other messages are back on, after an error too


def test_a_registered_version_loads_and_gives_the_same_outputs(mlflow_store, tiny_policy_dir):
    version = registry.register(str(tiny_policy_dir), registry.POLICY, {}, mlflow_store)
    path = resolve_model("models:/treeflow-policy@candidate")
    assert resolve_model(f"models:/treeflow-policy/{version}") == path  # cached: the same directory
    prompts = ["Q: 3+4*2\n", "Q: 12-5+9\n"]
    original = TransformersPolicy.from_pretrained(str(tiny_policy_dir)).propose_steps(prompts, 2, temperature=0.0)
    loaded = TransformersPolicy.from_pretrained(path).propose_steps(prompts, 2, temperature=0.0)
    assert [[c.text for c in r] for r in loaded] == [[c.text for c in r] for r in original]
    assert [[c.logprob for c in r] for r in loaded] == [[c.logprob for c in r] for r in original]
    with pytest.raises(ModelDirError, match="registered model not found"):
        resolve_model("models:/treeflow-policy@champion")


def test_a_snapshot_is_registered_once_even_when_a_restarted_run_registers_it_again(mlflow_store, tiny_policy_dir):
    tags = {"treeflow.run_id": "r", "treeflow.snapshot": "r/1/policy"}
    first = registry.register(str(tiny_policy_dir), registry.POLICY, tags, mlflow_store)
    other = registry.register(str(tiny_policy_dir), registry.POLICY, {**tags, "treeflow.snapshot": "r/2/policy"},
                              mlflow_store)
    again = registry.register(str(tiny_policy_dir), registry.POLICY, tags, mlflow_store)
    client = mlflow.MlflowClient()
    assert (first, other, again) == ("1", "2", "1")
    assert len(client.search_model_versions(f"name = '{registry.POLICY}'")) == 2
    assert client.get_model_version(registry.POLICY, "1").tags["treeflow.snapshot"] == "r/1/policy"
    assert str(client.get_model_version_by_alias(registry.POLICY, "candidate").version) == "1"


def test_a_version_is_logged_as_code_and_loads_in_mlflow_without_unpickling(mlflow_store, tiny_policy_dir):
    registry.register(str(tiny_policy_dir), registry.POLICY, {}, mlflow_store)
    local = mlflow.artifacts.download_artifacts("models:/treeflow-policy@candidate")
    files = {p.relative_to(local).as_posix() for p in Path(local).rglob("*") if p.is_file()}
    assert "python_model.pkl" not in files
    assert any(f.endswith("mlflow_model.py") for f in files)
    assert f"artifacts/{Path(tiny_policy_dir).name}/config.json" in files  # the directory itself
    model = mlflow.pyfunc.load_model("models:/treeflow-policy@candidate")
    with pytest.raises(NotImplementedError, match="resolve_model"):
        model.predict(["Q: 3+4\n"])


def test_a_registered_confidence_value_loads_by_alias_and_scores_the_same(mlflow_store, tiny_policy_dir, tmp_path):
    from models.confidence import ConfidenceValue, fit_confidence_value
    from models.value import load_value

    rows = [{"segments": [[f"Q: {a} +2\n", None], [f"{a}+2={a + 2}\n", 1.0 if a % 3 else -1.0]]}
            for a in range(20)]
    fit_confidence_value(tiny_policy_dir, rows, tmp_path / "v")
    registry.register(str(tmp_path / "v"), registry.VALUE, {}, mlflow_store)
    loaded = load_value("models:/treeflow-value@candidate")
    states = ["Q: 40 +2\n40+2=42\n", "Q: 41 +2\n41+2=44\n"]
    assert isinstance(loaded, ConfidenceValue)
    assert loaded.score(states) == ConfidenceValue(str(tmp_path / "v")).score(states)
