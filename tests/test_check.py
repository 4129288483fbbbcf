"""`--check`: every requirement of a config reported at once, exit 2 when any is missing, nothing written."""

import json
import re
from pathlib import Path

import pytest

from flows.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _rows(out: str) -> dict[str, str]:
    """needs -> ok / MISSING, from the printed table."""
    found = {}
    for line in out.splitlines():
        if m := re.match(r"\W*(ok|MISSING)\W+([a-zA-Z][a-zA-Z ]*?)\s+│", line):
            found[m.group(2)] = m.group(1)
    return found


def test_the_real_recipe_says_what_this_machine_lacks_and_runs_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # its workdir is relative: nothing may appear here
    recipe = ROOT / "configs" / "qwen2.5-1.5b-math500.yaml"
    assert main(["run", "--config", str(recipe), "--check"]) == 2
    out = capsys.readouterr().out
    assert _rows(out) == {"policy": "MISSING", "value model": "MISSING", "test problems": "MISSING",
                          "training problems": "MISSING", "checker": "ok", "device": "MISSING", "vLLM": "MISSING"}
    flat = " ".join(re.sub(r"[│┃]", " ", out).split())  # the table's wrapped cells, read as text
    assert "the hub is off" in flat and "no CUDA GPU here" in flat and "pip install vllm" in flat
    assert "nothing was run" in out and list(tmp_path.iterdir()) == []


def test_a_config_whose_needs_are_all_here_passes_the_check(tmp_path, capsys, tiny_policy_dir):
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"workdir": str(tmp_path / "work"), "value": {"path": str(tiny_policy_dir)},
                                  "task": {"name": "gsm8k", "test_size": 5}}))
    assert main(["evaluate", "--config", str(config), "--check"]) == 0
    out = capsys.readouterr().out
    assert set(_rows(out).values()) == {"ok"} and "gsm8k test: 5 problems read" in out
    assert "everything is here" in out and not (tmp_path / "work").exists()


@pytest.mark.parametrize("policy, value, missing", [
    ({"prompt_format": "chat"}, {}, "prompts and steps"),
    ({}, {"path": "prm:qwen:min:/no/such/prm"}, "value model"),
])
def test_a_format_the_models_cannot_serve_is_named(tmp_path, capsys, tiny_policy_dir, policy, value, missing):
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"workdir": str(tmp_path / "work"), "value": value,
                                  "policy": {"path": str(tiny_policy_dir), **policy}}))
    assert main(["run", "--config", str(config), "--check"]) == 2
    rows = _rows(capsys.readouterr().out)
    assert rows[missing] == "MISSING" and [k for k, v in rows.items() if v == "MISSING"] == [missing]
