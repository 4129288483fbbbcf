"""The shipped bootstrap policy: it is what the testbed recipe makes, it is verified before use, and a retrain
is compared with it file by file."""

import json
import shutil

import pytest

from flows.config import default_config_path, load_config
from models import tiny
from models.errors import ModelDirError


@pytest.fixture(scope="module")
def recipe():
    return load_config(default_config_path()).tiny


def test_the_testbed_recipe_is_shipped_and_its_files_are_the_manifests(recipe):
    source = tiny.shipped(recipe)
    assert source is not None and source.name == f"tiny-{recipe.digest()}"  # named by the recipe's hash
    tiny.verify(source)
    record = json.loads((source / "treeflow_recipe.json").read_text())
    assert record["digest"] == recipe.digest()
    assert record["recipe"] == json.loads(json.dumps(tiny.recipe_record(recipe)))
    assert record["steps"] == tiny.bootstrap_steps(recipe) == 1100
    config = json.loads((source / "config.json").read_text())
    assert (config["n_layer"], config["n_embd"], config["n_head"], config["n_positions"]) == (
        recipe.n_layer, recipe.n_embd, recipe.n_head, recipe.n_positions)


def test_the_shipped_tokenizer_is_the_one_the_recipe_trains(recipe):
    from transformers import AutoTokenizer

    from models.tokenizer import train_tokenizer

    texts = [r["prompt"] + r["completion"] for r in tiny.demonstrations(recipe)]
    made, shipped = train_tokenizer(texts), AutoTokenizer.from_pretrained(tiny.shipped(recipe))
    assert shipped.get_vocab() == made.get_vocab()
    assert shipped(texts[:50])["input_ids"] == made(texts[:50])["input_ids"]


def test_a_fresh_cache_starts_from_the_shipped_copy_without_training(recipe, tmp_path):
    out = tiny.bootstrap(recipe, tmp_path)  # would take ~14 min if it trained
    assert tiny.cached(recipe, tmp_path) == out
    assert tiny.file_digests(out) == tiny.file_digests(tiny.shipped(recipe))


def test_a_damaged_shipped_file_is_refused_by_name_and_nothing_is_cached(recipe, tmp_path):
    assets = tmp_path / "assets"
    copy = shutil.copytree(tiny.shipped(recipe), assets / tiny.shipped(recipe).name)
    weights = (copy / "model.safetensors").read_bytes()
    (copy / "model.safetensors").write_bytes(weights[:-1] + b"\0")
    with pytest.raises(ModelDirError, match=r"model\.safetensors: SHA-256 .* is not the manifest's"):
        tiny.bootstrap(recipe, tmp_path / "cache", assets=assets)
    assert tiny.cached(recipe, tmp_path / "cache") is None
    (copy / "model.safetensors").write_bytes(weights)
    tiny.verify(copy)
    (copy / "tokenizer.json").unlink()
    with pytest.raises(ModelDirError, match=r"tokenizer\.json: listed in treeflow_manifest.sha256 but missing"):
        tiny.verify(copy)


def test_a_retrain_of_a_shipped_recipe_is_compared_with_it_file_by_file(tiny_recipe, tiny_policy_dir, tmp_path,
                                                                        monkeypatch):
    """`treeflow bootstrap --retrain` and `treeflow demo --retrain-bootstrap`: the retrained directory against the
    shipped one. On one machine and torch build, training from the recipe gives the same bytes."""
    from flows.cli import _compare_with_shipped, main

    monkeypatch.setattr(tiny, "ASSETS", tmp_path / "assets")
    shipped = tiny.ship(tiny_policy_dir)
    assert shipped == tmp_path / "assets" / f"tiny-{tiny_recipe.digest()}"
    tiny.verify(shipped)

    class Config:
        tiny = tiny_recipe

    retrained = tiny.bootstrap(tiny_recipe, tmp_path / "cache", retrain=True)
    assert "byte for byte" in _compare_with_shipped(Config, str(retrained))
    (retrained / "model.safetensors").write_bytes(b"other weights")
    assert "differs from the shipped" in _compare_with_shipped(Config, str(retrained))
    assert "model.safetensors" in _compare_with_shipped(Config, str(retrained))
    assert main(["bootstrap", "--config", str(tmp_path / "nope.yaml")]) == 2
