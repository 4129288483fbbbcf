"""The base-policy probe's config: a bootstrap recipe changed on the command line, and a wrong change named."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def probe(load_benchmark):
    return load_benchmark("base_policy")


def test_set_changes_the_bootstrap_recipe_and_with_it_the_cached_directory(probe):
    from flows.config import FlywheelConfig, load_config

    path = str(ROOT / "configs" / "testbed.yaml")
    testbed = load_config(path)
    scarce = probe.policy_config(path, ["tiny.n_demos=10000", "tiny.sft.epochs=8", "tiny.stop_step=null"])
    assert (scarce.tiny.n_demos, scarce.tiny.sft.epochs, scarce.tiny.stop_step) == (10000, 8, None)
    assert scarce.tiny.sft.learning_rate == testbed.tiny.sft.learning_rate  # the recipe's other settings kept
    assert scarce.tiny.digest() != testbed.tiny.digest()
    assert probe.policy_config(path, []).tiny.digest() == testbed.tiny.digest()
    assert probe.policy_config(None, []).tiny == FlywheelConfig().tiny


def test_a_wrong_change_or_one_without_a_config_exits_naming_it(probe):
    with pytest.raises(SystemExit, match="tiny.n_demo"):
        probe.policy_config(str(ROOT / "configs" / "testbed.yaml"), ["tiny.n_demo=10000"])
    with pytest.raises(SystemExit, match="--set tiny.n_demos=10: give the --config"):
        probe.policy_config(None, ["tiny.n_demos=10"])
