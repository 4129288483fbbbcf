"""Published PRMs as value models: each format's scores against a hand computation of the same logits at the
positions its authors read (random-init models of the real architectures, byte-level BPE tokenizers trained
here that carry the real chat templates and special tokens), and one searching the tiny policy's trees."""

import pytest
import torch

from models.prm import PRMError, PublishedPRM, parse_spec
from problems.steps import question_of

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have?"
SOLUTIONS = [  # a batch of mixed lengths: one step, three steps, two steps
    (QUESTION, ["3 + 4 = 7. The answer is 7"]),
    (QUESTION, ["Tom starts with 3 apples.", "He buys 4 more, so 3 + 4 = 7.", "The answer is 7"]),
    ("What is 12 / 4 - 1?", ["12 / 4 = 3.", "3 - 1 = 2. The answer is 2"]),
]
#: Qwen2.5's chat format, and Llama 3's
QWEN_TEMPLATE = ("{%- for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
                 "message['content'] + '<|im_end|>' + '\\n' }}{%- endfor %}{%- if add_generation_prompt %}"
                 "{{ '<|im_start|>assistant\\n' }}{%- endif %}")
LLAMA3_TEMPLATE = ("{{- bos_token }}{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + "
                   "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{%- endfor %}"
                   "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
                   "{%- endif %}")
FORMATS = {  # special tokens, BOS / EOS / pad, chat template
    "math_shepherd": (["<s>", "</s>", "<unk>"], ("<s>", "</s>", "</s>"), None),
    "qwen": (["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<extra_0>"],
             (None, "<|im_end|>", "<|endoftext|>"), QWEN_TEMPLATE),
    "chat": (["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
             ("<|begin_of_text|>", "<|eot_id|>", "<|eot_id|>"), LLAMA3_TEMPLATE),
}


def _tokenizer(fmt: str, specials: list[str] | None = None, template: str | None = "same", tag: str = " ки"):
    """A byte-level BPE tokenizer trained on the texts of these solutions, in the format's tokens (`tag` after
    each step: the step tag is learnt as one token)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    default_specials, (bos, eos, pad), default_template = FORMATS[fmt]
    specials = default_specials if specials is None else specials
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    texts = [f"{q} {s}{tag}\n+ -" for q, steps in SOLUTIONS for s in steps] * 20
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=500, special_tokens=specials,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    if fmt == "math_shepherd":  # Mistral's tokenizer puts <s> first
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[
            ("<s>", tok.token_to_id("<s>"))])
    out = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad,
                                  unk_token="<unk>" if "<unk>" in specials else None)
    out.chat_template = default_template if template == "same" else template
    return out


def _model(fmt: str, vocab: int):
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        MistralConfig,
        MistralForCausalLM,
        Qwen2Config,
        Qwen2ForTokenClassification,
        set_seed,
    )

    set_seed(0)
    shape = dict(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    if fmt == "math_shepherd":
        return MistralForCausalLM(MistralConfig(**shape))
    if fmt == "qwen":
        return Qwen2ForTokenClassification(Qwen2Config(**shape, num_labels=2))
    return LlamaForCausalLM(LlamaConfig(**shape))


def _save(tmp_path, fmt: str, tokenizer=None) -> str:
    tok = tokenizer or _tokenizer(fmt)
    out = tmp_path / fmt
    _model(fmt, len(tok)).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="module")
def prm_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("prms")
    return {fmt: _save(root, fmt) for fmt in FORMATS}


def _by_hand(fmt: str, path: str, question: str, steps: list[str]) -> list[float]:
    """The step scores as each format's authors compute them, one solution at a time."""
    from transformers import AutoModelForCausalLM, AutoModelForTokenClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    with torch.inference_mode():
        if fmt == "math_shepherd":  # question, space, "step ки\n" per step; P(+) among (+, -) at each tag
            model = AutoModelForCausalLM.from_pretrained(path)
            ids = tok.encode(f"{question} " + "".join(f"{s} ки\n" for s in steps), return_tensors="pt")
            # the authors take encode("ки")[-1], which their SentencePiece tokenizer gives as "▁ки"; a byte-level
            # BPE's word-initial piece is the one after a space
            tag = tok.encode(" ки", add_special_tokens=False)[-1]
            plus, minus = tok.convert_tokens_to_ids("+"), tok.convert_tokens_to_ids("-")
            probs = model(ids).logits[0][:, [plus, minus]].softmax(-1)[:, 0]
            return probs[ids[0] == tag].tolist()
        if fmt == "qwen":  # steps joined by <extra_0> in the assistant turn; class 1 at each <extra_0>
            model = AutoModelForTokenClassification.from_pretrained(path)
            text = tok.apply_chat_template([
                {"role": "system", "content": "Please reason step by step, and put your final answer within "
                                              "\\boxed{}."},
                {"role": "user", "content": question},
                {"role": "assistant", "content": "<extra_0>".join(steps) + "<extra_0>"}], tokenize=False)
            ids = tok.encode(text, return_tensors="pt")
            probs = model(ids).logits[0].softmax(-1)[:, 1]
            return probs[ids[0] == tok.convert_tokens_to_ids("<extra_0>")].tolist()
        model = AutoModelForCausalLM.from_pretrained(path)  # chat: one pass per step, logits at -3 (before "+")
        plus, minus = tok.encode("+", add_special_tokens=False)[-1], tok.encode("-", add_special_tokens=False)[-1]
        conversation, out = [], []
        for k, step in enumerate(steps):
            conversation += [{"role": "user", "content": f"{question} {step}" if k == 0 else step},
                             {"role": "assistant", "content": "+"}]
            ids = tok.apply_chat_template(conversation, return_tensors="pt", return_dict=True)["input_ids"]
            out.append(model(ids).logits[0, -3, [plus, minus]].softmax(-1)[0].item())
        return out


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_each_format_scores_every_step_where_its_authors_read_it(prm_dirs, fmt):
    prm = PublishedPRM(f"prm:{fmt}:min:{prm_dirs[fmt]}")
    batched = prm.step_scores(SOLUTIONS)
    for (question, steps), scores in zip(SOLUTIONS, batched, strict=True):
        expected = _by_hand(fmt, prm_dirs[fmt], question, steps)
        assert len(scores) == len(steps) == len(expected)
        assert scores == pytest.approx(expected, abs=1e-5)
    assert len({round(s, 6) for s in sum(batched, [])}) > 3  # the positions differ: not one score repeated
    assert prm.calls == 1 and prm.scored_tokens > 0


def test_states_become_values_by_the_configured_aggregation(prm_dirs):
    """States as search writes them (prompt, one step a line): the question read off the prompt, the steps
    split at the delimiter, their scores aggregated and put on the value scale (2 p - 1)."""
    path = prm_dirs["qwen"]
    prompt = f"Question: {QUESTION}\nAnswer:\n"
    steps = SOLUTIONS[1][1]
    states = [prompt + "".join(f"{s}\n" for s in steps[:d]) for d in (3, 1, 0)]
    per_step = _by_hand("qwen", path, QUESTION, steps)
    product = per_step[0] * per_step[1] * per_step[2]
    for how, agg in (("last", per_step[-1]), ("min", min(per_step)), ("prod", product)):
        values = PublishedPRM(f"prm:qwen:{how}:{path}").scorer([prompt])(states)
        assert values[0] == pytest.approx(2 * agg - 1, abs=1e-5)
        assert values[1] == pytest.approx(2 * per_step[0] - 1, abs=1e-5)
        assert values[2] == 0.0  # the root: no step to score
    assert question_of(prompt) == QUESTION and question_of("Q: 3 +4\n") == "Q: 3 +4"


def test_a_prm_guides_search_through_the_value_model_path(tmp_path, prm_dirs, tiny_policy_dir):
    """A PRM spec where a value model path goes: the flow's search task loads it, BFS-V ranks the tiny policy's
    steps by it, and its calls and tokens are counted as the value model's."""
    from flows.config import FlywheelConfig, method_configs
    from flows.flywheel import search_kwargs
    from storage import store
    from tasks.search import run_search

    config = FlywheelConfig(workdir=str(tmp_path), bfs_v={"k": 2, "beam": 2, "max_depth": 4})
    spec = f"prm:math_shepherd:last:{prm_dirs['math_shepherd']}"
    out = run_search(**search_kwargs(config, "r", str(tiny_policy_dir), spec), split="train", start=0, count=3,
                     method="bfs_v", method_config=method_configs(config)["bfs_v"], iteration=1, stage="search",
                     shard=str(tmp_path / "shard"))
    [cost] = out["costs"].values()
    assert cost["value_calls"] > 0 and cost["value_tokens"] > 0
    with store.connect(tmp_path / "s.duckdb") as con:
        store.ingest(con, [out["shard"]])
        rows = con.execute("SELECT n.value, s.state FROM nodes n JOIN node_states s USING (tree_id, node_id) "
                           "WHERE n.value IS NOT NULL AND n.depth = 1").fetchall()
    prm = PublishedPRM(spec)
    prompts = sorted({s[:s.index("\n") + 1] for _, s in rows})
    assert rows and [v for v, _ in rows] == pytest.approx(prm.scorer(prompts)([s for _, s in rows]), abs=1e-5)


@pytest.mark.parametrize("spec, message", [
    ("prm:qwen:Qwen/Qwen2.5-Math-PRM-7B", "prm:FORMAT:AGGREGATION:MODEL"),
    ("prm:shepherd:min:x/y", "unknown PRM format 'shepherd'"),
    ("prm:qwen:mean:x/y", "unknown step aggregation 'mean'"),
])
def test_a_malformed_spec_is_one_clear_error(spec, message):
    with pytest.raises(PRMError, match=message):
        parse_spec(spec)


def test_a_prm_directory_that_does_not_fit_its_format_is_refused_before_any_work(tmp_path):
    no_template = _save(tmp_path / "a", "chat", _tokenizer("chat", template=None))
    with pytest.raises(PRMError, match="needs a chat template"):
        PublishedPRM(f"prm:chat:min:{no_template}")
    no_separator = _save(tmp_path / "b", "qwen", _tokenizer("qwen", specials=["<|endoftext|>", "<|im_start|>",
                                                                              "<|im_end|>"]))
    with pytest.raises(PRMError, match="<extra_0>, which is not one token"):
        PublishedPRM(f"prm:qwen:min:{no_separator}")
    shepherd_as_qwen = _save(tmp_path / "c", "qwen", _tokenizer("math_shepherd", template=QWEN_TEMPLATE))
    with pytest.raises(PRMError, match="<extra_0>"):
        PublishedPRM(f"prm:qwen:last:{shepherd_as_qwen}")
    untagged = _save(tmp_path / "d", "math_shepherd", _tokenizer("math_shepherd", tag=""))  # "ки" never merged
    with pytest.raises(PRMError, match="tags each step with 'ки', which is not one token"):
        PublishedPRM(f"prm:math_shepherd:min:{untagged}")


def test_the_cli_refuses_a_prm_it_cannot_read_before_any_work(tmp_path, capsys):
    import json

    from flows.cli import main

    no_separator = _save(tmp_path, "qwen", _tokenizer("qwen", specials=["<|endoftext|>", "<|im_start|>",
                                                                        "<|im_end|>"]))
    config = tmp_path / "config.yaml"
    work = tmp_path / "work"
    config.write_text(json.dumps({"workdir": str(work), "value": {"path": f"prm:qwen:min:{no_separator}"}}))
    assert main(["evaluate", "--config", str(config), "--methods", "greedy,beam_prm"]) == 2
    assert "separates steps with <extra_0>, which is not one token" in capsys.readouterr().err
    assert not (work / "traces.duckdb").exists()


def test_evaluate_runs_guided_methods_on_gsm8k_with_a_published_prm(prefect_harness, tmp_path, prm_dirs,
                                                                     tiny_recipe, tiny_policy_dir):
    """`treeflow evaluate` with `value.path` a PRM spec, on GSM8K rows of ../shared/data: the PRM guides beam
    search and ranks Best-of-N, every stored value is the PRM's score of that state, nothing is refit."""
    import json

    from pydantic import TypeAdapter

    from flows.cli import main
    from models.tiny import TinyRecipe
    from storage import store

    spec = f"prm:chat:min:{prm_dirs['chat']}"
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({
        "workdir": str(tmp_path), "cache_dir": str(tiny_policy_dir.parent.parent), "run_id": "prm",
        "tiny": TypeAdapter(TinyRecipe).dump_python(tiny_recipe, mode="json"), "batch_size": 2,
        "task": {"name": "gsm8k"}, "value": {"path": spec}, "policy": {"max_step_tokens": 12},
        "search": {"max_depth": 3},
        "evaluation": {"max_samples": 2, "settings": {"beam_prm": {"n": 4, "width": 2}}}}))
    assert main(["evaluate", "--config", str(config), "--budgets", "60", "--methods",
                 "greedy,best_of_n_prm,beam_prm",
                 "--seeds", "0", "--test-size", "2"]) == 0
    path = tmp_path / "traces.duckdb"
    _, rows = store.query(path, "SELECT method, n_problems, value_states_per_problem FROM evaluations ORDER BY 1")
    assert [(m, n) for m, n, _ in rows] == [("beam_prm", 2), ("best_of_n_prm", 2), ("greedy", 2)]
    assert [states > 0 for *_, states in rows] == [True, True, False]
    _, nodes = store.query(path, "SELECT t.problem_id, s.state, n.value FROM nodes n JOIN node_states s "
                                 "USING (tree_id, node_id) JOIN trees t USING (tree_id) "
                                 "WHERE t.method = 'beam_prm' AND n.value IS NOT NULL AND n.depth > 0 "
                                 "ORDER BY ALL")
    assert nodes and {p for p, *_ in nodes} <= {"gsm8k-test-0", "gsm8k-test-1"}
    prompts = {s[:s.index("Answer:\n") + len("Answer:\n")] for _, s, _ in nodes}
    assert [v for *_, v in nodes] == pytest.approx(PublishedPRM(spec).scorer(prompts)([s for _, s, _ in nodes]),
                                                   abs=1e-5)
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").rglob("value-*"))


def test_a_flywheel_keeps_a_published_prm_and_measures_it_on_its_own_targets(prefect_harness, tmp_path, prm_dirs,
                                                                             tiny_recipe, tiny_policy_dir):
    """The flywheel with a PRM as its value model: the PRM guides every iteration's search and is never refit
    or registered as the run's own; each iteration measures it on the held-out trees' targets."""
    import json

    import mlflow
    from pydantic import TypeAdapter

    from flows.cli import main
    from models.tiny import TinyRecipe
    from storage import store

    spec = f"prm:math_shepherd:last:{prm_dirs['math_shepherd']}"
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({
        "workdir": str(tmp_path), "cache_dir": str(tiny_policy_dir.parent.parent), "run_id": "fw", "iterations": 1,
        "tiny": TypeAdapter(TinyRecipe).dump_python(tiny_recipe, mode="json"), "batch_size": 4,
        "task": {"train_per_iteration": 8, "test_size": 2}, "value": {"path": spec}, "value_holdout": 0.5,
        "search": {"simulations": 2, "k": 2, "max_depth": 4}, "sft": {"max_steps": 2, "batch_size": 8},
        "mix_demos": 8,
        "evaluation": {"token_budget": 60, "max_samples": 2, "methods": ["greedy", "mcts_alpha"]}}))
    assert main(["run", "--config", str(config)]) == 0
    _, trees = store.query(tmp_path / "traces.duckdb", "SELECT stage, iteration, count(*) FROM trees "
                                                      "GROUP BY ALL ORDER BY ALL")
    assert trees == [("eval", 0, 4), ("eval", 1, 4), ("search", 1, 8)]  # no bootstrap rollouts: nothing to train
    _, [(valued,)] = store.query(tmp_path / "traces.duckdb", "SELECT count(n.value) FROM trees t JOIN nodes n "
                                                            "USING (tree_id) WHERE t.stage = 'search'")
    assert valued > 0  # the PRM valued the training search's nodes
    assert not list((tmp_path / "models").rglob("value-it*"))  # nothing trained from it
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    [value_run] = client.search_runs([client.get_experiment_by_name("treeflow").experiment_id],
                                     "attributes.run_name = 'fw/iteration-1/value'")
    assert value_run.data.params["init"] == spec == value_run.data.params["output"]
    assert value_run.data.metrics["heldout_states"] > 0  # measured on the targets of its own searched trees
    assert {m.name for m in client.search_registered_models()} == {"treeflow-policy"}
