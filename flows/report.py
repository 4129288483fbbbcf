"""`treeflow report`: the headline comparison on one configuration (the built-in testbed by default), run
for several seeds and written as PNGs and a markdown summary, logged to MLflow and shown as a Prefect
artifact:

1. every search method at the same generated-token budgets (accuracy vs tokens per problem, sd over seeds);
2. the search flywheel against ReST-EM over iterations (the same bootstrap, problems, cap and training);
3. the value model's calibration on the flywheel's evaluation trees, per iteration;
4. a tree viewer page for a few test problems (`flows/viewer.py`).

Each part is its own flow run with run ids `<prefix>-methods`, `<prefix>-flywheel-s<seed>`,
`<prefix>-restem-s<seed>`, so a report restarted with the same prefix resumes (`tasks/resume.py`).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from prefect import flow

from flows.config import FlywheelConfig
from flows.evaluate import evaluate
from flows.figures import (
    budget_curves,
    calibration,
    iteration_figures,
    plot_calibration,
    plot_over_iterations,
)
from flows.flywheel import flywheel, rest_em
from flows.viewer import write_page

#: every method of the comparison: CoT, Self-Consistency, Best-of-N with ORM / PRM, beam with PRM, BFS-V,
#: DFS-V, MCTS-alpha, MCTS-Rollout, MCTS*
METHODS = ["greedy", "self_consistency", "best_of_n_orm", "best_of_n_prm", "beam_prm", "bfs_v", "dfs_v",
           "mcts_alpha", "mcts_rollout", "mcts_star"]
VALUE_GUIDED = ("bfs_v", "dfs_v", "mcts_alpha", "mcts_rollout", "mcts_star", "beam_prm")
#: how the report names the flywheel's training search (`training_search.method`)
TRAINING_SEARCH_NAMES = {"mcts_alpha": "MCTS-alpha", "bfs_v": "BFS-V"}
SAMPLING = ("self_consistency", "best_of_n_orm", "best_of_n_prm")


@flow(name="report")
def report(config: FlywheelConfig, seeds: list[int], budgets: list[int], out_dir: str, prefix: str,
           methods: list[str] | None = None, trees: int = 3) -> dict:
    """Run the comparison and write `out_dir`: accuracy-vs-tokens.png, flywheel-vs-rest-em.png,
    calibration.png, trees/*.html and report.md. Returns the summary's figures and the wall time."""
    import mlflow
    from prefect.artifacts import create_markdown_artifact

    from tasks import tracking

    t0 = time.perf_counter()
    out = Path(out_dir)
    store = str(config.paths["store"])
    methods = methods or METHODS
    evaluation = config.evaluation.model_copy(update={"methods": methods, "later_methods": None,
                                                      "budgets": budgets})
    rows = evaluate(config.model_copy(update={"run_id": f"{prefix}-methods", "evaluation": evaluation}), seeds,
                    str(out / "accuracy-vs-tokens.png"))
    searched = f"flywheel ({TRAINING_SEARCH_NAMES[config.training_search.method]})"
    series: dict[str, list[list[dict]]] = {searched: [], "ReST-EM": []}
    runs = {"flywheel": [], "restem": []}
    for seed in seeds:
        for label, name, fn in ((searched, "flywheel", flywheel), ("ReST-EM", "restem", rest_em)):
            run_id = f"{prefix}-{name}-s{seed}"
            fn(config.model_copy(update={"seed": seed, "run_id": run_id}))
            runs[name].append(run_id)
            series[label].append(iteration_figures(store, run_id, config.evaluation.token_budget))
    plot_over_iterations(series, out / "flywheel-vs-rest-em.png",
                         f"{config.task.name}: the search flywheel against ReST-EM ({len(seeds)} seeds)")
    curves = calibration(store, runs["flywheel"])
    plot_calibration(curves, out / "calibration.png", "value model calibration (flywheel evaluation trees)")
    pages = _tree_pages(store, f"{prefix}-methods", out / "trees", trees)
    wall = time.perf_counter() - t0
    text = summary(config, rows, series, curves, pages, seeds, budgets, wall)
    (out / "report.md").write_text(text)
    experiment = tracking.setup(tracking.tracking_uri(config.paths["mlflow"]), config.paths["artifacts"])
    with tracking.resumable_run(experiment, f"{prefix}-report") as (run, _):
        mlflow.set_tags({"treeflow.kind": "report", "treeflow.run_id": prefix})
        mlflow.log_metric("report/wall_minutes", wall / 60)
        mlflow.log_artifacts(str(out), artifact_path="report")
    create_markdown_artifact(markdown=text, key="treeflow-report", description=f"treeflow report {prefix}")
    return {"out": str(out), "wall_seconds": wall, "mlflow_run": run.info.run_id,
            "methods": budget_curves(rows), "ece": {i: c["ece"] for i, c in curves.items()}}


def _tree_pages(store: str, run_id: str, out: Path, count: int) -> list[Path]:
    """Viewer pages of the first `count` test problems' MCTS-alpha trees (the largest budget, seed first)."""
    from storage.store import query

    _, rows = query(store, "SELECT DISTINCT problem_id FROM trees WHERE run_id = ? AND method = 'mcts_alpha' "
                           "ORDER BY 1 LIMIT ?", [run_id, count])
    return [write_page(store, run_id, p, out / f"{p}.html", method="mcts_alpha")[0] for (p,) in rows]


def _pm(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.1f} ± {sd:.1f}"


def reading(curves: dict[str, list[tuple]], budgets: list[int]) -> list[str]:
    """Per budget, the best value-guided method against the best of Self-Consistency and Best-of-N: a win
    only when the means differ by more than the larger sd over seeds, else level."""
    lines = []
    for budget in budgets:
        at = {m: (acc, sd) for m, points in curves.items() for b, _, acc, sd, _ in points if b == budget}
        guided = max((m for m in at if m in VALUE_GUIDED), key=lambda m: at[m][0], default=None)
        sampled = max((m for m in at if m in SAMPLING), key=lambda m: at[m][0], default=None)
        if guided is None or sampled is None:
            continue
        (ga, gs), (sa, ss) = at[guided], at[sampled]
        verdict = ("search wins" if ga - sa > max(gs, ss) else "sampling wins" if sa - ga > max(gs, ss)
                   else "level (within the spread over seeds)")
        lines.append(f"- {budget} tokens: {guided} {ga:.1f} ± {gs:.1f} % against {sampled} {sa:.1f} ± {ss:.1f} %: "
                     f"{verdict}")
    return lines + _greedy_reading(curves, budgets)


def _greedy_reading(curves: dict[str, list[tuple]], budgets: list[int]) -> list[str]:
    """Greedy decoding (one path, whatever the budget) against the best other method at each budget, by the
    same rule: the baseline every budget's spending has to beat."""
    if "greedy" not in curves:
        return []
    _, tokens, acc, sd, _ = curves["greedy"][0]
    verdicts: dict[str, list[str]] = {"above": [], "below": [], "level with": []}
    for budget in budgets:
        at = [(a, s) for m, points in curves.items() if m != "greedy" for b, _, a, s, _ in points if b == budget]
        if not at:
            continue
        best, best_sd = max(at)
        spread = max(sd, best_sd)
        verdicts["above" if acc - best > spread else "below" if best - acc > spread else "level with"].append(
            str(budget))
    parts = [f"{verdict} the best method at {', '.join(b)} tokens" for verdict, b in verdicts.items() if b]
    if not parts:
        return []
    return [f"- greedy decoding ({acc:.1f} ± {sd:.1f} % on {tokens:.0f} tokens) is " + "; ".join(parts)]


def summary(config: FlywheelConfig, rows: list[dict], series: dict[str, list[list[dict]]], curves: dict,
            pages: list[Path], seeds: list[int], budgets: list[int], wall: float) -> str:
    """The report as markdown: the tables behind each figure and a reading of them."""
    methods = budget_curves(rows)
    lines = [f"# treeflow report: {config.task.name}", "",
             f"{config.task.test_size} test problems, seeds {', '.join(map(str, seeds))}, budgets "
             f"{', '.join(map(str, budgets))} generated tokens per problem; wall time {wall / 60:.1f} min.", "",
             "## Accuracy at equal generated-token budgets (mean ± sd over seeds, %)", "",
             "![accuracy vs tokens](accuracy-vs-tokens.png)", "",
             "| method | " + " | ".join(f"{b} tokens" for b in budgets) + " |",
             "|---|" + "---:|" * len(budgets)]
    for method, points in methods.items():
        cells = {b: f"{acc:.1f} ± {sd:.1f} ({tokens:.0f} tok)" for b, tokens, acc, sd, _ in points}
        row = [cells.get(b, cells.get(None, "")) for b in budgets]
        lines.append(f"| {method} | " + " | ".join(row) + " |")
    lines += ["", "Reading, per budget (the best value-guided search against the best of Self-Consistency and "
                  "Best-of-N, then greedy decoding against the best of all; a difference counts only beyond the "
                  "larger sd over seeds):", "", *reading(methods, budgets), "",
              "## The search flywheel against ReST-EM (test accuracy, mean ± sd over seeds, %)", "",
              "![flywheel vs ReST-EM](flywheel-vs-rest-em.png)", "",
              "| iteration | " + " | ".join(f"{label}: {k}" for label in series for k in ("greedy", "MCTS-alpha"))
              + " |", "|---|" + "---:|" * (2 * len(series))]
    iterations = sorted({r["iteration"] for per_seed in series.values() for rows_ in per_seed for r in rows_})
    for i in iterations:
        cells = []
        for per_seed in series.values():
            for key in ("greedy", "mcts_alpha"):
                vals = [100 * r[key] for rows_ in per_seed for r in rows_
                        if r["iteration"] == i and r[key] is not None]
                cells.append(_pm(vals) if vals else "")
        lines.append(f"| {i} | " + " | ".join(cells) + " |")
    last = iterations[-1]
    ends = {label: [100 * r["greedy"] for rows_ in per_seed for r in rows_ if r["iteration"] == last]
            for label, per_seed in series.items()}
    (fl, fv), (rl, rv) = ends.items()
    gap = statistics.fmean(fv) - statistics.fmean(rv)
    spread = max(statistics.stdev(v) if len(v) > 1 else 0.0 for v in (fv, rv))
    verdict = "above" if gap > spread else "below" if -gap > spread else "level with"
    lines += ["", f"At iteration {last} the flywheel's greedy accuracy ends {verdict} ReST-EM's ({_pm(fv)} "
                  f"against {_pm(rv)} %).", "",
              "## Value model calibration", "", "![calibration](calibration.png)", "",
              "| iteration | expected calibration error | nodes |", "|---|---:|---:|"]
    lines += [f"| {i} | {c['ece']:.3f} | {c['nodes']} |" for i, c in curves.items()]
    lines += ["", "## Trees", "", *(f"- [{p.stem}](trees/{p.name})" for p in pages), ""]
    return "\n".join(lines)
