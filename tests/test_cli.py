"""Bad input ends with one clear message, exit status 2, and nothing written to the trace store."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flows.cli import main


def _config(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(f"workdir: {tmp_path / 'work'}\n" + text)
    return path


def _fails(tmp_path, capsys, text, pattern):
    assert main(["run", "--config", str(_config(tmp_path, text))]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("treeflow: error:") and len(err.splitlines()) == 1
    assert pattern in err, err
    assert not (tmp_path / "work" / "traces.duckdb").exists()


def test_unknown_config_keys(tmp_path, capsys):
    _fails(tmp_path, capsys, "iteratons: 2\n", "unknown key 'iteratons'")
    _fails(tmp_path, capsys, "search:\n  simulatons: 4\n", "unknown key 'search.simulatons'")
    _fails(tmp_path, capsys, "iterations: many\n", "'iterations': Input should be a valid integer")
    _fails(tmp_path, capsys, "run_id: \"it's mine\"\n", "'run_id': String should match pattern")
    _fails(tmp_path, capsys, "training_search: {method: bfs_v, settings: {simulations: 4}}\n",
           "unknown key 'simulations' of bfs_v")
    _fails(tmp_path, capsys, "training_search: {method: beam}\n", "'training_search.method'")


def test_the_flywheel_trains_on_the_tree_search_it_is_given_under_the_training_cap():
    from flows.config import FlywheelConfig
    from flows.flywheel import training_generator
    from search import BFSVConfig

    config = FlywheelConfig(search={"token_budget": 500, "max_depth": 6}, bfs_v={"k": 4, "beam": 2},
                            training_search={"method": "bfs_v", "settings": {"k": 10, "beam": 1}})
    wide = BFSVConfig(k=10, beam=1, max_depth=6, token_budget=500)
    assert training_generator(config, "search") == ("bfs_v", wide, None)
    assert config.bfs_v == BFSVConfig(k=4, beam=2)  # evaluation's BFS-V keeps its own settings
    mcts = FlywheelConfig(search={"token_budget": 500, "k": 3}, training_search={"settings": {"paths": 2}})
    method, searched, _ = training_generator(mcts, "search")
    assert (method, searched.k, searched.paths, searched.token_budget) == ("mcts_alpha", 3, 2, 500)
    # ReST-EM samples under the same cap
    assert training_generator(config, "rest_em")[2] == [500]


def test_a_setting_can_be_changed_alone_from_the_command_line():
    from flows.config import ConfigError, load_config, parse_overrides

    path = Path(__file__).parents[1] / "configs" / "testbed.yaml"
    base = load_config(path)
    changed = load_config(path, parse_overrides(["sft.epochs=5", "search.k=2", "iterations=1"]))
    assert (changed.sft.epochs, changed.search.k, changed.iterations) == (5.0, 2, 1)
    assert changed.sft.learning_rate == base.sft.learning_rate == 5e-4  # the file's other SFT settings stay
    assert changed.search.simulations == base.search.simulations
    assert base.sft.epochs == 3.0 and load_config(path, {"sft.learning_rate": 1e-3}).sft.epochs == 3.0
    assert load_config(path, {"sft": {"learning_rate": 1e-3}}).sft.epochs == 2.0  # a mapping replaces the file's
    bad = [(["sft.epochz=3"], "unknown key 'sft.epochz'"), (["iterations.x=1"], "'iterations' is not a mapping"),
           (["sft.epochs"], "expected KEY=VALUE"), (["sft.epochs=[3"], "not YAML")]
    for items, message in bad:
        with pytest.raises(ConfigError, match=message):
            load_config(path, parse_overrides(items))


def test_missing_model_directory(tmp_path, capsys):
    _fails(tmp_path, capsys, f"policy:\n  path: {tmp_path / 'no-such-model'}\n", "model directory not found")


def test_non_numeric_gsm8k_answer(tmp_path, capsys):
    data = tmp_path / "gsm8k"
    data.mkdir()
    rows = [{"question": "q1", "answer": "1+1 #### 2"}, {"question": "q2", "answer": "so #### two"}]
    for split in ("train", "test"):
        (data / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    _fails(tmp_path, capsys, f"task:\n  name: gsm8k\n  options: {{source: {data}}}\n",
           f"{data / 'test.jsonl'}:2: field 'answer': gold answer 'two'")


def test_console_script_exits_non_zero(tmp_path):
    path = _config(tmp_path, "bogus: 1\n")
    exe = Path(sys.executable).with_name("treeflow")
    proc = subprocess.run([str(exe), "run", "--config", str(path)], capture_output=True, text=True,
                          env={**os.environ, "TREEFLOW_PROGRESS": "0"}, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("treeflow: error:")


def test_sql_is_read_only(tmp_path, capsys):
    from storage import store

    db = tmp_path / "s.duckdb"
    with store.connect(db) as con:
        store.record_run(con, "r1", "flywheel", {"a": 1})
    assert main(["sql", "SELECT run_id, kind FROM runs", "--store", str(db)]) == 0
    assert "r1" in capsys.readouterr().out
    assert main(["sql", "DELETE FROM runs", "--store", str(db)]) == 2
    assert "read-only" in capsys.readouterr().err.lower()
    with store.connect(db) as con:
        assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 1


@pytest.mark.parametrize("argv", [["sql", "SELECT 1", "--store", "/no/such/store.duckdb"]])
def test_sql_on_a_missing_store(argv, capsys):
    assert main(argv) == 2
    assert "trace store not found" in capsys.readouterr().err


def test_the_testbed_config_is_valid_and_stops_its_bootstrap_early():
    from pathlib import Path

    from flows.config import load_config

    config = load_config(Path(__file__).parents[1] / "configs" / "testbed.yaml")
    assert config.tiny.stop_step is not None and config.iterations == 3
    assert config.evaluation.later_methods == ["greedy", "mcts_alpha"] and config.rest_em.samples == 10


@pytest.mark.skipif(__import__("importlib").util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_the_vllm_backend_without_vllm_is_one_clear_error(tmp_path, capsys):
    _fails(tmp_path, capsys, "policy:\n  backend: vllm\n", "pip install vllm")


def test_a_registered_model_that_does_not_exist_is_one_clear_error(tmp_path, capsys):
    _fails(tmp_path, capsys, 'policy:\n  path: "models:/treeflow-policy@champion"\n', "registered model not found")


def test_the_tiny_policy_and_the_task_must_agree_on_countdown(tmp_path, capsys):
    from flows.config import load_config

    config = load_config(Path(__file__).parents[1] / "configs" / "countdown.yaml")
    assert config.task.name == config.tiny.task_name == "countdown" and config.tiny.error_rate == 0
    _fails(tmp_path, capsys, "task:\n  name: countdown\n", "bootstrapped on arithmetic, not countdown")
    _fails(tmp_path, capsys, "tiny:\n  countdown: {}\n  error_rate: 0\n",
           "bootstrapped on countdown, not arithmetic")
    _fails(tmp_path, capsys, "task:\n  name: countdown\ntiny:\n  countdown: {}\n",
           "'tiny': Value error, error_rate")


def test_the_configuration_reference_is_current_and_a_config_prints_as_it_runs(capsys):
    import yaml

    from flows.config import FlywheelConfig
    from flows.reference import reference

    doc = (Path(__file__).parents[1] / "docs" / "config.md").read_text()
    assert doc == reference(), "docs/config.md is stale: run `treeflow config --reference > docs/config.md`"
    assert main(["config", "--reference"]) == 0 and capsys.readouterr().out == doc
    keys = [line.split("`")[1] for line in doc.splitlines() if line.startswith("| `")]
    assert len(keys) == len(set(keys)) and {"search.c_base", "evaluation.test_sizes", "tiny.sft.learning_rate",
                                            "training_search.settings", "registry.gate_metric"} <= set(keys)
    assert "| `search.c_base` | `19652.0` | PUCT c_base (TS-LLM: 19652) |" in doc  # a dataclass field's comment
    assert main(["config"]) == 0  # the built-in recipe, every default filled in
    printed = FlywheelConfig.model_validate(yaml.safe_load(capsys.readouterr().out))
    assert printed.training_search.method == "bfs_v" and printed.evaluation.test_sizes == {"greedy": 2000}
    assert printed.seed == 0 and printed.sft.epochs == 3.0


def test_a_test_size_below_one_is_named(tmp_path, capsys):
    _fails(tmp_path, capsys, "evaluation:\n  test_sizes: {greedy: 0}\n", "test_sizes.greedy")
    _fails(tmp_path, capsys, "evaluation:\n  test_sizes: {gredy: 10}\n", "evaluation.test_sizes.gredy")
