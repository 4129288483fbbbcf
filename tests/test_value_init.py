"""`value.init`: the first value model trained from another backbone than the policy (ReST-MCTS* trains a
separate value model), through the real flow."""

import dataclasses

import pytest

from flows.cli import main
from flows.config import ConfigError, EvaluationSettings, FlywheelConfig, TaskSettings, ValueBootstrap, load_config
from models.training import ValueSettings
from search import MCTSAlphaConfig


@pytest.fixture(scope="module")
def other_backbone(tmp_path_factory, tiny_recipe):
    """An untrained LM of another shape than the test policy (4 layers of width 128): 3 layers of width 64."""
    from models.tiny import untrained

    shape = dataclasses.replace(tiny_recipe, n_layer=3, n_embd=64, n_head=2)
    return untrained(shape, tmp_path_factory.mktemp("backbone") / "lm")


def test_the_first_value_model_is_trained_from_value_init(prefect_harness, tmp_path, tiny_recipe,
                                                         tiny_policy_dir, other_backbone):
    from transformers import AutoConfig

    from flows.flywheel import flywheel

    def run(value: ValueBootstrap, name: str) -> str:
        config = FlywheelConfig(
            workdir=str(tmp_path / name), cache_dir=str(tiny_policy_dir.parent.parent), run_id=name, iterations=0,
            batch_size=4, tiny=tiny_recipe, task=TaskSettings(train_per_iteration=4, test_size=2), value=value,
            search=MCTSAlphaConfig(simulations=2, k=2, max_depth=5), value_targets="math_shepherd_hard",
            evaluation=EvaluationSettings(token_budget=40, methods=["mcts_alpha"]),
            value_training=ValueSettings(max_steps=2, batch_size=8), value_holdout=0.0)
        (row,) = flywheel(config)["evaluations"]
        return row["value_model"]

    policy_shape = AutoConfig.from_pretrained(tiny_policy_dir)
    from_init = run(ValueBootstrap(problems=4, rollouts=2, init=str(other_backbone)), "init")
    assert (AutoConfig.from_pretrained(from_init).n_layer, AutoConfig.from_pretrained(from_init).n_embd) == (3, 64)
    assert (policy_shape.n_layer, policy_shape.n_embd) != (3, 64)
    from_policy = run(ValueBootstrap(problems=4, rollouts=2), "policy")
    assert from_policy != from_init  # another backbone, another cached value model
    assert AutoConfig.from_pretrained(from_policy).n_layer == policy_shape.n_layer


def test_value_init_and_value_path_are_exclusive_and_a_missing_init_is_named(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(f"value: {{path: {tmp_path}, init: {tmp_path}}}\n")
    with pytest.raises(ConfigError, match="value.path .* or value.init"):
        load_config(path)
    path.write_text(f"workdir: {tmp_path / 'work'}\nvalue: {{init: {tmp_path / 'no-such-lm'}}}\n")
    assert main(["run", "--config", str(path)]) == 2
    assert "model directory not found" in capsys.readouterr().err
    assert not (tmp_path / "work" / "traces.duckdb").exists()
