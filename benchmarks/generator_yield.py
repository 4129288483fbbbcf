"""What a flywheel generator yields for training, per generated token: the policy's D+ on one iteration's slice.

    python benchmarks/generator_yield.py [--config configs/testbed.yaml] [--workdir work] [--cache DIR]
        [--problems 256] [--seed 0] [--variant NAME=METHOD:JSON ...]

Runs each generator on the training problems of the flow's first iteration, from the models the flow starts
from (the cached bootstrap policy and value model: run the flywheel once first), and prints per generator:
generated tokens per problem, distinct correct traces (the D+ SFT trains on), how many of them have every step
right where the task can tell (arithmetic, Countdown: `Problem.steps_right`, measurement only; a right answer
is often reached through a wrong step), problems with at least one, and, of the problems greedy decoding gets
wrong, how many it found a correct trace for. A variant is a
search method of `search.METHODS` with settings over the config's (`mcts_alpha`, `bfs_v`: as the flywheel's
`training_search` runs them; `self_consistency`: `rest_em.samples`), all under the config's training token cap.
Default variants: the flywheel's training search and ReST-EM's sampling as configured.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TREE_SEARCHES = ("mcts_alpha", "bfs_v")  # the searches the flywheel can train on (`training_search.method`)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "testbed.yaml"))
    parser.add_argument("--workdir", default="work")
    parser.add_argument("--cache", default=None, help="bootstrap cache (default: <workdir>/cache)")
    parser.add_argument("--problems", type=int, default=None, help="default: task.train_per_iteration")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=METHOD:JSON",
                        help='e.g. \'paths3=mcts_alpha:{"paths": 3}\' (repeatable)')
    args = parser.parse_args()

    from flows import env

    env.configure(args.workdir)
    from flows.config import load_config

    config = load_config(args.config, {"workdir": args.workdir, "cache_dir": args.cache, "seed": args.seed})
    variants = [parse_variant(v) for v in args.variant] or [
        ("flywheel", config.training_search.method, {}), ("rest-em", "self_consistency", {})]
    for _, method, settings in variants:  # a bad setting fails now, not after the searches before it
        _method_config(config, method, settings)
    policy, value = _start_models(config)
    count = args.problems or config.task.train_per_iteration
    start = config.value.problems  # the first iteration's training slice, as the flow searches it
    greedy = _run(config, "greedy", "greedy", {}, policy, None, start, count)
    wrong = {p for p, ok in greedy["answered"].items() if not ok}
    print(f"{count} training problems from {start}; greedy solves {count - len(wrong)} "
          f"({greedy['tokens'] / count:.0f} tokens/problem)", flush=True)
    print(f"{'generator':<22} {'tokens/problem':>14} {'D+':>6} {'D+/1k tok':>9} {'steps right':>12} {'solved':>7} "
          f"{'greedy-wrong solved':>20} {'wall':>7}", flush=True)
    for name, method, settings in variants:
        r = _run(config, name, method, settings, policy, value, start, count)
        hard = sum(1 for p in wrong if r["solved"].get(p))
        share = r["faithful"] and 100 * r["faithful"] / r["traces"]
        right = "n/a" if r["faithful"] is None else f"{r['faithful']} ({share:.0f} %)"
        print(f"{name:<22} {r['tokens'] / count:>14.0f} {r['traces']:>6} {1000 * r['traces'] / r['tokens']:>9.2f} "
              f"{right:>12} {sum(r['solved'].values()):>7} {hard:>11} of {len(wrong):<5} {r['wall']:>6.0f}s",
              flush=True)


def parse_variant(text: str) -> tuple[str, str, dict]:
    """`NAME=METHOD:JSON` (JSON optional) -> (name, method, settings); a clear error for anything else."""
    from search import METHODS

    name, sep, rest = text.partition("=")
    method, _, raw = rest.partition(":")
    if not sep or not re.fullmatch(r"[\w.-]+", name) or method not in METHODS:
        raise SystemExit(f"--variant {text!r}: expected NAME=METHOD[:JSON] with METHOD one of {sorted(METHODS)}")
    try:
        settings = json.loads(raw) if raw else {}
    except json.JSONDecodeError as e:
        raise SystemExit(f"--variant {text!r}: settings are not JSON ({e})") from None
    if not isinstance(settings, dict):
        raise SystemExit(f"--variant {text!r}: settings must be a JSON object")
    return name, method, settings


def _start_models(config) -> tuple[str, str]:
    from flows.flywheel import bootstrap_value_dir
    from models.errors import resolve_model
    from models.tiny import cached

    if config.policy.path is not None:
        policy = resolve_model(config.policy.path)
    elif (hit := cached(config.tiny, config.paths["cache"])) is not None:
        policy = str(hit)
    else:
        raise SystemExit(f"no bootstrap policy for this config in {config.paths['cache']}: run the flywheel once")
    value = config.value.path or str(bootstrap_value_dir(config, policy))
    if not Path(value, "config.json").is_file():
        raise SystemExit(f"{value}: no bootstrap value model there: run the flywheel once with this config")
    return policy, value


def _method_config(config, method: str, settings: dict):
    """`method`'s config as the flows generate with it (MCTS-alpha, BFS-V: as the flywheel's training search
    would run it, with `training_search.settings` where it is the configured method; Self-Consistency: ReST-EM's
    sampling), with `settings` over it."""
    from flows.config import TrainingSearch
    from flows.flywheel import training_generator
    from search import METHODS

    if method in TREE_SEARCHES:
        own = config.training_search
        trained = TrainingSearch(method=method, settings=own.settings if own.method == method else {})
        base = training_generator(config.model_copy(update={"training_search": trained}), "search")[1]
    elif method == "self_consistency":
        base = training_generator(config, "rest_em")[1]
    else:
        base = METHODS[method][1](max_depth=config.search.max_depth)
    fields = {f.name for f in dataclasses.fields(base)}
    if unknown := set(settings) - fields:
        raise SystemExit(f"{method}: unknown settings {sorted(unknown)}; it has {sorted(fields)}")
    return dataclasses.replace(base, **settings)


def _run(config, name: str, method: str, settings: dict, policy: str, value: str | None, start: int,
         count: int) -> dict:
    """Search the slice with one generator, ingest its shard into a scratch trace store, and read back what
    SFT would train on: `sft_traces`, distinct per (prompt, completion), as the flow's SFT reads it."""
    from flows.flywheel import search_kwargs, training_generator
    from tasks.search import run_search

    # as the flows generate: a tree search at its own `token_budget`, samples (and any other method) under the cap
    budgets = None if method in ("greedy", *TREE_SEARCHES) else training_generator(config, "rest_em")[2]
    root = config.paths["root"] / "generator-yield"
    t0 = time.perf_counter()
    out = run_search(**search_kwargs(config, f"yield-{name}", policy, value), split="train", start=start,
                     count=count, method=method, method_config=_method_config(config, method, settings),
                     shard=str(root / name), iteration=1, stage="search", budgets=budgets)
    wall = time.perf_counter() - t0
    return {**yield_of(root / f"{name}.duckdb", out["shard"], config.sft_filter.equations), "wall": wall}


def yield_of(store_path: Path, shard: str, equations: bool = False) -> dict:
    """Tokens, D+ size, how many D+ traces have every step right (None where the task cannot tell), and per
    problem whether it was answered right and whether D+ holds a trace for it, for the trees of one shard
    (ingested into a fresh store at `store_path`). D+ is what SFT trains on: with `equations` (the config's
    `sft_filter.equations`), only the traces whose every written equation holds."""
    from problems import Problem
    from storage import store

    store_path.unlink(missing_ok=True)
    with store.connect(store_path) as con:
        store.ingest(con, [shard])
        tokens = con.execute("SELECT sum(generated_tokens) FROM trees").fetchone()[0]
        answered = dict(con.execute("SELECT problem_id, coalesce(correct, false) FROM trees").fetchall())
        traces = con.execute(
            "SELECT DISTINCT p.problem_id, p.task, p.question, p.gold, p.prompt, s.completion "
            "FROM sft_traces s JOIN problems p USING (problem_id)"
            + (" WHERE equations_hold(s.completion)" if equations else "")).fetchall()
    rights = [Problem(*row[:5]).steps_right(row[5].splitlines(keepends=True)) for row in traces]
    return {"tokens": tokens, "traces": len(traces), "answered": answered,
            "solved": {p: p in {row[0] for row in traces} for p in answered},
            "faithful": None if None in rights else sum(rights)}


if __name__ == "__main__":
    main()
