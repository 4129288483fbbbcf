"""The search flywheel against ReST-EM on the CPU testbed, at the same training generation budget.

    python benchmarks/flywheel_vs_rest_em.py [--config configs/testbed.yaml] [--seeds 0] \
        [--workdir work/compare] [--prefix tb] [--search JSON] [--flows flywheel restem] \
        [--analyze-only] [--plot docs/flywheel-vs-rest-em.png]

Per seed it runs `treeflow flywheel` and `treeflow rest-em` with the same configuration (the same
bootstrap policy and value model, training problems, per-problem token cap, SFT, value refit and
evaluation; only the generator differs: MCTS-alpha or `rest_em.samples` samples), then reads back per
iteration: greedy and MCTS-alpha test accuracy, the value model's held-out AUC, training tokens per
problem and D+ size. Prints one table (mean and sd over seeds) and the wall time of each flow, and draws
both accuracies over iterations. `--search` changes the flywheel's training search only (e.g. more paths on
one tree; `benchmarks/generator_yield.py` measures what a setting yields before a full run). `--analyze-only`
reads runs already in the store.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLOWS = {"flywheel": "mcts_alpha", "restem": "rest_em"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "testbed.yaml"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--workdir", default="work/compare")
    parser.add_argument("--cache", default=None, help="bootstrap cache (default: <workdir>/cache)")
    parser.add_argument("--prefix", default="tb", help="run ids are PREFIX-flywheel-sSEED, PREFIX-restem-sSEED")
    parser.add_argument("--search", default=None, metavar="JSON",
                        help='the flywheel\'s training search over the config\'s, e.g. \'{"k": 3, "paths": 5}\'; '
                             "MCTS-alpha is still evaluated with the config's own settings")
    parser.add_argument("--flows", nargs="+", choices=list(FLOWS), default=list(FLOWS),
                        help="run (and report) only these, e.g. the flywheel alone under another --search")
    parser.add_argument("--analyze-only", action="store_true")
    parser.add_argument("--plot", default=None, help="PNG path (default: <workdir>/flywheel-vs-rest-em.png)")
    args = parser.parse_args()

    from flows import env

    env.configure(args.workdir)
    from flows.config import load_config
    from flows.figures import iteration_figures, plot_over_iterations
    from flows.flywheel import flywheel, rest_em

    series: dict[str, list[list[dict]]] = {name: [] for name in args.flows}
    minutes: dict[str, list[float]] = {name: [] for name in args.flows}
    config = None
    for seed in args.seeds:
        for name in args.flows:
            run_id = f"{args.prefix}-{name}-s{seed}"
            config = with_training_search(load_config(args.config, {
                "workdir": args.workdir, "cache_dir": args.cache, "seed": seed, "run_id": run_id}), args.search)
            if not args.analyze_only:
                t0 = time.perf_counter()
                (flywheel if name == "flywheel" else rest_em)(config)
                minutes[name].append((time.perf_counter() - t0) / 60)
            series[name].append(iteration_figures(config.paths["store"], run_id, config.evaluation.token_budget))
    _report(series, minutes, config, args.seeds)
    labels = {"flywheel": "search flywheel (MCTS-alpha)", "restem": f"ReST-EM ({config.rest_em.samples} samples)"}
    path = plot_over_iterations({labels[name]: rows for name, rows in series.items()},
                                args.plot or f"{args.workdir}/flywheel-vs-rest-em.png",
                                f"{config.task.name}: flywheel vs ReST-EM ({len(args.seeds)} seed"
                                f"{'s' * (len(args.seeds) > 1)}, {config.task.test_size} test problems, "
                                f"{config.evaluation.token_budget} tokens)")
    print(f"picture: {path}")


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


def _cell(rows: list[dict], key: str, scale: float, fmt: str) -> str:
    values = [scale * r[key] for r in rows if r.get(key) is not None]
    if not values:
        return ""
    sd = f" ±{statistics.stdev(values):{fmt}}" if len(values) > 1 else ""
    return f"{statistics.fmean(values):{fmt}}{sd}"


def _report(series: dict, minutes: dict, config, seeds: list[int]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"flywheel vs ReST-EM on {config.task.name}: {config.task.train_per_iteration} training "
                        f"problems per iteration, {config.task.test_size} test problems, seeds "
                        f"{', '.join(map(str, seeds))} (mean ± sd)")
    for col in ("flow", "iteration", "greedy %", "MCTS-alpha %", "value AUC (held out)", "train tokens/problem",
                "D+ traces"):
        table.add_column(col, justify="left" if col == "flow" else "right", no_wrap=True)
    for name, per_seed in series.items():
        for i in sorted({r["iteration"] for rows in per_seed for r in rows}):
            rows = [r for seed_rows in per_seed for r in seed_rows if r["iteration"] == i]
            table.add_row(name, str(i), _cell(rows, "greedy", 100, ".1f"), _cell(rows, "mcts_alpha", 100, ".1f"),
                          _cell(rows, "value_heldout_auc", 1, ".3f"), _cell(rows, "tokens_per_problem", 1, ".0f"),
                          _cell(rows, "traces", 1, ".0f"))
    console = Console(width=140)
    console.print(table)
    for name, values in minutes.items():
        if values:
            console.print(f"{name}: {statistics.fmean(values):.1f} min per seed "
                          f"({', '.join(f'{v:.1f}' for v in values)})")


if __name__ == "__main__":
    main()
