"""Trace-store tasks: the only ones that write the DuckDB file (one writer, sequentially)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from models.metrics import roc_auc
from storage import store


@task(name="ingest", cache_policy=NONE, persist_result=False)
def ingest_task(store_path: str, shards: list[str]) -> int:
    """Load shards into the store in one transaction; returns the number of new trees."""
    with store.connect(store_path) as con:
        return store.ingest(con, shards)


@task(name="record-run", cache_policy=NONE, persist_result=False)
def record_run_task(store_path: str, run_id: str, kind: str, config: dict) -> None:
    """Record a run's configuration once."""
    with store.connect(store_path) as con:
        store.record_run(con, run_id, kind, config)


@task(name="summarize", cache_policy=NONE, persist_result=False)
def summarize_task(store_path: str, run_id: str, iteration: int, method: str, split: str, budget: int | None,
                   wall_seconds: float) -> dict:
    """Accuracy and cost of one method's evaluation trees, recorded in `evaluations`; returns them.

    For value-guided methods also the value model's AUC on these held-out trees: how well the values the
    search recorded rank steps with a correct answer below them above steps without one.
    """
    with store.connect(store_path) as con:
        row = con.execute(
            "SELECT count(*), avg(correct::INT), avg(generated_tokens), avg(value_states), any_value(policy), "
            "any_value(value_model) FROM trees WHERE run_id = ? AND iteration = ? AND stage = 'eval' "
            "AND method = ?", [run_id, iteration, method]).fetchone()
        n, acc, tokens, vstates, policy, value = row
        scored = con.execute(
            "SELECT n.value, m.hard_label FROM nodes n JOIN trees t USING (tree_id) "
            "JOIN math_shepherd m USING (tree_id, node_id) WHERE t.run_id = ? AND t.iteration = ? "
            "AND t.stage = 'eval' AND t.method = ? AND n.node_id <> 0 AND n.value IS NOT NULL",
            [run_id, iteration, method]).fetchall()
        value_auc = roc_auc([v for v, _ in scored], [y for _, y in scored]) if scored else None
        con.execute("INSERT OR REPLACE INTO evaluations (run_id, iteration, method, split, budget, n_problems, "
                    "accuracy, tokens_per_problem, value_states_per_problem, policy, value_model, wall_seconds, "
                    "value_auc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [run_id, iteration, method, split, budget, n, acc, tokens, vstates, policy, value,
                     wall_seconds, value_auc])
    return {"iteration": iteration, "method": method, "n_problems": n, "accuracy": acc,
            "tokens_per_problem": tokens, "value_states_per_problem": vstates, "wall_seconds": wall_seconds,
            "value_auc": value_auc}
