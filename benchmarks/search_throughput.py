"""Search throughput: MCTS-alpha on the lockstep engine against its ceiling and the one-at-a-time way.

    python benchmarks/search_throughput.py [--policy DIR] [--value DIR] [--problems 64] [--alone 8]

In one run, on the same policy and problems, it prints generated tokens per second of
- MCTS-alpha over all problems in lockstep (one batched policy call and one batched value call per
  simulation wave, the shared prefix's KV cache reused across each node's k children);
- plain batched sampling of the same total number of tokens (complete solutions, all problems at
  once, a step at a time with the same prefix-cache reuse): the ceiling for any search that, like
  MCTS-alpha, stops at every step;
- the same sampling with each path decoded in one go (`TransformersPolicy.propose_paths`, what the
  sampling baselines and ReST-EM run): no state prefilled again per step;
- MCTS-alpha run one problem at a time and one node at a time: every child sampled by its own policy
  call with its prefix recomputed, every state valued by its own call: how the reference
  implementations run. It searches the first `--alone` problems (its rate, not its total, is compared);
- for reference, one problem at a time with each node's k children in one call (prefix recomputed
  k times, `reuse_prefix_cache=False`), i.e. batching within a node but not across trees.
and the ratios the search issue targets (search >= 0.7 x the ceiling, >= 10 x one-at-a-time), with each
mode's peak resident memory (each mode runs in its own process so the peaks are its own).

Without --policy it trains a small tiny model first (about a minute, cached). Without --value the value
model is the policy's backbone with a fresh scalar head: its values are arbitrary, which changes which
nodes are expanded but not what an expansion costs.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import small_policy

MCTS = {"simulations": 8, "k": 4, "max_depth": 8}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", default=None)
    parser.add_argument("--value", default=None)
    parser.add_argument("--problems", type=int, default=64)
    parser.add_argument("--alone", type=int, default=8, help="problems the one-at-a-time search runs on")
    parser.add_argument("--mode", choices=["mcts", "sampling", "paths", "one_tree", "one_node"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--tokens", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(_measure(args)))
        return

    from rich.console import Console
    from rich.table import Table

    policy = args.policy or small_policy()
    value = args.value or _fresh_value(policy)
    common = ["--policy", policy, "--value", value, "--problems", str(args.problems), "--alone", str(args.alone)]
    search = _child(common + ["--mode", "mcts"])
    ceiling = _child(common + ["--mode", "sampling", "--tokens", str(search["generated_tokens"])])
    paths = _child(common + ["--mode", "paths", "--tokens", str(search["generated_tokens"])])
    alone = _child(common + ["--mode", "one_node"])
    tree = _child(common + ["--mode", "one_tree"])
    table = Table(title=f"MCTS-alpha (simulations {MCTS['simulations']}, k {MCTS['k']}) on {args.problems} "
                        f"arithmetic problems; policy {Path(policy).name}")
    for col in ("mode", "problems", "generated tokens", "seconds", "tokens/s", "policy calls", "peak RSS MiB"):
        table.add_column(col, justify="left" if col == "mode" else "right")
    for name, r in (("MCTS-alpha, lockstep + KV reuse", search), ("batched sampling (ceiling)", ceiling),
                    ("batched sampling, paths in one go", paths),
                    ("MCTS-alpha, one node at a time", alone), ("MCTS-alpha, one tree at a time", tree)):
        table.add_row(name, str(r["problems"]), f"{r['generated_tokens']:,}", f"{r['seconds']:.1f}",
                      f"{r['rate']:,.0f}", str(r["policy_calls"]), f"{r['peak_rss_mib']:.0f}")
    console = Console(width=130)
    console.print(table)
    vs_ceiling, vs_alone = search["rate"] / ceiling["rate"], search["rate"] / alone["rate"]
    verdict = {True: "pass", False: "FAIL"}
    console.print(f"search / ceiling = {vs_ceiling:.2f}x (target >= 0.7: {verdict[vs_ceiling >= 0.7]}); "
                  f"search / one-at-a-time = {vs_alone:.1f}x (target >= 10: {verdict[vs_alone >= 10]})")
    console.print(f"(one tree at a time, k children per call: search / it = {search['rate'] / tree['rate']:.1f}x; "
                  f"paths in one go / step by step = {paths['rate'] / ceiling['rate']:.1f}x)")
    console.print(f"value model in the search: {search['value_calls']} calls, {search['value_tokens']:,} tokens "
                  f"scored, {search['value_seconds']:.1f} s of the {search['seconds']:.1f} s")


def _child(argv: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *argv], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _fresh_value(policy: str) -> str:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = Path(tempfile.gettempdir()) / "treeflow-bench-cache" / f"fresh-value-{Path(policy).parent.name}"
    if not (out / "config.json").is_file():
        model = AutoModelForSequenceClassification.from_pretrained(policy, num_labels=1)
        if model.config.pad_token_id is None:
            model.config.pad_token_id = model.config.eos_token_id
        model.save_pretrained(out)
        AutoTokenizer.from_pretrained(policy).save_pretrained(out)
    return str(out)


class _OneNodeAtATime:
    """A policy and value called for one candidate / one state per call, as reference loops do."""

    def __init__(self, policy, value):
        self.policy, self.value = policy, value

    def propose(self, prefixes: list[str], k: int, *, temperature: float | None = None) -> list:
        return [[self.policy.propose_steps([p], 1, temperature=temperature)[0][0] for _ in range(k)]
                for p in prefixes]

    def score(self, states: list[str]) -> list[float]:
        return [self.value.score([s])[0] for s in states]


class _TimedValue:
    def __init__(self, value):
        self.value, self.seconds = value, 0.0

    def score(self, states: list[str]) -> list[float]:
        t0 = time.perf_counter()
        out = self.value.score(states)
        self.seconds += time.perf_counter() - t0
        return out


def _measure(args) -> dict:
    from flows import env

    env.configure()
    import torch

    from models.hf_policy import TransformersPolicy
    from models.value import TransformersValue
    from problems import select_problems
    from search import MCTSAlphaConfig, mcts_alpha
    from search.sampling import sample_paths

    torch.manual_seed(0)
    problems = select_problems("arithmetic", "test", 0, args.problems, {})
    prompts = [p.prompt for p in problems]
    policy = TransformersPolicy.from_pretrained(args.policy, seed=0, temperature=0.7, max_step_tokens=24,
                                                reuse_prefix_cache=args.mode != "one_tree")
    value = _TimedValue(TransformersValue(args.value))
    config = MCTSAlphaConfig(**MCTS)
    mcts_alpha(prompts[:2], config, propose=policy.propose_steps, evaluate=value.score)  # warm-up
    policy.stats.__init__()
    value.value.scored_tokens = value.value.calls = 0
    value.seconds = 0.0
    t0 = time.perf_counter()
    if args.mode == "mcts":
        mcts_alpha(prompts, config, propose=policy.propose_steps, evaluate=value.score)
    elif args.mode in ("one_tree", "one_node"):
        prompts = prompts[:args.alone]
        one = _OneNodeAtATime(policy, value)
        propose, evaluate = (policy.propose_steps, value.score) if args.mode == "one_tree" else (one.propose,
                                                                                                 one.score)
        for prompt in prompts:
            mcts_alpha([prompt], config, propose=propose, evaluate=evaluate)
    else:
        n = 4
        while policy.stats.generated_tokens < args.tokens:
            left = args.tokens - policy.stats.generated_tokens
            n = max(1, min(n, math.ceil(left / (len(prompts) * 30))))
            sample_paths(prompts, propose=policy.propose_steps, n=n, temperature=0.7, max_depth=MCTS["max_depth"],
                         complete=policy.propose_paths if args.mode == "paths" else None)
    seconds = time.perf_counter() - t0
    return {"problems": len(prompts), "generated_tokens": policy.stats.generated_tokens, "seconds": seconds,
            "rate": policy.stats.generated_tokens / seconds, "policy_calls": policy.stats.calls,
            "value_calls": value.value.calls, "value_tokens": value.value.scored_tokens,
            "value_seconds": value.seconds,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


if __name__ == "__main__":
    main()
