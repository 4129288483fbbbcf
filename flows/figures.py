"""Figures a person would rather look at than read: accuracy against generated tokens per problem, accuracy
over flywheel iterations, the value model's calibration."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path


def pyplot():
    """matplotlib's pyplot on the file-only backend (no display here or on workers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: str | Path) -> Path:
    """Lay out, write `fig` as a PNG at `path` (creating its folder), close it; returns the path."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    pyplot().close(fig)
    return path


def budget_curves(rows: list[dict]) -> dict[str, list[tuple]]:
    """Per method, by budget: (budget, mean tokens/problem, mean accuracy %, sd of accuracy %, seeds)."""
    by: dict[tuple[str, int | None], list[dict]] = defaultdict(list)
    for r in rows:
        by[(r["method"], r["budget"])].append(r)
    curves: dict[str, list[tuple]] = defaultdict(list)
    for (method, budget), rs in sorted(by.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        acc = [100 * r["accuracy"] for r in rs]
        tokens = statistics.fmean(r["tokens_per_problem"] for r in rs)
        sd = statistics.stdev(acc) if len(acc) > 1 else 0.0
        curves[method].append((budget, tokens, statistics.fmean(acc), sd, len(acc)))
    return dict(curves)


def plot_accuracy_vs_tokens(rows: list[dict], path: str | Path, title: str) -> Path:
    """One line per method (error bars: sd over seeds); single-budget methods (greedy) as points."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    colors = plt.get_cmap("tab20").colors
    for i, (method, points) in enumerate(budget_curves(rows).items()):
        _, xs, ys, es, _ = zip(*points, strict=True)
        color = colors[(2 * i) % 20 + (i >= 10)]
        ax.errorbar(xs, ys, yerr=es, marker="osD^v<>ph*XP"[i % 12], capsize=3, label=method, color=color,
                    linestyle="-" if len(points) > 1 else "none")
        if len(points) == 1:  # an unbudgeted method (greedy): a reference line across the plot
            ax.axhline(ys[0], color=color, linestyle=":", linewidth=1)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("generated tokens per problem (every sampled candidate)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    return save(fig, path)


class MissingRun(LookupError):
    """A run id the trace store has no evaluations for."""


def evaluation_rows(store_path: str | Path, run_id: str) -> list[dict]:
    """The `evaluations` rows of one run, as dicts (for re-plotting an evaluation from its store)."""
    from storage.store import query

    columns, rows = query(store_path, "SELECT * FROM evaluations WHERE run_id = ? ORDER BY method, budget, seed",
                          [run_id])
    if not rows:
        raise MissingRun(f"{store_path}: no evaluations for run '{run_id}'")
    return [dict(zip(columns, r, strict=True)) for r in rows]


def iteration_figures(store_path: str | Path, run_id: str, budget: int | None = None) -> list[dict]:
    """Per iteration of a flywheel or ReST-EM run, read back from its store: greedy and MCTS-alpha test
    accuracy (at `budget`, default the run's only one), the held-out AUC of the value model it evaluated
    with, training tokens per problem and D+ traces."""
    from storage.store import query
    from tasks.train import value_metrics

    _, evals = query(store_path, "SELECT iteration, method, budget, accuracy FROM evaluations WHERE run_id = ? "
                                 "AND method IN ('greedy', 'mcts_alpha')", [run_id])
    if not evals:
        raise MissingRun(f"{store_path}: no evaluations for run '{run_id}'")
    budgets = {b for _, m, b, _ in evals if m != "greedy"}
    budget = budget if budget is not None else (max(budgets) if budgets else None)
    accuracy = {(i, m): a for i, m, b, a in evals if m == "greedy" or b == budget}
    _, values = query(store_path, "SELECT iteration, any_value(value_model) FROM trees WHERE run_id = ? AND "
                                  "stage = 'eval' AND value_model IS NOT NULL GROUP BY 1", [run_id])
    _, search = query(store_path, "SELECT iteration, avg(generated_tokens) FROM trees WHERE run_id = ? AND "
                                  "stage = 'search' GROUP BY 1", [run_id])
    _, traces = query(store_path, "SELECT iteration, n_rows FROM training_snapshots WHERE run_id = ? AND "
                                  "model_kind = 'policy'", [run_id])
    values, search, traces = dict(values), dict(search), dict(traces)
    fits = {i: value_metrics(path) for i, path in values.items()}
    return [{"iteration": i, "greedy": accuracy.get((i, "greedy")), "mcts_alpha": accuracy.get((i, "mcts_alpha")),
             "value_heldout_auc": fits.get(i, {}).get("heldout_auc"),
             "value_heldout_sibling_auc": fits.get(i, {}).get("heldout_sibling_auc"),
             "tokens_per_problem": search.get(i), "traces": traces.get(i)}
            for i in sorted({i for i, *_ in evals})]


#: the panels of `plot_over_iterations`: (row key, title)
ITERATION_PANELS = (("greedy", "greedy (CoT)"), ("mcts_alpha", "MCTS-alpha"))


def plot_over_iterations(series: dict[str, list[list[dict]]], path: str | Path, title: str,
                         panels: tuple[tuple[str, str], ...] = ITERATION_PANELS) -> Path:
    """Accuracy over iterations, one panel per (row key, title) of `panels` (default: greedy and MCTS-alpha),
    one line per flow (`series`: label -> per seed the rows of `iteration_figures`), mean and sd over seeds."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), sharey=True, squeeze=False)
    axes = axes[0]
    for ax, (key, name) in zip(axes, panels, strict=True):
        for label, seeds in series.items():
            its = sorted({r["iteration"] for rows in seeds for r in rows if r[key] is not None})
            acc = [[100 * r[key] for rows in seeds for r in rows if r["iteration"] == i and r[key] is not None]
                   for i in its]
            ax.errorbar(its, [statistics.fmean(a) for a in acc],
                        yerr=[statistics.stdev(a) if len(a) > 1 else 0.0 for a in acc], marker="o", capsize=3,
                        label=label)
        ax.set_title(name)
        ax.set_xlabel("iteration")
        ax.set_xticks(sorted({r["iteration"] for seeds in series.values() for rows in seeds for r in rows}))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].legend()
    fig.suptitle(title)
    return save(fig, path)


def calibration(store_path: str | Path, run_ids: list[str], bins: int = 10) -> dict[int, dict]:
    """How well the value model's estimates match outcomes, per iteration of `run_ids` (pooled): every
    evaluation-tree node the value model scored, its estimate read as a probability p = (v + 1) / 2 against
    the fraction of finished paths below it that are correct (the Monte Carlo target). Per iteration: the
    bins' (mean p, observed fraction, nodes) and the expected calibration error (node-weighted mean gap)."""
    from storage.store import query

    marks = ", ".join("?" * len(run_ids))
    _, rows = query(store_path, f"""
        SELECT t.iteration, least(greatest((n.value + 1) / 2, 0), 1) AS p, m.soft_label
        FROM nodes n JOIN trees t USING (tree_id) JOIN math_shepherd m USING (tree_id, node_id)
        WHERE t.run_id IN ({marks}) AND t.stage = 'eval' AND n.node_id <> 0 AND n.value IS NOT NULL""", run_ids)
    out: dict[int, dict] = {}
    for iteration in sorted({r[0] for r in rows}):
        points = [(p, y) for i, p, y in rows if i == iteration]
        binned: dict[int, list[tuple[float, float]]] = defaultdict(list)
        for p, y in points:
            binned[min(int(p * bins), bins - 1)].append((p, y))
        table = [(statistics.fmean(p for p, _ in b), statistics.fmean(y for _, y in b), len(b))
                 for _, b in sorted(binned.items())]
        ece = sum(n * abs(p - y) for p, y, n in table) / len(points)
        out[iteration] = {"bins": table, "ece": ece, "nodes": len(points)}
    return out


def plot_calibration(curves: dict[int, dict], path: str | Path, title: str) -> Path:
    """Reliability diagram: observed fraction correct against the value model's estimate, per iteration."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="calibrated")
    for iteration, c in curves.items():
        ps, ys, ns = zip(*c["bins"], strict=True)
        ax.plot(ps, ys, marker="o", label=f"iteration {iteration} (ECE {c['ece']:.3f}, {c['nodes']} nodes)")
    ax.set_xlabel("value model estimate, as P(correct) = (v + 1) / 2")
    ax.set_ylabel("observed: fraction of finished paths below that are correct")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, path)
