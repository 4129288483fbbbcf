"""The model paths on a CUDA GPU: the same steps and values as on the CPU, bf16 where it is the default,
training in bf16 autocast, a real search end to end.

CI has no GPU, so these skip there; run them on a GPU machine with `pytest tests/test_cuda.py`.
"""

import pytest
import torch

from models.hf_policy import TransformersPolicy
from models.training import ValueSettings, train_value
from models.value import TransformersValue
from problems.arithmetic import generate

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

PROMPTS = [p.prompt for p in generate(8, split="test")] + ["Q: 5 +3 *2 -1\n5+3=8\n"]
PATHS = [{"segments": [[f"Q: {a}+1\n", None], [f"{a}+1={a + 1}\n", 1.0], [f"{a + 1}+7={a + 9}\n", -1.0]]}
         for a in range(2, 18)]


def steps(policy, prefixes, k=2, temperature=0.0):
    rows = policy.propose_steps(prefixes, k, temperature=temperature)
    return [[(c.text, c.tokens) for c in row] for row in rows]


def test_greedy_steps_on_the_gpu_match_the_cpu(tiny_policy_dir):
    cpu = TransformersPolicy.from_pretrained(str(tiny_policy_dir), device="cpu")
    gpu = TransformersPolicy.from_pretrained(str(tiny_policy_dir), device="cuda", dtype="float32")
    assert gpu.device.type == "cuda" and next(gpu.model.parameters()).dtype == torch.float32
    a, b = cpu.propose_steps(PROMPTS, 2, temperature=0.0), gpu.propose_steps(PROMPTS, 2, temperature=0.0)
    assert [[c.text for c in r] for r in a] == [[c.text for c in r] for r in b]
    assert [c.logprob for r in a for c in r] == pytest.approx([c.logprob for r in b for c in r], abs=1e-3)
    assert cpu.stats.as_dict() == gpu.stats.as_dict()


def test_cache_reuse_compaction_and_batching_change_nothing_on_the_gpu(tiny_policy_dir):
    load = lambda **kw: TransformersPolicy.from_pretrained(str(tiny_policy_dir), device="cuda",  # noqa: E731
                                                           dtype="float32", **kw)
    prefixes = PROMPTS + [p + "1+1=2 (left: +3)\n" for p in PROMPTS]
    reuse, recompute = load(), load(reuse_prefix_cache=False)
    assert steps(reuse, prefixes, 3) == steps(recompute, prefixes, 3)
    assert recompute.stats.prefill_tokens == 3 * reuse.stats.prefill_tokens
    assert steps(load(compact_below=0.0), prefixes, 3) == steps(load(compact_below=1.0), prefixes, 3)
    single = load()
    assert steps(load(), prefixes) == [steps(single, [p])[0] for p in prefixes]


def test_auto_dtype_is_bf16_on_the_gpu_and_sampling_follows_the_seed(tiny_policy_dir):
    sample = lambda seed: TransformersPolicy.from_pretrained(  # noqa: E731
        str(tiny_policy_dir), device="cuda", seed=seed).propose_steps(PROMPTS, 4, temperature=0.7)
    policy = TransformersPolicy.from_pretrained(str(tiny_policy_dir), device="cuda")
    assert next(policy.model.parameters()).dtype == torch.bfloat16
    first, again, other = sample(5), sample(5), sample(6)
    texts = lambda rows: [[c.text for c in r] for r in rows]  # noqa: E731
    assert texts(first) == texts(again) and texts(first) != texts(other)
    assert all(c.text.endswith("\n") or c.tokens == policy.max_step_tokens or "answer" in c.text
               for r in first for c in r)


def test_value_training_on_the_gpu_lowers_its_loss_and_scores_match_the_cpu(tmp_path, tiny_policy_dir):
    from models.training import _common_args

    assert _common_args(ValueSettings(), str(tmp_path), 16)["bf16"] is torch.cuda.is_bf16_supported()
    history = train_value(tiny_policy_dir, PATHS, tmp_path / "v",
                          ValueSettings(max_steps=20, batch_size=16, learning_rate=3e-3))
    losses = [loss for _, loss in history["losses"]]
    assert losses[-1] < losses[0]
    states = [p + c for p in ("Q: 3+4*2\n", "Q: 12-5+9\n12-5=7 (left: +9)\n")
              for c in ("3+4=7 (left: *2)\n", "7+9=16\n", "The answer is 14\n")]
    cpu = TransformersValue(str(tmp_path / "v"), device="cpu").score(states)
    gpu32 = TransformersValue(str(tmp_path / "v"), device="cuda", dtype="float32")
    whole32 = TransformersValue(str(tmp_path / "v"), device="cuda", dtype="float32", reuse_prefix_cache=False)
    assert gpu32.score(states) == pytest.approx(cpu, abs=1e-4)
    assert whole32.score(states) == pytest.approx(cpu, abs=1e-4)
    bf16 = TransformersValue(str(tmp_path / "v"), device="cuda")
    assert bf16.model.dtype == torch.bfloat16
    assert bf16.score(states) == pytest.approx(cpu, abs=0.05)
    assert gpu32.score(["Q: 30+1\n30+1=31\n"])[0] > gpu32.score(["Q: 30+1\n30+1=31\n31+7=39\n"])[0]


def test_mcts_alpha_searches_on_the_gpu_within_its_budget(tmp_path, tiny_policy_dir):
    from search import MCTSAlphaConfig, mcts_alpha

    train_value(tiny_policy_dir, PATHS, tmp_path / "v", ValueSettings(max_steps=4, batch_size=16))
    policy = TransformersPolicy.from_pretrained(str(tiny_policy_dir), device="cuda", seed=0)
    value = TransformersValue(str(tmp_path / "v"), device="cuda")
    config = MCTSAlphaConfig(simulations=4, k=3, token_budget=300)
    results = mcts_alpha(PROMPTS, config, propose=policy.propose_steps, evaluate=value.score)
    assert len(results) == len(PROMPTS)
    assert sum(len(r.tree.text) for r in results) > 2 * len(PROMPTS)  # every root was expanded
    assert sum(r.tree.generated_tokens for r in results) == policy.stats.generated_tokens
    assert all(r.tree.generated_tokens <= 300 + 3 * policy.max_step_tokens for r in results)
    assert value.calls > 0 and value.scored_tokens > 0
