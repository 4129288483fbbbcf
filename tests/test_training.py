"""Every trainer on the tiny model: loss goes down on a fixed batch; labels, held-out metrics, the ORM task."""

from __future__ import annotations

import pytest

from models.training import (
    IGNORE,
    RewardSettings,
    SFTSettings,
    ValueSettings,
    _token_labels,
    train_orm,
    train_policy,
    train_value,
)


def _falls(history: dict) -> bool:
    """The loss of the last logged step is clearly below the first's."""
    losses = [loss for _, loss in history["losses"]]
    return len(losses) >= 2 and losses[-1] < 0.8 * losses[0]


PAIRS = [{"chosen": f"Q: {a}+1\n{a}+1={a + 1}\nThe answer is {a + 1}",
          "rejected": f"Q: {a}+1\n{a}+1={a + 2}\nThe answer is {a + 2}"} for a in range(2, 18)]
PATHS = [{"segments": [[f"Q: {a}+1\n", None], [f"{a}+1={a + 1}\n", 1.0], [f"{a + 1}+7={a + 9}\n", -1.0]]}
         for a in range(2, 18)]


def test_sft_lowers_its_loss_on_a_fixed_batch(tmp_path, tiny_policy_dir):
    rows = [{"prompt": f"Q: {a}+1\n", "completion": f"{a}+1={a + 1}\nThe answer is {a + 1}\n"} for a in range(16)]
    history = train_policy(tiny_policy_dir, rows, tmp_path / "p",
                           SFTSettings(max_steps=12, batch_size=16, learning_rate=3e-3, lr_scheduler="constant"))
    assert _falls(history) and (tmp_path / "p" / "config.json").is_file()


@pytest.mark.parametrize("loss", ["mse", "bce"])
def test_value_training_lowers_its_loss_on_a_fixed_batch(tmp_path, tiny_policy_dir, loss):
    from models.value import TransformersValue

    history = train_value(tiny_policy_dir, PATHS, tmp_path / "v",
                          ValueSettings(max_steps=20, batch_size=16, learning_rate=3e-3, loss=loss))
    assert _falls(history)
    value = TransformersValue(str(tmp_path / "v"))
    assert value.logit_head == (loss == "bce")
    scores = value.score(["Q: 30+1\n30+1=31\n", "Q: 30+1\n30+1=31\n31+7=39\n"])
    assert all(-1 <= s <= 1 for s in scores) if loss == "bce" else True
    assert scores[0] > scores[1]


def test_orm_training_lowers_its_loss_on_a_fixed_batch(tmp_path, tiny_policy_dir):
    from models.value import TransformersValue

    history = train_orm(tiny_policy_dir, PAIRS, tmp_path / "orm",
                        RewardSettings(max_steps=20, batch_size=16, learning_rate=3e-3))
    assert _falls(history)
    orm = TransformersValue(str(tmp_path / "orm"))
    chosen, rejected = orm.score([PAIRS[0]["chosen"], PAIRS[0]["rejected"]])
    assert -1 < rejected < chosen < 1


def test_value_labels_sit_only_at_step_ends(tiny_policy_dir):
    """A hand-made path: the prompt is unlabelled, each step's target is on its last token only."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_policy_dir)
    row = {"segments": [["Q: 5 +3 *2\n", None], ["5+3=8 (left: *2)\n", 0.5], ["8*2=16\n", -1.0]]}
    enc = _token_labels(tok, row, max_length=128)
    sizes = [len(tok(t, add_special_tokens=False)["input_ids"]) for t, _ in row["segments"]]
    ends = {sizes[0] + sizes[1] - 1: 0.5, sum(sizes) - 1: -1.0}
    assert enc["labels"] == [ends.get(i, IGNORE) for i in range(sum(sizes))]
    assert tok.decode(enc["input_ids"][sizes[0] + sizes[1] - 1]) == "\n"  # the step's last token
    every = _token_labels(tok, row, max_length=128, label_tokens="every")
    assert every["labels"] == [IGNORE] * sizes[0] + [0.5] * sizes[1] + [-1.0] * sizes[2]


def test_heldout_metrics_count_each_state_once():
    from models.metrics import heldout_value_metrics

    rows = [{"prompt": "P\n", "steps": ["a\n", "b\n"], "targets": [0.0, 1.0], "hard": [1.0, 1.0]},
            {"prompt": "P\n", "steps": ["a\n", "c\n"], "targets": [0.0, -1.0], "hard": [1.0, -1.0]}]
    scores = {"P\na\n": 0.5, "P\na\nb\n": 1.0, "P\na\nc\n": 0.0}
    out = heldout_value_metrics(lambda states: [scores[s] for s in states], rows)
    assert out["heldout_states"] == 3
    assert out["heldout_mse"] == pytest.approx((0.25 + 0 + 1) / 3)
    assert out["heldout_auc"] == 1.0  # both states that lead to a right answer outscore the one that does not
    assert out["heldout_sibling_auc"] == 1.0  # and of the siblings b and c, the right one scores higher
    scores["P\na\n"] = -1.0  # the root's child now ranks below both: all-states AUC falls, siblings unchanged
    out = heldout_value_metrics(lambda states: [scores[s] for s in states], rows)
    assert out["heldout_auc"] == 0.5 and out["heldout_sibling_auc"] == 1.0


def test_sibling_auc_compares_only_children_of_one_parent():
    from models.metrics import roc_auc, sibling_auc

    # two families; by depth alone (the deeper family scores lower) all-state AUC is high, siblings tie
    scores, labels = [0.9, 0.9, 0.1, 0.1], [True, False, False, False]
    parents = ["P\n", "P\n", "P\na\n", "P\na\n"]
    assert roc_auc(scores, labels) == pytest.approx(5 / 6)
    assert sibling_auc(scores, labels, parents) == 0.5
    assert sibling_auc([0.2, 0.7, 0.5], [True, False, False], ["p", "p", "p"]) == 0.0
    assert sibling_auc([0.2, 0.7], [True, False], ["p", "q"]) is None  # no family holds both labels


SLIP = "7*7=50\n"


@pytest.fixture(scope="module")
def sampled_store(tmp_path_factory):
    """A real store of sampled trees: a scripted policy answers each problem right once and, after a
    visibly wrong step, wrong once."""
    from problems import select_problems

    problems = select_problems("arithmetic", "train", 0, 12)
    script = {p.prompt: [(f"The answer is {p.answer}\n", -0.1), (SLIP, -0.2)] for p in problems}
    script |= {p.prompt + SLIP: [(f"The answer is {int(p.answer) + 1}\n", -0.1)] for p in problems}
    return _sampled(script, problems, tmp_path_factory.mktemp("orm-store")), problems


def _sampled(script: dict, problems: list, root):
    """Two scripted samples per problem, searched as the flow does and ingested into a store under `root`."""
    from models.fakes import ScriptedPolicy
    from search import METHODS
    from search.sampling import SamplingConfig
    from storage import store
    from storage.traces import problem_row, result_rows

    fn, _ = METHODS["self_consistency"]
    results = fn([p.prompt for p in problems], SamplingConfig(n=2, max_depth=3),
                 propose=ScriptedPolicy(script).propose_steps, evaluate=None)
    trees, nodes = [], []
    for p, r in zip(problems, results, strict=True):
        tree, rows = result_rows(r, p, tree_id=f"r/1/search/{p.id}", run_id="r", iteration=1, stage="search",
                                 split="train", method="self_consistency", policy="scripted", value_model=None)
        trees.append(tree)
        nodes += rows
    shard = store.write_shard(root / "shard", trees=trees, nodes=nodes,
                              problems=[problem_row(p) for p in problems])
    with store.connect(root / "s.duckdb") as con:
        store.ingest(con, [shard])
    return root / "s.duckdb"


def test_sft_keeps_the_traces_its_filter_passes_and_records_the_query(tmp_path, tiny_policy_dir):
    import json

    from problems import select_problems
    from storage import store
    from tasks.train import sft_policy_task

    problems = select_problems("arithmetic", "train", 0, 6)
    # two right answers each: one sure of itself, one after a step the policy was unsure of
    script = {p.prompt: [(f"The answer is {p.answer}\n", -0.1), (SLIP, -2.0)] for p in problems}
    script |= {p.prompt + SLIP: [(f"The answer is {p.answer}\n", -0.1)] for p in problems}
    path = str(_sampled(script, problems, tmp_path))
    settings = SFTSettings(max_steps=1, batch_size=4)
    every = sft_policy_task.fn(path, "r", 1, str(tiny_policy_dir), str(tmp_path / "all"), settings, None, 0)
    sure = sft_policy_task.fn(path, "r", 1, str(tiny_policy_dir), str(tmp_path / "sure"), settings, None, 0,
                              min_logprob=-1.0)
    assert every["traces"] == 2 * len(problems) and sure["traces"] == len(problems)
    _, [(sql, params, n)] = store.query(path, "SELECT query, query_params, n_rows FROM training_snapshots "
                                              "WHERE snapshot_id = 'r/1/policy'")  # the latest training's
    _, rows = store.query(path, sql, json.loads(params))
    assert n == len(rows) == len(problems) and all(SLIP not in c for _, c in rows)
    unvalued = sft_policy_task.fn(path, "r", 1, str(tiny_policy_dir), str(tmp_path / "v"), settings, None, 0,
                                  min_value=0.9)
    assert unvalued["traces"] == 2 * len(problems)  # sampling recorded no values: nothing to filter on
    # the calculator's filter reads the slip itself (7*7=50), not the policy's confidence in it
    checked = sft_policy_task.fn(path, "r", 1, str(tiny_policy_dir), str(tmp_path / "eq"), settings, None, 0,
                                 equations=True)
    _, [(sql, params)] = store.query(path, "SELECT query, query_params FROM training_snapshots "
                                           "WHERE snapshot_id = 'r/1/policy'")
    _, rows = store.query(path, sql, json.loads(params))
    assert checked["traces"] == len(rows) == len(problems) and all(SLIP not in c for _, c in rows)


def test_the_orm_task_trains_on_right_vs_wrong_answers_of_a_tree(sampled_store, tmp_path, tiny_policy_dir):
    import json

    from models.value import TransformersValue
    from storage import store
    from tasks.train import fit_orm_task

    path, problems = sampled_store
    out = fit_orm_task.fn(str(path), "r", 1, str(tiny_policy_dir), str(tmp_path / "orm"),
                          RewardSettings(max_steps=30, batch_size=12, learning_rate=3e-3), pairs_per_tree=4)
    assert out["pairs"] == len(problems) and _falls(out)  # one (right, wrong) pair per tree
    _, [(sql, params, n, digest)] = store.query(path, "SELECT query, query_params, n_rows, rows_sha256 FROM "
                                                      "training_snapshots WHERE snapshot_id = 'r/1/orm'")
    _, rows = store.query(path, sql, json.loads(params))
    assert n == len(rows)
    assert store.rows_digest([{"chosen": p + c, "rejected": p + r} for p, c, r in rows]) == digest
    orm = TransformersValue(out["path"])
    p = problems[0]
    right, wrong = orm.score([f"{p.prompt}The answer is {p.answer}\n",
                              f"{p.prompt}{SLIP}The answer is {int(p.answer) + 1}\n"])
    assert right > wrong
    none = fit_orm_task.fn(str(path), "nobody", 1, str(tiny_policy_dir), str(tmp_path / "none"),
                           RewardSettings(max_steps=1), pairs_per_tree=4)
    assert none["pairs"] == 0 and none["path"] is None and not (tmp_path / "none").exists()


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory, tiny_policy_dir):
    """Another architecture (a tiny Llama from config, the tiny tokenizer): trainers and the value model
    take any causal LM directory, not only the built-in GPT-2 shape."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, set_seed

    tok = AutoTokenizer.from_pretrained(tiny_policy_dir)
    set_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         max_position_embeddings=256, pad_token_id=tok.pad_token_id,
                                         eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id))
    out = tmp_path_factory.mktemp("llama") / "model"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_every_trainer_takes_another_architecture(tmp_path, llama_dir):
    from models.value import TransformersValue

    rows = [{"prompt": f"Q: {a}+1\n", "completion": f"{a}+1={a + 1}\n"} for a in range(16)]
    assert _falls(train_policy(llama_dir, rows, tmp_path / "p", SFTSettings(max_steps=12, batch_size=16,
                                                                          learning_rate=3e-3,
                                                                          lr_scheduler="constant")))
    assert _falls(train_value(llama_dir, PATHS, tmp_path / "v",
                              ValueSettings(max_steps=20, batch_size=16, learning_rate=3e-3)))
    assert _falls(train_orm(llama_dir, PAIRS, tmp_path / "o",
                            RewardSettings(max_steps=20, batch_size=16, learning_rate=3e-3)))
    # the value model's shared-prefix scoring holds on this architecture too (rotary positions, GQA)
    states = ["Q: 30+1\n30+1=31\n", "Q: 30+1\n30+1=32\n", "Q: 30+1\n30+1=31\n31+7=38\n",
              "Q: 30+1\n30+1=31\n31+7=39\n"]
    whole = TransformersValue(str(tmp_path / "v"), reuse_prefix_cache=False)
    shared = TransformersValue(str(tmp_path / "v"))
    assert shared.score(states) == pytest.approx(whole.score(states), abs=1e-5)
    assert shared.scored_tokens < whole.scored_tokens


def test_lora_with_gradient_checkpointing_trains_adapters_and_saves_a_plain_model(tmp_path, llama_dir):
    """LoRA (peft) on the linear layers, activations recomputed: the loss falls, the embeddings stay as they
    were (only adapters train), and the merged result is an ordinary model directory every loader reads."""
    from safetensors.torch import load_file
    from transformers import TrainerCallback

    from models.hf_policy import TransformersPolicy
    from models.value import TransformersValue

    seen = {}

    class Look(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            seen["checkpointing"] = model.get_base_model().is_gradient_checkpointing
            seen["trainable"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
            seen["all"] = sum(p.numel() for p in model.parameters())

    rows = [{"prompt": f"Q: {a}+1\n", "completion": f"{a}+1={a + 1}\n"} for a in range(16)]
    lora = dict(lora_rank=8, lora_alpha=16, gradient_checkpointing=True)
    assert _falls(train_policy(llama_dir, rows, tmp_path / "p", SFTSettings(
        max_steps=16, batch_size=16, learning_rate=1e-2, lr_scheduler="constant", **lora), callbacks=[Look()]))
    assert seen["checkpointing"] and 0 < seen["trainable"] < seen["all"] / 3
    assert _falls(train_value(llama_dir, PATHS, tmp_path / "v", ValueSettings(
        max_steps=20, batch_size=16, learning_rate=3e-3, **lora)))
    before, after = (load_file(str(d / "model.safetensors")) for d in (llama_dir, tmp_path / "p"))
    assert not any(k.startswith("base_model") or "lora" in k for k in after)  # merged, no adapter left
    assert (before["model.embed_tokens.weight"] == after["model.embed_tokens.weight"]).all()
    changed = [k for k in before if "proj" in k and not (before[k] == after[k]).all()]
    assert changed and not (tmp_path / "p" / "adapter_config.json").exists()
    [[step]] = TransformersPolicy.from_pretrained(str(tmp_path / "p")).propose_steps(["Q: 5+1\n"], 1,
                                                                                     temperature=0.0)
    assert step.tokens > 0
    assert len(TransformersValue(str(tmp_path / "v")).score(["Q: 3+1\n3+1=4\n"])) == 1


def test_rows_longer_than_the_models_window_are_cut_to_it(tmp_path, tiny_policy_dir):
    """A `max_length` past the model's position table (128 here) trains on rows cut to the table instead
    of failing inside the embedding (a deep tree's path easily outgrows a small model's window)."""
    from transformers import AutoConfig

    limit = AutoConfig.from_pretrained(tiny_policy_dir).n_positions
    prompt = "Q: " + "1+" * limit + "1\n"  # about twice the window
    long_path = {"segments": [[prompt, None], ["1+1=2\n", 1.0], ["2+1=4\n", -1.0]]}
    sft_row = {"prompt": "Q: " + "1+" * (limit // 3) + "1\n", "completion": "1+1=2\n" * (limit // 6)}
    train_policy(tiny_policy_dir, [sft_row] * 4, tmp_path / "p",
                 SFTSettings(max_steps=1, batch_size=4, max_length=4 * limit))
    value = train_value(tiny_policy_dir, [long_path] * 4, tmp_path / "v",
                        ValueSettings(max_steps=1, batch_size=4, max_length=4 * limit))
    pair = {"chosen": prompt + "The answer is 2", "rejected": prompt + "The answer is 3"}
    orm = train_orm(tiny_policy_dir, [pair] * 4, tmp_path / "o",
                    RewardSettings(max_steps=1, batch_size=4, max_length=4 * limit))
    assert value["steps"] == orm["steps"] == 1 and (tmp_path / "p" / "config.json").is_file()


def test_sft_on_prompts_that_fill_the_window_is_one_clear_error(tmp_path, tiny_policy_dir):
    rows = [{"prompt": "Q: " + "1+" * 40 + "1\n", "completion": "The answer is 41\n"}] * 4
    with pytest.raises(ValueError, match="no completion token within the first 32 of any of the 4 rows"):
        train_policy(tiny_policy_dir, rows, tmp_path / "p", SFTSettings(max_steps=1, batch_size=4, max_length=32))
    assert not (tmp_path / "p").exists()


def test_the_value_holdout_does_not_depend_on_the_random_run_id():
    """Two runs of one config and seed hold out the same trees, so their value figures compare."""
    import duckdb

    from tasks.train import held_out_sql

    suffixes = [f"{it}/search/mcts_alpha/bNone/s0/train-{i}" for it in (1, 2) for i in range(200)]
    held = {}
    for run in ("flywheel-20261122-224113-58c595", "rest-em-20261123-010203-0a1b2c"):
        picked = duckdb.execute(f"SELECT tree_id FROM (SELECT unnest(?) AS tree_id, ? AS run_id) "
                                f"WHERE {held_out_sql('tree_id', 'run_id')}",
                                [[f"{run}/{s}" for s in suffixes], run, 100]).fetchall()
        held[run] = {tree_id.removeprefix(run + "/") for (tree_id,) in picked}
    first, second = held.values()
    assert first == second and 10 < len(first) < 80  # about 10 % of 400, the same ones


def test_lora_without_peft_is_one_clear_error_before_any_work(tmp_path, capsys, monkeypatch):
    import importlib.util
    import json

    from flows.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "peft" else real(name, *a))
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"workdir": str(tmp_path / "work"), "sft": {"lora_rank": 8}}))
    assert main(["run", "--config", str(config)]) == 2
    assert "pip install 'treeflow[lora]'" in capsys.readouterr().err
    assert not (tmp_path / "work" / "traces.duckdb").exists()
