"""The search flywheel against ReST-EM on the CPU testbed, at the same training generation budget.

    python benchmarks/flywheel_vs_rest_em.py [--config configs/testbed.yaml] [--set KEY=VALUE] [--seeds 0] \
        [--workdir work/compare] [--prefix tb | FLOW=PREFIX ...] [--search JSON] [--flows flywheel restem] \
        [--retest N] [--analyze-only] [--plot docs/flywheel-vs-rest-em.png]

Per seed it runs `treeflow flywheel` and `treeflow rest-em` with the same configuration (the same bootstrap
policy and value model, training problems, per-problem token cap, SFT, value refit and evaluation; only the
generator differs: the tree search `training_search` names, or `rest_em.samples` samples), then reads back per
iteration: greedy and MCTS-alpha test accuracy, the value model's held-out AUC, training tokens per problem and
D+ size. Prints one table (mean and sd over seeds) and the wall time of each flow, and draws both accuracies
over iterations. `--set sft.epochs=3` changes one setting of the config for both flows; `--search` changes the
flywheel's MCTS-alpha training search only, e.g. more paths on one tree (`--set training_search.method=bfs_v`
trains on BFS-V; `benchmarks/generator_yield.py` measures what a setting yields before a full run).
`--analyze-only` reads runs already in the store. `--retest N` also decodes every iteration's policy greedily,
as the flows evaluate it, on the first N test problems (the flows evaluate the first `task.test_size` of them):
200 problems give one accuracy a standard error of about 3 points, as large as the gaps being compared.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLOWS = ("flywheel", "restem")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "testbed.yaml"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change one setting of --config for both flows, e.g. --set sft.epochs=3 (VALUE is "
                             "YAML); repeatable")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--workdir", default="work/compare")
    parser.add_argument("--cache", default=None, help="bootstrap cache (default: <workdir>/cache)")
    parser.add_argument("--prefix", nargs="+", default=["tb"], metavar="[FLOW=]PREFIX",
                        help="run ids are PREFIX-flywheel-sSEED, PREFIX-restem-sSEED; FLOW=PREFIX gives one flow "
                             "its own (e.g. flywheel=old restem=tb)")
    parser.add_argument("--search", default=None, metavar="JSON",
                        help='the flywheel\'s training search over the config\'s, e.g. \'{"k": 3, "paths": 5}\'; '
                             "MCTS-alpha is still evaluated with the config's own settings")
    parser.add_argument("--flows", nargs="+", choices=list(FLOWS), default=list(FLOWS),
                        help="run (and report) only these, e.g. the flywheel alone under another --search")
    parser.add_argument("--retest", type=int, default=None, metavar="N",
                        help="also decode each iteration's policy greedily on the first N test problems")
    parser.add_argument("--analyze-only", action="store_true")
    parser.add_argument("--plot", default=None, help="PNG path (default: <workdir>/flywheel-vs-rest-em.png)")
    args = parser.parse_args()

    from flows import env

    env.configure(args.workdir)
    from flows.figures import ITERATION_PANELS, iteration_figures, plot_over_iterations
    from flows.flywheel import flywheel, rest_em
    from flows.report import TRAINING_SEARCH_NAMES

    series: dict[str, list[list[dict]]] = {name: [] for name in args.flows}
    minutes: dict[str, list[float]] = {name: [] for name in args.flows}
    if args.retest is not None and args.retest < 1:
        raise SystemExit(f"--retest {args.retest}: expected a number of test problems >= 1")
    config, retested, prefixes = None, {}, run_prefixes(args.prefix, args.flows)
    for seed in args.seeds:
        for name in args.flows:
            run_id = f"{prefixes[name]}-{name}-s{seed}"
            config = seed_config(args.config, args.set, {"workdir": args.workdir, "cache_dir": args.cache,
                                                         "seed": seed, "run_id": run_id}, args.search)
            if not args.analyze_only:
                t0 = time.perf_counter()
                (flywheel if name == "flywheel" else rest_em)(config)
                minutes[name].append((time.perf_counter() - t0) / 60)
            rows = iteration_figures(config.paths["store"], run_id, config.evaluation.token_budget)
            if args.retest:
                for row, again in zip(rows, retest(config, run_id, args.retest, retested), strict=True):
                    row.update(again)
            series[name].append(rows)
    _report(series, minutes, config, args.seeds, args.retest)
    if args.retest:
        _report_retest(series, args.retest, config.test_size("greedy"))
    searched = TRAINING_SEARCH_NAMES[config.training_search.method]
    labels = {"flywheel": f"search flywheel ({searched})", "restem": f"ReST-EM ({config.rest_em.samples} samples)"}
    panels = ITERATION_PANELS
    if args.retest:
        panels = (ITERATION_PANELS[0], ("greedy_retest", f"greedy on {args.retest} test problems"),
                  *ITERATION_PANELS[1:])
    path = plot_over_iterations({labels[name]: rows for name, rows in series.items()},
                                args.plot or f"{args.workdir}/flywheel-vs-rest-em.png",
                                f"{config.task.name}: flywheel vs ReST-EM ({len(args.seeds)} seed"
                                f"{'s' * (len(args.seeds) > 1)}, {config.task.test_size} test problems, "
                                f"{config.evaluation.token_budget} tokens)", panels)
    print(f"picture: {path}")


def seed_config(path: str, changes: list[str], run: dict, search: str | None):
    """One run's config: the file at `path` with the `--set KEY=VALUE` `changes`, the run's own settings (workdir,
    seed, run id) and the flywheel's training search changed by `search` (`with_training_search`)."""
    from _common import run_config

    return with_training_search(run_config(path, changes, run), search)


def run_prefixes(values: list[str], flows: list[str]) -> dict[str, str]:
    """Each flow's run-id prefix from `--prefix`: one PREFIX for every flow, and FLOW=PREFIX for one flow."""
    shared = [v for v in values if "=" not in v]
    own = dict(v.split("=", 1) for v in values if "=" in v)
    if len(shared) > 1 or set(own) - set(FLOWS) or not all([*shared, *own.values()]):
        raise SystemExit(f"--prefix {' '.join(values)}: expected one PREFIX and FLOW=PREFIX pairs "
                         f"(flows: {', '.join(FLOWS)})")
    return {name: own.get(name, shared[0] if shared else "tb") for name in flows}


def with_training_search(config, search: str | None):
    """`config` with its training search changed by the JSON settings `search`, and the evaluation's MCTS-alpha
    pinned to the settings it had, so only the generator differs from a run without them."""
    import json

    from flows.config import FlywheelConfig

    if not search:
        return config
    try:
        changes = json.loads(search)
    except json.JSONDecodeError as e:
        raise SystemExit(f"--search {search!r}: not JSON ({e})") from None
    if not isinstance(changes, dict):
        raise SystemExit(f"--search {search!r}: expected a JSON object of MCTS-alpha settings")
    data = config.model_dump()
    if unknown := set(changes) - set(data["search"]):
        raise SystemExit(f"--search: unknown MCTS-alpha settings {sorted(unknown)}")
    pinned = {key: data["search"][key] for key in changes}
    data["search"].update(changes)
    settings = data["evaluation"]["settings"]
    settings["mcts_alpha"] = {**pinned, **settings.get("mcts_alpha", {})}
    return FlywheelConfig.model_validate(data)


def retest(config, run_id: str, count: int, done: dict | None = None) -> list[dict]:
    """Per iteration of run `run_id`, its policy decoded greedily (as the flows evaluate greedy) on the first
    `count` test problems: the accuracy on all of them (`greedy_retest`) and on the first `task.test_size`, the
    flows' own (`greedy_first`: it reproduces the stored figure). Shards go under `<workdir>/retest`. `done`
    ((policy path, count) -> correct per problem id) saves decoding a policy twice, e.g. the bootstrap every run
    starts from."""
    import statistics

    from _common import greedy_answers

    from problems import select_problems
    from storage.store import query

    done = {} if done is None else done
    _, policies = query(config.paths["store"], "SELECT iteration, any_value(policy) FROM evaluations WHERE run_id "
                                               "= ? AND method = 'greedy' GROUP BY 1 ORDER BY 1", [run_id])
    ids = [p.id for p in select_problems(config.task.name, "test", 0, count, config.task.options)]
    rows = []
    for iteration, policy in policies:
        if (policy, count) not in done:
            shard = str(config.paths["root"] / "retest" / f"{run_id}-it{iteration}")
            done[policy, count] = greedy_answers(config, policy, count, shard, f"retest-{run_id}", iteration)
        correct = done[policy, count]
        rows.append({"iteration": iteration, "greedy_retest": statistics.fmean(correct[i] for i in ids),
                     "greedy_first": statistics.fmean(correct[i] for i in ids[:config.test_size("greedy")])})
    return rows


def _cell(rows: list[dict], key: str, scale: float, fmt: str) -> str:
    values = [scale * r[key] for r in rows if r.get(key) is not None]
    if not values:
        return ""
    sd = f" ±{statistics.stdev(values):{fmt}}" if len(values) > 1 else ""
    return f"{statistics.fmean(values):{fmt}}{sd}"


def _report(series: dict, minutes: dict, config, seeds: list[int], retest: int | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"flywheel vs ReST-EM on {config.task.name}: {config.task.train_per_iteration} training "
                        f"problems per iteration, {config.task.test_size} test problems, seeds "
                        f"{', '.join(map(str, seeds))} (mean ± sd)")
    retested = [f"greedy % ({retest} problems)"] if retest else []
    for col in ("flow", "iteration", "greedy %", *retested, "MCTS-alpha %", "value AUC (held out)",
                "train tokens/problem", "D+ traces"):
        table.add_column(col, justify="left" if col == "flow" else "right", no_wrap=True)
    for name, per_seed in series.items():
        for i in sorted({r["iteration"] for rows in per_seed for r in rows}):
            rows = [r for seed_rows in per_seed for r in seed_rows if r["iteration"] == i]
            again = [_cell(rows, "greedy_retest", 100, ".1f")] if retest else []
            table.add_row(name, str(i), _cell(rows, "greedy", 100, ".1f"), *again,
                          _cell(rows, "mcts_alpha", 100, ".1f"), _cell(rows, "value_heldout_auc", 1, ".3f"),
                          _cell(rows, "tokens_per_problem", 1, ".0f"), _cell(rows, "traces", 1, ".0f"))
    console = Console(width=140)
    console.print(table)
    for name, values in minutes.items():
        if values:
            console.print(f"{name}: {statistics.fmean(values):.1f} min per seed "
                          f"({', '.join(f'{v:.1f}' for v in values)})")


def _report_retest(series: dict, count: int, test_size: int) -> None:
    """Whether the retest reproduced the flows' own greedy figures on their `test_size` problems; per seed, each
    flow's last iteration on `count` test problems, and the gap between the two flows."""
    from rich.console import Console

    console = Console(width=140)
    pairs = [r for per_seed in series.values() for seed_rows in per_seed for r in seed_rows]
    same = sum(abs(r["greedy_first"] - r["greedy"]) < 1e-9 for r in pairs)
    console.print(f"the retest's first {test_size} problems reproduce the flows' greedy figure at {same} of "
                  f"{len(pairs)} (run, iteration) pairs")
    for name, per_seed in series.items():
        last = [100 * seed_rows[-1]["greedy_retest"] for seed_rows in per_seed]
        console.print(f"{name}, greedy on {count} test problems at the last iteration, per seed: "
                      f"{', '.join(f'{v:.1f}' for v in last)} %")
    if len(series) == 2:
        a, b = series.values()
        gaps = [100 * (x[-1]["greedy_retest"] - y[-1]["greedy_retest"]) for x, y in zip(a, b, strict=True)]
        sd = f", sd {statistics.stdev(gaps):.1f}" if len(gaps) > 1 else ""
        console.print(f"greedy on {count} test problems at the last iteration, {' - '.join(series)} per seed: "
                      f"{', '.join(f'{g:+.1f}' for g in gaps)} points (mean {statistics.fmean(gaps):+.1f}{sd})")


if __name__ == "__main__":
    main()
