"""The transformers policy on the tiny model: KV-cache reuse, batching, step boundaries."""

import pytest
import torch

from models.errors import ModelDirError
from models.hf_policy import TransformersPolicy
from problems.arithmetic import generate

PROMPTS = [p.prompt for p in generate(5, split="test")] + ["Q: 5 +3 *2 -1\n5+3=8\n"]


def test_tokenizer_round_trips_and_splits_digits(tiny_policy_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_policy_dir)
    text = "Q: 37 +12 *3\n37+12=49\nThe answer is 147\n"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    assert tok.convert_ids_to_tokens(ids)[3:6] == ["3", "7", " "]


def test_cache_reuse_gives_the_same_tokens_as_recomputing(tiny_policy_dir):
    reuse = TransformersPolicy.from_pretrained(str(tiny_policy_dir), reuse_prefix_cache=True)
    recompute = TransformersPolicy.from_pretrained(str(tiny_policy_dir), reuse_prefix_cache=False)
    a = reuse.propose_steps(PROMPTS, 3, temperature=0.0)
    b = recompute.propose_steps(PROMPTS, 3, temperature=0.0)
    assert [[c.text for c in row] for row in a] == [[c.text for c in row] for row in b]
    for ra, rb in zip(a, b, strict=True):
        assert [c.logprob for c in ra] == pytest.approx([c.logprob for c in rb], abs=1e-4)
    # the point of reuse: each prefix is prefilled once instead of k times
    assert recompute.stats.prefill_tokens == 3 * reuse.stats.prefill_tokens


def test_sampled_children_reuse_the_cache_and_match_recompute_with_the_same_seed(tiny_policy_dir):
    reuse = TransformersPolicy.from_pretrained(str(tiny_policy_dir), seed=7)
    recompute = TransformersPolicy.from_pretrained(str(tiny_policy_dir), seed=7, reuse_prefix_cache=False)
    a = reuse.propose_steps(PROMPTS, 4, temperature=0.7)
    b = recompute.propose_steps(PROMPTS, 4, temperature=0.7)
    assert [[c.text for c in row] for row in a] == [[c.text for c in row] for row in b]


def test_dropping_finished_rows_from_the_batch_changes_nothing_but_the_work(tiny_policy_dir):
    # prefixes of different depths, so their steps end at different tokens
    prefixes = PROMPTS + [p + "1+1=2 (left: +3)\n" for p in PROMPTS] + ["Q: 5\n"]
    out = {}
    for compact in (0.0, 0.75, 1.0):  # never, the default, after every finished row
        policy = TransformersPolicy.from_pretrained(str(tiny_policy_dir), compact_below=compact)
        cands = policy.propose_steps(prefixes, 3, temperature=0.0)
        out[compact] = ([[(c.text, c.tokens) for c in row] for row in cands],
                        [c.logprob for row in cands for c in row], policy.stats.generated_tokens)
    for compact in (0.75, 1.0):
        assert out[compact][0] == out[0.0][0] and out[compact][2] == out[0.0][2]
        assert out[compact][1] == pytest.approx(out[0.0][1], abs=1e-4)
    assert len({n for row in out[0.0][0] for _, n in row}) > 1  # the steps did end at different lengths
    sampled = [TransformersPolicy.from_pretrained(str(tiny_policy_dir), seed=3).propose_steps(prefixes, 4)
               for _ in range(2)]
    assert [[c.text for c in r] for r in sampled[0]] == [[c.text for c in r] for r in sampled[1]]


def test_batching_across_prefixes_matches_one_at_a_time(tiny_policy_dir):
    batched = TransformersPolicy.from_pretrained(str(tiny_policy_dir))
    single = TransformersPolicy.from_pretrained(str(tiny_policy_dir))
    together = batched.propose_steps(PROMPTS, 2, temperature=0.0)
    alone = [single.propose_steps([p], 2, temperature=0.0)[0] for p in PROMPTS]
    assert [[c.text for c in r] for r in together] == [[c.text for c in r] for r in alone]


def test_steps_stop_at_a_newline_and_count_tokens(tiny_policy_dir):
    policy = TransformersPolicy.from_pretrained(str(tiny_policy_dir), max_step_tokens=12)
    out = policy.propose_steps(PROMPTS, 4)
    total = 0
    for row in out:
        assert len(row) == 4
        for c in row:
            assert "\n" not in c.text[:-1]  # at most one newline, at the end
            assert 1 <= c.tokens <= 12 and c.logprob <= 0
            total += c.tokens
    assert policy.stats.generated_tokens == total


def test_any_hf_causal_lm_directory_works(tmp_path, tiny_policy_dir):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tiny_policy_dir)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                                         max_position_embeddings=128, pad_token_id=tok.pad_token_id))
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    reuse = TransformersPolicy.from_pretrained(str(tmp_path), max_step_tokens=6)
    recompute = TransformersPolicy.from_pretrained(str(tmp_path), max_step_tokens=6, reuse_prefix_cache=False)
    assert [[c.text for c in r] for r in reuse.propose_steps(PROMPTS, 2, temperature=0.0)] == \
        [[c.text for c in r] for r in recompute.propose_steps(PROMPTS, 2, temperature=0.0)]


def test_missing_model_directory_is_one_clear_error(tmp_path):
    with pytest.raises(ModelDirError, match="model directory not found"):
        TransformersPolicy.from_pretrained(str(tmp_path / "nope"))
    with pytest.raises(ModelDirError, match="no config.json"):
        TransformersPolicy.from_pretrained(str(tmp_path))


def test_greedy_first_expansion_puts_the_greedy_step_first(tiny_policy_dir):
    from search.expand import expand_batch
    from search.tree import Tree

    policy = TransformersPolicy.from_pretrained(str(tiny_policy_dir), seed=1)
    greedy = [c[0].text for c in policy.propose_steps(PROMPTS, 1, temperature=0.0)]
    trees = [Tree(p) for p in PROMPTS]
    before = policy.stats.generated_tokens
    kids = expand_batch([(t, 0) for t in trees], policy.propose_steps, k=4, temperature=1.0, greedy_first=True)
    assert [t.text[k[0]] for t, k in zip(trees, kids, strict=True)] == greedy
    # every generated token counts: the greedy call's and the sampled call's
    assert sum(t.generated_tokens for t in trees) == policy.stats.generated_tokens - before


def test_device_auto_is_the_gpu_where_there_is_one(tiny_policy_dir):
    import torch

    from models.errors import resolve_device
    from models.hf_policy import TransformersPolicy
    from models.value import TransformersValue

    here = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") == here and resolve_device("cuda:1") == "cuda:1"
    assert TransformersPolicy.from_pretrained(str(tiny_policy_dir), device="auto").device.type == here
    assert TransformersValue(str(tiny_policy_dir), device="auto").device.type == here


def test_dtype_auto_is_bfloat16_only_on_a_gpu(tiny_policy_dir):
    from models.errors import resolve_dtype

    assert resolve_dtype("auto", "cpu") == torch.float32 and resolve_dtype("float16", "cpu") == torch.float16
    with pytest.raises(ValueError, match="'bf16'"):
        resolve_dtype("bf16", "cpu")
    half = TransformersPolicy.from_pretrained(str(tiny_policy_dir), dtype="bfloat16")
    assert next(half.model.parameters()).dtype == torch.bfloat16
    full = TransformersPolicy.from_pretrained(str(tiny_policy_dir))
    assert next(full.model.parameters()).dtype == torch.float32
    # bf16 weights still give steps that end where steps end, with float log-probabilities
    assert all(c.text.endswith("\n") or c.tokens == half.max_step_tokens or "answer" in c.text
               for row in half.propose_steps(PROMPTS, 2) for c in row)


def test_the_kv_reuse_benchmark_prints_its_table(tiny_policy_dir):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    script = root / "benchmarks" / "kv_reuse.py"
    out = subprocess.run([sys.executable, str(script), "--policy", str(tiny_policy_dir),
                          "--prefixes", "4", "--k", "2", "--repeats", "1", "--context", "40"],
                         capture_output=True, text=True, timeout=300, cwd=root, check=True).stdout
    rows = [line.split() for line in out.splitlines()]
    assert [r[1] for r in rows if r and r[0] == "2"] == ["reuse", "recompute", "speed-up"]
    reuse, recompute = (int(r[3]) for r in rows if r and r[0] == "2" and r[1] in ("reuse", "recompute"))
    assert recompute == 2 * reuse  # prefill tokens: each prefix once against once per child


@pytest.mark.parametrize("positions", [None, 40])
def test_whole_paths_decoded_in_one_go_are_the_paths_decoded_step_by_step(tiny_policy_dir, positions, monkeypatch):
    from search import sampling

    # the barely trained model writes no newlines: its steps end at max_step_tokens, which would end its
    # paths (`is_final`); here only an empty step does, so paths run several steps deep
    monkeypatch.setattr(sampling, "_ends", lambda step: not step.strip())
    out = {}
    for mode in ("steps", "paths"):
        policy = TransformersPolicy.from_pretrained(str(tiny_policy_dir), max_step_tokens=6)
        if positions:  # paths outgrow the model: they stop where step-by-step states start being truncated
            policy.max_positions = positions
        paths = sampling.sample_paths(PROMPTS, propose=policy.propose_steps, n=2, temperature=0.0, max_depth=5,
                                      complete=policy.propose_paths if mode == "paths" else None)
        out[mode] = ([[[(c.text, c.tokens) for c in p] for p in group] for group in paths],
                     [c.logprob for group in paths for p in group for c in p], policy.stats)
    steps, paths = out["steps"], out["paths"]
    assert paths[0] == steps[0] and paths[1] == pytest.approx(steps[1], abs=1e-4)
    assert {len(p) for group in steps[0] for p in group} == {5}
    assert paths[2].generated_tokens == steps[2].generated_tokens
    assert paths[2].prefill_tokens < steps[2].prefill_tokens / 2  # what one go saves: the states' prefills
    if positions:
        assert paths[2].calls > 1  # some paths ran out of positions and went on a step at a time
    else:
        assert paths[2].calls == 1


def test_sampled_whole_paths_end_where_a_path_ends(tiny_policy_dir):
    from problems.steps import is_final

    policy = TransformersPolicy.from_pretrained(str(tiny_policy_dir), max_step_tokens=8, seed=5)
    seen = []

    def ends(text):
        seen.append(text)
        return is_final(text) or not text.strip()

    paths = policy.propose_paths(PROMPTS, 3, temperature=1.0, max_depth=4, ends=ends)
    assert [len(group) for group in paths] == [3] * len(PROMPTS)
    assert 0 < len(seen) <= sum(len(p) for group in paths for p in group)  # asked at most once per step
    total = 0
    for path in (p for group in paths for p in group):
        assert 1 <= len(path) <= 4
        for c in path[:-1]:  # only a path's last step may be final, empty or cut by EOS
            assert not is_final(c.text) and c.text.strip() and (c.text.endswith("\n") or c.tokens == 8)
        total += sum(c.tokens for c in path)
    assert policy.stats.generated_tokens == total
    again = TransformersPolicy.from_pretrained(str(tiny_policy_dir), max_step_tokens=8, seed=5)
    assert again.propose_paths(PROMPTS, 3, temperature=1.0, max_depth=4, ends=ends) == paths  # seeded


def test_the_policy_reads_a_prompt_with_the_special_tokens_trl_trained_it_with(tiny_policy_dir):
    """TRL's SFT tokenizes a prompt as `tokenizer(prompt)` (Llama's BOS first); inference puts the same tokens
    first, so the policy continues exactly what it was trained on. The tiny tokenizer adds none."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from models.hf_policy import TransformersPolicy, special_prefix

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(["Question: 3 + 4?\nAnswer:\n7\n"] * 8, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    llama_tok = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="</s>")
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(llama_tok), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                         max_position_embeddings=128))
    policy = TransformersPolicy(model=model, tokenizer=llama_tok, max_step_tokens=4)
    prompt = "Question: 3 + 4?\nAnswer:\n"
    policy.propose_steps([prompt], 1, temperature=0.0)
    assert special_prefix(llama_tok) == [llama_tok.bos_token_id]
    assert policy.stats.prefill_tokens == len(llama_tok(prompt)["input_ids"])  # BOS and the prompt, once
    assert special_prefix(AutoTokenizer.from_pretrained(tiny_policy_dir)) == []
