"""An instruct model's path end to end: a random-init Qwen2 (the real architecture, a few layers) with a
byte-level BPE tokenizer trained here that carries Qwen's chat template and special tokens, prompted through
that template and writing "\\n\\n"-delimited steps on GSM8K rows of ../shared/data: the flywheel stores its
trees with the right step texts, trains on chat-format rows and registers the model."""

import json

import pytest

from problems import select_problems

QWEN_TEMPLATE = ("{%- for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
                 "message['content'] + '<|im_end|>' + '\\n' }}{%- endfor %}{%- if add_generation_prompt %}"
                 "{{ '<|im_start|>assistant\\n' }}{%- endif %}")
SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
FIRST_STEP = "We read the question.\n\n"


def _chat(question: str) -> str:
    return (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n"
            "<|im_start|>assistant\n")


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
    """The Qwen2 policy, fine-tuned until it answers the first GSM8K rows in two "\\n\\n" steps (so its greedy
    paths are right and the flywheel has traces to train on)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM, set_seed

    from models.training import SFTSettings, train_policy

    problems = select_problems("gsm8k", "train", 0, 6) + select_problems("gsm8k", "test", 0, 2)
    rows = [{"prompt": _chat(p.question), "completion": f"{FIRST_STEP}The answer is \\boxed{{{p.answer}}}."}
            for p in problems]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([r["prompt"] + r["completion"] for r in rows] * 4, trainers.BpeTrainer(
        vocab_size=700, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tokenizer.chat_template = QWEN_TEMPLATE
    set_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         max_position_embeddings=1024, eos_token_id=tokenizer.eos_token_id,
                                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True))
    root = tmp_path_factory.mktemp("qwen")
    out = root / "policy"
    train_policy(model, rows, out, SFTSettings(max_steps=150, batch_size=8, learning_rate=3e-3,
                                               lr_scheduler="constant", max_length=512), tokenizer=tokenizer)
    return out


def test_a_step_ends_at_its_delimiter_and_keeps_it_whole(qwen_dir):
    from models.hf_policy import TransformersPolicy

    [problem] = select_problems("gsm8k", "test", 0, 1)
    prompt = _chat(problem.question)
    blank_line = TransformersPolicy.from_pretrained(str(qwen_dir), step_delimiter="\n\n", max_step_tokens=48)
    [[step]] = blank_line.propose_steps([prompt], 1, temperature=0.0)
    assert step.text == FIRST_STEP
    [[[first, last]]] = blank_line.propose_paths([prompt], 1, temperature=0.0, max_depth=4, ends=lambda s: False)
    assert (first.text, last.text) == (FIRST_STEP, f"The answer is \\boxed{{{problem.answer}}}.")
    # a line delimiter cuts the same step at its first newline, and the state no longer holds what was generated
    [[line]] = TransformersPolicy.from_pretrained(str(qwen_dir), max_step_tokens=48).propose_steps(
        [prompt], 1, temperature=0.0)
    assert line.text == FIRST_STEP[:-1]


def test_the_flywheel_runs_an_instruct_model_in_its_own_format(prefect_harness, tmp_path, qwen_dir):
    import mlflow

    from flows.cli import main
    from storage import store

    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({
        "workdir": str(tmp_path), "run_id": "qwen", "iterations": 1, "batch_size": 4,
        "policy": {"path": str(qwen_dir), "step_delimiter": "\n\n", "prompt_format": "chat",
                   "max_step_tokens": 48, "temperature": 1.0},
        "task": {"name": "gsm8k", "train_per_iteration": 4, "test_size": 2},
        "value": {"problems": 2, "rollouts": 2}, "value_training": {"max_steps": 2, "batch_size": 4},
        "search": {"simulations": 2, "k": 2, "max_depth": 3}, "sft": {"max_steps": 2, "batch_size": 4},
        "mix_demos": 3,
        "evaluation": {"token_budget": 300, "max_samples": 2, "methods": ["greedy", "mcts_alpha"]}}))
    assert main(["run", "--config", str(config)]) == 0
    path = tmp_path / "traces.duckdb"
    _, prompts = store.query(path, "SELECT prompt, question FROM problems")
    assert prompts and all(p == _chat(q) for p, q in prompts)
    _, steps = store.query(path, "SELECT n.step_text, n.terminal FROM nodes n WHERE n.node_id > 0")
    assert steps and all(t.endswith("\n\n") and "\n\n" not in t[:-2] for t, terminal in steps if not terminal)
    assert (FIRST_STEP, False) in steps
    _, greedy = store.query(path, "SELECT iteration, accuracy, checker FROM evaluations WHERE method = 'greedy' "
                                  "ORDER BY 1")
    assert greedy[0][1:] == (1.0, "numeric")  # both answers read from \boxed{} and graded as numbers
    # the policy trained on the searched traces as chat-format rows, and that model was registered
    _, traces = store.query(path, "SELECT prompt, completion FROM sft_traces WHERE iteration = 1")
    assert traces and all(p.startswith("<|im_start|>system\n") and c.startswith(FIRST_STEP) for p, c in traces)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    [version] = client.search_model_versions("name = 'treeflow-policy'")
    assert version.tags["treeflow.run_id"] == "qwen"
    [sft] = client.search_runs([client.get_experiment_by_name("treeflow").experiment_id],
                               "attributes.run_name = 'qwen/iteration-1/sft'")
    assert sft.data.params["mixed_demonstrations"] == "3"  # GSM8K reference solutions beside the traces


def test_a_delimiter_or_a_chat_prompt_the_policy_cannot_write_is_refused_before_any_work(tmp_path, qwen_dir,
                                                                                         capsys):
    from flows.cli import main

    for policy, message in (
            ({"path": str(qwen_dir), "step_delimiter": "\n\n."}, "a step delimiter ends in a newline"),
            ({"prompt_format": "chat"}, "the built-in tiny model has no chat template")):
        config = tmp_path / "config.yaml"
        config.write_text(json.dumps({"workdir": str(tmp_path / "work"), "policy": policy}))
        assert main(["evaluate", "--config", str(config)]) == 2
        assert message in capsys.readouterr().err
        assert not (tmp_path / "work" / "traces.duckdb").exists()


def test_a_whole_decoded_path_is_cut_into_the_steps_a_step_by_step_decode_makes(qwen_dir):
    """vLLM decodes a path in one request and cuts it afterwards (`split_path`): on the same tokens, the
    transformers backend's steps, texts and token counts alike; EOS, the step limit and `max_depth` end it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from models.hf_policy import TransformersPolicy
    from models.vllm_policy import split_path
    from problems.steps import is_final

    def ends(step: str) -> bool:
        return not step.strip() or is_final(step)

    tok = AutoTokenizer.from_pretrained(qwen_dir)
    model = AutoModelForCausalLM.from_pretrained(qwen_dir)
    policy = TransformersPolicy(model=model, tokenizer=tok, step_delimiter="\n\n", max_step_tokens=48)
    for problem in select_problems("gsm8k", "train", 0, 3):
        prompt = _chat(problem.question)
        [[path]] = policy.propose_paths([prompt], 1, temperature=0.0, max_depth=4, ends=ends)
        ids = tok(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            new = model.generate(ids, do_sample=False, max_new_tokens=4 * 48, pad_token_id=tok.pad_token_id)
        tokens = new[0, ids.shape[1]:].tolist()
        cut = split_path(tokens, [0.0] * len(tokens), tok.decode, delimiter="\n\n", eos_id=tok.eos_token_id,
                         max_step_tokens=48, max_depth=4, ends=ends)
        assert [(c.text, c.tokens) for c in cut] == [(c.text, c.tokens) for c in path] and len(cut) == 2
    a, b = tok.encode("Two.\n\n", add_special_tokens=False), tok.encode("Four", add_special_tokens=False)
    stream = a + b + [tok.eos_token_id] + a
    lps = [-1.0] * len(stream)
    steps = split_path(stream, lps, tok.decode, delimiter="\n\n", eos_id=tok.eos_token_id, max_step_tokens=48,
                       max_depth=4, ends=ends)
    assert [(c.text, c.tokens) for c in steps] == [("Two.\n\n", len(a)), ("Four", len(b) + 1)]  # EOS ends it
    capped = split_path(a + a + a, lps, tok.decode, delimiter="\n\n", eos_id=None, max_step_tokens=2,
                        max_depth=2, ends=lambda step: False)
    assert [c.tokens for c in capped] == [2, 2]  # the step limit, then max_depth
    assert ends(capped[0].text)  # a step cut by the limit ends its path, as step by step it would


def test_reference_solutions_become_demonstrations_in_the_policys_own_format(qwen_dir):
    """A given policy's SFT mixes in the task's reference solutions: GSM8K rationales as chat prompts and
    "\\n\\n" steps, calculator annotations gone, the last step stating the gold answer."""
    from tasks.train import reference_demos

    reference = {"task": "gsm8k", "options": {}, "prompt_format": "chat", "system_prompt": SYSTEM,
                 "step_delimiter": "\n\n"}
    demos = reference_demos(reference, str(qwen_dir), 0, 5)
    problems = {p.question: p for p in select_problems("gsm8k", "train", 0, 7473)}
    assert len(demos) == 5 and len({d["prompt"] for d in demos}) == 5
    for d in demos:
        question = d["prompt"].split("<|im_start|>user\n")[1].split("<|im_end|>")[0]
        assert d["prompt"] == _chat(question)
        steps = d["completion"].split("\n\n")
        assert steps[-1] == "" and steps[-2] == f"The answer is {problems[question].answer}"
        assert "<<" not in d["completion"] and "\n" not in "".join(steps)
    assert reference_demos({**reference, "task": "arithmetic"}, str(qwen_dir), 0, 5) == []  # no references
    assert reference_demos(reference, str(qwen_dir), 0, 5) == demos  # the same draw for the same seed
