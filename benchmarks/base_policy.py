"""How much headroom a policy leaves for search: greedy vs pass@n and majority@n on the test split.

    python benchmarks/base_policy.py [--policy DIR] [--config YAML] [--set KEY=VALUE] [--problems 400] [--n 16] \
        [--temperature 0.7]

Without --policy it bootstraps (or reuses from work/cache) the tiny model of `--config` (default: the one
`treeflow demo` uses), and tests on that config's task (default: chain arithmetic). `--set` changes one setting
of `--config`, e.g. `--set tiny.n_demos=10000`: a bootstrap recipe can be probed without writing a config file.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", default=None)
    parser.add_argument("--config", default=None, help="flywheel config whose tiny recipe and task to use")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change one setting of --config (VALUE is YAML); repeatable")
    parser.add_argument("--cache", default="work/cache")
    parser.add_argument("--problems", type=int, default=400)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--temperature", type=float, default=0.7)
    args = parser.parse_args()

    from flows import env

    env.configure()
    from models.hf_policy import TransformersPolicy
    from models.tiny import bootstrap
    from problems import select_problems
    from search import SamplingConfig, greedy, self_consistency

    config = policy_config(args.config, args.set)
    policy_dir = args.policy or str(bootstrap(config.tiny, args.cache))
    policy = TransformersPolicy.from_pretrained(policy_dir, temperature=args.temperature)
    problems = select_problems(config.task.name, "test", 0, args.problems, config.task.options)
    prompts = [p.prompt for p in problems]
    t0 = time.perf_counter()
    g = greedy(prompts, SamplingConfig(max_depth=8), propose=policy.propose_steps)
    sc = self_consistency(prompts, SamplingConfig(n=args.n, max_depth=8), propose=policy.propose_steps,
                          canonical=problems[0].canonical)
    dt = time.perf_counter() - t0
    n = len(problems)
    greedy_acc = sum(p.check(r.answer) for p, r in zip(problems, g, strict=True)) / n
    maj = sum(p.check(r.answer) for p, r in zip(problems, sc, strict=True)) / n
    pass_n = sum(any(p.check(a) for a in r.tree.answer if a) for p, r in zip(problems, sc, strict=True)) / n
    print(f"policy {policy_dir}; {n} test problems; T = {args.temperature}")
    print(f"greedy {100 * greedy_acc:.1f}%   pass@{args.n} {100 * pass_n:.1f}%   maj@{args.n} {100 * maj:.1f}%")
    print(f"{policy.stats.generated_tokens} generated tokens in {dt:.1f} s "
          f"({policy.stats.generated_tokens / dt:.0f} tokens/s, prefill {policy.stats.prefill_tokens})")


def policy_config(path: str | None, changes: list[str]):
    """The config whose recipe and task are probed: the file at `path` with the `--set` changes, or the default
    config (which takes no changes)."""
    from _common import run_config

    from flows.config import FlywheelConfig

    if path is None:
        if changes:
            raise SystemExit(f"--set {changes[0]}: give the --config it changes")
        return FlywheelConfig()
    return run_config(path, changes, {})


if __name__ == "__main__":
    main()
