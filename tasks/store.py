"""Trace-store tasks: the only ones that write the DuckDB file (one writer, sequentially)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

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
    """Accuracy and cost of one method's evaluation trees, recorded in `evaluations`; returns them."""
    with store.connect(store_path) as con:
        row = con.execute(
            "SELECT count(*), avg(correct::INT), avg(generated_tokens), avg(value_states), any_value(policy), "
            "any_value(value_model) FROM trees WHERE run_id = ? AND iteration = ? AND stage = 'eval' "
            "AND method = ?", [run_id, iteration, method]).fetchone()
        n, acc, tokens, vstates, policy, value = row
        con.execute("INSERT OR REPLACE INTO evaluations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [run_id, iteration, method, split, budget, n, acc, tokens, vstates, policy, value,
                     wall_seconds])
    return {"iteration": iteration, "method": method, "n_problems": n, "accuracy": acc,
            "tokens_per_problem": tokens, "value_states_per_problem": vstates, "wall_seconds": wall_seconds}
