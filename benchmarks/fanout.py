"""Generation fanned out over shards: 256 problems with 1, 2 and 4 shard workers, and what Prefect costs.

    python benchmarks/fanout.py [--policy DIR] [--value DIR] [--problems 256] [--method mcts_alpha]

On the same policy, value model and problems it times
- `run_search` called directly on all problems, no Prefect (the reference);
- the `generate` flow (one Prefect flow run, search tasks, one DuckDB ingest) with one shard worker
  (all problems in one shard): its extra time over the direct call is the orchestration overhead;
- the same flow with 2 and 4 shard workers (shards of problems / workers, searched in threads at once):
  the speedup over one worker.
Each batch samples from a stream keyed by its problems, so every configuration generates the same trees
(the benchmark checks the token counts agree). Prints the times, the speedups and the overhead ratio.

Without --policy it trains a small tiny model first (about a minute, cached); without --value the value
model is a copy of the policy's backbone with a fresh head, saved once so every run reads the same one.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import small_policy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", default=None)
    parser.add_argument("--value", default=None)
    parser.add_argument("--problems", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32, help="trees in lockstep within a shard")
    parser.add_argument("--method", default="mcts_alpha", choices=["mcts_alpha", "self_consistency"])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()

    from flows import env

    scratch = Path(tempfile.mkdtemp(prefix="treeflow-fanout-"))
    env.configure(str(scratch))
    from flows.generate import generate
    from search import MCTSAlphaConfig
    from search.sampling import SamplingConfig
    from tasks.search import run_search

    policy = args.policy or small_policy()
    value = args.value or _value(policy, scratch / "value")
    method_config = MCTSAlphaConfig(simulations=8, k=4) if args.method == "mcts_alpha" else SamplingConfig(n=8)
    kwargs = dict(task_name="arithmetic", task_options={}, split="train", method=args.method,
                  method_config=method_config, policy_path=policy, value_path=value, temperature=0.7,
                  max_step_tokens=24, max_batch_rows=512, batch_size=args.batch_size, seed=0, run_id="fanout",
                  iteration=1, stage="search")
    generate(kwargs, start=0, count=args.batch_size, shard=str(scratch / "warm"), shard_size=args.batch_size,
             store_path=str(scratch / "warm.duckdb"))  # the Prefect server and the model files, warm

    t0 = time.perf_counter()
    direct = run_search(**kwargs, start=0, count=args.problems, shard=str(scratch / "direct"))
    times = {"direct": time.perf_counter() - t0}
    tokens = {"direct": direct["generated_tokens"]}
    for workers in args.workers:
        t0 = time.perf_counter()
        out = generate(kwargs, start=0, count=args.problems, shard=str(scratch / f"w{workers}" / "search"),
                       shard_size=-(-args.problems // workers), parallelism=workers,
                       store_path=str(scratch / f"w{workers}.duckdb"))
        times[f"{workers} worker{'s' * (workers > 1)}"] = time.perf_counter() - t0
        tokens[f"{workers} worker{'s' * (workers > 1)}"] = out["generated_tokens"]
    _report(args, times, tokens)


def _value(policy: str, out: Path) -> str:
    from models.training import ValueSettings, train_value

    train_value(policy, [{"text": "Q: 1\n1+1=2\n", "target": 1.0}], out, ValueSettings(max_steps=1))
    return str(out)


def _report(args, times: dict, tokens: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    one = times.get("1 worker")
    table = Table(title=f"{args.method} generation, {args.problems} problems, batches of {args.batch_size} "
                        "(2-core CPU)")
    for col in ("mode", "seconds", "generated tokens", "tokens/s", "vs 1 worker"):
        table.add_column(col, justify="left" if col == "mode" else "right")
    for mode, seconds in times.items():
        table.add_row(mode, f"{seconds:.1f}", f"{tokens[mode]:,}", f"{tokens[mode] / seconds:,.0f}",
                      "" if one is None or mode == "direct" else f"{one / seconds:.2f}x")
    console = Console(width=120)
    console.print(table)
    if one is not None:
        console.print(f"orchestration overhead (1-worker flow vs direct call): "
                      f"{100 * (one / times['direct'] - 1):+.1f} %")
    if len(set(tokens.values())) > 1:
        console.print(f"[red]token counts differ between modes: {tokens}[/red]")


if __name__ == "__main__":
    main()
