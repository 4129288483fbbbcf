"""The `treeflow` command: demo (the main job), flywheel, rest-em, run, serve, pools, evaluate, report, plot,
view, export, sql, config, bootstrap."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from flows import env

EXIT_BAD_INPUT = 2



CHECK_HELP = ("report what the config needs on this machine (models, formats, data, checker, GPU, vLLM) "
              "and exit 0 when all is here, 2 when anything is missing; runs nothing")

def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 2 bad input)."""
    parser = argparse.ArgumentParser(prog="treeflow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="the flywheel on the built-in testbed recipe (configs/testbed.yaml) from "
                                       "the shipped tiny policy, then one screen and a picture of what it showed")
    demo.add_argument("--workdir", default="work")
    demo.add_argument("--iterations", type=int, default=None)
    demo.add_argument("--seed", type=int, default=None)
    demo.add_argument("--retrain-bootstrap", action="store_true",
                      help="train the tiny policy from its recipe first (about 12 min on 2 cores) instead of "
                           "starting from the shipped one, and say whether it came out the same")
    cfg = sub.add_parser("config", help="print a config as it will run (validated, every default filled in), or "
                                        "the reference of every key (--reference, docs/config.md)")
    cfg.add_argument("--config", default=None, help="YAML config (default: configs/testbed.yaml)")
    cfg.add_argument("--reference", action="store_true", help="every key with its default and what it does, "
                                                              "as Markdown")
    boot = sub.add_parser("bootstrap", help="the config's tiny policy: from the cache, the shipped copy "
                                            "(verified) or trained from its recipe; --ship writes it into "
                                            "models/assets")
    boot.add_argument("--config", default=None, help="YAML config (default: configs/testbed.yaml)")
    boot.add_argument("--workdir", default=None, help="overrides the config's workdir (its cache/ is used)")
    boot.add_argument("--retrain", action="store_true", help="train from the recipe even when cached or shipped")
    boot.add_argument("--ship", action="store_true", help="copy the result into models/assets with its manifest")
    run = sub.add_parser("run", help="run the flywheel from a YAML config")
    run.add_argument("--config", required=True)
    run.add_argument("--workdir", default=None, help="overrides the config's workdir")
    run.add_argument("--check", action="store_true", help=CHECK_HELP)
    for name, what in (("flywheel", "the search flywheel (a tree search, `training_search`, generates the "
                                    "training traces)"),
                       ("rest-em", "the ReST-EM baseline (k samples per training problem, same token cap)")):
        cmd = sub.add_parser(name, help=f"run {what}; prints greedy and MCTS-alpha accuracy and the value "
                                        "model's held-out AUC per iteration")
        cmd.add_argument("--config", default=None, help="YAML config (default: configs/testbed.yaml)")
        cmd.add_argument("--iterations", type=int, default=None)
        cmd.add_argument("--workdir", default=None, help="overrides the config's workdir")
        cmd.add_argument("--run-id", default=None)
        cmd.add_argument("--check", action="store_true", help=CHECK_HELP)
    serve = sub.add_parser("serve", help="a Prefect server on 127.0.0.1 (or $PREFECT_API_URL's) and treeflow's "
                                         "deployments served from this process, the flywheel on a schedule")
    serve.add_argument("--config", default=None, help="YAML config (default: configs/testbed.yaml)")
    serve.add_argument("--workdir", default=None, help="overrides the config's workdir")
    serve.add_argument("--cron", default=None, help="the flywheel's schedule (default: '0 2 * * *', nightly)")
    serve.add_argument("--timezone", default=None, help="of the schedule (default: Europe/Berlin for the cron)")
    serve.add_argument("--interval", type=float, default=None,
                       help="run the flywheel every this many seconds instead of on the cron schedule")
    serve.add_argument("--anchor", default=None,
                       help="ISO date-time the interval counts from, e.g. 2026-11-23T01:30+01:00 (default: now)")
    serve.add_argument("--port", type=int, default=4200, help="of the Prefect server started here")
    pools = sub.add_parser("pools", help="create or update prefect.yaml's work pools on $PREFECT_API_URL's "
                                         "server, with concurrency limits: one flow run per GPU")
    pools.add_argument("--gpus", type=int, required=True, help="GPUs across the GPU workers (one worker per GPU)")
    pools.add_argument("--parents", type=int, default=1, help="flywheel / ReST-EM runs at once on the CPU pool")
    ev = sub.add_parser("evaluate", help="every method at the same generated-token budgets; rows to the store "
                                         "and MLflow, and a PNG of accuracy vs tokens")
    ev.add_argument("--config", default=None, help="YAML config (default: configs/testbed.yaml)")
    ev.add_argument("--workdir", default=None, help="overrides the config's workdir")
    ev.add_argument("--budgets", default="256,512,1024,2048", help="comma-separated tokens per problem")
    ev.add_argument("--methods", default=None, help="comma-separated (default: the config's evaluation.methods)")
    ev.add_argument("--seeds", default="0", help="comma-separated sampling seeds")
    ev.add_argument("--policy", default=None, help="policy model directory or hub id (default: the config's)")
    ev.add_argument("--value", default=None, help="value model directory or hub id (default: the config's)")
    ev.add_argument("--test-size", type=int, default=None)
    ev.add_argument("--plot", default=None, help="PNG path (default: <workdir>/<run id>-accuracy-vs-tokens.png)")
    ev.add_argument("--check", action="store_true", help=CHECK_HELP)
    plot = sub.add_parser("plot", help="redraw an evaluation's accuracy-vs-tokens PNG from the trace store")
    plot.add_argument("run", help="the evaluation's run id")
    plot.add_argument("--store", default="work/traces.duckdb")
    plot.add_argument("--out", required=True, help="PNG path")
    plot.add_argument("--title", default=None)
    rep = sub.add_parser("report", help="the headline comparison on the testbed (every method at equal "
                                        "budgets, flywheel vs ReST-EM, calibration) as PNGs and markdown; prints "
                                        "its wall time")
    rep.add_argument("--quick", action="store_true", help="a smaller testbed (fewer problems, one iteration)")
    rep.add_argument("--config", default=None, help="YAML config (default: configs/testbed.yaml)")
    rep.add_argument("--workdir", default=None, help="overrides the config's workdir (default: work/report)")
    rep.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    rep.add_argument("--budgets", default=None, help="comma-separated tokens per problem (default: 200,400,800,"
                                                     "1600; --quick 200,800)")
    rep.add_argument("--prefix", default=None, help="run ids' prefix; the same prefix resumes (default: report)")
    rep.add_argument("--out", default=None, help="folder for the PNGs, pages and report.md (default: "
                                                 "<workdir>/report)")
    view = sub.add_parser("view", help="write one search tree as a self-contained HTML page (steps, values, "
                                       "visits, targets, correct leaves, the chosen path)")
    view.add_argument("run", help="the run id")
    view.add_argument("problem", help="the problem id (e.g. arithmetic-test-17)")
    view.add_argument("--store", default="work/traces.duckdb")
    view.add_argument("--out", default=None, help="HTML path (default: <tree id>.html here)")
    view.add_argument("--stage", default=None, help="eval, search or bootstrap (default: eval first)")
    view.add_argument("--iteration", type=int, default=None, help="(default: the last)")
    view.add_argument("--method", default=None, help="(default: mcts_alpha first)")
    view.add_argument("--budget", type=int, default=None, help="(default: the largest)")
    view.add_argument("--seed", type=int, default=None, help="(default: the lowest)")
    export = sub.add_parser("export", help="write a view or table of the trace store as Parquet or JSON Lines")
    export.add_argument("view", help="e.g. sft_traces, prm_targets, orm_rows, preference_pairs, nodes")
    export.add_argument("--format", choices=["parquet", "jsonl"], default="parquet")
    export.add_argument("--out", required=True)
    export.add_argument("--where", default=None, help="a SQL condition on the view's columns")
    export.add_argument("--store", default="work/traces.duckdb")
    sql = sub.add_parser("sql", help="query a trace store, read-only")
    sql.add_argument("query")
    sql.add_argument("--store", default="work/traces.duckdb")
    args = parser.parse_args(argv)
    try:
        if args.command == "sql":
            return _sql(args.store, args.query)
        if args.command == "export":
            from storage.datasets import export as export_view

            n = export_view(args.store, args.view, args.out, args.format, args.where)
            print(f"{n} rows of {args.view} -> {args.out}")
            return 0
        if args.command == "plot":
            return _plot(args.store, args.run, args.out, args.title)
        if args.command == "view":
            return _view(args)
        if args.command == "pools":
            return _pools(args.gpus, args.parents)
        if args.command == "config":
            return _print_config(args.config, args.reference)
        config = _config(args)
        if getattr(args, "check", False):
            from rich.console import Console

            from flows.check import report, requirements

            env.configure()  # offline and quiet, as a run would be; writes nothing
            return report(Console(), args.config or "the default config", requirements(config, _is_bad_input))
        preflight(config)
        env.configure(config.workdir)
        if args.command == "bootstrap":
            return _bootstrap(config, args.retrain, args.ship)
        if args.command == "demo":
            return _demo(config, args.retrain_bootstrap)
        if args.command == "evaluate":
            return _evaluate(config, _ints(args.seeds, "--seeds"), args.plot)
        if args.command == "serve":
            return _serve(config, args)
        if args.command == "report":
            return _report(config, args)
        return _run(config, "rest_em" if args.command == "rest-em" else "search")
    except Exception as e:  # every expected bad input becomes one line and exit 2
        if not _is_bad_input(e):
            raise
        print(f"treeflow: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _is_bad_input(e: Exception) -> bool:
    import duckdb

    from flows.config import ConfigError
    from flows.figures import MissingRun
    from flows.generate import RunnerUnavailable
    from flows.viewer import NoSuchTree
    from models.errors import ModelDirError
    from models.hf_policy import StepDelimiterError
    from models.prm import PRMError
    from models.prompts import ChatTemplateError
    from models.vllm_policy import BackendUnavailable
    from problems.base import DatasetError
    from storage.datasets import UnknownRelation
    from storage.store import RunConflict, ShardError

    bad = (BackendUnavailable, RunnerUnavailable, NoSuchTree, MissingRun, UnknownRelation, ConfigError,
           DatasetError, ModelDirError, PRMError, StepDelimiterError, ChatTemplateError,
           ShardError, RunConflict, FileNotFoundError, duckdb.Error)
    return isinstance(e, bad)


def _config(args):
    from flows.config import default_config_path, load_config

    if args.command == "demo":
        overrides = {"workdir": args.workdir}
        overrides.update({k: v for k, v in (("iterations", args.iterations), ("seed", args.seed))
                          if v is not None})
        return load_config(default_config_path(), overrides)
    if args.command == "evaluate":
        return _evaluate_config(args)
    overrides = {"workdir": args.workdir} if args.workdir else {}
    if args.command == "report":
        from flows.config import report_config

        return report_config(args.config, args.workdir, args.quick)
    if args.command in ("flywheel", "rest-em"):
        overrides.update({k: v for k, v in (("iterations", args.iterations), ("run_id", args.run_id))
                          if v is not None})
    return load_config(args.config or default_config_path(), overrides)


def _ints(text: str, flag: str) -> list[int]:
    from flows.config import ConfigError

    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{flag}: expected comma-separated integers, got {text!r}") from None


def _evaluate_config(args):
    """The evaluation's configuration: a YAML file or the demo defaults, with the command line on top."""
    from pydantic import ValidationError

    from flows.config import ConfigError, FlywheelConfig, _describe, default_config_path, load_config

    data = load_config(args.config or default_config_path()).model_dump()
    if args.workdir:
        data["workdir"] = args.workdir
    evaluation = data["evaluation"]
    evaluation["budgets"] = _ints(args.budgets, "--budgets")
    if args.methods:
        evaluation["methods"] = [m.strip() for m in args.methods.split(",") if m.strip()]
    for key, value in (("policy", args.policy), ("value", args.value)):
        if value is not None:
            data[key]["path"] = value
    if args.test_size is not None:
        data["task"]["test_size"] = args.test_size
    try:
        return FlywheelConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError("treeflow evaluate: " + "; ".join(_describe(err) for err in e.errors())) from None


def preflight(config) -> None:
    """Check inputs before any run starts, so bad input writes nothing: model dirs and task data."""
    from flows.check import check_policy_format, read_problems
    from models import prm
    from models.errors import resolve_model

    for path in (config.policy.path, config.value.path, config.value.init):
        if path is not None and prm.is_prm_spec(path):
            prm.check(path)
        elif path is not None:
            if str(path).startswith("models:/"):  # look in the registry the run will use
                from tasks import tracking

                tracking.point_at(tracking.tracking_uri(config.paths["mlflow"]))
            resolve_model(path)
    check_policy_format(config)
    if config.sft.lora_rank or config.value_training.lora_rank:
        from flows.config import ConfigError
        from models.training import require_peft

        try:
            require_peft()
        except ModuleNotFoundError as e:
            raise ConfigError(str(e)) from None
    if config.policy.backend == "vllm":
        from models.vllm_policy import require_vllm

        require_vllm()
    if config.generation.runner == "ray":
        from flows.generate import require_ray

        require_ray()
    read_problems(config, "test")
    read_problems(config, "train")


def _run(config, generator: str) -> int:
    from rich.console import Console
    from rich.table import Table

    from flows.flywheel import flywheel, rest_em, summary_rows

    t0 = time.perf_counter()
    result = (flywheel if generator == "search" else rest_em)(config)
    wall = time.perf_counter() - t0
    name = "flywheel" if generator == "search" else "ReST-EM"
    console = Console(width=max(Console().width, 130))
    console.print(_iteration_table(result, f"treeflow {name} on {config.task.name}: per iteration "
                                           f"({config.evaluation.token_budget} tokens/problem)",
                                   config.evaluation.token_budget))
    out = Table(title=f"every evaluated method: test accuracy at {config.evaluation.token_budget} "
                      "generated tokens/problem")
    for col in ("iteration", "method", "accuracy", "tokens/problem", "value calls", "value AUC", "wall s"):
        out.add_column(col, justify="right" if col != "method" else "left", no_wrap=True)
    for r in summary_rows(result["evaluations"]):
        out.add_row(str(r["iteration"]), r["method"], f"{100 * r['accuracy']:.1f}%",
                    f"{r['tokens_per_problem']:.0f}", f"{r['value_states_per_problem']:.0f}",
                    "" if r["value_auc"] is None else f"{r['value_auc']:.2f}", f"{r['wall_seconds']:.0f}")
    console.print(out)
    from tasks.tracking import tracking_uri

    console.print(f"wall time {wall / 60:.1f} min; store {Path(config.paths['store'])}; "
                  f"MLflow {tracking_uri(config.paths['mlflow'])}")
    return 0


def _print_config(path: str | None, reference: bool) -> int:
    import yaml

    from flows.config import default_config_path, load_config
    from flows.reference import reference as config_reference

    if reference:
        sys.stdout.write(config_reference())
        return 0
    config = load_config(path or default_config_path())
    sys.stdout.write(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    return 0


def _bootstrap_tiny(config, retrain: bool) -> str:
    """The config's tiny policy in its cache (from the cache, the shipped copy, or trained), with a progress bar
    while it trains."""
    from models.tiny import bootstrap, bootstrap_steps
    from tasks.progress import bar

    with bar("bootstrap tiny policy", bootstrap_steps(config.tiny)) as update:
        return str(bootstrap(config.tiny, config.paths["cache"], retrain=retrain,
                             progress=lambda s, _: update(s)))


def _compare_with_shipped(config, policy: str) -> str:
    """Whether a (re)trained tiny policy's files are the shipped copy's, file by file."""
    from models.tiny import file_digests, shipped

    source = shipped(config.tiny)
    if source is None:
        return f"{policy}: treeflow ships no copy of this recipe ({config.tiny.digest()}) to compare with"
    mine, theirs = file_digests(policy), file_digests(source)
    differ = [name for name in theirs if name != "treeflow_recipe.json" and mine.get(name) != theirs[name]]
    if not differ:
        return f"{policy}: the same files as the shipped {source.name}, byte for byte"
    return (f"{policy}: differs from the shipped {source.name} in {', '.join(differ)} (CPU training is "
            "reproducible on one machine and torch build, not across them)")


def _bootstrap(config, retrain: bool, ship: bool) -> int:
    from flows.config import ConfigError
    from models.tiny import ship as ship_dir

    if config.policy.path is not None:
        raise ConfigError(f"policy.path is {config.policy.path}: there is no tiny policy to bootstrap")
    policy = _bootstrap_tiny(config, retrain)
    print(_compare_with_shipped(config, policy) if retrain else policy)
    if ship:
        print(f"shipped: {ship_dir(policy)}")
    return 0


def _demo(config, retrain_bootstrap: bool) -> int:
    from rich.console import Console

    from flows import demo
    from flows.flywheel import flywheel

    t0 = time.perf_counter()
    console = Console(width=max(Console().width, 120))
    if retrain_bootstrap:
        console.print(_compare_with_shipped(config, _bootstrap_tiny(config, retrain=True)), highlight=False)
    result = flywheel(config)
    wall = time.perf_counter() - t0
    figure = demo.plot(result, Path(config.workdir) / f"{result['run_id']}.png",
                       f"treeflow demo: chain arithmetic, configs/testbed.yaml, seed {config.seed}")
    console.rule("treeflow demo: the search flywheel on chain arithmetic (configs/testbed.yaml, seed "
                 f"{config.seed})")
    demo.print_screen(console, config, result, wall, figure, demo.champion())
    return 0


def _iteration_table(result: dict, title: str, budget: int):
    """Greedy and MCTS-alpha accuracy, the value model's held-out AUC and the training generation, per
    iteration (blank where a figure was not measured)."""
    from rich.table import Table

    acc = {(r["iteration"], r["method"]): r["accuracy"] for r in result["evaluations"]
           if r["budget"] in (None, budget)}
    table = Table(title=title)
    for col in ("iteration", "greedy", "MCTS-alpha", "value AUC (held out)", "sibling AUC", "value MSE",
                "train tokens/problem", "D+ traces"):
        table.add_column(col, justify="right", no_wrap=True)
    pct = lambda v: "" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    num = lambda v, f: "" if v is None else format(v, f)  # noqa: E731
    for it in result["iterations"]:
        i = it["iteration"]
        table.add_row(str(i), pct(acc.get((i, "greedy"))), pct(acc.get((i, "mcts_alpha"))),
                      num(it["value_heldout_auc"], ".3f"), num(it["value_heldout_sibling_auc"], ".3f"),
                      num(it["value_heldout_mse"], ".3f"),
                      num(it["generated_tokens_per_problem"], ".0f"), num(it["traces"], "d"))
    return table


def _report(config, args) -> int:
    from flows.config import FULL_BUDGETS, QUICK_BUDGETS
    from flows.report import report

    seeds = _ints(args.seeds, "--seeds")
    budgets = _ints(args.budgets, "--budgets") if args.budgets else (QUICK_BUDGETS if args.quick else FULL_BUDGETS)
    prefix = args.prefix or ("report-quick" if args.quick else "report")
    out = args.out or str(Path(config.workdir) / prefix)
    t0 = time.perf_counter()
    result = report(config, seeds, budgets, out, prefix)
    print(f"report: {Path(result['out']) / 'report.md'} (and its PNGs, tree pages); MLflow run "
          f"{result['mlflow_run']}; wall time {(time.perf_counter() - t0) / 60:.1f} min")
    return 0


def _pools(gpus: int, parents: int) -> int:
    import os

    from flows.config import ConfigError
    from flows.service import ensure_pools

    if gpus < 1 or parents < 1:
        raise ConfigError(f"--gpus and --parents: at least 1 each, got {gpus} and {parents}")
    if not os.environ.get("PREFECT_API_URL"):
        raise ConfigError("treeflow pools: set PREFECT_API_URL to the team's Prefect server (e.g. "
                          "http://127.0.0.1:4200/api)")
    env.configure()
    for pool, limit in ensure_pools(gpus, parents).items():
        print(f"{pool}: at most {limit} flow run{'s' * (limit > 1)} at once")
    return 0


def _serve(config, args) -> int:
    import datetime as dt

    from flows.config import ConfigError
    from flows.service import schedule, serve

    anchor = None
    if args.anchor is not None:
        try:
            anchor = dt.datetime.fromisoformat(args.anchor)
        except ValueError:
            raise ConfigError(f"--anchor: expected an ISO date-time, got {args.anchor!r}") from None
    if args.interval is not None and args.interval <= 0:
        raise ConfigError(f"--interval: expected a positive number of seconds, got {args.interval}")
    if args.interval is not None and args.cron is not None:
        raise ConfigError("--cron and --interval: give one schedule, not both")
    try:
        when = schedule(args.cron, args.timezone, args.interval, anchor)
    except ValueError as e:  # a cron expression or timezone Prefect does not accept
        raise ConfigError(f"--cron/--timezone: {e}".splitlines()[0]) from None
    serve(config, when, args.port)
    return 0


def _evaluate(config, seeds: list[int], plot: str | None) -> int:
    from rich.console import Console
    from rich.table import Table

    from flows.evaluate import evaluate
    from flows.figures import budget_curves

    t0 = time.perf_counter()
    rows = evaluate(config, seeds, plot)
    wall = time.perf_counter() - t0
    out = Table(title=f"treeflow evaluate on {config.task.name}: {config.task.test_size} test problems, "
                      f"seeds {', '.join(map(str, seeds))} (mean, sd over seeds)")
    for col in ("method", "budget", "accuracy", "sd", "tokens/problem"):
        out.add_column(col, justify="left" if col == "method" else "right", no_wrap=True)
    for method, points in budget_curves(rows).items():
        for budget, tokens, acc, sd, _ in points:
            out.add_row(method, "-" if budget is None else str(budget), f"{acc:.1f}%", f"{sd:.1f}",
                        f"{tokens:.0f}")
    console = Console(width=max(Console().width, 100))
    console.print(out)
    console.print(f"wall time {wall / 60:.1f} min; store {config.paths['store']}; figure "
                  f"{plot or config.paths['root']}")
    return 0


def _view(args) -> int:
    from flows.viewer import write_page

    if not Path(args.store).is_file():
        raise FileNotFoundError(f"{args.store}: trace store not found")
    filters = {k: getattr(args, k) for k in ("stage", "iteration", "method", "budget", "seed")}
    path, tree_id, others = write_page(args.store, args.run, args.problem, args.out, **filters)
    print(f"{tree_id} -> {path}")
    if others:
        print(f"{len(others)} other tree{'s' * (len(others) > 1)} of this run and problem (pick with --stage, "
              f"--iteration, --method, --budget, --seed): {', '.join(others[:8])}{' ...' * (len(others) > 8)}")
    return 0


def _plot(store_path: str, run_id: str, out: str, title: str | None) -> int:
    from flows.figures import evaluation_rows, plot_accuracy_vs_tokens

    rows = evaluation_rows(store_path, run_id)
    seeds = len({r["seed"] for r in rows})
    title = title or (f"{run_id}: accuracy vs generated tokens ({seeds} seed{'s' * (seeds > 1)}, "
                      f"{rows[0]['n_problems']} problems)")
    path = plot_accuracy_vs_tokens(rows, out, title)
    print(path)
    return 0


def _sql(store_path: str, query: str) -> int:
    from rich.console import Console
    from rich.table import Table

    from storage.store import query as run_query

    columns, rows = run_query(store_path, query)
    table = Table()
    for c in columns:
        table.add_column(c)
    for row in rows:
        table.add_row(*("NULL" if v is None else str(v) for v in row))
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
