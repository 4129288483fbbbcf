"""Shared-prefix KV reuse vs recomputing every child's prefix, on the same policy and prefixes.

    python benchmarks/kv_reuse.py [--policy DIR | --shape qwen2-0.5b] [--device cuda] [--dtype auto]
                                  [--prefixes 64] [--k 4 8] [--context 0] [--repeats 3]

Prints generated tokens/s for both (the median of `--repeats` calls after a warm-up, the modes taking
turns), the speed-up, and prefill tokens per call. Without --policy it trains a
small tiny model first (about a minute), so the numbers are reproducible anywhere. `--shape` times a
randomly initialised model of a real model's shape instead (the tiny tokenizer, no download): its
steps are noise, so only the speed means anything. `--context N` puts about N tokens of worked
examples before every prefix, as a few-shot prompt does.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from _common import small_policy

from models.errors import DTYPES

SHAPES = {  # published configurations, minus the vocabulary (the tiny tokenizer's is used)
    "qwen2-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                       num_key_value_heads=2, tie_word_embeddings=True),
    "qwen2-1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                       num_key_value_heads=2, tie_word_embeddings=True),
}


def shaped_policy(shape: str, tokenizer_from: str) -> str:
    """A randomly initialised Qwen2 of `shape` with the tiny tokenizer, saved to a temporary directory."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_from)
    config = Qwen2Config(vocab_size=len(tokenizer), max_position_embeddings=4096,
                         bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **SHAPES[shape])
    torch.manual_seed(0)
    out = tempfile.mkdtemp(prefix=f"treeflow-{shape}-")
    Qwen2ForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", default=None)
    parser.add_argument("--shape", choices=sorted(SHAPES), default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto", choices=DTYPES)
    parser.add_argument("--prefixes", type=int, default=64)
    parser.add_argument("--k", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--context", type=int, default=0, help="tokens of worked examples before each prefix")
    parser.add_argument("--max-step-tokens", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-cudnn-attention", action="store_true",
                        help="turn off PyTorch's cuDNN attention kernels (GPU), to compare")
    args = parser.parse_args()

    from flows import env

    env.configure()
    import torch

    from models.hf_policy import TransformersPolicy
    from problems.arithmetic import generate, solution_steps

    if args.no_cudnn_attention:
        torch.backends.cuda.enable_cudnn_sdp(False)
    policy_dir = args.policy or small_policy()
    if args.shape:
        policy_dir = shaped_policy(args.shape, policy_dir)
    problems = generate(args.prefixes, split="test")
    # prefixes of realistic depth: prompt plus the first one or two reference steps
    prefixes = [p.prompt + "".join(solution_steps(p)[: i % 3]) for i, p in enumerate(problems)]
    if args.context:
        shots, chars = "", 0
        for p in generate(10_000, split="demo"):
            if chars >= args.context:  # one token per character, near enough for this tokenizer
                break
            example = p.prompt + "".join(solution_steps(p))
            shots, chars = shots + example + "\n", chars + len(example) + 1
        prefixes = [shots + p for p in prefixes]
    load = lambda reuse: TransformersPolicy.from_pretrained(  # noqa: E731
        policy_dir, reuse_prefix_cache=reuse, seed=0, max_step_tokens=args.max_step_tokens, device=args.device,
        dtype=args.dtype)
    probe = load(True)
    print(f"policy {args.shape or policy_dir}; {sum(p.numel() for p in probe.model.parameters()) / 1e6:.1f}M "
          f"parameters, {next(probe.model.parameters()).dtype} on {probe.device}; {len(prefixes)} prefixes of "
          f"{sum(len(i) for i in probe.tokenizer(prefixes)['input_ids']) / len(prefixes):.0f} tokens on average; "
          f"torch threads {torch.get_num_threads()}")
    del probe
    print(f"{'k':>3} {'mode':>10} {'gen tok/s':>10} {'prefill tok':>12} {'median s':>9}")
    for k in args.k:
        policies = {reuse: load(reuse) for reuse in (True, False)}
        sync = torch.cuda.synchronize if policies[True].device.type == "cuda" else (lambda: None)
        for policy in policies.values():  # warm-up at full size: allocator, kernels, clocks
            policy.propose_steps(prefixes, k)
            policy.stats.__init__()
        seconds = {True: [], False: []}
        for _ in range(args.repeats):  # the modes alternate, so drift in the machine hits both alike
            for reuse, policy in policies.items():
                sync()
                t0 = time.perf_counter()
                policy.propose_steps(prefixes, k)
                sync()
                seconds[reuse].append(time.perf_counter() - t0)
        rates = {}
        for reuse, policy in policies.items():
            median = statistics.median(seconds[reuse])
            rates[reuse] = policy.stats.generated_tokens / args.repeats / median
            mode = "reuse" if reuse else "recompute"
            print(f"{k:>3} {mode:>10} {rates[reuse]:>10.0f} {policy.stats.prefill_tokens // args.repeats:>12} "
                  f"{median:>9.3f}")
        print(f"{k:>3} {'speed-up':>10} {rates[True] / rates[False]:>10.2f}x")


if __name__ == "__main__":
    main()
