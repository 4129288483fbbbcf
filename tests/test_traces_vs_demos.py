"""benchmarks/traces_vs_demos.py: its two arms are the flow's first SFT and the testbed's first control."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def probe(load_benchmark):
    return load_benchmark("traces_vs_demos")


def test_the_arms_are_the_flows_first_sft_and_the_testbeds_control(probe, load_benchmark, tiny_recipe, tmp_path):
    from flows.config import FlywheelConfig
    from models.tiny import demonstrations
    from tasks.train import mixed_demos

    testbed = load_benchmark("testbed")
    config = FlywheelConfig(workdir=str(tmp_path), tiny=tiny_recipe, seed=1, mix_demos=5)
    traces = [{"prompt": f"p{i}", "completion": f"c{i}"} for i in range(3)]
    demos = demonstrations(tiny_recipe)
    arms = probe.arm_rows(config, traces, config.mix_demos)
    assert arms["traces"][:3] == traces and len(arms["traces"]) == len(arms["demos"]) == 8
    assert arms["traces"][3:] == mixed_demos(tiny_recipe, config.sft, 1, 5)  # what the flow's SFT mixes in
    assert arms["demos"] == testbed.control_rows(config, demos, 1, 8)  # what the testbed's control trains on
    assert all(row in demos for row in arms["traces"][3:] + arms["demos"])
    no_mix = probe.arm_rows(config, traces, 0)
    assert no_mix == {"traces": traces, "demos": testbed.control_rows(config, demos, 1, 3)}
    # another seed: the flow mixes in the same demonstrations (its stream is the SFT seed), the control others
    other = probe.arm_rows(config.model_copy(update={"seed": 2}), traces, 5)
    assert other["traces"] == arms["traces"] and other["demos"] != arms["demos"]


def test_a_run_without_traces_is_named(probe, tmp_path):
    from flows.config import FlywheelConfig
    from storage import store

    config = FlywheelConfig(workdir=str(tmp_path), run_id="none")
    with store.connect(str(config.paths["store"])):
        pass
    with pytest.raises(SystemExit, match=r"traces.duckdb: no iteration-1 traces of run none"):
        probe.train_arms(config, 0, 1.0)
