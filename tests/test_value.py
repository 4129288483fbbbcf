"""The value model: token-level training rows, real training on the tiny model, and scoring."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from models.training import IGNORE, ValueSettings, _token_labels, train_value


@pytest.fixture(scope="module")
def tokenizer(tiny_policy_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_policy_dir)


def test_plain_rows_train_the_last_token_and_long_rows_keep_their_end(tokenizer):
    enc = _token_labels(tokenizer, {"text": "Q: 5 +3\n5+3=8\n", "target": 1.0}, max_length=4)
    assert len(enc["input_ids"]) == 4 and enc["labels"] == [IGNORE] * 3 + [1.0]


@pytest.mark.parametrize("labels", ["step_end", "every"])
def test_value_training_learns_where_a_step_goes_wrong(tmp_path, tiny_policy_dir, labels):
    """Steps containing a 7 are worth -1, others +1: the trained head must rank states accordingly."""
    from models.value import TransformersValue

    rows = []
    for a in range(2, 40):
        good, bad = f"{a}+1={a + 1}\n", f"{a}+7={a + 7}\n"
        if "7" in good:
            continue
        rows.append({"segments": [[f"Q: {a}\n", None], [good, 1.0]]})
        rows.append({"segments": [[f"Q: {a}\n", None], [good, 1.0], [bad, -1.0]]})
    out = tmp_path / "value"
    history = train_value(tiny_policy_dir, rows, out, ValueSettings(epochs=8, learning_rate=3e-3, batch_size=16,
                                                                    label_tokens=labels))
    assert history["steps"] > 0 and (out / "config.json").is_file()
    value = TransformersValue(str(out))
    good = value.score(["Q: 50\n50+1=51\n", "Q: 60\n60+1=61\n"])
    bad = value.score(["Q: 50\n50+1=51\n51+7=58\n", "Q: 60\n60+1=61\n61+7=68\n"])
    assert min(good) > max(bad)


def test_stop_step_ends_the_bootstrap_early_and_names_its_own_cache(tmp_path, tiny_recipe):
    from models.tiny import bootstrap

    early = replace(tiny_recipe, stop_step=3)
    assert early.digest() != tiny_recipe.digest()
    path = bootstrap(early, tmp_path)
    assert path.parent.name == f"tiny-{early.digest()}"
    assert json.loads((path / "treeflow_recipe.json").read_text())["steps"] == 3


def test_a_recipe_read_from_yaml_names_the_same_cache_as_in_python(tmp_path, tiny_recipe):
    """`epochs=1` in Python and the same recipe read back from YAML (where validation makes it 1.0) are one
    recipe, one cached model."""
    import yaml

    from flows.config import FlywheelConfig, load_config

    assert isinstance(tiny_recipe.sft.epochs, int)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(FlywheelConfig(tiny=tiny_recipe).model_dump(mode="json")))
    loaded = load_config(tmp_path / "c.yaml").tiny
    assert isinstance(loaded.sft.epochs, float) and loaded.digest() == tiny_recipe.digest()
    assert replace(tiny_recipe, error_rate=0.25).digest() != tiny_recipe.digest()


def test_shared_prefix_scoring_equals_scoring_whole_states(tmp_path, tiny_policy_dir):
    """Children of one node are scored on their parent's KV cache: same values, fewer tokens computed."""
    from models.value import TransformersValue

    out = tmp_path / "value"
    rows = [{"text": f"Q: {a}+{a}\n{a}+{a}={2 * a}\n", "target": 1.0 - (a % 3)} for a in range(12)]
    train_value(tiny_policy_dir, rows, out, ValueSettings(max_steps=2, batch_size=8))
    parents = ["Q: 3+4*2\n", "Q: 12-5+9\n12-5=7 (left: +9)\n", "Q: 1+1\n"]
    children = ["3+4=7 (left: *2)\n", "3+4=8 (left: *2)\n", "The answer is 14\n", "7+9=16\n", "7+9=15\n",
                "The answer is 2"]  # the last one stopped without a newline
    states = [p + c for p in parents for c in children]
    whole = TransformersValue(str(out), reuse_prefix_cache=False)
    shared = TransformersValue(str(out))
    assert shared.score(states) == pytest.approx(whole.score(states), abs=1e-5)
    n = lambda text: len(shared.tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    assert whole.scored_tokens == sum(n(s) for s in states)
    assert shared.scored_tokens == sum(n(p) for p in parents) + len(parents) * sum(n(c) for c in children)
    # states that share nothing (roots, different prompts) go the plain way: same tokens, same values
    roots = list(parents)
    shared.scored_tokens = whole.scored_tokens = 0
    assert shared.score(roots) == pytest.approx(whole.score(roots), abs=1e-6)
    assert shared.scored_tokens == whole.scored_tokens


def test_siblings_near_the_position_limit_score_as_whole_states(tmp_path, tiny_policy_dir):
    """A short step scored beside a longer one is padded past its end; near the model's last position
    (128 here) that padding must not index past the position table."""
    from transformers import AutoConfig

    from models.value import TransformersValue

    out = tmp_path / "value"
    train_value(tiny_policy_dir, [{"text": "Q: 1+1\n1+1=2\n", "target": 1.0}] * 8, out,
                ValueSettings(max_steps=1, batch_size=8))
    limit = AutoConfig.from_pretrained(out).n_positions
    long_parent = "Q: " + "1+" * ((limit - 12) // 2) + "1\n"
    states = [long_parent + "2=2\n", long_parent + "3=3\n", "Q: 3+4\n3+4=7 (left: 12345678)\n", "Q: 3+4\n3+4=8\n"]
    shared = TransformersValue(str(out))
    lengths = [len(shared.tokenizer(s, add_special_tokens=False)["input_ids"]) for s in states]
    assert limit - 8 < max(lengths) <= limit  # the long siblings end within a short step of the limit
    whole = TransformersValue(str(out), reuse_prefix_cache=False)
    assert shared.score(states) == pytest.approx(whole.score(states), abs=1e-5)
    assert shared.scored_tokens < whole.scored_tokens  # it did take the shared-prefix path
