"""What ranks a node's children on the testbed: the value model's estimate, or the policy's own step log-prob?

    python benchmarks/sibling_ranking.py [--store work/report-full/traces.duckdb] [--run report-methods] \
        [--method mcts_alpha] [--budget 800] [--iteration N]

Reads the stored trees of one run's arithmetic test problems and labels every node by whether its path is
still the gold solution (`problems.arithmetic.on_track`, measurement only). For each score the tree
keeps per node (the value model's estimate, the policy's log-probability of the step, and that per token)
it prints the AUC over all nodes and between siblings only (`models.metrics.sibling_auc`: the choice a
search makes at each node). No model is run: the figures are what the search saw.
"""

from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default="work/report-full/traces.duckdb")
    parser.add_argument("--run", default="report-methods")
    parser.add_argument("--method", default="mcts_alpha")
    parser.add_argument("--budget", type=int, default=800)
    parser.add_argument("--iteration", type=int, default=None, help="one iteration's trees (default: all)")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from models.metrics import roc_auc, sibling_auc
    from problems import select_problems
    from problems.arithmetic import on_track
    from storage.store import query

    _, rows = query(args.store, """
        SELECT t.tree_id, t.problem_id, n.parent_id, s.state, n.value, n.logprob, n.tokens
        FROM trees t JOIN nodes n USING (tree_id) JOIN node_states s USING (tree_id, node_id)
        WHERE t.run_id = ? AND t.method = ? AND t.budget = ? AND t.split = 'test' AND n.parent_id >= 0
          AND (? IS NULL OR t.iteration = ?)
        ORDER BY 1, n.node_id""", [args.run, args.method, args.budget, args.iteration, args.iteration])
    if not rows:
        raise SystemExit(f"{args.store}: no test trees of run {args.run!r}, method {args.method}, "
                         f"budget {args.budget}")
    ids = {problem for _, problem, *_ in rows}
    problems = {p.id: p for p in select_problems("arithmetic", "test", 0, 1 + max(_index(i) for i in ids), {})}
    labels, parents = [], []
    scores: dict[str, list[float]] = {"value model": [], "step log-prob": [], "step log-prob per token": []}
    for tree, problem, parent, state, value, logprob, tokens in rows:
        prompt = problems[problem].prompt
        labels.append(on_track(problems[problem], state[len(prompt):].splitlines(keepends=True)))
        parents.append(f"{tree}/{parent}")
        scores["value model"].append(value)
        scores["step log-prob"].append(logprob)
        scores["step log-prob per token"].append(logprob / max(tokens, 1))
    trees = {tree for tree, *_ in rows}
    at = "" if args.iteration is None else f", iteration {args.iteration}"
    table = Table(title=f"{args.run}{at} {args.method} @ {args.budget} tokens: {len(trees)} trees, {len(labels)} "
                        f"nodes, {sum(labels)} on the gold path")
    for col in ("score", "AUC, all nodes", "AUC, between siblings"):
        table.add_column(col, justify="left" if col == "score" else "right")
    for name, values in scores.items():
        table.add_row(name, f"{roc_auc(values, labels):.3f}", f"{sibling_auc(values, labels, parents):.3f}")
    Console().print(table)


def _index(problem_id: str) -> int:
    return int(problem_id.rsplit("-", 1)[1])


if __name__ == "__main__":
    main()
