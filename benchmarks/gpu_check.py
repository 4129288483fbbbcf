"""The GPU path, measured on real shapes: vLLM against transformers, search against plain sampling, PRM scoring.

    python benchmarks/gpu_check.py                         # on a GPU worker with vLLM (about 5 min)
    python benchmarks/gpu_check.py --shape tiny --no-vllm  # the same script on the CPU, tiny shapes (a check)

It builds random-init models of the real architectures (nothing is downloaded): a policy of
Qwen2.5-1.5B-Instruct's shape and a Qwen2.5-Math-PRM-style token-classification PRM of Qwen2.5-0.5B's shape
(a stand-in for the 7B that fits beside it), with a byte-level BPE tokenizer trained here that carries Qwen's
chat template and `<extra_0>`, and prints
  (i)   vLLM and transformers greedy steps on the same chat prompts: the share that are identical;
  (ii)  MCTS-alpha and PRM beam search generated tokens/s on vLLM (prefix caching on) against plain
        `LLM.generate` of whole solutions on the same prompts (the target: search >= 0.7x);
  (iii) PRM scoring throughput (states/s and tokens/s, batched, on the GPU).
Random weights write random text, so step lengths run to `--step-tokens`; the figures are costs, not accuracy.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

SHAPES = {  # hidden, layers, heads, kv heads, intermediate
    "real": {"policy": (1536, 28, 12, 2, 8960), "prm": (896, 24, 14, 2, 4864)},
    "tiny": {"policy": (64, 2, 4, 2, 128), "prm": (64, 2, 4, 2, 128)},
}
TEMPLATE = ("{%- for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
            "'<|im_end|>' + '\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
            "{%- endif %}")
SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."


def tokenizer(texts: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=4000, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<extra_0>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    out = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    out.chat_template = TEMPLATE
    return out


def build(root: Path, shape: str, texts: list[str]) -> tuple[Path, Path]:
    """The policy and PRM directories (bf16 weights where a GPU is, float32 on the CPU)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen2ForTokenClassification, set_seed

    tok = tokenizer(texts)
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    dirs = []
    for name, cls, extra in (("policy", Qwen2ForCausalLM, {}), ("prm", Qwen2ForTokenClassification,
                                                               {"num_labels": 2})):
        hidden, layers, heads, kv, inter = SHAPES[shape][name]
        set_seed(0)
        config = Qwen2Config(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers,
                             num_attention_heads=heads, num_key_value_heads=kv, intermediate_size=inter,
                             max_position_embeddings=4096, eos_token_id=tok.eos_token_id,
                             pad_token_id=tok.pad_token_id, tie_word_embeddings=name == "policy", **extra)
        model = cls(config).to(dtype)
        out = root / name
        model.save_pretrained(out)
        tok.save_pretrained(out)
        dirs.append(out)
    return dirs[0], dirs[1]


def questions_of(n: int) -> list[str]:
    from problems import select_problems

    return [p.question for p in select_problems("gsm8k", "test", 0, n)]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="real")
    parser.add_argument("--problems", type=int, default=64)
    parser.add_argument("--step-tokens", type=int, default=64)
    parser.add_argument("--no-vllm", action="store_true", help="transformers only (a CPU check of the script)")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    from flows import env

    env.configure()  # offline and quiet: every model here is built, none downloaded
    import torch

    from models.hf_policy import TransformersPolicy
    from models.prm import PublishedPRM
    from models.prompts import chat_prompt
    from search import BeamConfig, MCTSAlphaConfig, beam_search, mcts_alpha

    device = "cuda" if torch.cuda.is_available() else "cpu"
    questions = questions_of(args.problems)
    figures: dict = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu", "shape": args.shape}
    with tempfile.TemporaryDirectory() as scratch:
        t0 = time.perf_counter()
        policy_dir, prm_dir = build(Path(scratch), args.shape, [f"{SYSTEM} {q} \\boxed{{1}}" for q in questions])
        figures["build_seconds"] = round(time.perf_counter() - t0, 1)
        hf = TransformersPolicy.from_pretrained(str(policy_dir), device=device, step_delimiter="\n\n",
                                                max_step_tokens=args.step_tokens, max_batch_rows=256)
        chats = [chat_prompt(hf.tokenizer, q, SYSTEM) for q in questions]
        prm = PublishedPRM(f"prm:qwen:last:{prm_dir}", device=device, step_delimiter="\n\n", batch_size=32)
        evaluate = prm.scorer(chats)
        mcts = MCTSAlphaConfig(simulations=4, k=4, max_depth=4)
        beam = BeamConfig(n=8, width=4, max_depth=4)

        def rate(policy, search, config) -> float:
            before, t = policy.stats.generated_tokens, time.perf_counter()
            search(chats, config, propose=policy.propose_steps, evaluate=evaluate)
            return (policy.stats.generated_tokens - before) / (time.perf_counter() - t)

        figures["transformers"] = {"mcts_alpha_tokens_per_s": round(rate(hf, mcts_alpha, mcts)),
                                   "beam_tokens_per_s": round(rate(hf, beam_search, beam))}
        # (iii) the PRM alone, on states of 1-4 steps of the policy's own text
        steps = [c.text for row in hf.propose_steps(chats, 4, temperature=1.0) for c in row]
        states = [chats[i // 4] + steps[i] + steps[(i + 1) % len(steps)] for i in range(len(steps))]
        t, tokens = time.perf_counter(), prm.scored_tokens
        evaluate(states)
        seconds = time.perf_counter() - t
        figures["prm"] = {"states_per_s": round(len(states) / seconds, 1),
                          "tokens_per_s": round((prm.scored_tokens - tokens) / seconds)}
        if not args.no_vllm:
            from vllm import LLM, SamplingParams

            from models.vllm_policy import VLLMPolicy

            vllm = VLLMPolicy(str(policy_dir), temperature=1.0, max_step_tokens=args.step_tokens,
                              step_delimiter="\n\n", gpu_memory_utilization=0.5)
            # (i) the same greedy steps
            greedy_vllm = [row[0].text for row in vllm.propose_steps(chats, 1, temperature=0.0)]
            greedy_hf = [row[0].text for row in hf.propose_steps(chats, 1, temperature=0.0)]
            figures["greedy_steps_identical"] = round(
                sum(a == b for a, b in zip(greedy_vllm, greedy_hf, strict=True)) / len(chats), 3)
            # (ii) search on vLLM against plain whole-solution sampling of as many tokens
            searched = {name: rate(vllm, fn, config) for name, fn, config in (
                ("mcts_alpha", mcts_alpha, mcts), ("beam", beam_search, beam))}
            llm: LLM = vllm.llm
            params = SamplingParams(n=8, temperature=1.0, max_tokens=4 * args.step_tokens, seed=0)
            t = time.perf_counter()
            outs = llm.generate(chats, params, use_tqdm=False)
            plain = sum(len(c.token_ids) for o in outs for c in o.outputs) / (time.perf_counter() - t)
            figures["vllm"] = {"plain_generate_tokens_per_s": round(plain),
                               **{f"{k}_tokens_per_s": round(v) for k, v in searched.items()},
                               **{f"{k}_vs_plain": round(v / plain, 2) for k, v in searched.items()}}
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
