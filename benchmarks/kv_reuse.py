"""Shared-prefix KV reuse vs recomputing every child's prefix, on the same policy and prefixes.

    python benchmarks/kv_reuse.py [--policy DIR] [--prefixes 64] [--k 4 8] [--repeats 3]

Prints generated tokens/s for both, the speed-up, and prefill tokens. Without --policy it trains a
small tiny model first (about a minute), so the numbers are reproducible anywhere.
"""

from __future__ import annotations

import argparse
import time

from _common import small_policy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", default=None)
    parser.add_argument("--prefixes", type=int, default=64)
    parser.add_argument("--k", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from flows import env

    env.configure()
    import torch

    from models.hf_policy import TransformersPolicy
    from problems.arithmetic import generate, solution_steps

    policy_dir = args.policy or small_policy()
    problems = generate(args.prefixes, split="test")
    # prefixes of realistic depth: prompt plus the first one or two reference steps
    prefixes = [p.prompt + "".join(solution_steps(p)[: i % 3]) for i, p in enumerate(problems)]
    print(f"policy {policy_dir}; {len(prefixes)} prefixes; torch threads {torch.get_num_threads()}")
    print(f"{'k':>3} {'mode':>10} {'gen tok/s':>10} {'prefill tok':>12} {'seconds':>8}")
    for k in args.k:
        rates = {}
        for reuse in (True, False):
            policy = TransformersPolicy.from_pretrained(policy_dir, reuse_prefix_cache=reuse, seed=0,
                                                        max_step_tokens=24)
            policy.propose_steps(prefixes[:4], k)  # warm-up
            policy.stats.__init__()
            t0 = time.perf_counter()
            for _ in range(args.repeats):
                policy.propose_steps(prefixes, k)
            dt = time.perf_counter() - t0
            rates[reuse] = policy.stats.generated_tokens / dt
            mode = "reuse" if reuse else "recompute"
            print(f"{k:>3} {mode:>10} {rates[reuse]:>10.0f} {policy.stats.prefill_tokens:>12} {dt:>8.2f}")
        print(f"{k:>3} {'speed-up':>10} {rates[True] / rates[False]:>10.2f}x")
