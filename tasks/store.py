"""Trace-store tasks: the only ones that write the DuckDB file (one writer, sequentially). Each retries
with backoff while another process holds the file's write lock."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from models.metrics import roc_auc
from storage import store
from tasks.retries import TRANSIENT


@task(name="ingest", cache_policy=NONE, persist_result=False, **TRANSIENT)
def ingest_task(store_path: str, shards: list[str]) -> int:
    """Load shards into the store in one transaction; returns the number of new trees."""
    with store.connect(store_path) as con:
        return store.ingest(con, shards)


@task(name="record-run", cache_policy=NONE, persist_result=False, **TRANSIENT)
def record_run_task(store_path: str, run_id: str, kind: str, config: dict) -> None:
    """Record a run's configuration and the code version that runs it, once."""
    from tasks.provenance import code_version

    with store.connect(store_path) as con:
        store.record_run(con, run_id, kind, config, code_version())


@task(name="summarize", cache_policy=NONE, persist_result=False, **TRANSIENT)
def summarize_task(store_path: str, run_id: str, iteration: int, method: str, split: str, budget: int | None,
                   wall_seconds: float, seed: int = 0, costs: dict | None = None) -> dict:
    """Accuracy and cost of one method's evaluation trees at one budget and seed, recorded in `evaluations`.

    `costs` are the search's counters for these trees (prefill and value tokens, policy and value
    calls). For value-guided methods also the value model's AUC on these held-out trees: how well the
    values the search recorded rank steps with a correct answer below them above steps without one.
    """
    where = ("t.run_id = ? AND t.iteration = ? AND t.stage = 'eval' AND t.method = ? "
             "AND t.budget IS NOT DISTINCT FROM ? AND t.seed = ?")
    params = [run_id, iteration, method, budget, seed]
    costs = costs or {}
    with store.connect(store_path) as con:
        n, acc, tokens, vstates, policy, value, checker = con.execute(
            "SELECT count(*), avg(correct::INT), avg(generated_tokens), avg(value_states), any_value(policy), "
            f"any_value(value_model), string_agg(DISTINCT checker, ',') FROM trees t WHERE {where}",
            params).fetchone()
        if not n:
            raise ValueError(f"no evaluation trees for run {run_id}, iteration {iteration}, method {method}, "
                             f"budget {budget}, seed {seed}")
        scored = con.execute(
            "SELECT n.value, m.hard_label FROM nodes n JOIN trees t USING (tree_id) "
            f"JOIN math_shepherd m USING (tree_id, node_id) WHERE {where} AND n.node_id <> 0 "
            "AND n.value IS NOT NULL", params).fetchall()
        value_auc = roc_auc([v for v, _ in scored], [y for _, y in scored]) if scored else None
        row = {"run_id": run_id, "iteration": iteration, "method": method, "split": split, "budget": budget,
               "seed": seed, "n_problems": n, "accuracy": acc, "tokens_per_problem": tokens,
               "value_states_per_problem": vstates,
               "prefill_tokens_per_problem": costs.get("policy_prefill_tokens", 0) / n,
               "value_tokens_per_problem": costs.get("value_tokens", 0) / n,
               "policy_calls": costs.get("policy_calls", 0), "value_calls": costs.get("value_calls", 0),
               "policy": policy, "value_model": value, "wall_seconds": wall_seconds, "value_auc": value_auc,
               "checker": checker}
        con.execute("BEGIN")
        con.execute("DELETE FROM evaluations WHERE run_id = ? AND iteration = ? AND method = ? AND split = ? "
                    "AND budget IS NOT DISTINCT FROM ? AND seed = ?",
                    [run_id, iteration, method, split, budget, seed])
        con.execute(f"INSERT INTO evaluations ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                    list(row.values()))
        con.execute("COMMIT")
    return row
