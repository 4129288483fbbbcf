"""The flywheel-vs-ReST-EM comparison: its training-search override and its greedy retest on more problems."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compare(load_benchmark):
    return load_benchmark("flywheel_vs_rest_em")


def test_the_comparison_can_change_the_training_search_and_evaluates_mcts_alpha_as_before(compare):
    from flows.config import load_config, method_configs

    config = load_config(ROOT / "configs" / "testbed.yaml")
    wide = compare.with_training_search(config, '{"k": 3, "paths": 5}')
    assert (wide.search.k, wide.search.paths) == (3, 5)
    assert (wide.search.simulations, wide.search.token_budget) == (config.search.simulations, 800)
    assert method_configs(wide)["mcts_alpha"] == method_configs(config)["mcts_alpha"]  # evaluated as before
    assert wide.rest_em == config.rest_em and compare.with_training_search(config, None) is config
    bad_ones = (('{"kk": 3}', "unknown MCTS-alpha settings"), ("[3]", "JSON object"), ("{k: 3}", "not JSON"))
    for bad, match in bad_ones:
        with pytest.raises(SystemExit, match=match):
            compare.with_training_search(config, bad)


def test_a_setting_changed_on_the_command_line_reaches_both_flows_and_a_wrong_key_is_named(compare, tmp_path):
    from flows.config import load_config

    run = {"workdir": str(tmp_path), "seed": 2, "run_id": "x-restem-s2"}
    config = compare.seed_config(str(ROOT / "configs" / "testbed.yaml"), ["sft.epochs=3"], run, '{"k": 3}')
    assert (config.sft.epochs, config.sft.learning_rate, config.seed, config.run_id) == (3, 5e-4, 2, "x-restem-s2")
    assert config.search.k == 3 and config.mix_demos == load_config(ROOT / "configs" / "testbed.yaml").mix_demos
    with pytest.raises(SystemExit, match="sft.epoch"):
        compare.seed_config(str(ROOT / "configs" / "testbed.yaml"), ["sft.epoch=3"], run, None)


def test_each_flow_can_have_its_own_run_prefix(compare):
    both = list(compare.FLOWS)
    assert compare.run_prefixes(["tb"], both) == {"flywheel": "tb", "restem": "tb"}
    assert compare.run_prefixes(["flywheel=old", "restem=tb"], both) == {"flywheel": "old", "restem": "tb"}
    assert compare.run_prefixes(["x", "flywheel=old"], both) == {"flywheel": "old", "restem": "x"}
    assert compare.run_prefixes(["restem=r"], ["restem"]) == {"restem": "r"}
    for bad in (["a", "b"], ["rest=r"], ["flywheel="]):
        with pytest.raises(SystemExit, match="expected one PREFIX and FLOW=PREFIX pairs"):
            compare.run_prefixes(bad, both)


def test_the_retest_decodes_each_policy_once_as_the_flows_do_and_reproduces_their_figure(compare, tiny_policy_dir,
                                                                                         tmp_path):
    from flows.config import FlywheelConfig, method_configs
    from flows.flywheel import search_kwargs
    from models.hf_policy import TransformersPolicy
    from problems import select_problems
    from search import greedy
    from storage import store
    from tasks.search import run_search
    from tasks.store import summarize_task

    config = FlywheelConfig(workdir=str(tmp_path), task={"test_size": 4})
    store_path, policy = str(config.paths["store"]), str(tiny_policy_dir)
    stored = []
    for iteration in (0, 1):  # a flow's greedy evaluations: its test_size problems, one row per iteration
        out = run_search(**search_kwargs(config, "r", policy, None), split="test", start=0, count=4,
                         method="greedy", method_config=method_configs(config)["greedy"], iteration=iteration,
                         stage="eval", shard=str(tmp_path / "shards" / f"it{iteration}"))
        with store.connect(store_path) as con:
            store.ingest(con, [out["shard"]])
        stored.append(summarize_task.fn(store_path, "r", iteration, "greedy", "test", None, 0.0)["accuracy"])

    done: dict = {}
    rows = compare.retest(config, "r", 10, done)
    assert [r["iteration"] for r in rows] == [0, 1]
    assert list(done) == [(policy, 10)]  # both iterations evaluated the same policy: decoded once
    assert sorted(p.name for p in (tmp_path / "retest").iterdir()) == ["answers", "r-it0"]
    # the same answers as decoding the problems directly
    problems = select_problems(config.task.name, "test", 0, 10, config.task.options)
    decoded = greedy([p.prompt for p in problems], method_configs(config)["greedy"],
                     propose=TransformersPolicy.from_pretrained(policy).propose_steps)
    right = {p.id: p.check(r.answer) for p, r in zip(problems, decoded, strict=True)}
    assert done[policy, 10] == right
    for row, accuracy in zip(rows, stored, strict=True):
        assert row["greedy_retest"] == sum(right.values()) / 10
        assert row["greedy_first"] == accuracy  # the flows' own 4 problems give the flows' figure

    # the two accuracies slice the answers as documented: all of them, and the first test_size
    ids = [p.id for p in problems]
    done[policy, 10] = {pid: i in (0, 5, 7) for i, pid in enumerate(ids)}
    again = compare.retest(config, "r", 10, done)
    assert [(r["greedy_retest"], r["greedy_first"]) for r in again] == [(0.3, 0.25)] * 2


def test_the_retest_report_gives_each_seeds_gap_between_the_flows_and_its_own_panel(compare, capsys, tmp_path):
    from PIL import Image

    from flows.figures import ITERATION_PANELS, plot_over_iterations

    def run(*greedy_retest):
        return [{"iteration": i, "greedy": 0.2, "greedy_first": 0.2 if i else 0.25, "greedy_retest": g}
                for i, g in enumerate(greedy_retest)]

    series = {"flywheel": [run(0.2, 0.31), run(0.2, 0.25)], "restem": [run(0.2, 0.28), run(0.2, 0.27)]}
    compare._report_retest(series, 2000, 200)
    out = capsys.readouterr().out
    assert "at 4 of 8 (run, iteration) pairs" in out  # iteration 0 of each run did not reproduce
    assert "flywheel, greedy on 2000 test problems at the last iteration, per seed: 31.0, 25.0 %" in out
    assert "flywheel - restem per seed: +3.0, -2.0 points (mean +0.5, sd 3.5)" in out
    for panels in (ITERATION_PANELS[:1], (*ITERATION_PANELS[:1], ("greedy_retest", "on 2000"))):
        png = plot_over_iterations(series, tmp_path / f"{len(panels)}.png", "t", panels)
        assert Image.open(png).size[0] == 120 * 5 * len(panels)  # one 5-inch panel each, at 120 dpi


def test_greedy_answers_are_kept_across_processes_keyed_by_the_weights(tiny_policy_dir, tmp_path):
    import shutil

    from _common import greedy_answers
    from safetensors.torch import load_file, save_file

    from flows.config import FlywheelConfig

    config = FlywheelConfig(workdir=str(tmp_path))
    policy = shutil.copytree(tiny_policy_dir, tmp_path / "policy")
    first = greedy_answers(config, str(policy), 6, str(tmp_path / "a"))
    assert (tmp_path / "a" / "trees.parquet").is_file()
    assert greedy_answers(config, str(policy), 6, str(tmp_path / "b")) == first  # another process: from the file
    assert not (tmp_path / "b").exists()  # nothing decoded
    weights = load_file(policy / "model.safetensors")
    save_file({k: v * 0 for k, v in weights.items()}, policy / "model.safetensors")  # another policy, same path
    zeroed = greedy_answers(config, str(policy), 6, str(tmp_path / "c"))
    assert (tmp_path / "c" / "trees.parquet").is_file()  # decoded again
    assert len(zeroed) == 6 and not any(zeroed.values())  # a zeroed network gets nothing right
    with pytest.raises(SystemExit, match="not a policy directory"):
        greedy_answers(config, str(tmp_path / "missing"), 6, str(tmp_path / "d"))
