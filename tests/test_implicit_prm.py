"""The implicit-PRM benchmark's model: per-token log-probs read right through padding, a reference it starts level
with, and training that moves a right rollout above a wrong one."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("implicit_prm")


def test_token_logprobs_are_each_completion_token_under_the_model_whatever_the_padding(bench, tiny_policy_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_policy_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_policy_dir).eval()
    texts = ["Q: 5 +3\n5+3=8\nThe answer is 8\n", "Q: 61 -20 *2 +9\n61-20=41 (left: *2 +9)\n"]
    starts = bench.prompt_lengths(tok, texts)
    with torch.inference_mode():
        batched = bench.token_logprobs(model, tok, texts, starts)
        for text, start, got in zip(texts, starts, batched, strict=True):
            ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
            logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
            alone = [logp[i - 1, ids[0, i]].item() for i in range(start, ids.shape[1])]
            assert len(got) == len(alone) == ids.shape[1] - start > 0
            assert got.tolist() == pytest.approx(alone, abs=1e-4)


def test_training_moves_the_right_rollout_above_the_wrong_one_from_a_level_start(bench, tiny_policy_dir):
    prompt = "Q: 12 +30 -7\n"
    right = "12+30=42 (left: -7)\n42-7=35\nThe answer is 35\n"
    wrong = "12+30=43 (left: -7)\n43-7=36\nThe answer is 36\n"
    rows = [{"prompt": prompt, "completion": right, "label": True},
            {"prompt": prompt, "completion": wrong, "label": False}]
    untrained = bench.ImplicitPRM.train(str(tiny_policy_dir), rows, beta=0.5, lr=0.0, epochs=1, seed=0)
    level = untrained.score([prompt + right, prompt + wrong, prompt + right[:19]])
    assert level[0] == pytest.approx(level[1]) == pytest.approx(level[2])  # theta = reference: only the bias
    trained = bench.ImplicitPRM.train(str(tiny_policy_dir), rows * 16, beta=0.5, lr=1e-3, epochs=4, seed=0)
    good, bad = trained.score([prompt + right, prompt + wrong])
    assert good > bad
    first_good, first_bad = trained.score([prompt + right.split("\n")[0] + "\n",
                                           prompt + wrong.split("\n")[0] + "\n"])
    assert first_good > first_bad  # the first steps alone tell them apart: that is where they differ


def test_describe_counts_right_answers_reached_through_a_wrong_step(bench):
    from flows.config import load_config
    from problems import select_problems
    from problems.arithmetic import solution_steps

    config = load_config("configs/testbed.yaml")
    p, q = select_problems("arithmetic", "train", 0, 2)
    gold, other = "".join(solution_steps(p)), "".join(solution_steps(q))
    slip = gold.replace("=", "=9", 1)  # the first result wrong; the rest, and so the answer, the gold ones
    assert slip != gold
    rows = [{"prompt": p.prompt, "completion": gold, "label": True},
            {"prompt": p.prompt, "completion": slip, "label": True},
            {"prompt": p.prompt, "completion": slip, "label": True},  # a repeat: counted, but distinct once
            {"prompt": q.prompt, "completion": other.replace("=", "=9", 1), "label": False},
            {"prompt": q.prompt, "completion": other, "label": False}]  # (labels as given, not re-checked)

    class Sure:  # confident exactly in the traces whose steps are all right
        def score(self, states):
            return [1.0 if s in (p.prompt + gold, q.prompt + other) else 0.0 for s in states]

    text = bench.describe(config, rows, Sure())
    assert text.startswith("5 rollouts, 3 with the right answer, 2 of them through a wrong step")
    assert "follows 50.0 % of right first steps and 66.7 % of wrong ones" in text
    assert text.endswith("the 1 of 2 distinct right answers whose every step is right from the others at AUC "
                         "1.000")
