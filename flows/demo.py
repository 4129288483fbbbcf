"""`treeflow demo`: the flywheel on the testbed recipe, then one screen (and one picture) of what it showed.

The screen has greedy accuracy per iteration with its standard error, every evaluated method at the same
generated-token budget, the value model's held-out AUC, the registry version that became `champion`, and the
commands to look further (a tree page, the MLflow UI, SQL over the reward views).
"""

from __future__ import annotations

import math
from pathlib import Path

from flows.figures import pyplot, save

#: how the evaluated methods are named on the screen and in the picture
NAMES = {"greedy": "greedy (CoT)", "self_consistency": "Self-Consistency", "mcts_alpha": "MCTS-alpha",
         "bfs_v": "BFS-V", "best_of_n_prm": "Best-of-N, PRM", "best_of_n_orm": "Best-of-N, ORM",
         "beam_prm": "beam, PRM", "dvts": "DVTS", "dfs_v": "DFS-V", "mcts_rollout": "MCTS-Rollout",
         "mcts_star": "MCTS*"}
GUIDED = ("mcts_alpha", "bfs_v", "mcts_star", "beam_prm", "dvts", "best_of_n_prm", "dfs_v", "mcts_rollout")


def standard_error(row: dict) -> float:
    """One standard error of an evaluation row's accuracy (a binomial proportion over its problems)."""
    p, n = row["accuracy"], row["n_problems"]
    return math.sqrt(p * (1 - p) / n) if n else float("nan")


def search_gap(rows: list[dict]) -> dict | None:
    """The best value-guided search against Self-Consistency at iteration 0: their accuracies' difference in
    points and in standard errors of the difference (None when either was not evaluated)."""
    at0 = {r["method"]: r for r in rows if r["iteration"] == 0}
    guided = [at0[m] for m in GUIDED if m in at0]
    if "self_consistency" not in at0 or not guided:
        return None
    best, sc = max(guided, key=lambda r: r["accuracy"]), at0["self_consistency"]
    se = math.hypot(standard_error(best), standard_error(sc))
    gap = best["accuracy"] - sc["accuracy"]
    return {"method": best["method"], "points": 100 * gap, "se": 100 * se, "z": gap / se if se else float("inf")}


def champion() -> dict | None:
    """The policy version the registry's `champion` alias points at, with the run and iteration that trained
    it (None when no version became champion)."""
    import mlflow
    from mlflow import MlflowClient

    from tasks.registry import GATE_TAG, POLICY

    try:
        mv = MlflowClient().get_model_version_by_alias(POLICY, "champion")
    except mlflow.exceptions.MlflowException:
        return None
    gate = mv.tags.get(GATE_TAG)
    return {"name": POLICY, "version": mv.version, "run_id": mv.tags.get("treeflow.run_id"),
            "iteration": int(mv.tags.get("treeflow.iteration", -1)),
            "gate_value": None if gate is None else float(gate)}


def plot(result: dict, path: str | Path, title: str) -> Path:
    """Two panels: greedy accuracy per iteration (one standard error as bars), and every method of iteration 0
    at the same generated-token budget."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1, 1.3]})
    greedy = sorted((r for r in result["evaluations"] if r["method"] == "greedy"), key=lambda r: r["iteration"])
    left.errorbar([r["iteration"] for r in greedy], [100 * r["accuracy"] for r in greedy],
                  yerr=[100 * standard_error(r) for r in greedy], marker="o", capsize=4, color="tab:blue")
    n = greedy[0]["n_problems"] if greedy else 0
    left.set_title(f"greedy accuracy after each iteration ({n:,} test problems)", fontsize=10)
    left.set_xlabel("flywheel iteration")
    left.set_ylabel("accuracy (%), bars: one standard error")
    left.set_xticks([r["iteration"] for r in greedy])
    left.grid(alpha=0.3)
    at0 = sorted((r for r in result["evaluations"] if r["iteration"] == 0), key=lambda r: r["accuracy"])
    names = [f"{NAMES.get(r['method'], r['method'])}\n{r['tokens_per_problem']:.0f} tok, n={r['n_problems']}"
             for r in at0]
    colors = ["tab:green" if r["method"] in GUIDED else "tab:gray" for r in at0]
    right.barh(names, [100 * r["accuracy"] for r in at0], xerr=[100 * standard_error(r) for r in at0],
               color=colors, capsize=3)
    right.set_xlabel("accuracy (%), bars: one standard error")
    right.set_title("iteration 0: each method at the same token budget (green: value-guided)", fontsize=10)
    right.tick_params(axis="y", labelsize=8)
    right.grid(alpha=0.3, axis="x")
    fig.suptitle(title, fontsize=11)
    return save(fig, path)


def print_screen(console, config, result: dict, wall_seconds: float, figure: Path, best: dict | None) -> None:
    """The demo's one screen: what the flywheel did to the policy, how search compared with sampling, what the
    registry holds, and where to look next."""
    from rich.table import Table

    from tasks.tracking import tracking_uri

    evaluations, budget = result["evaluations"], config.evaluation.token_budget
    greedy = {r["iteration"]: r for r in evaluations if r["method"] == "greedy"}
    table = Table(title="greedy accuracy of the policy after each flywheel iteration", title_justify="left")
    for col in ("iteration", "test problems", "greedy", "± 1 SE", "D+ traces", "value AUC (held-out steps)"):
        table.add_column(col, justify="right", no_wrap=True)
    for it in result["iterations"]:
        g = greedy.get(it["iteration"])
        auc = it["value_heldout_auc"]
        table.add_row(str(it["iteration"]), "" if g is None else f"{g['n_problems']:,}",
                      "" if g is None else f"{100 * g['accuracy']:.1f}%",
                      "" if g is None else f"{100 * standard_error(g):.1f}",
                      "" if it["traces"] is None else str(it["traces"]), "" if auc is None else f"{auc:.3f}")
    console.print(table)
    methods = Table(title=f"iteration 0: every method at {budget} generated tokens per problem",
                    title_justify="left")
    for col in ("method", "test problems", "accuracy", "± 1 SE", "tokens/problem", "value calls/problem"):
        methods.add_column(col, justify="left" if col == "method" else "right", no_wrap=True)
    for r in sorted((r for r in evaluations if r["iteration"] == 0), key=lambda r: -r["accuracy"]):
        methods.add_row(NAMES.get(r["method"], r["method"]), f"{r['n_problems']:,}", f"{100 * r['accuracy']:.1f}%",
                        f"{100 * standard_error(r):.1f}", f"{r['tokens_per_problem']:.0f}",
                        f"{r['value_states_per_problem']:.0f}")
    console.print(methods)
    first, last = greedy.get(0), greedy.get(max(greedy)) if greedy else None
    if first and last and last is not first:
        console.print(self_training_line(first, last, max(greedy)))
    if (gap := search_gap(evaluations)) is not None:
        console.print(f"search: {NAMES[gap['method']]} minus Self-Consistency at equal tokens "
                      f"{gap['points']:+.1f} points ({gap['z']:+.1f} standard errors)")
    if best is None:
        console.print("registry: no version became champion (no iteration's greedy accuracy reached the start's)")
    else:
        console.print(f"registry: {best['name']} version {best['version']} is champion (iteration "
                      f"{best['iteration']} of {best['run_id']}, greedy {100 * best['gate_value']:.1f}%)")
    root, run_id = Path(config.workdir), result["run_id"]
    store = config.paths["store"]
    problem = tree_to_show(store, run_id)
    console.print(f"\nwall time {wall_seconds / 60:.1f} min. Where to look next:\n"
                  f"  picture   {figure}\n"
                  f"  a tree    treeflow view {run_id} {problem} --iteration 0 --method mcts_alpha "
                  f"--store {store} --out {root / 'tree.html'}\n"
                  f"  MLflow    mlflow ui --backend-store-uri {tracking_uri(config.paths['mlflow'])}\n"
                  f"  rewards   treeflow sql --store {store} \"{SQL_VALUE_VS_LABEL}\"\n"
                  f"            treeflow sql --store {store} \"{SQL_QUALITY_VALUES}\"",
                  soft_wrap=True, highlight=False, markup=False)


def self_training_line(first: dict, last: dict, iterations: int) -> str:
    """Greedy accuracy from the first iteration to the last, the rise in points and in standard errors (left out
    when both ends sit at 0 % or 100 %, where there is no spread to scale by)."""
    rise = 100 * (last["accuracy"] - first["accuracy"])
    se = 100 * math.hypot(standard_error(first), standard_error(last))
    z = f", {rise / se:+.1f} standard errors" if se > 0 else ""
    return (f"self-training: greedy {100 * first['accuracy']:.1f}% -> {100 * last['accuracy']:.1f}% "
            f"({rise:+.1f} points{z}) over {iterations} iterations")


def tree_to_show(store: str | Path, run_id: str) -> str | None:
    """A test problem whose iteration-0 MCTS-alpha tree found the answer that greedy decoding missed (else the
    first one searched)."""
    from storage.store import query

    _, rows = query(store, "SELECT problem_id FROM trees WHERE run_id = ? AND iteration = 0 AND stage = 'eval' "
                    "AND method = 'mcts_alpha' ORDER BY (correct AND problem_id IN (SELECT problem_id FROM trees "
                    "WHERE run_id = ? AND iteration = 0 AND stage = 'eval' AND method = 'greedy' AND NOT correct))"
                    " DESC, problem_id LIMIT 1", [run_id, run_id])
    return rows[0][0] if rows else None


#: the screen's two queries over the reward views: how the search's values agree with the Math-Shepherd labels
#: the store inferred, and the ReST-MCTS* quality values along one searched tree's correct path
SQL_VALUE_VS_LABEL = ("SELECT t.iteration, m.hard_label AS reaches_answer, count(*) AS steps, "
                      "round(avg(n.value), 3) AS mean_value FROM nodes n JOIN math_shepherd m USING (tree_id, "
                      "node_id) JOIN trees t USING (tree_id) WHERE t.stage = 'search' AND n.value IS NOT NULL "
                      "GROUP BY ALL ORDER BY ALL")
SQL_QUALITY_VALUES = ("SELECT n.depth, n.step_text, r.reasoning_distance, round(r.quality_value, 3) AS v_k "
                      "FROM rest_mcts_values r JOIN nodes n USING (tree_id, node_id) WHERE r.tree_id = (SELECT "
                      "min(tree_id) FROM trees WHERE stage = 'search' AND correct) AND n.node_id IN (SELECT "
                      "unnest(chosen_path) FROM trees WHERE tree_id = r.tree_id) ORDER BY n.depth")
