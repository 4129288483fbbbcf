"""Figures a person would rather look at than read: accuracy against generated tokens per problem."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


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
